//! The admin API over a real listener and a real PostgreSQL: tokens and
//! their scopes, problem documents, and the same refusals as the CLI.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use userfeed::api::auth::{Tokens, new_token};
use userfeed::api::{ApiState, serve};
use userfeed::cli::{Cli, execute};
use userfeed::config::Config;
use userfeed::map::MatchKey;
use userfeed::service::Caller;
use userfeed_tests::*;

struct Api {
    addr: String,
    ops: String,
    acme: String,
    _stop: tokio_util::sync::DropGuard,
}

impl Api {
    async fn start(db: &TestDb) -> Api {
        let (ops, ops_entry) = new_token("ops", &Caller::Platform).unwrap();
        let (acme, acme_entry) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
        let tokens = Tokens::parse(&format!("{ops_entry}{acme_entry}")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = tokio_util::sync::CancellationToken::new();
        let state = ApiState {
            db: db.db.clone(),
            tokens: Arc::new(tokens),
            timeout: Duration::from_secs(10),
        };
        tokio::spawn(serve(listener, state, stop.clone()));
        Api {
            addr,
            ops,
            acme,
            _stop: stop.drop_guard(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, Vec<(String, String)>, Value) {
        self.send(method, path, token, "").await
    }

    /// `method path` with `body` as JSON (none when empty).
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Vec<(String, String)>, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let (status, headers, text) =
            http_request(&self.addr, method, path, &headers, body.as_bytes())
                .await
                .unwrap();
        let json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
        (status, headers, json)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `userfeed <args>` in-process, as the platform: its error text.
async fn cli_error(db: &TestDb, args: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("userfeed").chain(args.iter().copied())).unwrap();
    let mut out = Vec::new();
    let err = execute(&db.db, &Config::load(None).unwrap(), cli.command, &mut out)
        .await
        .expect_err("the CLI refuses it");
    format!("{err:#}")
}

#[tokio::test]
async fn tokens_reach_only_their_scope_and_refusals_match_the_cli() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    for slug in ["acme", "beta"] {
        tenant(&db, slug, &aws.bucket, MatchKey::Email, MAPPING).await;
    }
    let w = workers(&db, &aws, Duration::from_secs(30), 100);
    let mut ids = Vec::new();
    for slug in ["acme", "beta"] {
        aws.put(&format!("{slug}/a.csv"), employees_csv(2, false))
            .await
            .unwrap();
        let [id] = intake_all(&db, &aws).await[..] else {
            panic!("one upload")
        };
        run_next(&w).await;
        ids.push(id);
    }
    let (acme_upload, beta_upload) = (ids[0], ids[1]);
    let api = Api::start(&db).await;

    // No token, a wrong one: 401 problems that say why, with the challenge.
    let (status, headers, body) = api.call("GET", "/api/v1/tenants", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some("Bearer realm=\"userfeed\"")
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Bearer token is required"),
        "{body}"
    );
    let (status, _, body) = api
        .call("GET", "/api/v1/tenants", Some("uf_not-a-token"))
        .await;
    assert_eq!((status, body["status"].as_u64()), (401, Some(401)));
    assert!(!body.to_string().contains("uf_not-a-token"), "{body}");

    // The platform sees both tenants; acme's token sees acme only.
    let slugs = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["slug"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, _, body) = api.call("GET", "/api/v1/tenants", Some(&api.ops)).await;
    assert_eq!(
        (status, slugs(&body)),
        (200, vec!["acme".to_string(), "beta".to_string()])
    );
    let (_, _, body) = api.call("GET", "/api/v1/tenants", Some(&api.acme)).await;
    assert_eq!(slugs(&body), vec!["acme".to_string()]);

    // Acme's own upload, its problems and changes; beta's are 404s, exactly
    // like ids that do not exist.
    let (status, _, body) = api
        .call(
            "GET",
            &format!("/api/v1/uploads/{acme_upload}"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["tenant"].as_str(), body["rows_created"].as_i64()),
        (Some("acme"), Some(2))
    );
    let (status, _, body) = api
        .call(
            "GET",
            &format!("/api/v1/uploads/{acme_upload}/changes"),
            Some(&api.acme),
        )
        .await;
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(2)));
    for path in [
        format!("/api/v1/uploads/{beta_upload}"),
        format!("/api/v1/uploads/{beta_upload}/changes"),
        format!("/api/v1/uploads/{beta_upload}/problems"),
        "/api/v1/tenants/beta".to_string(),
        "/api/v1/tenants/beta/uploads".to_string(),
    ] {
        let (status, headers, body) = api.call("GET", &path, Some(&api.acme)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/problem+json")
        );
        assert!(
            !body.to_string().contains("beta@") && !body.to_string().contains("user0"),
            "{body}"
        );
    }
    let (status, _, _) = api
        .call(
            "POST",
            &format!("/api/v1/uploads/{beta_upload}/retry"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(
        status, 404,
        "a tenant token cannot act on another tenant's upload"
    );
    for path in [
        "/api/v1/uploads/999999",
        "/api/v1/uploads/abc",
        "/api/v1/nothing",
    ] {
        let (status, _, body) = api.call("GET", path, Some(&api.ops)).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, _, body) = api
        .call("GET", "/api/v1/tenants/beta/uploads", Some(&api.ops))
        .await;
    assert_eq!(body["items"][0]["id"].as_i64(), Some(beta_upload));
    assert_eq!(body["next"], Value::Null);

    // The history pages by cursor: a full page links to the next one.
    aws.put("acme/b.csv", employees_csv(3, false))
        .await
        .unwrap();
    let [second] = intake_all(&db, &aws).await[..] else {
        panic!("one upload")
    };
    run_next(&w).await;
    let mut seen = Vec::new();
    let mut next = Some("/api/v1/tenants/acme/uploads?limit=1".to_string());
    while let Some(path) = next {
        let (status, _, body) = api.call("GET", &path, Some(&api.acme)).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_i64().unwrap()),
        );
        next = body["next"].as_str().map(str::to_string);
        assert!(seen.len() <= 3, "pages never end: {seen:?}");
    }
    assert_eq!(seen, vec![second, acme_upload]);
    let (_, _, body) = api
        .call(
            "GET",
            "/api/v1/tenants/acme/uploads?state=failed",
            Some(&api.acme),
        )
        .await;
    assert_eq!(body["items"], serde_json::json!([]));
    let (status, _, _) = api
        .call(
            "GET",
            "/api/v1/tenants/acme/uploads?state=exploded",
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _, _) = api
        .call(
            "GET",
            "/api/v1/tenants/acme/uploads?limit=many",
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 400);

    // Users of a tenant; tenants are created by the platform only, and the
    // overlap refusal is the CLI's, word for word.
    let (status, _, body) = api
        .call("GET", "/api/v1/tenants/acme/users", Some(&api.acme))
        .await;
    assert_eq!(
        (status, body.as_array().map(Vec::len)),
        (200, Some(3)),
        "the second file added one"
    );
    let (status, _, _) = api
        .call("GET", "/api/v1/tenants/beta/users", Some(&api.acme))
        .await;
    assert_eq!(status, 404);
    let new = |slug: &str, prefix: &str| {
        format!(
            r#"{{"slug":"{slug}","bucket":"{}","prefix":"{prefix}","match_on":"email"}}"#,
            aws.bucket
        )
    };
    let (status, _, body) = api
        .send(
            "POST",
            "/api/v1/tenants",
            Some(&api.acme),
            &new("gamma", "gamma"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = api
        .send(
            "POST",
            "/api/v1/tenants",
            Some(&api.ops),
            &new("gamma", "gamma"),
        )
        .await;
    assert_eq!(
        (status, body["slug"].as_str()),
        (201, Some("gamma")),
        "{body}"
    );
    let (status, _, body) = api
        .send(
            "POST",
            "/api/v1/tenants",
            Some(&api.ops),
            &new("delta", "acme/sub"),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let cli = cli_error(
        &db,
        &[
            "tenant",
            "add",
            "delta",
            "--bucket",
            &aws.bucket,
            "--prefix",
            "acme/sub",
        ],
    )
    .await;
    assert_eq!(body["detail"].as_str().unwrap(), cli);
    for bad in ["{not json", r#"{"slug":"x"}"#] {
        let (status, headers, body) = api
            .send("POST", "/api/v1/tenants", Some(&api.ops), bad)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/problem+json")
        );
    }

    // Settings, mapping, groups and profile fields of one's own tenant.
    let (status, _, body) = api
        .send(
            "PATCH",
            "/api/v1/tenants/acme",
            Some(&api.acme),
            r#"{"hold_over_percent":50}"#,
        )
        .await;
    assert_eq!(
        (status, body["hold_over_percent"].as_i64()),
        (200, Some(50)),
        "{body}"
    );
    let (status, _, body) = api
        .send(
            "PATCH",
            "/api/v1/tenants/acme",
            Some(&api.acme),
            r#"{"hold_over_percent":500}"#,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, _) = api
        .send(
            "PATCH",
            "/api/v1/tenants/beta",
            Some(&api.acme),
            r#"{"hold_over_count":1}"#,
        )
        .await;
    assert_eq!(status, 404);
    let mapping =
        r#"{"columns":{"email":"Email","first_name":"First"},"profile":{"dept":"Department"}}"#;
    let (status, _, body) = api
        .send(
            "PUT",
            "/api/v1/tenants/acme/mapping",
            Some(&api.acme),
            mapping,
        )
        .await;
    assert_eq!(
        status, 422,
        "a mapping naming an unknown profile field: {body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("dept"), "{body}");
    let (status, _, _) = api
        .send(
            "POST",
            "/api/v1/tenants/acme/profile-fields",
            Some(&api.acme),
            r#"{"key":"dept","type":"text"}"#,
        )
        .await;
    assert_eq!(status, 201);
    let (status, _, body) = api
        .send(
            "PUT",
            "/api/v1/tenants/acme/mapping",
            Some(&api.acme),
            mapping,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = api
        .call("GET", "/api/v1/tenants/acme/mapping", Some(&api.acme))
        .await;
    assert_eq!(body["profile"]["dept"], "Department");
    let (_, _, body) = api
        .call(
            "GET",
            "/api/v1/tenants/acme/profile-fields",
            Some(&api.acme),
        )
        .await;
    assert_eq!(body, serde_json::json!([{"key":"dept","type":"text"}]));
    let (status, _, _) = api
        .send(
            "POST",
            "/api/v1/tenants/acme/groups",
            Some(&api.acme),
            r#"{"id":"G1","name":"Sales"}"#,
        )
        .await;
    assert_eq!(status, 201);
    let (_, _, body) = api
        .call("GET", "/api/v1/tenants/acme/groups", Some(&api.acme))
        .await;
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    let (status, _, _) = api
        .call("GET", "/api/v1/tenants/beta/groups", Some(&api.acme))
        .await;
    assert_eq!(status, 404);

    // The same refusals, in the same words, on both surfaces.
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/api/v1/uploads/{acme_upload}/approve"),
            Some(&api.ops),
        )
        .await;
    assert_eq!(status, 409);
    let cli = cli_error(&db, &["uploads", "approve", &acme_upload.to_string()]).await;
    assert_eq!(body["detail"].as_str().unwrap(), cli);
    assert_eq!(cli, format!("upload {acme_upload} is succeeded, not held"));
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/api/v1/uploads/{acme_upload}/retry"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 409);
    let cli = cli_error(&db, &["uploads", "retry", &acme_upload.to_string()]).await;
    assert_eq!(body["detail"].as_str().unwrap(), cli);
}

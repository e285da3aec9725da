//! The admin API over a real listener and a real PostgreSQL: tokens and
//! their scopes, problem documents, and the same refusals as the CLI.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use userfeed::cli::execute;
use userfeed::config::Config;
use userfeed::map::MatchKey;
use userfeed::service::{self, Caller};
use userfeed::web::auth::{Tokens, new_token};
use userfeed::web::{WebState as ApiState, serve};
use userfeed_tests::*;

struct Api {
    addr: String,
    ops: String,
    acme: String,
    _stop: tokio_util::sync::DropGuard,
}

impl Api {
    async fn start(db: &TestDb) -> Api {
        Api::start_with(
            db,
            userfeed::web::spool::Files::new(userfeed::parse::Limits::default(), 500),
            None,
        )
        .await
    }

    async fn start_with(
        db: &TestDb,
        files: userfeed::web::spool::Files,
        limiter: Option<Arc<userfeed::web::RateLimiter>>,
    ) -> Api {
        Api::start_full(db, files, limiter, Config::load(None).unwrap().notify, None).await
    }

    async fn start_full(
        db: &TestDb,
        files: userfeed::web::spool::Files,
        limiter: Option<Arc<userfeed::web::RateLimiter>>,
        notify: userfeed::config::NotifyConfig,
        iam: Option<userfeed::credentials::Iam>,
    ) -> Api {
        Api::start_all(db, files, limiter, notify, iam, None).await
    }

    /// An API whose Xero imports go to `xero`.
    async fn start_xero(db: &TestDb, xero: userfeed::xero::XeroService) -> Api {
        Api::start_all(
            db,
            userfeed::web::spool::Files::new(Default::default(), 500),
            None,
            Config::load(None).unwrap().notify,
            None,
            Some(xero),
        )
        .await
    }

    async fn start_all(
        db: &TestDb,
        files: userfeed::web::spool::Files,
        limiter: Option<Arc<userfeed::web::RateLimiter>>,
        notify: userfeed::config::NotifyConfig,
        iam: Option<userfeed::credentials::Iam>,
        xero: Option<userfeed::xero::XeroService>,
    ) -> Api {
        let (ops, ops_entry) = new_token("ops", &Caller::Platform).unwrap();
        let (acme, acme_entry) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
        let tokens = Tokens::parse(&format!("{ops_entry}{acme_entry}")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = tokio_util::sync::CancellationToken::new();
        let state = ApiState {
            service: userfeed::service::Service::new(db.db.clone()),
            db: db.db.clone(),
            tokens: Arc::new(tokens),
            timeout: Duration::from_secs(10),
            limiter,
            guard: Default::default(),
            notify: Arc::new(notify),
            files: Arc::new(files),
            session: userfeed::web::session::SessionSettings::from_config(
                &Config::load(None).unwrap().api,
            ),
            credentials: Arc::new(userfeed::web::CredentialsState {
                iam,
                region: "us-east-1".into(),
                grace: Duration::from_secs(3600),
            }),
            xero,
        }
        .wired();
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

    /// `method path` with a CSV body; the status, headers and raw text.
    async fn csv(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        let auth = format!("Bearer {token}");
        http_request(
            &self.addr,
            method,
            path,
            &[("Authorization", &auth), ("Content-Type", "text/csv")],
            body,
        )
        .await
        .unwrap()
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
    let cli =
        userfeed::cli::parse_args(std::iter::once("userfeed").chain(args.iter().copied())).unwrap();
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
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(2))
    );
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

#[tokio::test]
async fn file_endpoints_suggest_template_preview_and_queue_a_manual_upload_like_a_drop() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    for slug in ["acme", "beta"] {
        tenant(&db, slug, &aws.bucket, MatchKey::Email, MAPPING).await;
    }
    let mut files = userfeed::web::spool::Files::new(
        userfeed::parse::Limits {
            max_object_bytes: 100_000,
            ..Default::default()
        },
        500,
    );
    files.deliver.s3 = Some(aws.s3.clone());
    let api = Api::start_with(&db, files, None).await;

    // Suggest from a header; the template of the saved mapping.
    let (status, _, body) = api
        .csv(
            "POST",
            "/api/v1/tenants/acme/mapping/suggest",
            &api.acme,
            b"Employee ID,Work Email,First Name,Last Name,Shoe Size\n",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mapping"]["columns"]["email"], "Work Email");
    assert_eq!(v["unmapped"], serde_json::json!(["Shoe Size"]));
    let (status, headers, body) = api
        .csv(
            "GET",
            "/api/v1/tenants/acme/mapping/template",
            &api.acme,
            b"",
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(body.starts_with("Employee ID,Work Email"), "{body}");

    // A preview reports and changes nothing.
    let (status, _, body) = api
        .csv(
            "POST",
            "/api/v1/tenants/acme/preview",
            &api.acme,
            employees_csv(3, false).as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["progress"]["created"], 3);
    assert_eq!(db.scalar("SELECT count(*) FROM users").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 0);

    // Another tenant's files are out of reach; a bad name is refused
    // before any byte is stored; a file over max_object_bytes is 413.
    let (status, _, _) = api
        .csv("POST", "/api/v1/tenants/beta/preview", &api.acme, b"x\n")
        .await;
    assert_eq!(status, 404);
    let (status, _, body) = api
        .csv(
            "POST",
            "/api/v1/tenants/acme/files?name=../x.csv",
            &api.acme,
            b"x\n",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let big = employees_csv(3_000, false);
    assert!(big.len() > 100_000);
    let (status, headers, body) = api
        .csv(
            "POST",
            "/api/v1/tenants/acme/files",
            &api.acme,
            big.as_bytes(),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/problem+json")
    );
    assert!(body.contains("limits.max_object_bytes"), "{body}");
    let listed = aws
        .s3
        .list_objects_v2()
        .bucket(&aws.bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing was delivered");

    // A manual upload lands under the tenant's prefix, and its S3
    // notification queues it like any drop.
    let mut file = employees_csv(3, false);
    file.push_str("E9,not-an-email,Bad,Row\n");
    let (status, _, body) = api
        .csv(
            "POST",
            "/api/v1/tenants/acme/files?name=staff.csv",
            &api.acme,
            file.as_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let location = v["location"].as_str().unwrap();
    assert!(
        location.starts_with(&format!("s3://{}/acme/api-", aws.bucket))
            && location.ends_with("-staff.csv"),
        "{location}"
    );
    let [id] = intake_all(&db, &aws).await[..] else {
        panic!("one upload recorded from the notification")
    };
    let w = workers(&db, &aws, Duration::from_secs(30), 100);
    run_next(&w).await;
    let up = upload(&db, id).await;
    assert_eq!(
        (up.state.as_str(), up.rows_created, up.rows_rejected),
        ("succeeded", 3, 1)
    );

    // Problems and changes page with cursors; problems also as CSV.
    let (status, _, page) = api
        .call(
            "GET",
            &format!("/api/v1/uploads/{id}/changes?limit=2"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap().to_string();
    let (_, _, page) = api.call("GET", &next, Some(&api.acme)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], Value::Null);
    let (status, _, page) = api
        .call(
            "GET",
            &format!("/api/v1/uploads/{id}/problems?limit=1"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["column_name"], "Work Email");
    let (_, _, rest) = api
        .call("GET", page["next"].as_str().unwrap(), Some(&api.acme))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 0);
    let (status, headers, csv) = api
        .csv(
            "GET",
            &format!("/api/v1/uploads/{id}/problems?format=csv"),
            &api.acme,
            b"",
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.starts_with("line,severity,column,message\n5,error,Work Email,"),
        "{csv}"
    );
    let (status, _, body) = api
        .call(
            "GET",
            &format!("/api/v1/uploads/{id}/problems?after=nonsense"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Undo: a preview first, then for real; the history shows it.
    let (status, _, p) = api
        .call(
            "POST",
            &format!("/api/v1/uploads/{id}/undo?preview=true"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (p["preview"].clone(), p["undo_id"].clone()),
        (Value::Bool(true), Value::Null)
    );
    assert_eq!(p["deactivated"].as_array().unwrap().len(), 3);
    assert_eq!(
        db.scalar("SELECT count(*) FROM users WHERE active").await,
        3
    );
    let (status, _, r) = api
        .call(
            "POST",
            &format!("/api/v1/uploads/{id}/undo"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM users WHERE active").await,
        0
    );
    let (status, _, again) = api
        .call(
            "POST",
            &format!("/api/v1/uploads/{id}/undo"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("not the tenant's newest"),
        "{again}"
    );
    assert_eq!(
        cli_error(&db, &["uploads", "undo", &id.to_string()]).await,
        again["detail"].as_str().unwrap(),
        "the CLI refuses with the same words"
    );
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "", MatchKey::Email, MAPPING).await;
    let api = Api::start_with(
        &db,
        userfeed::web::spool::Files::new(userfeed::parse::Limits::default(), 500),
        userfeed::web::rate_limiter(1, 2),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(api.call("GET", "/api/v1/tenants", Some(&api.ops)).await.0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let (status, headers, body) = api.call("GET", "/api/v1/tenants", Some(&api.ops)).await;
    assert_eq!(status, 429);
    assert_eq!(body["type"], "/docs/api.md#rate-limited");
    let wait: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // The limit is per token: right after ops was refused, acme's admin
    // reads its own (existing) tenant within its own burst.
    for _ in 0..2 {
        assert_eq!(
            api.call("GET", "/api/v1/tenants/acme", Some(&api.acme))
                .await
                .0,
            200
        );
    }
}

#[tokio::test]
async fn groups_and_profile_fields_are_removed_and_a_mapped_field_is_refused_on_both_surfaces() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    let mapping = format!("{MAPPING}\n[profile]\ndepartment = \"Dept\"\n");
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, &mapping).await;
    userfeed::tenants::add_profile_field(&db.db, "acme", "shoe", userfeed::map::FieldType::Text)
        .await
        .unwrap();
    userfeed::groups::add(&db.db, "acme", "G1", "One")
        .await
        .unwrap();
    let api = Api::start(&db).await;

    // A field the mapping fills stays, with the same reason on both surfaces.
    let (status, _, body) = api
        .call(
            "DELETE",
            "/api/v1/tenants/acme/profile-fields/department",
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("remove it from the mapping first"),
        "{detail}"
    );
    assert_eq!(
        cli_error(&db, &["profile-field", "remove", "acme", "department"]).await,
        detail
    );

    // Another field goes (204), then is unknown (404).
    let (status, _, _) = api
        .csv(
            "DELETE",
            "/api/v1/tenants/acme/profile-fields/shoe",
            &api.acme,
            b"",
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = api
        .call(
            "DELETE",
            "/api/v1/tenants/acme/profile-fields/shoe",
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        db.rows("SELECT field_key FROM profile_fields ORDER BY 1")
            .await,
        ["department"]
    );

    // A group goes with its memberships; then it is unknown.
    let (status, _, body) = api
        .call("DELETE", "/api/v1/tenants/acme/groups/G1", Some(&api.acme))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({"id": "G1", "memberships": 0}));
    let (status, _, _) = api
        .call("DELETE", "/api/v1/tenants/acme/groups/G1", Some(&api.acme))
        .await;
    assert_eq!(status, 404);
    assert_eq!(db.scalar("SELECT count(*) FROM groups").await, 0);

    // Webhooks: a URL that is not https is a 422; without notify.signing_key
    // nothing could be signed, so setting one is refused (409).
    let (status, _, body) = api
        .send(
            "PUT",
            "/api/v1/tenants/acme/webhook",
            Some(&api.acme),
            r#"{"url":"http://hooks.example.com/x"}"#,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = api
        .send(
            "PUT",
            "/api/v1/tenants/acme/webhook",
            Some(&api.acme),
            r#"{"url":"https://hooks.example.com/x"}"#,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("notify.signing_key"),
        "{body}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_and_docs_openapi_json_matches_the_code() {
    let generated = userfeed::web::api::openapi_json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    if std::env::var_os("USERFEED_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json differs from what the code generates; regenerate it with \
         USERFEED_UPDATE_OPENAPI=1 scripts/test -E 'test(openapi)' and review the diff"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for p in [
        "/tenants/{slug}/webhook",
        "/uploads/{id}/undo",
        "/tenants/{slug}/files",
        "/uploads/{id}/problems",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }

    // Served without a token: the contract holds no data.
    let db = TestDb::new().await.unwrap();
    let api = Api::start(&db).await;
    let (status, headers, text) = http_request(&api.addr, "GET", "/api/v1/openapi.json", &[], b"")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert!(
        text == generated,
        "the served document is the generated one"
    );
}

#[tokio::test]
async fn a_json_body_over_one_mib_not_json_or_not_an_object_is_refused_with_a_problem() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let api = Api::start(&db).await;
    let big = format!(r#"{{"slug":"x","pad":"{}"}}"#, "a".repeat(2 << 20));
    let (status, _, body) = api
        .send("POST", "/api/v1/tenants", Some(&api.ops), &big)
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (413, Some("/docs/api.md#too-large"))
    );
    let (status, _, body) = api
        .send("POST", "/api/v1/tenants", Some(&api.ops), "{not json")
        .await;
    assert_eq!(status, 400, "{body}");
    // serde would read the settings struct from an array; the API does not.
    let (status, _, body) = api
        .send(
            "PATCH",
            "/api/v1/tenants/acme",
            Some(&api.ops),
            "[null, null]",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"], "the body must be a JSON object");
    let (status, _, body) = api
        .send(
            "PATCH",
            "/api/v1/tenants/acme",
            Some(&api.ops),
            r#"{"hold_over_count": 3}"#,
        )
        .await;
    assert_eq!((status, body["hold_over_count"].as_i64()), (200, Some(3)));
}

/// Issue 30, item 1: a tenant token pointed its webhook at loopback, the
/// private ranges, the metadata address and cluster names, and read each
/// attempt back: a port scanner of the inside. Every spelling is now a 422
/// when set. The tenant has no upload that could end, so nothing would be
/// sent to these addresses even if the guard broke.
#[tokio::test]
async fn a_tenant_token_cannot_point_its_webhook_inside_the_network_in_any_spelling() {
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "acme-bucket", MatchKey::Email, MAPPING).await;
    let mut notify = Config::load(None).unwrap().notify;
    notify.signing_key = "api-test-signing-key-0123456789abcdef".into();
    // http:// on, as in the probe; no allow-list.
    notify.allow_http = true;
    let api = Api::start_full(
        &db,
        userfeed::web::spool::Files::new(userfeed::parse::Limits::default(), 500),
        None,
        notify,
        None,
    )
    .await;
    let long = format!("https://hooks.example.com/{}", "a".repeat(100 * 1024));
    for (url, why) in [
        ("http://127.0.0.1:9090/metrics", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fd12::1]/", "unique-local"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://metadata.google.internal/", "internal host name"),
        ("http://kubernetes.default.svc/", "internal host name"),
        ("http://localhost:8080/", "internal host name"),
        (long.as_str(), "longer than 2048"),
    ] {
        let body = serde_json::json!({ "url": url }).to_string();
        let (status, _, problem) = api
            .send(
                "PUT",
                "/api/v1/tenants/acme/webhook",
                Some(&api.acme),
                &body,
            )
            .await;
        assert_eq!(status, 422, "{url}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{url}: {detail}");
        assert!(
            !detail.contains("notify."),
            "no configuration key: {detail}"
        );
    }
    let (_, _, t) = api
        .call("GET", "/api/v1/tenants/acme", Some(&api.acme))
        .await;
    assert_eq!(t["webhook_url"], serde_json::Value::Null, "nothing was set");
}

#[tokio::test]
async fn webhook_endpoints_set_rotate_and_clear_and_an_uploads_attempts_show_under_notifications() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let mut notify = Config::load(None).unwrap().notify;
    notify.signing_key = "api-test-signing-key-0123456789abcdef".into();
    notify.allow_http = true;
    // The receivers here listen on loopback, which only the allow-list
    // admits.
    notify.allowed_hosts = vec!["127.0.0.1".into()];
    let api = Api::start_full(
        &db,
        userfeed::web::spool::Files::new(userfeed::parse::Limits::default(), 500),
        None,
        notify.clone(),
        None,
    )
    .await;
    let receiver = Receiver::start("127.0.0.1:0", &[200]).await;
    let url = format!("http://{}/hook", receiver.addr);
    let put = |rotate: bool| {
        let body = serde_json::json!({"url": url, "rotate_secret": rotate}).to_string();
        let api = &api;
        async move {
            api.send(
                "PUT",
                "/api/v1/tenants/acme/webhook",
                Some(&api.acme),
                &body,
            )
            .await
        }
    };
    let (status, _, first) = put(false).await;
    assert_eq!(status, 200, "{first}");
    let secret = first["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        put(false).await.2["secret"],
        secret.as_str(),
        "asking again shows the same secret"
    );
    let old_secret = secret;
    let (_, _, rotated) = put(true).await;
    let secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(first["secret"], rotated["secret"], "rotation replaces it");
    let (_, _, t) = api
        .call("GET", "/api/v1/tenants/acme", Some(&api.acme))
        .await;
    assert_eq!(t["webhook_url"], url.as_str());

    // A held upload, rejected over the API; its notification delivered and
    // readable with its attempts.
    let w = workers(&db, &aws, Duration::from_secs(30), 100);
    for (key, n) in [("acme/1.csv", 20), ("acme/2.csv", 2)] {
        aws.put(key, employees_csv(n, false)).await.unwrap();
        intake_all(&db, &aws).await;
        run_next(&w).await;
    }
    let held = db.scalar("SELECT max(id) FROM uploads").await;
    assert_eq!(upload(&db, held).await.state, "held");
    let (status, _, r) = api
        .call(
            "POST",
            &format!("/api/v1/uploads/{held}/reject"),
            Some(&api.acme),
        )
        .await;
    assert_eq!((status, r["deactivations"].as_i64()), (200, Some(18)));
    let d = userfeed::notify::Deliverer::new(db.db.clone(), notify.clone(), notify.key().unwrap());
    assert!(d.deliver_next().await.unwrap());
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let now = chrono::Utc::now().timestamp();
    assert!(userfeed::notify::verify(
        &secret,
        got[0].header("userfeed-signature").unwrap(),
        got[0].body.as_bytes(),
        now,
        300
    ));
    assert!(
        !userfeed::notify::verify(
            &old_secret,
            got[0].header("userfeed-signature").unwrap(),
            got[0].body.as_bytes(),
            now,
            300
        ),
        "after rotation the old secret no longer verifies"
    );
    let (status, _, list) = api
        .call(
            "GET",
            &format!("/api/v1/uploads/{held}/notifications"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["event"], "upload.held");
    assert_eq!(list[0]["state"], "delivered");
    assert_eq!(list[0]["attempt_log"][0]["status"], 200);
    assert!(list[0].get("payload").is_none(), "the body is not echoed");

    let (status, _, _) = api
        .csv("DELETE", "/api/v1/tenants/acme/webhook", &api.acme, b"")
        .await;
    assert_eq!(status, 204);
    let (_, _, t) = api
        .call("GET", "/api/v1/tenants/acme", Some(&api.acme))
        .await;
    assert_eq!(t["webhook_url"], Value::Null);
}

#[tokio::test]
async fn credential_endpoints_give_a_tenant_its_key_once_and_keep_other_tenants_out() {
    let db = TestDb::new().await.unwrap();
    let aws = EnforcedAws::start().await.unwrap();
    let sdk = aws.admin_sdk().await;
    let mut s3cfg = Config::load(None).unwrap().aws;
    s3cfg.s3_force_path_style = true;
    userfeed::aws::s3_client(&sdk, &s3cfg)
        .create_bucket()
        .bucket("feeds")
        .send()
        .await
        .unwrap();
    tenant(&db, "acme", "feeds", MatchKey::Email, MAPPING).await;
    tenant(&db, "globex", "feeds", MatchKey::Email, MAPPING).await;
    let cfg = Config::load(None).unwrap();
    let iam = userfeed::credentials::Iam::new(
        userfeed::aws::iam_client(&sdk),
        &cfg.credentials,
        "us-east-1",
    );
    let api = Api::start_full(
        &db,
        userfeed::web::spool::Files::new(userfeed::parse::Limits::default(), 500),
        None,
        cfg.notify.clone(),
        Some(iam),
    )
    .await;

    // The tenant's own admin makes its key: the secret is in this answer.
    let (status, _, made) = api
        .call("POST", "/api/v1/tenants/acme/credentials", Some(&api.acme))
        .await;
    assert_eq!(status, 201, "{made}");
    let key_id = made["access_key_id"].as_str().unwrap().to_string();
    let secret = made["secret_access_key"].as_str().unwrap().to_string();
    assert_eq!(made["prefix"], "acme/");
    let put = aws
        .cli(
            &key_id,
            &secret,
            &[
                "s3",
                "cp",
                "--only-show-errors",
                temp_file("x.csv", b"Email\n").to_str().unwrap(),
                "s3://feeds/acme/x.csv",
            ],
        )
        .await;
    assert!(put.ok, "{put:?}");

    // Afterwards only the ID is shown, to the tenant and to the platform.
    for token in [&api.acme, &api.ops] {
        let (status, _, shown) = api
            .call("GET", "/api/v1/tenants/acme/credentials", Some(token))
            .await;
        assert_eq!(status, 200);
        assert_eq!(shown["keys"][0]["access_key_id"], key_id.as_str());
        assert_eq!(shown["keys"][0]["state"], "active");
        assert!(!shown.to_string().contains(&secret), "{shown}");
    }
    // Another tenant's credentials are not there for this token.
    for (method, path) in [
        ("GET", "/api/v1/tenants/globex/credentials"),
        ("POST", "/api/v1/tenants/globex/credentials"),
        ("POST", "/api/v1/tenants/globex/credentials/rotate"),
        ("DELETE", "/api/v1/tenants/globex/credentials"),
    ] {
        let (status, _, body) = api.call(method, path, Some(&api.acme)).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    // A second create is refused with the way forward; rotate gives a new
    // secret and names the key in its grace period.
    let (status, _, again) = api
        .call("POST", "/api/v1/tenants/acme/credentials", Some(&api.acme))
        .await;
    assert_eq!(status, 409);
    assert!(
        again["detail"].as_str().unwrap().contains("rotate"),
        "{again}"
    );
    let (status, _, rotated) = api
        .call(
            "POST",
            "/api/v1/tenants/acme/credentials/rotate",
            Some(&api.acme),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["retiring"]["access_key_id"], key_id.as_str());
    let (status, _, revoked) = api
        .call("DELETE", "/api/v1/tenants/acme/credentials", Some(&api.ops))
        .await;
    assert_eq!(status, 200);
    assert_eq!(revoked["access_key_ids"].as_array().unwrap().len(), 2);

    // The operators' overview is for platform tokens only.
    let (status, _, _) = api.call("GET", "/api/v1/overview", Some(&api.acme)).await;
    assert_eq!(status, 403);
    let (status, _, o) = api.call("GET", "/api/v1/overview", Some(&api.ops)).await;
    assert_eq!(status, 200);
    let slugs: Vec<&str> = o["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "globex"]);
}

#[tokio::test]
async fn without_aws_the_credential_endpoints_refuse_with_the_reason() {
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "feeds", MatchKey::Email, MAPPING).await;
    let api = Api::start(&db).await;
    let (status, _, body) = api
        .call("POST", "/api/v1/tenants/acme/credentials", Some(&api.acme))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("intake.queue_url"),
        "{body}"
    );
}

#[tokio::test]
async fn the_xero_endpoints_preview_and_queue_an_import_a_worker_runs_for_the_tokens_tenant_only() {
    use userfeed_tests::xero::{FakeEmployee, FakeOrg, FakeXero};
    let db = TestDb::new().await.unwrap();
    let people = (1..=3)
        .map(|i| FakeEmployee::numbered(i, "koala.example"))
        .collect();
    let fake = FakeXero::start(vec![FakeOrg::new("Koala Pty", "AU", people)]).await;
    let cfg = fake.config(free_port());
    let x = userfeed::xero::XeroService::new(&cfg).unwrap();
    for slug in ["acme", "beta"] {
        userfeed::tenants::add(&db.db, slug, "b", slug, MatchKey::Email)
            .await
            .unwrap();
    }
    // Connect acme (the OAuth flow runs where the admin's browser is).
    let pending = userfeed::xero::oauth::Pending::new();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(pending.authorize_url(&cfg)).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let code = pending
        .code_from(location.split_once('?').unwrap().1)
        .unwrap();
    service::Service {
        xero: Some(x.clone()),
        ..service::Service::new(db.db.clone())
    }
    .xero_connect(&Caller::Platform, "acme", &pending, &code, None)
    .await
    .unwrap();

    let api = Api::start_xero(&db, x).await;
    let (status, _, body) = api
        .call("GET", "/api/v1/tenants/acme/xero", Some(&api.acme))
        .await;
    assert_eq!(
        (status, body["connection"]["organisation"].as_str()),
        (200, Some("Koala Pty"))
    );
    let (status, _, body) = api
        .call("GET", "/api/v1/tenants/beta/xero", Some(&api.ops))
        .await;
    assert_eq!((status, &body["connection"]), (200, &Value::Null));
    // Another tenant's token: 404, as for every object of another tenant.
    let (status, _, _) = api
        .call("GET", "/api/v1/tenants/beta/xero", Some(&api.acme))
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = api
        .call("POST", "/api/v1/tenants/beta/xero/import", Some(&api.acme))
        .await;
    assert_eq!(status, 404);
    // beta is not connected: refused with the reason.
    let (status, _, body) = api
        .call("POST", "/api/v1/tenants/beta/xero/preview", Some(&api.ops))
        .await;
    assert_eq!(status, 409);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not connected to Xero"),
        "{body}"
    );

    let (status, _, body) = api
        .call("POST", "/api/v1/tenants/acme/xero/preview", Some(&api.acme))
        .await;
    assert_eq!(
        (status, body["importable"].as_array().map(Vec::len)),
        (200, Some(3)),
        "{body}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM uploads").await,
        0,
        "a preview records nothing"
    );

    let (status, _, body) = api
        .call("POST", "/api/v1/tenants/acme/xero/import", Some(&api.acme))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["upload_id"].as_i64().unwrap();
    assert_eq!(upload(&db, id).await.state, "queued");
    // A daemon's worker runs it, reading its file from the database.
    let workers = userfeed::jobs::Workers::new(
        db.db.clone(),
        "xero-test",
        userfeed::apply::Pipeline {
            reader: Arc::new(userfeed::source::ReaderBySource::new().with(
                userfeed::upload::UploadSource::Xero,
                Arc::new(userfeed::source::stored::StoredReader::new(db.db.clone())),
            )),
            store: userfeed::apply::store_for(&db.db),
            batch_size: 500,
            limits: Default::default(),
        },
        userfeed::jobs::PoolSettings {
            concurrency: 1,
            poll_interval: Duration::from_millis(50),
            lease: Duration::from_secs(30),
            max_attempts: 3,
        },
        Default::default(),
    );
    assert_eq!(run_next(&workers).await, Some(id));
    let u = upload(&db, id).await;
    assert_eq!(
        (u.state.as_str(), u.source.as_str(), u.rows_created),
        ("succeeded", "xero", 3)
    );
    assert_eq!(users_of(&db, "acme").await.len(), 3);
    assert!(users_of(&db, "beta").await.is_empty());

    let (status, _, body) = api
        .call("DELETE", "/api/v1/tenants/acme/xero", Some(&api.acme))
        .await;
    assert_eq!((status, body["disconnected"].as_bool()), (200, Some(true)));
}

#[tokio::test]
async fn held_deactivations_name_each_person_a_hold_would_deactivate_and_other_tenants_get_404() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    tenant(&db, "beta", &aws.bucket, MatchKey::Email, MAPPING).await;
    let api = Api::start(&db).await;
    let w = workers(&db, &aws, Duration::from_secs(30), 100);
    for (key, n) in [("beta/1.csv", 20), ("beta/2.csv", 2)] {
        aws.put(key, employees_csv(n, false)).await.unwrap();
        intake_all(&db, &aws).await;
        run_next(&w).await;
    }
    let held = db.scalar("SELECT max(id) FROM uploads").await;
    assert_eq!(upload(&db, held).await.state, "held");

    // Page by page, everyone the hold would deactivate, named.
    let mut people = Vec::new();
    let mut next = Some(format!("/api/v1/uploads/{held}/held-deactivations?limit=7"));
    while let Some(path) = next {
        let (status, _, page) = api.call("GET", &path, Some(&api.ops)).await;
        assert_eq!(status, 200, "{page}");
        people.extend(page["items"].as_array().unwrap().iter().cloned());
        next = page["next"].as_str().map(str::to_string);
    }
    let mut emails: Vec<&str> = people
        .iter()
        .map(|p| p["email"].as_str().unwrap())
        .collect();
    emails.sort();
    let mut want: Vec<String> = (2..20).map(|i| format!("user{i}@example.com")).collect();
    want.sort();
    assert_eq!(
        emails, want,
        "the 18 absent from the second file, no one else"
    );
    let p = people
        .iter()
        .find(|p| p["email"] == "user7@example.com")
        .unwrap();
    assert_eq!(
        (&p["first_name"], &p["last_name"]),
        (&Value::from("First7"), &Value::from("Last7"))
    );

    let (status, h, csv) = api
        .csv(
            "GET",
            &format!("/api/v1/uploads/{held}/held-deactivations?format=csv"),
            &api.ops,
            b"",
        )
        .await;
    assert_eq!(status, 200);
    assert!(header(&h, "content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        csv.lines().next(),
        Some("email,external_id,first_name,last_name")
    );
    assert_eq!(csv.lines().count(), 19);

    // Another tenant's token: not found, as a missing id.
    let (status, _, p) = api
        .call(
            "GET",
            &format!("/api/v1/uploads/{held}/held-deactivations"),
            Some(&api.acme),
        )
        .await;
    assert_eq!(
        (status, p["detail"].as_str()),
        (404, Some(format!("no upload {held}").as_str()))
    );
}

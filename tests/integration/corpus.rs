//! Hostile and broken input: every file of `tests/corpus/files` (described,
//! with its expected outcome, in `tests/corpus/cases.toml`), plus a few
//! generated too large to keep in the repository, goes through the real
//! pipeline (moto S3, PostgreSQL), each to its own tenant. Each must end as
//! expected: succeeded with its counts, held, or failed with a readable
//! reason. None may stop the worker, and none may touch another tenant.

use std::time::Duration;

use serde::Deserialize;
use userfeed::map::MatchKey;
use userfeed_tests::*;

#[derive(Debug, Deserialize)]
struct Cases {
    case: Vec<Case>,
}

/// One input and the outcome it must have.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    file: String,
    why: String,
    state: String,
    /// For `failed` and `held`: a piece of the reason.
    reason: Option<String>,
    created: Option<i64>,
    rejected: Option<i64>,
}

const H: &str = "Employee ID,Work Email,First Name,Last Name\n";

/// Cases too large for the repository, made here.
fn generated() -> Vec<(Case, Vec<u8>)> {
    let failed = |file: &str, why: &str, reason: &str| Case {
        file: file.into(),
        why: why.into(),
        state: "failed".into(),
        reason: Some(reason.into()),
        created: None,
        rejected: None,
    };
    let columns = |n: usize| {
        let mut s = (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        s.push_str("\nE1,ann@x.io\n");
        s.into_bytes()
    };
    vec![
        (
            failed("field-10mb.csv", "a 10 MB field", "limits.max_record_bytes"),
            format!("{H}E1,ann@x.io,{},A\n", "n".repeat(10 << 20)).into_bytes(),
        ),
        (
            failed("field-70kb.csv", "a 70 KB field", "limits.max_field_bytes"),
            format!("{H}E1,ann@x.io,{},A\n", "n".repeat(70_000)).into_bytes(),
        ),
        (
            failed(
                "million-columns.csv",
                "a header of a million columns",
                "limits.max_record_bytes",
            ),
            columns(1_000_000),
        ),
        (
            failed("2000-columns.csv", "2,000 columns", "limits.max_columns"),
            columns(2_000),
        ),
        (
            failed(
                "endless-line.csv",
                "3 MB without a line end",
                "limits.max_record_bytes",
            ),
            {
                let mut b = format!("{H}E1,ann@x.io,Ann,A\n").into_bytes();
                b.extend(std::iter::repeat_n(b'x', 3 << 20));
                b
            },
        ),
    ]
}

#[tokio::test]
async fn every_hostile_or_broken_file_ends_as_expected_without_touching_another_tenant() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    let w = workers(&db, &aws, Duration::from_secs(30), 100);
    // A bystander tenant with users: it must come out exactly as it went in.
    tenant(&db, "guard", &aws.bucket, MatchKey::Email, MAPPING).await;
    aws.put("guard/1.csv", employees_csv(5, false))
        .await
        .unwrap();
    intake_all(&db, &aws).await;
    run_next(&w).await.expect("the guard's file runs");
    let guard = users_of(&db, "guard").await;
    assert_eq!(guard.len(), 5);

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let cases: Cases =
        toml::from_str(&std::fs::read_to_string(dir.join("cases.toml")).unwrap()).unwrap();
    let mut all: Vec<(Case, Vec<u8>)> = cases
        .case
        .into_iter()
        .map(|c| {
            let body = std::fs::read(dir.join("files").join(&c.file)).unwrap();
            (c, body)
        })
        .collect();
    all.extend(generated());
    assert!(all.len() >= 40, "the corpus has {} inputs", all.len());

    for (i, (case, body)) in all.iter().enumerate() {
        let slug = format!("c{i:02}");
        let what = format!("{} ({}, tenant {slug})", case.file, case.why);
        tenant(&db, &slug, &aws.bucket, MatchKey::Email, MAPPING).await;
        aws.put(&format!("{slug}/{}", case.file), body.clone())
            .await
            .unwrap();
        let ids = intake_all(&db, &aws).await;
        assert_eq!(ids.len(), 1, "{what}: one upload recorded");
        assert_eq!(run_next(&w).await, Some(ids[0]), "{what}: it runs");
        let up = upload(&db, ids[0]).await;
        assert_eq!(
            up.state, case.state,
            "{what}: state (failure: {:?}, hold: {:?})",
            up.failure_reason, up.hold_reason
        );
        match case.state.as_str() {
            "failed" | "held" => {
                let reason = up
                    .failure_reason
                    .or(up.hold_reason)
                    .unwrap_or_else(|| panic!("{what}: a reason"));
                let want = case.reason.as_deref().expect("cases.toml: reason");
                assert!(reason.contains(want), "{what}: {reason:?} lacks {want:?}");
                assert!(up.attempts <= 1, "{what}: not retried");
            }
            _ => {
                assert_eq!(Some(up.rows_created), case.created, "{what}: created");
                assert_eq!(Some(up.rows_rejected), case.rejected, "{what}: rejected");
            }
        }
        assert_eq!(
            users_of(&db, &slug).await.len() as i64,
            if case.state == "succeeded" {
                case.created.unwrap()
            } else {
                0
            },
            "{what}: the tenant's users are the file's"
        );
    }
    assert_eq!(db.scalar("SELECT count(*) FROM upload_rows").await, 0);

    // Keys that try to leave their prefix: recorded for nobody.
    for key in ["c00/../guard/x.csv", "c01/./../guard/y.csv"] {
        aws.put(key, employees_csv(1, false)).await.unwrap();
        assert!(
            intake_all(&db, &aws).await.is_empty(),
            "{key}: not recorded"
        );
    }
    // A key that only looks encoded stays in its own tenant.
    aws.put("c02/%2e%2e/guard.csv", employees_csv(2, false))
        .await
        .unwrap();
    let ids = intake_all(&db, &aws).await;
    assert_eq!(ids.len(), 1);
    run_next(&w).await;
    let up = upload(&db, ids[0]).await;
    assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
    assert_eq!(
        up.tenant_id,
        db.scalar("SELECT id FROM tenants WHERE slug = 'c02'").await
    );

    assert_eq!(
        users_of(&db, "guard").await,
        guard,
        "the bystander is untouched"
    );
}

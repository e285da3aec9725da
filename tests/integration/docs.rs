//! The worked example in docs/csv-format.md, applied for real.

use userfeed::map::MatchKey;
use userfeed_tests::*;

/// The fenced blocks of `lang` after `heading`, in order.
fn blocks(doc: &str, heading: &str, lang: &str) -> Vec<String> {
    let section = &doc[doc.find(heading).expect("heading present")..];
    let fence = format!("```{lang}\n");
    section
        .split(fence.as_str())
        .skip(1)
        .map(|rest| rest[..rest.find("```").expect("closed block")].to_string())
        .collect()
}

/// Each "Outcome: read N, created N, ..." line after `heading`.
fn outcomes(doc: &str, heading: &str) -> Vec<[i64; 6]> {
    let section = &doc[doc.find(heading).unwrap()..];
    section
        .lines()
        .filter_map(|l| l.strip_prefix("Outcome: "))
        .map(|l| {
            let nums: Vec<i64> = l
                .trim_end_matches('.')
                .split(", ")
                .map(|part| part.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            nums.try_into().expect("six figures")
        })
        .collect()
}

#[tokio::test]
async fn the_worked_example_in_csv_format_md_holds() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/csv-format.md"
    ))
    .unwrap();
    let heading = "## A worked example";
    let mapping = &blocks(&doc, heading, "toml")[0];
    let files = blocks(&doc, heading, "csv");
    let expected = outcomes(&doc, heading);
    assert_eq!(
        (files.len(), expected.len()),
        (2, 2),
        "two nights, two outcomes"
    );

    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::ExternalId, mapping).await;
    let w = workers(&db, &aws, std::time::Duration::from_secs(30), 1000);
    for (night, (file, want)) in files.iter().zip(expected).enumerate() {
        aws.put(&format!("acme/night-{night}.csv"), file.clone())
            .await
            .unwrap();
        let ids = intake_all(&db, &aws).await;
        run_next(&w).await;
        let u = upload(&db, ids[0]).await;
        assert_eq!(
            u.state, "succeeded",
            "night {night}: {:?}",
            u.failure_reason
        );
        let got = [
            u.rows_read,
            u.rows_created,
            u.rows_updated,
            u.rows_unchanged,
            u.rows_rejected,
            u.rows_deactivated,
        ];
        assert_eq!(
            got, want,
            "night {night}: read, created, updated, unchanged, rejected, deactivated"
        );
    }
    let users = users_of(&db, "acme").await;
    assert!(
        users.contains(&"grace.hopper@example.com|1002|Grace|Hopper|active|feed".to_string()),
        "{users:?}"
    );
    assert!(
        users.contains(&"alan@example.com|1003|Alan|Turing|inactive|feed".to_string()),
        "{users:?}"
    );
    assert_eq!(
        db.rows("SELECT profile->>'job_title' FROM users WHERE external_id = '1002'")
            .await,
        vec!["Director"]
    );
}

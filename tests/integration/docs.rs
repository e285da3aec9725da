//! The examples in docs/csv-format.md, applied for real: the worked example,
//! and every rule's example (run step by step, commands through the real
//! binary, outcomes and outputs compared). And docs/configuration.md
//! documents every key the defaults have.
//!
//! `USERFEED_DOCS_BLESS=1` rewrites the doc's `$ userfeed ...` output blocks
//! with what the commands print now (review the diff!); outcomes are never
//! rewritten: they are the rules' assertions.

use std::collections::VecDeque;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use userfeed::map::MatchKey;
use userfeed_tests::*;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/csv-format.md");

/// The text from `heading` to the next `## ` heading.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(heading).expect("heading present");
    let rest = &doc[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map_or(doc.len(), |i| start + heading.len() + i);
    &doc[start..end]
}

/// The fenced blocks of `lang` after `heading`, in order.
fn blocks(doc: &str, heading: &str, lang: &str) -> Vec<String> {
    let section = section(doc, heading);
    let fence = format!("```{lang}\n");
    section
        .split(fence.as_str())
        .skip(1)
        .map(|rest| rest[..rest.find("```").expect("closed block")].to_string())
        .collect()
}

/// Each "Outcome: read N, created N, ..." line after `heading`.
fn outcomes(doc: &str, heading: &str) -> Vec<[i64; 6]> {
    section(doc, heading)
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
    let doc = std::fs::read_to_string(DOC).unwrap();
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
        assert_eq!(
            upload_counts(&u),
            want,
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

/// One step of a rule example, in document order.
#[derive(Debug)]
enum Step {
    /// The tenant's mapping.
    Mapping(String),
    /// `userfeed` commands, one a line.
    Commands(String),
    /// What the platform does, in SQL.
    Sql(String),
    /// A file dropped by the customer.
    File(String),
    /// `Outcome: ...` of the next upload.
    Outcome(String),
    /// `$ userfeed ...` and its expected output, at `range` in the doc.
    Output {
        command: String,
        expected: String,
        range: std::ops::Range<usize>,
    },
}

/// Each `### Example: ` of the rules section with its steps.
fn rule_examples(doc: &str) -> Vec<(String, MatchKey, Vec<Step>)> {
    let heading = "## Every rule, by example";
    let base = doc.find(heading).expect("rules section");
    let sec = section(doc, heading);
    let mut out: Vec<(String, MatchKey, Vec<Step>)> = Vec::new();
    let mut pos = 0;
    let lines: Vec<&str> = sec.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let at = pos;
        pos += line.len();
        i += 1;
        let t = line.trim_end();
        if let Some(title) = t.strip_prefix("### Example: ") {
            out.push((title.to_string(), MatchKey::Email, Vec::new()));
            continue;
        }
        let Some((_, key, steps)) = out.last_mut() else {
            continue;
        };
        if t.contains("matches on `external_id`") {
            *key = MatchKey::ExternalId;
        }
        if let Some(o) = t.strip_prefix("Outcome: ") {
            steps.push(Step::Outcome(o.to_string()));
        } else if let Some(lang) = t.strip_prefix("```") {
            let body_start = pos;
            let mut body = String::new();
            while !lines[i].starts_with("```") {
                body.push_str(lines[i]);
                pos += lines[i].len();
                i += 1;
            }
            let body_end = pos;
            pos += lines[i].len();
            i += 1;
            steps.push(match lang {
                "toml" => Step::Mapping(body),
                "sh" => Step::Commands(body),
                "sql" => Step::Sql(body),
                "csv" => Step::File(body),
                "text" => {
                    let (first, rest) = body.split_once('\n').unwrap_or((&body, ""));
                    let command = first
                        .strip_prefix("$ userfeed ")
                        .unwrap_or_else(|| panic!("{at}: a text block starts with `$ userfeed`"));
                    Step::Output {
                        command: command.to_string(),
                        expected: rest.to_string(),
                        range: base + body_start + first.len() + 1..base + body_end,
                    }
                }
                other => panic!("unexpected block ```{other} in the rules section"),
            });
        }
    }
    out
}

/// Words of a command line; double quotes group words.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Output compared line by line with runs of spaces collapsed (tables are
/// aligned to their widest cell).
fn normalise(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// Checks an upload against `Outcome: state[ (N deactivations waiting)][; read ...].`
/// or `Outcome: failed: reason`.
fn check_outcome(u: &userfeed::db::entity::upload::Model, outcome: &str, ctx: &str) {
    let state: String = outcome
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    assert_eq!(
        u.state, state,
        "{ctx}: state (failure: {:?}, hold: {:?})",
        u.failure_reason, u.hold_reason
    );
    if let Some(reason) = outcome.strip_prefix("failed: ") {
        let got = u.failure_reason.clone().unwrap_or_default();
        assert!(got.contains(reason.trim_end_matches('.')), "{ctx}: {got}");
    }
    if let Some(rest) = outcome.strip_prefix("held (") {
        let n: i64 = rest.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(u.held_deactivations, n, "{ctx}: held deactivations");
    }
    if let Some(i) = outcome.find("read ") {
        let want: Vec<i64> = outcome[i..]
            .trim_end_matches('.')
            .split(", ")
            .map(|part| part.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            upload_counts(u).to_vec(),
            want,
            "{ctx}: read, created, updated, unchanged, rejected, deactivated"
        );
    }
}

async fn run_example(
    title: &str,
    key: MatchKey,
    steps: &[Step],
    bless: &mut Vec<(std::ops::Range<usize>, String)>,
) {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    userfeed::tenants::add(&db.db, "acme", &aws.bucket, "acme", key)
        .await
        .unwrap();
    let w = workers(&db, &aws, Duration::from_secs(30), 1000);
    let blessing = std::env::var_os("USERFEED_DOCS_BLESS").is_some();
    let (mut dropped, mut queued) = (0, VecDeque::new());
    let mut files_waiting = 0;
    for (n, step) in steps.iter().enumerate() {
        let ctx = format!("example {title:?}, step {}", n + 1);
        match step {
            Step::Mapping(toml) => {
                let path = temp_file("mapping.toml", toml.as_bytes());
                cli(&db.url, &["mapping", "set", "acme", path.to_str().unwrap()])
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            }
            Step::Commands(lines) => {
                for line in lines.lines().filter(|l| !l.trim().is_empty()) {
                    let w = words(line);
                    assert_eq!(w[0], "userfeed", "{ctx}: {line}");
                    let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
                    cli(&db.url, &args)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                }
            }
            Step::Sql(sql) => {
                db.db
                    .execute_unprepared(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            }
            Step::File(body) => {
                // One at a time, so upload ids follow the document order.
                dropped += 1;
                aws.put(&format!("acme/{dropped}.csv"), body.clone())
                    .await
                    .unwrap();
                queued.extend(intake_all(&db, &aws).await);
                files_waiting += 1;
            }
            Step::Outcome(outcome) => {
                if files_waiting > 0 {
                    while run_next(&w).await.is_some() {}
                    files_waiting = 0;
                }
                let id = queued
                    .pop_front()
                    .unwrap_or_else(|| panic!("{ctx}: an outcome without a file"));
                check_outcome(&upload(&db, id).await, outcome, &ctx);
            }
            Step::Output {
                command,
                expected,
                range,
            } => {
                let args = words(command);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let got = cli(&db.url, &args)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                if blessing {
                    bless.push((range.clone(), got));
                } else {
                    assert_eq!(
                        normalise(&got),
                        normalise(expected),
                        "{ctx}: `userfeed {command}` printed:\n{got}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn every_rule_example_in_csv_format_md_holds() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let examples = rule_examples(&doc);
    let titles: Vec<&str> = examples.iter().map(|(t, _, _)| t.as_str()).collect();
    for must in [
        "managers",
        "groups",
        "roles",
        "custom profile fields",
        "matching on the employee number",
        "matching on email",
        "errors and warnings",
        "who is deactivated",
        "a status column",
        "held uploads",
        "several files waiting",
    ] {
        assert!(titles.contains(&must), "no example for {must}: {titles:?}");
    }
    let mut bless = Vec::new();
    for (title, key, steps) in &examples {
        run_example(title, *key, steps, &mut bless).await;
    }
    if !bless.is_empty() {
        let mut doc = doc;
        bless.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
        for (range, text) in bless {
            doc.replace_range(range, &text);
        }
        std::fs::write(DOC, doc).unwrap();
        panic!("USERFEED_DOCS_BLESS: outputs rewritten; review the diff and run again");
    }
}

#[test]
fn every_key_of_the_default_configuration_is_documented_in_its_section() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let defaults = std::fs::read_to_string(root.join("config/default.toml")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let table: toml::Table = defaults.parse().unwrap();
    let mut n = 0;
    for (section, keys) in &table {
        let text = section_text(&doc, &format!("## `[{section}]`"));
        for key in keys.as_table().expect("sections hold keys").keys() {
            assert!(
                text.contains(&format!("| `{key}` |")),
                "docs/configuration.md does not document {section}.{key}"
            );
            n += 1;
        }
    }
    assert!(n > 20, "{n} keys");
}

/// The text of `doc` from `heading` to the next `## ` heading.
fn section_text<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading} section"));
    let rest = &doc[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

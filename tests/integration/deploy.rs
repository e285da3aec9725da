//! The deploy kit, checked with the tools ops use: `kubectl kustomize`,
//! `kubernetes-validate`, `promtool`, `hadolint`, and the real AWS CLI
//! against moto. `scripts/test` installs them (`.venv`, Debian's
//! `prometheus`); `USERFEED_TEST_VENV` and `USERFEED_TEST_PROMTOOL` say where.

use std::path::{Path, PathBuf};
use std::process::Command;

use userfeed_tests::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("USERFEED_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv"));
    venv.join("bin").join(name)
}

/// Runs a tool; returns (success, stdout and stderr).
fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> (bool, String) {
    let program = program.as_ref();
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running {program:?} (scripts/test installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn must(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let (ok, text) = run(&program, args);
    assert!(ok, "{:?} {args:?} failed:\n{text}", program.as_ref());
    text
}

/// Renders a kustomization into a temporary file; returns its path.
fn render(dir: &str) -> PathBuf {
    let yaml = must("kubectl", &["kustomize", dir]);
    temp_file("rendered.yaml", yaml.as_bytes())
}

const OVERLAY: &str = "deploy/kubernetes/overlays/production";
const BASE: &str = "deploy/kubernetes/base";

fn promtool() -> String {
    std::env::var("USERFEED_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into())
}

#[test]
fn the_base_and_the_production_overlay_render_with_every_object() {
    for dir in [BASE, OVERLAY] {
        let text = std::fs::read_to_string(render(dir)).unwrap();
        for kind in [
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
            "ServiceMonitor",
            "PrometheusRule",
            "ScaledObject",
            "TriggerAuthentication",
        ] {
            assert!(
                text.contains(&format!("\nkind: {kind}\n")),
                "{dir} renders no {kind}"
            );
        }
    }
    // The generated ConfigMap's hash is in the pod template: a config change rolls the pods.
    let text = std::fs::read_to_string(render(OVERLAY)).unwrap();
    let hashed = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("name: userfeed-")
                .filter(|n| n.len() == 10)
        })
        .expect("a hashed ConfigMap name");
    assert!(
        text.matches(&format!("userfeed-{hashed}")).count() >= 3,
        "{hashed}"
    );
}

#[test]
fn rendered_built_in_kinds_pass_the_kubernetes_schemas() {
    for dir in [BASE, OVERLAY] {
        let file = render(dir);
        let out = must(
            venv_bin("kubernetes-validate"),
            &["--strict", "-k", "1.32.0", file.to_str().unwrap()],
        );
        for object in [
            "deployment/userfeed",
            "service/userfeed",
            "poddisruptionbudget/userfeed",
        ] {
            assert!(
                out.contains(&format!("passed for resource {object}")),
                "{out}"
            );
        }
    }
}

#[test]
fn every_pod_template_meets_the_restricted_pod_security_profile() {
    let python = venv_bin("python");
    for dir in [BASE, OVERLAY] {
        let file = render(dir);
        must(
            &python,
            &[
                "scripts/check_deploy.py",
                "restricted",
                file.to_str().unwrap(),
            ],
        );
    }
    // The check refuses what the profile refuses.
    let text = std::fs::read_to_string(render(OVERLAY)).unwrap();
    let escalating = text.replacen(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
        1,
    );
    let rooted = text.replace("runAsNonRoot: true", "runAsNonRoot: false");
    for bad in [escalating, rooted] {
        let file = temp_file("bad.yaml", bad.as_bytes());
        let (ok, out) = run(
            &python,
            &[
                "scripts/check_deploy.py",
                "restricted",
                file.to_str().unwrap(),
            ],
        );
        assert!(!ok && out.contains("Deployment/userfeed"), "{out}");
    }
}

#[test]
fn the_operator_and_keda_objects_select_what_the_kit_deploys() {
    let file = render(OVERLAY);
    must(
        venv_bin("python"),
        &["scripts/check_deploy.py", "crds", file.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("query: max(userfeed_uploads_queued) + max(userfeed_uploads_running)"));
    assert!(
        text.contains("minReplicaCount: 2"),
        "the overlay's scale applies"
    );
}

#[test]
fn the_prometheusrule_is_generated_from_the_plain_rule_file() {
    must(
        venv_bin("python"),
        &["scripts/gen-prometheusrule", "--check"],
    );
}

#[test]
fn promtool_accepts_the_rules_and_every_alert_passes_its_unit_tests() {
    must(
        promtool(),
        &["check", "rules", "deploy/monitoring/rules.yaml"],
    );
    let out = must(
        promtool(),
        &["test", "rules", "deploy/monitoring/rules.test.yaml"],
    );
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(root().join("deploy/monitoring/rules.yaml")).unwrap();
    let tests = std::fs::read_to_string(root().join("deploy/monitoring/rules.test.yaml")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                tests.contains(&format!("alertname: {name}\n")),
                "{name} has no promtool test"
            );
        }
    }
}

#[test]
fn every_alert_has_a_summary_description_severity_and_runbook_section() {
    must(
        venv_bin("python"),
        &[
            "scripts/check_deploy.py",
            "alerts",
            "deploy/monitoring/rules.yaml",
            "docs/operations.md",
        ],
    );
}

#[test]
fn the_dockerfile_is_hadolint_clean_and_the_context_leaves_out_the_build_tree() {
    must(venv_bin("hadolint"), &["deploy/Dockerfile"]);
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for path in ["/target", "/.git", "/.venv"] {
        assert!(
            ignore.lines().any(|l| l == path),
            ".dockerignore lacks {path}"
        );
    }
}

#[test]
fn every_aws_json_file_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("deploy/aws")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 8, "{n} files");
}

/// The real AWS CLI against moto.
fn aws(args: &[&str]) -> String {
    let cli = std::env::var("USERFEED_TEST_AWS_CLI").unwrap_or_else(|_| "aws".into());
    let out = Command::new(cli)
        .args(["--endpoint-url", &moto_endpoint(), "--output", "json"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "ap-southeast-2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A deploy/aws file with the example names replaced by this test's own.
fn aws_file(name: &str, bucket: &str, queue: &str) -> (PathBuf, serde_json::Value) {
    let text = std::fs::read_to_string(root().join("deploy/aws").join(name))
        .unwrap()
        .replace("example-hr-feeds", bucket)
        .replace("userfeed-intake", queue);
    let value = serde_json::from_str(&text).unwrap();
    (temp_file(name, text.as_bytes()), value)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn the_bucket_and_queue_files_apply_to_moto_with_the_aws_cli_and_read_back() {
    let bucket = unique("uf-deploy-").replace('_', "-");
    let queue = unique("uf-deploy-q-");
    aws(&[
        "s3api",
        "create-bucket",
        "--bucket",
        &bucket,
        "--create-bucket-configuration",
        "LocationConstraint=ap-southeast-2",
    ]);
    let queue_url = json(&aws(&["sqs", "create-queue", "--queue-name", &queue]))["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    aws(&[
        "sqs",
        "create-queue",
        "--queue-name",
        &format!("{queue}-dlq"),
    ]);

    // Queue: S3 may send to it; dead letters after 10 receives.
    let (_, policy) = aws_file("queue-policy.json", &bucket, &queue);
    let (_, redrive) = aws_file("dead-letter-redrive.json", &bucket, &queue);
    let attributes = serde_json::json!({
        "Policy": policy.to_string(),
        "RedrivePolicy": redrive.to_string(),
    });
    let attrs_file = temp_file("attrs.json", attributes.to_string().as_bytes());
    aws(&[
        "sqs",
        "set-queue-attributes",
        "--queue-url",
        &queue_url,
        "--attributes",
        &format!("file://{}", attrs_file.display()),
    ]);
    let got = json(&aws(&[
        "sqs",
        "get-queue-attributes",
        "--queue-url",
        &queue_url,
        "--attribute-names",
        "Policy",
        "RedrivePolicy",
    ]));
    let got_policy = json(got["Attributes"]["Policy"].as_str().unwrap());
    assert_eq!(
        got_policy["Statement"][0]["Principal"]["Service"],
        "s3.amazonaws.com"
    );
    assert_eq!(got_policy["Statement"], policy["Statement"]);
    let got_redrive = json(got["Attributes"]["RedrivePolicy"].as_str().unwrap());
    assert_eq!(
        got_redrive["deadLetterTargetArn"],
        redrive["deadLetterTargetArn"]
    );
    assert_eq!(
        got_redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "10"
    );

    // Bucket: notifications to the queue, 90-day expiry, 7-day multipart
    // abort, no public access.
    let file_arg = |p: &Path| format!("file://{}", p.display());
    let (notification, sent) = aws_file("bucket-notification.json", &bucket, &queue);
    aws(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        &bucket,
        "--notification-configuration",
        &file_arg(&notification),
    ]);
    let back = json(&aws(&[
        "s3api",
        "get-bucket-notification-configuration",
        "--bucket",
        &bucket,
    ]));
    let q = &back["QueueConfigurations"][0];
    assert_eq!(q["QueueArn"], sent["QueueConfigurations"][0]["QueueArn"]);
    assert_eq!(q["Events"], serde_json::json!(["s3:ObjectCreated:*"]));

    let (lifecycle, _) = aws_file("bucket-lifecycle.json", &bucket, &queue);
    aws(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        &bucket,
        "--lifecycle-configuration",
        &file_arg(&lifecycle),
    ]);
    let rules = json(&aws(&[
        "s3api",
        "get-bucket-lifecycle-configuration",
        "--bucket",
        &bucket,
    ]))["Rules"]
        .clone();
    let rules = rules.as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["Expiration"]["Days"] == 90 && r["Status"] == "Enabled"),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|r| r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7),
        "{rules:?}"
    );

    let (block, _) = aws_file("bucket-public-access-block.json", &bucket, &queue);
    aws(&[
        "s3api",
        "put-public-access-block",
        "--bucket",
        &bucket,
        "--public-access-block-configuration",
        &file_arg(&block),
    ]);
    let back = json(&aws(&[
        "s3api",
        "get-public-access-block",
        "--bucket",
        &bucket,
    ]));
    assert_eq!(
        back["PublicAccessBlockConfiguration"]["BlockPublicPolicy"],
        true
    );
}

#[test]
fn the_tenant_upload_policy_writes_under_its_prefix_only_and_never_lists_or_reads() {
    let (_, policy) = aws_file("tenant-upload-policy.json", "b", "q");
    let statements = policy["Statement"].as_array().unwrap();
    let mut actions = Vec::new();
    for s in statements {
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(
            s["Resource"], "arn:aws:s3:::b/acme/*",
            "the tenant's prefix only"
        );
        actions.extend(
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
    }
    assert!(actions.contains(&"s3:PutObject".to_string()));
    for a in &actions {
        assert!(
            !a.contains("Get") && !a.starts_with("s3:ListBucket") && !a.contains('*'),
            "{a} lets a tenant read or list"
        );
    }
}

#[test]
fn the_failure_ratio_in_docs_metrics_md_is_the_one_the_alert_uses() {
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let rules = std::fs::read_to_string(root().join("deploy/monitoring/rules.yaml")).unwrap();
    let after = rules
        .split("record: userfeed:upload_failure_ratio:1h")
        .nth(1)
        .expect("the recording rule");
    let expr: String = after
        .lines()
        .skip(2) // `expr: |`
        .take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with('-'))
        .collect();
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let documented = docs
        .lines()
        .find(|l| l.contains("clamp_min(") && l.contains("userfeed_uploads_finished_total"))
        .expect("docs/metrics.md states the failure ratio");
    assert_eq!(squash(documented.trim().trim_matches('`')), squash(&expr));
    assert!(rules.contains("expr: userfeed:upload_failure_ratio:1h > 0.2"));
}

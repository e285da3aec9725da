//! PostgreSQL over TLS: `sslmode` and `sslrootcert` from the database
//! configuration, against the local server (`ssl = on`, a self-signed
//! certificate for `localhost`).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use userfeed::config::DatabaseConfig;
use userfeed_tests::*;

fn config(url: &str, sslmode: &str, sslrootcert: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: url.to_string(),
        max_connections: 2,
        acquire_timeout_seconds: 5,
        sslmode: sslmode.to_string(),
        sslrootcert: sslrootcert.to_string(),
        embedded_default: false,
    }
}

/// Whether this session's connection is encrypted, per the server.
async fn encrypted(db: &DatabaseConnection) -> bool {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .expect("a pg_stat_ssl row");
    row.try_get_by_index::<bool>(0).unwrap()
}

/// The certificate the server presents (its `ssl_cert_file`).
async fn server_certificate(db: &TestDb) -> String {
    db.rows("SELECT setting FROM pg_settings WHERE name = 'ssl_cert_file'")
        .await
        .remove(0)
}

fn unrelated_ca() -> String {
    format!("{}/fixtures/unrelated-ca.pem", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn sslmode_require_encrypts_every_connection_and_disable_does_not() {
    let db = TestDb::new().await.unwrap();
    let tls = userfeed::db::connect(&config(&db.url, "require", ""))
        .await
        .expect("require");
    assert!(
        encrypted(&tls).await,
        "sslmode=require gave a plain connection"
    );
    let plain = userfeed::db::connect(&config(&db.url, "disable", ""))
        .await
        .expect("disable");
    assert!(!encrypted(&plain).await);
    // The URL's own sslmode is honoured when the configuration leaves it empty.
    let from_url = userfeed::db::connect(&config(&format!("{}?sslmode=require", db.url), "", ""))
        .await
        .expect("sslmode in the URL");
    assert!(encrypted(&from_url).await);
}

#[tokio::test]
async fn verify_ca_and_verify_full_succeed_with_the_servers_certificate_as_root() {
    let db = TestDb::new().await.unwrap();
    let root = server_certificate(&db).await;
    let ca = userfeed::db::connect(&config(&db.url, "verify-ca", &root))
        .await
        .expect("verify-ca with the right root");
    assert!(encrypted(&ca).await);
    // The certificate names `localhost`: verify-full checks that too.
    let by_name = db.url.replace("127.0.0.1", "localhost");
    let full = userfeed::db::connect(&config(&by_name, "verify-full", &root))
        .await
        .expect("verify-full by the certificate's host name");
    assert!(encrypted(&full).await);
    // sslrootcert in the URL works as well.
    let url = format!("{by_name}?sslmode=verify-full&sslrootcert={root}");
    userfeed::db::connect(&config(&url, "", ""))
        .await
        .expect("sslmode and sslrootcert from the URL");
}

#[tokio::test]
async fn verify_ca_with_a_wrong_root_fails_with_a_message_naming_tls() {
    let db = TestDb::new().await.unwrap();
    let err = userfeed::db::connect(&config(&db.url, "verify-ca", &unrelated_ca()))
        .await
        .expect_err("an unrelated CA must not verify the server");
    let msg = err.to_string();
    assert!(
        matches!(err, userfeed::db::ConnectError::Tls { .. }),
        "{msg}"
    );
    assert!(msg.contains("TLS") && msg.contains("verify-ca"), "{msg}");
    assert!(
        msg.contains("database.sslrootcert"),
        "says what to check: {msg}"
    );
}

#[tokio::test]
async fn verify_full_refuses_a_host_the_certificate_does_not_name() {
    let db = TestDb::new().await.unwrap();
    let root = server_certificate(&db).await;
    // 127.0.0.1 is not in the certificate (it names only `localhost`).
    let err = userfeed::db::connect(&config(&db.url, "verify-full", &root))
        .await
        .expect_err("wrong host name");
    // The same root verifies the server by its name `localhost`
    // (verify_ca_and_verify_full_succeed_…): what fails here is the name.
    match &err {
        userfeed::db::ConnectError::Tls { mode, detail } => {
            assert_eq!(mode, "verify-full", "{err}");
            assert!(
                detail.to_lowercase().contains("name"),
                "the certificate's names are why: {err}"
            );
        }
        other => panic!("not a TLS failure: {other}"),
    }
}

#[tokio::test]
async fn a_ca_file_holding_no_certificate_fails_naming_tls() {
    // As the production overlay's placeholder db-ca.pem does until replaced.
    let db = TestDb::new().await.unwrap();
    let placeholder = format!(
        "{}/../deploy/kubernetes/overlays/production/db-ca.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let err = userfeed::db::connect(&config(&db.url, "verify-full", &placeholder))
        .await
        .expect_err("no CA, no trust");
    let msg = err.to_string();
    assert!(
        msg.starts_with("TLS to the database failed (sslmode=verify-full)"),
        "{msg}"
    );
}

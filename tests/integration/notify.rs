//! Webhook notifications: which upload ends are notified, signed bodies,
//! retries with backoff until the receiver accepts, durability across a
//! deliverer's restart, giving up after the retry window, and every
//! attempt in the upload's detail.

use std::time::Duration;

use sea_orm::DbBackend;
use serde_json::Value;
use userfeed::config::{Config, NotifyConfig};
use userfeed::map::MatchKey;
use userfeed::notify::{self, Deliverer};
use userfeed::service::{self, Caller, WebhookRequest};
use userfeed_tests::*;

each_backend!(
    each_end_that_needs_a_person_is_notified_and_a_clean_success_is_not,
    a_refused_delivery_is_retried_with_the_same_signed_body_until_accepted,
    a_pending_notification_survives_its_deliverer_and_the_next_one_delivers_it,
    a_notification_is_given_up_after_the_retry_window_and_says_why,
    a_name_resolving_to_loopback_is_refused_at_delivery_and_nothing_is_sent,
    a_stored_url_to_loopback_is_given_up_at_delivery_without_a_call,
    a_redirect_is_not_followed,
    a_receiver_that_does_not_answer_in_time_is_retried,
    a_delivery_whose_lease_expires_mid_call_is_retried_and_the_late_end_changes_nothing,
);

const KEY: &str = "test-signing-key-0123456789abcdef0123456789";

fn notify_cfg(retry_for_hours: f64) -> NotifyConfig {
    let mut n = Config::load(None).unwrap().notify;
    n.signing_key = KEY.into();
    n.allow_http = true;
    // The receivers here listen on loopback, which only the allow-list
    // admits.
    n.allowed_hosts = vec!["127.0.0.1".into()];
    n.timeout_seconds = 5;
    n.backoff_base_seconds = 0.05;
    n.backoff_max_seconds = 0.2;
    n.poll_seconds = 0.05;
    n.retry_for_hours = retry_for_hours;
    n
}

struct Env {
    db: TestDb,
    aws: Aws,
    w: std::sync::Arc<userfeed::jobs::Workers>,
    cfg: NotifyConfig,
}

async fn env(backend: DbBackend, retry_for_hours: f64) -> Env {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let w = workers(&db, &aws, Duration::from_secs(30), 100);
    Env {
        db,
        aws,
        w,
        cfg: notify_cfg(retry_for_hours),
    }
}

impl Env {
    async fn apply(&self, key: &str, body: String) -> userfeed::db::entity::upload::Model {
        self.aws.put(key, body).await.unwrap();
        let ids = intake_all(&self.db, &self.aws).await;
        run_next(&self.w).await;
        upload(&self.db, ids[0]).await
    }

    /// Points acme's webhook at `addr`; the secret to verify with.
    async fn webhook(&self, addr: &str) -> String {
        let req = WebhookRequest {
            url: format!("http://{addr}/hooks/userfeed"),
            rotate_secret: false,
        };
        service::Service {
            notify: std::sync::Arc::new(self.cfg.clone()),
            ..service::Service::new(self.db.db.clone())
        }
        .set_webhook(&Caller::Platform, "acme", &req)
        .await
        .unwrap()
        .secret
        .unwrap()
    }

    fn deliverer(&self) -> Deliverer {
        Deliverer::new(
            self.db.db.clone(),
            self.cfg.clone(),
            self.cfg.key().unwrap(),
        )
    }

    /// Runs `d` until notification `id` is no longer pending.
    async fn until_settled(&self, d: &Deliverer, id: i64) -> String {
        wait_for(
            "the notification to settle",
            Duration::from_secs(20),
            || async {
                d.deliver_next().await.unwrap();
                let state = self
                    .db
                    .rows(&format!("SELECT state FROM notifications WHERE id = {id}"))
                    .await;
                (state[0] != "pending").then(|| state[0].clone())
            },
        )
        .await
    }

    async fn notifications(&self) -> Vec<String> {
        self.db
            .rows("SELECT upload_id || ' ' || event || ' ' || state FROM notifications ORDER BY id")
            .await
    }
}

fn bad_row_file() -> String {
    let mut f = employees_csv(3, false);
    f.push_str("E9,not-an-email,Bad,Row\n");
    f
}

async fn each_end_that_needs_a_person_is_notified_and_a_clean_success_is_not(backend: DbBackend) {
    let e = env(backend, 1.0).await;
    let clean = e.apply("acme/1.csv", employees_csv(20, false)).await;
    assert_eq!(clean.state, "succeeded");
    assert!(
        e.notifications().await.is_empty(),
        "a clean success is quiet"
    );

    let rejected = e
        .apply("acme/2.csv", {
            let mut f = employees_csv(20, false);
            f.push_str("E99,not-an-email,Bad,Row\n");
            f
        })
        .await;
    let held = e.apply("acme/3.csv", employees_csv(2, false)).await;
    assert_eq!(held.state, "held");
    let failed = e
        .apply("acme/4.csv", "Nothing,Useful\n1,2\n".to_string())
        .await;
    assert_eq!(failed.state, "failed");
    assert_eq!(
        e.notifications().await,
        [
            format!("{} upload.rejected_rows pending", rejected.id),
            format!("{} upload.held pending", held.id),
            format!("{} upload.failed pending", failed.id),
        ]
    );

    // With no URL and no platform default, they are skipped, saying why.
    let d = e.deliverer();
    while d.deliver_next().await.unwrap() {}
    assert_eq!(
        e.db.rows("SELECT state || ': ' || last_error FROM notifications ORDER BY id")
            .await,
        vec!["skipped: no webhook URL for the tenant and no notify.default_url".to_string(); 3]
    );
}

async fn a_refused_delivery_is_retried_with_the_same_signed_body_until_accepted(
    backend: DbBackend,
) {
    let e = env(backend, 1.0).await;
    let receiver = Receiver::start("127.0.0.1:0", &[500, 503, 200]).await;
    let secret = e.webhook(&receiver.addr).await;
    let up = e.apply("acme/1.csv", bad_row_file()).await;
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;

    let d = e.deliverer();
    assert_eq!(e.until_settled(&d, id).await, "delivered");
    let got = receiver.received();
    assert_eq!(got.len(), 3, "two refusals, then accepted");
    for r in &got {
        assert_eq!(r.body, got[0].body, "every retry sends the same bytes");
        assert_eq!(r.header("userfeed-delivery"), Some(id.to_string().as_str()));
        assert_eq!(r.header("userfeed-event"), Some("upload.rejected_rows"));
        let now = chrono::Utc::now().timestamp();
        let sig = r.header("userfeed-signature").unwrap();
        assert!(
            notify::verify(&secret, sig, r.body.as_bytes(), now, 300),
            "{sig}"
        );
        assert!(
            !notify::verify("whsec_other", sig, r.body.as_bytes(), now, 300),
            "only the tenant's secret verifies"
        );
    }
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["event"], "upload.rejected_rows");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["upload"]["id"], up.id);
    assert_eq!(body["upload"]["state"], "succeeded");
    assert_eq!(body["upload"]["counts"]["rejected"], 1);
    assert_eq!(body["upload"]["counts"]["created"], 3);
    assert_eq!(
        body["links"]["problems"],
        format!("/api/v1/uploads/{}/problems", up.id)
    );

    // Every attempt is in the upload's detail.
    let detail = service::Service::new(e.db.db.clone())
        .upload(&Caller::Tenant("acme".into()), up.id, 10)
        .await
        .unwrap();
    let n = &detail.notifications[0];
    assert_eq!(
        (n.notification.state.as_str(), n.notification.attempts),
        ("delivered", 3)
    );
    let statuses: Vec<Option<i32>> = n.attempt_log.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(503), Some(200)]);
    let shown = userfeed::cli::render::upload_text(&detail);
    assert!(
        shown.contains("upload.rejected_rows): delivered after 3 attempt(s)"),
        "{shown}"
    );
}

async fn a_pending_notification_survives_its_deliverer_and_the_next_one_delivers_it(
    backend: DbBackend,
) {
    let e = env(backend, 1.0).await;
    // The receiver is down at first: nothing listens on its port.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    e.webhook(&addr).await;
    let up = e.apply("acme/1.csv", bad_row_file()).await;

    let first = e.deliverer();
    assert!(first.deliver_next().await.unwrap());
    assert_eq!(
        e.db.rows("SELECT state || ' ' || attempts || ' ' || last_error FROM notifications")
            .await,
        ["pending 1 could not connect to the receiver"]
    );
    // The daemon goes away; the notification is only in the database.
    drop(first);

    let receiver = Receiver::start(&addr, &[200]).await;
    let second = e.deliverer();
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;
    assert_eq!(e.until_settled(&second, id).await, "delivered");
    assert_eq!(receiver.received().len(), 1);
    let detail = service::Service::new(e.db.db.clone())
        .upload(&Caller::Platform, up.id, 0)
        .await
        .unwrap();
    let log = &detail.notifications[0].attempt_log;
    assert_eq!(
        log.iter()
            .map(|a| (a.status, a.error.clone()))
            .collect::<Vec<_>>(),
        [
            (None, Some("could not connect to the receiver".to_string())),
            (Some(200), None)
        ]
    );
}

async fn a_notification_is_given_up_after_the_retry_window_and_says_why(backend: DbBackend) {
    // A window of about a second: the backoff soon reaches past it.
    let e = env(backend, 0.0003).await;
    let receiver = Receiver::start("127.0.0.1:0", &[500]).await;
    e.webhook(&receiver.addr).await;
    e.apply("acme/1.csv", bad_row_file()).await;
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;
    let d = e.deliverer();
    assert_eq!(e.until_settled(&d, id).await, "failed");
    let tries = receiver.received().len();
    assert!(tries >= 2, "retried before giving up: {tries}");
    assert_eq!(
        e.db.rows(&format!(
            "SELECT last_error FROM notifications WHERE id = {id} AND finished_at IS NOT NULL"
        ))
        .await,
        ["the receiver answered 500 Internal Server Error"]
    );
}

/// DNS rebinding: a public-looking name passes when set, then resolves to
/// loopback. The deliverer's resolver (answering this name from its own
/// hosts table, as `/etc/hosts` would) checks the answer it connects with,
/// so nothing reaches the receiver on loopback, which is not allow-listed.
async fn a_name_resolving_to_loopback_is_refused_at_delivery_and_nothing_is_sent(
    backend: DbBackend,
) {
    let mut e = env(backend, 1.0).await;
    let receiver = Receiver::start("127.0.0.1:0", &[200]).await;
    let port = receiver.addr.rsplit_once(':').unwrap().1;
    e.webhook(&format!("hooks.rebind.example:{port}")).await;
    // From here on, loopback is not allowed.
    e.cfg.allowed_hosts.clear();
    e.apply("acme/1.csv", bad_row_file()).await;
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;
    let hosts = [(
        "hooks.rebind.example".to_string(),
        vec!["127.0.0.1".parse().unwrap()],
    )]
    .into();
    let d = Deliverer::with_hosts(e.db.db.clone(), e.cfg.clone(), e.cfg.key().unwrap(), hosts);
    assert!(d.deliver_next().await.unwrap());
    assert_eq!(
        e.db.rows(&format!(
            "SELECT error FROM notification_attempts WHERE notification_id = {id}"
        ))
        .await,
        ["not sent: the host name resolves only to addresses Userfeed does not call"]
    );
    assert!(receiver.received().is_empty(), "nothing reached loopback");

    // The same name, allow-listed by the operator, is delivered.
    e.cfg.allowed_hosts = vec!["hooks.rebind.example".into()];
    let hosts = [(
        "hooks.rebind.example".to_string(),
        vec!["127.0.0.1".parse().unwrap()],
    )]
    .into();
    let d = Deliverer::with_hosts(e.db.db.clone(), e.cfg.clone(), e.cfg.key().unwrap(), hosts);
    assert_eq!(e.until_settled(&d, id).await, "delivered");
    assert_eq!(receiver.received().len(), 1);
}

/// A URL stored before the guard existed (or an allow-list narrowed since)
/// is refused at delivery too: given up at once, saying why, with no call.
async fn a_stored_url_to_loopback_is_given_up_at_delivery_without_a_call(backend: DbBackend) {
    let mut e = env(backend, 1.0).await;
    let receiver = Receiver::start("127.0.0.1:0", &[200]).await;
    e.webhook(&receiver.addr).await;
    e.cfg.allowed_hosts.clear();
    e.apply("acme/1.csv", bad_row_file()).await;
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;
    assert_eq!(e.until_settled(&e.deliverer(), id).await, "failed");
    assert_eq!(
        e.db.rows(&format!(
            "SELECT last_error FROM notifications WHERE id = {id}"
        ))
        .await,
        ["not sent: the webhook URL points at a loopback address, which Userfeed does not call"]
    );
    assert!(receiver.received().is_empty());
}

/// A receiver answering 302 to another address is not followed: the
/// attempt records the 302, and the other address gets nothing.
async fn a_redirect_is_not_followed(backend: DbBackend) {
    let e = env(backend, 1.0).await;
    let elsewhere = Receiver::start("127.0.0.1:0", &[200]).await;
    let redirect = Receiver::start_with(
        "127.0.0.1:0",
        &[302],
        &[("Location", &format!("http://{}/stolen", elsewhere.addr))],
    )
    .await;
    e.webhook(&redirect.addr).await;
    e.apply("acme/1.csv", bad_row_file()).await;
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;
    assert!(e.deliverer().deliver_next().await.unwrap());
    assert_eq!(
        e.db.rows(&format!(
            "SELECT status || ' ' || error FROM notification_attempts WHERE notification_id = {id}"
        ))
        .await,
        ["302 the receiver answered 302 Found"]
    );
    assert_eq!(redirect.received().len(), 1);
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed"
    );
}

async fn a_receiver_that_does_not_answer_in_time_is_retried(backend: DbBackend) {
    let mut e = env(backend, 1.0).await;
    e.cfg.timeout_seconds = 1;
    let receiver = Receiver::start("127.0.0.1:0", &[0, 200]).await;
    e.webhook(&receiver.addr).await;
    e.apply("acme/1.csv", bad_row_file()).await;
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;
    assert_eq!(e.until_settled(&e.deliverer(), id).await, "delivered");
    assert_eq!(
        e.db.rows(&format!(
            "SELECT COALESCE(error, 'ok') FROM notification_attempts \
             WHERE notification_id = {id} ORDER BY id"
        ))
        .await,
        ["the receiver did not answer in time", "ok"]
    );
    assert_eq!(receiver.received().len(), 2);
}

/// A deliverer whose call outlives its lease: the next deliverer claims
/// the notification and delivers it; the first one's late end (its call
/// timing out) must not undo that.
async fn a_delivery_whose_lease_expires_mid_call_is_retried_and_the_late_end_changes_nothing(
    backend: DbBackend,
) {
    let mut e = env(backend, 1.0).await;
    e.cfg.timeout_seconds = 3;
    let receiver = Receiver::start("127.0.0.1:0", &[0, 200]).await;
    e.webhook(&receiver.addr).await;
    e.apply("acme/1.csv", bad_row_file()).await;
    let id = e.db.scalar("SELECT max(id) FROM notifications").await;
    let first = e.deliverer();
    let stuck = tokio::spawn(async move { first.deliver_next().await });
    wait_for(
        "the first call to arrive",
        Duration::from_secs(10),
        || async { (receiver.received().len() == 1).then_some(()) },
    )
    .await;
    // The lease runs out while the call hangs (the clock moved by the row).
    e.db.scalar(&format!(
        "UPDATE notifications SET lease_expires_at = '2000-01-01T00:00:00.000Z' \
         WHERE id = {id} RETURNING id"
    ))
    .await;
    assert_eq!(e.until_settled(&e.deliverer(), id).await, "delivered");
    // The first call times out now; its end finds the notification taken.
    assert!(stuck.await.unwrap().unwrap());
    assert_eq!(
        e.db.rows(&format!(
            "SELECT state || ' ' || attempts FROM notifications WHERE id = {id}"
        ))
        .await,
        ["delivered 2"]
    );
    assert_eq!(receiver.received().len(), 2);
}

//! `userfeed demo`: the whole product on the embedded default, with no
//! server, no network and no root. It sets up a tenant, drops two days of a
//! generated HR export into the drop folder, lets the daemon take and apply
//! them, prints what happened, and keeps serving until Ctrl-C.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::{Output, UploadsCmd, UsersCmd};
use crate::config::{Config, Toggle};
use crate::map::{FieldType, Mapping, MatchKey};
use crate::service::{self, Access, Caller, Service, UploadState};

/// The demo tenant.
pub const TENANT: &str = "demo";

/// The demo tenant's mapping: every kind of column the feed knows.
const MAPPING: &str = r#"
[columns]
external_id = "Employee Number"
email = "Work Email"
first_name = "First Name"
last_name = "Last Name"
status = "Status"
managers = "Manager Email"
groups = "Groups"
roles = "Roles"

[profile]
department = "Department"
job_title = "Job Title"
"#;

const HEADER: &str = "Employee Number,Work Email,First Name,Last Name,Status,Manager Email,Groups,Roles,Department,Job Title";

/// One person of the generated export.
struct Person {
    id: u32,
    first: &'static str,
    last: &'static str,
    manager: Option<u32>,
    groups: &'static str,
    roles: &'static str,
    department: &'static str,
    title: &'static str,
}

// One argument per column keeps the staff table below one line a person.
#[allow(clippy::too_many_arguments)]
const fn p(
    id: u32,
    first: &'static str,
    last: &'static str,
    manager: Option<u32>,
    groups: &'static str,
    roles: &'static str,
    department: &'static str,
    title: &'static str,
) -> Person {
    Person {
        id,
        first,
        last,
        manager,
        groups,
        roles,
        department,
        title,
    }
}

const STAFF: [Person; 10] = [
    p(
        1001,
        "Ada",
        "Lovelace",
        None,
        "ENG|ALL",
        "Administrator",
        "Engineering",
        "Chief Technology Officer",
    ),
    p(
        1002,
        "Grace",
        "Hopper",
        Some(1001),
        "ENG|ALL",
        "",
        "Engineering",
        "Engineering Manager",
    ),
    p(
        1003,
        "Alan",
        "Turing",
        Some(1002),
        "ENG|ALL",
        "",
        "Engineering",
        "Principal Engineer",
    ),
    p(
        1004,
        "Katherine",
        "Johnson",
        Some(1002),
        "ENG|ALL",
        "",
        "Engineering",
        "Engineer",
    ),
    p(
        1005,
        "Margaret",
        "Hamilton",
        Some(1002),
        "ENG|ALL",
        "",
        "Engineering",
        "Engineer",
    ),
    p(
        1006,
        "Barbara",
        "Liskov",
        Some(1001),
        "SALES|ALL",
        "",
        "Sales",
        "Head of Sales",
    ),
    p(
        1007,
        "John",
        "Backus",
        Some(1006),
        "SALES|ALL",
        "",
        "Sales",
        "Account Executive",
    ),
    p(
        1008,
        "Frances",
        "Allen",
        Some(1006),
        "SALES|ALL",
        "",
        "Sales",
        "Account Executive",
    ),
    p(
        1009,
        "Edsger",
        "Dijkstra",
        Some(1002),
        "ENG|ALL",
        "",
        "Engineering",
        "Engineer",
    ),
    p(
        1010,
        "Donald",
        "Knuth",
        Some(1006),
        "SALES|ALL",
        "",
        "Sales",
        "Sales Engineer",
    ),
];

fn email(p: &Person) -> String {
    format!(
        "{}.{}@example.com",
        p.first.to_lowercase(),
        p.last.to_lowercase()
    )
}

/// The export of day 1 or 2. Day 1: everyone active except Edsger, who
/// left before; one row with a broken email. Day 2: John and Frances have
/// left, Katherine Johnson is now Katherine Goble (a rename), Edsger is
/// back (a rehire), and the broken row is fixed.
pub fn hr_file(day: u8) -> String {
    let mut out = format!("{HEADER}\n");
    for person in &STAFF {
        let mut last = person.last;
        let mut status = "Active";
        let mut mail = email(person);
        match (day, person.id) {
            (1, 1009) => status = "Inactive",
            (1, 1010) => mail = "donald.knuth(at)example.com".into(),
            (2, 1004) => last = "Goble",
            (2, 1007 | 1008) => status = "Inactive",
            _ => {}
        }
        let manager = person
            .manager
            .and_then(|m| STAFF.iter().find(|s| s.id == m))
            .map(email)
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{mail},{},{last},{status},{manager},{},{},{},{}\n",
            person.id, person.first, person.groups, person.roles, person.department, person.title
        ));
    }
    out
}

/// Runs the demo in `dir` (wiping any earlier demo there). With `exit`, it
/// stops after the sample; otherwise it serves until `stop` (Ctrl-C).
pub async fn run<W: Write>(
    cfg: &Config,
    dir: &Path,
    exit: bool,
    stop: CancellationToken,
    out: &mut W,
) -> anyhow::Result<()> {
    for stale in ["userfeed.db", "userfeed.db-wal", "userfeed.db-shm"] {
        match std::fs::remove_file(dir.join(stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing the last demo's {stale}"));
            }
            _ => {}
        }
    }
    let drop = dir.join("drop");
    if drop.exists() {
        std::fs::remove_dir_all(&drop).context("removing the last demo's drop folder")?;
    }
    std::fs::create_dir_all(&drop).with_context(|| format!("creating {}", drop.display()))?;

    let mut cfg = cfg.clone();
    cfg.data.dir = dir.display().to_string();
    cfg.database.url = format!("sqlite:{}", dir.join("userfeed.db").display());
    cfg.intake.queue_url.clear();
    cfg.drop.enabled = Toggle::On;
    cfg.drop.folder = drop.display().to_string();
    cfg.drop.tenant_folders.clear();
    cfg.drop.settle_seconds = 0.5;
    // Loopback only; another port if the configured one is taken.
    let port = cfg.http.bind.port();
    cfg.http.bind = match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => ([127, 0, 0, 1], port).into(),
        Err(_) => ([127, 0, 0, 1], 0).into(),
    };

    writeln!(out, "== Userfeed demo in {}", dir.display())?;
    let db = service::open_database(&cfg, Access::Write)
        .await
        .context("creating the schema")?;
    let svc = Service::for_command(db.clone(), &cfg).await;
    setup_tenant(&svc).await?;
    writeln!(
        out,
        "tenant {TENANT:?}: matched on employee number, with groups ENG, SALES, ALL and profile fields department, job_title"
    )?;

    let daemon_stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(crate::daemon::run(
        cfg.clone(),
        true,
        daemon_stop.clone(),
        Some(tx),
    ));
    let started = match rx.await {
        Ok(s) => s,
        Err(_) => {
            return Err(match daemon.await {
                Ok(Err(e)) => e,
                _ => anyhow::anyhow!("the daemon stopped before it was ready"),
            });
        }
    };
    let tenant_folder = drop.join(TENANT);

    let result = async {
        for day in [1u8, 2] {
            let name = format!("employees-day{day}.csv");
            deliver(&tenant_folder, &name, &hr_file(day))?;
            writeln!(
                out,
                "\n== day {day}: dropped {name} into {}",
                tenant_folder.display()
            )?;
            let id = wait_for_upload(&svc, day as u64).await?;
            let text = || Output { json: false };
            let show = UploadsCmd::Show {
                id,
                errors: 20,
                out: text(),
            };
            super::uploads::uploads(&svc, show, out).await?;
            writeln!(out, "\n-- what upload {id} changed")?;
            super::uploads::uploads(&svc, UploadsCmd::Changes { id, out: text() }, out).await?;
        }
        writeln!(out, "\n== upload history")?;
        let tenant = || TENANT.to_string();
        let history = UploadsCmd::List {
            tenant: tenant(),
            limit: 10,
            out: Output { json: false },
        };
        super::uploads::uploads(&svc, history, out).await?;
        writeln!(out, "\n== users")?;
        let users = UsersCmd::List {
            tenant: tenant(),
            out: Output { json: false },
        };
        super::users::users(&svc, users, out).await?;
        anyhow::Ok(())
    }
    .await;

    if result.is_ok() {
        writeln!(
            out,
            "\nmetrics: http://{0}/metrics   health: http://{0}/healthz",
            started.http
        )?;
        writeln!(
            out,
            "drop more files into {} (write elsewhere, then move them in)",
            tenant_folder.display()
        )?;
        writeln!(
            out,
            "read the demo's data with the CLI: USERFEED_DATA_DIR={} userfeed uploads list --tenant {TENANT}",
            dir.display()
        )?;
        if !exit {
            writeln!(out, "serving until Ctrl-C")?;
            out.flush()?;
            stop.cancelled().await;
        }
    }
    daemon_stop.cancel();
    let stopped = daemon.await.context("the daemon task panicked")?;
    db.close().await.ok();
    result?;
    stopped
}

async fn setup_tenant(svc: &Service) -> anyhow::Result<()> {
    let me = &Caller::Platform;
    let tenant = service::NewTenant {
        slug: TENANT.into(),
        bucket: String::new(),
        prefix: Some(format!("{TENANT}/")),
        match_on: MatchKey::ExternalId,
    };
    svc.add_tenant(me, &tenant).await?;
    for field in ["department", "job_title"] {
        let field = service::ProfileField {
            key: field.into(),
            field_type: FieldType::Text,
        };
        svc.add_profile_field(me, TENANT, &field).await?;
    }
    for (key, name) in [
        ("ENG", "Engineering"),
        ("SALES", "Sales"),
        ("ALL", "Everyone"),
    ] {
        let group = service::NewGroup {
            id: key.into(),
            name: name.into(),
        };
        svc.add_group(me, TENANT, &group).await?;
    }
    let mapping = Mapping::from_toml(MAPPING, MatchKey::ExternalId)?;
    svc.set_mapping(me, TENANT, &mapping).await?;
    Ok(())
}

/// Delivers a file the safe way: written under a temporary name, then
/// renamed into the tenant's folder.
fn deliver(folder: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let part = folder.join(format!("{name}.part"));
    std::fs::write(&part, text).with_context(|| format!("writing {}", part.display()))?;
    let to = folder.join(name);
    std::fs::rename(&part, &to)?;
    Ok(to)
}

/// Waits until the tenant has `n` uploads and the newest has ended; its id.
async fn wait_for_upload(svc: &Service, n: u64) -> anyhow::Result<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let uploads = svc.uploads(&Caller::Platform, TENANT, n).await?;
        if let Some(newest) = uploads.first().filter(|_| uploads.len() as u64 >= n) {
            let ended = matches!(
                newest.state,
                UploadState::Succeeded
                    | UploadState::Failed
                    | UploadState::Held
                    | UploadState::Superseded
            );
            if ended {
                return Ok(newest.id);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the demo's upload {n} did not finish within a minute; see the log above");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_two_has_two_leavers_a_rename_and_a_rehire() {
        let (d1, d2) = (hr_file(1), hr_file(2));
        assert_eq!(d1.lines().count(), 11);
        assert!(d1.contains("1009,edsger.dijkstra@example.com,Edsger,Dijkstra,Inactive"));
        assert!(d2.contains("1009,edsger.dijkstra@example.com,Edsger,Dijkstra,Active"));
        assert!(d2.contains("1004,katherine.johnson@example.com,Katherine,Goble,Active"));
        assert_eq!(d2.matches(",Inactive,").count(), 2);
        assert!(d1.contains("donald.knuth(at)example.com"));
        assert!(!d2.contains("(at)"));
        let mapping = Mapping::from_toml(MAPPING, MatchKey::ExternalId).unwrap();
        assert_eq!(mapping.columns.status.as_deref(), Some("Status"));
        assert_eq!(mapping.profile.len(), 2);
    }
}

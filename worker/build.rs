//! Generates the named queries from `src/db/sql` (see `build/sql.rs`), and
//! records the commit the binary is built from, for the metric
//! `userfeed_build_info` and the daemon's start log line. `USERFEED_BUILD_COMMIT`
//! wins (container builds have no `.git`: pass it as a build argument);
//! otherwise `git` is asked; otherwise `unknown`.

use std::process::Command;

#[path = "build/sql.rs"]
mod sql;
#[path = "src/rules/text.rs"]
#[allow(dead_code)]
mod text;

/// The backends with a folder of named queries under `src/db/sql`.
const BACKENDS: &[&str] = &["postgres", "sqlite"];

fn main() {
    // The named queries: one generated module per backend (see build/sql.rs).
    println!("cargo:rerun-if-changed=src/db/sql");
    println!("cargo:rerun-if-changed=src/rules/text.rs");
    println!("cargo:rerun-if-changed=build/sql.rs");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut names = Vec::new();
    for backend in BACKENDS {
        let (code, list) = sql::generate(
            std::path::Path::new(&format!("src/db/sql/{backend}")),
            backend,
        );
        std::fs::write(out.join(format!("queries_{backend}.rs")), code).unwrap();
        names.push((*backend, list));
    }
    std::fs::write(out.join("queries_shared.rs"), sql::shared(&names)).unwrap();

    println!("cargo:rerun-if-env-changed=USERFEED_BUILD_COMMIT");
    let commit = std::env::var("USERFEED_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=USERFEED_BUILD_COMMIT={}", commit.trim());
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_commit() -> Option<String> {
    // Rebuild when HEAD moves: HEAD itself, the branch it names, and the
    // packed refs a fresh clone keeps branches in. Only files that exist
    // are named, since a missing one would rebuild on every run.
    let git_dir = git(&["rev-parse", "--absolute-git-dir"])?;
    let mut watch = vec![format!("{git_dir}/HEAD"), format!("{git_dir}/packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(format!("{git_dir}/{branch}"));
    }
    for path in watch {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

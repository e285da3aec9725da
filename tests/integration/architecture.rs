//! The architecture test: modules of `worker/src` import only downward, in
//! the layers of `docs/architecture.md`, with no import cycle between
//! modules; the admin API and the screens import nothing from each other;
//! the CLI reaches the domain only through `service`.
//!
//! A module is a file (`apply/undo.rs` is `apply::undo`, `apply/mod.rs` is
//! `apply`). An edge a → b means a file of module a names `crate::b…` or
//! `super::…` resolving to b (the longest known module path wins). Tests
//! (`#[cfg(test)] mod … { … }`) and comments are not read. A child naming
//! its own ancestor (`super::Problem` from `web::api::files`) is no edge:
//! the parent holds what its children share.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module belongs to the layer of its longest
/// listed prefix; it may import from its own layer and those below. The
/// same order, in words, is in `docs/architecture.md` ("Layers").
const LAYERS: &[(&str, &[&str])] = &[
    (
        "vocabulary: the upload's domain types, leaf validators, texts, parsing",
        &[
            "upload",
            "validate",
            "outbound",
            "listen",
            "rules::text",
            "parse",
            "health",
        ],
    ),
    ("rules: mappings and the feed's rules", &["map", "rules"]),
    ("configuration", &["config"]),
    ("telemetry", &["telemetry"]),
    ("database", &["db"]),
    (
        "tenants and read-only queries",
        &["tenants", "groups", "report"],
    ),
    (
        "upload states, leases and the notification outbox",
        &["jobs::state", "jobs::lease", "notify"],
    ),
    ("intake and object readers", &["intake", "source"]),
    ("apply", &["apply"]),
    ("the worker pool and the queue", &["jobs"]),
    (
        "integrations: AWS, credentials, buckets, Xero",
        &["aws", "credentials", "bucket", "xero"],
    ),
    ("service: every operation of every surface", &["service"]),
    (
        "web: the admin API and the screens; probes",
        &["web", "http"],
    ),
    ("daemon", &["daemon"]),
    ("cli", &["cli"]),
];

/// Pairs of modules that must not import each other at all, whatever their
/// layers: (importer prefix, imported prefixes).
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("web::api", &["web::ui"]),
    ("web::ui", &["web::api"]),
    // The CLI parses, calls `service` and renders.
    (
        "cli",
        &[
            "report",
            "apply",
            "intake",
            "jobs",
            "db",
            "notify",
            "credentials",
            "xero",
        ],
    ),
];

type Module = Vec<String>;

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without comments and `#[cfg(test)] mod … { … }` blocks.
fn code_of(text: &str) -> String {
    let no_comments: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::new();
    let mut rest = no_comments.as_str();
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = rest[i + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod ") && after.find('{') < after.find(';') {
            let open = after.find('{').unwrap();
            let mut depth = 0usize;
            let mut end = after.len();
            for (j, c) in after[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + j + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Identifiers and the punctuation of paths: `::`, `{`, `}`, `,`.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cs: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(cs[start..i].iter().collect());
            continue;
        }
        if c == ':' && cs.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
            continue;
        }
        if matches!(c, '{' | '}' | ',' | '*') {
            out.push(c.to_string());
        } else if !c.is_whitespace() {
            out.push(" ".into());
        }
        i += 1;
    }
    out
}

/// Reads a use tree after `prefix::` at `toks[i]`, adding every full path.
fn use_tree(
    toks: &[String],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    if toks.get(i).map(String::as_str) == Some("{") {
        i += 1;
        loop {
            match toks.get(i).map(String::as_str) {
                None => return i,
                Some("}") => return i + 1,
                Some(",") => i += 1,
                Some(_) => i = use_tree(toks, i, prefix.clone(), out),
            }
        }
    }
    let mut path = prefix;
    while let Some(t) = toks.get(i) {
        if t == "*" {
            i += 1;
            break;
        }
        if !t
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
        {
            break;
        }
        if t != "self" {
            path.push(t.clone());
        }
        i += 1;
        if toks.get(i).map(String::as_str) != Some("::") {
            break;
        }
        i += 1;
        if toks.get(i).map(String::as_str) == Some("{") {
            return use_tree(toks, i, path, out);
        }
    }
    out.push(path);
    i
}

/// Every `crate::…` and `super::…` path of module `m`'s code, absolute.
fn paths_of(m: &[String], code: &str) -> Vec<Vec<String>> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let head = toks[i].as_str();
        let after_path = i > 0 && toks[i - 1] == "::";
        if (head == "crate" || head == "super")
            && !after_path
            && toks.get(i + 1).is_some_and(|t| t == "::")
        {
            let mut base: Vec<String> = if head == "crate" {
                Vec::new()
            } else {
                m[..m.len().saturating_sub(1)].to_vec()
            };
            let mut j = i + 2;
            while toks.get(j).is_some_and(|t| t == "super")
                && toks.get(j + 1).is_some_and(|t| t == "::")
            {
                base.pop();
                j += 2;
            }
            let mut found = Vec::new();
            let end = use_tree(&toks, j, base, &mut found);
            out.extend(found);
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Module → the modules it imports, with a name that ties them.
type Graph = BTreeMap<Module, BTreeMap<Module, String>>;

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let known: BTreeSet<Module> = files.iter().map(|f| module_of(src, f)).collect();
    let mut g = Graph::new();
    for file in &files {
        let m = module_of(src, file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let edges = g.entry(m.clone()).or_default();
        for path in paths_of(&m, &code) {
            let Some(target) = (1..=path.len())
                .rev()
                .map(|k| path[..k].to_vec())
                .find(|p| known.contains(p))
            else {
                continue;
            };
            let is_ancestor = target.len() < m.len() && m[..target.len()] == target[..];
            if target != m && !is_ancestor {
                edges
                    .entry(target)
                    .or_insert_with(|| path.last().cloned().unwrap_or_default());
            }
        }
    }
    g
}

fn starts_with(m: &[String], prefix: &str) -> bool {
    let p: Vec<&str> = prefix.split("::").collect();
    m.len() >= p.len() && m.iter().zip(&p).all(|(a, b)| a == b)
}

/// The layer of `m`: its longest listed prefix's.
fn layer_of(m: &[String]) -> Option<usize> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, prefixes))| prefixes.iter().map(move |p| (i, *p)))
        .filter(|(_, p)| starts_with(m, p))
        .max_by_key(|(_, p)| p.split("::").count())
        .map(|(i, _)| i)
}

/// Strongly connected sets of more than one module.
fn cycles(g: &Graph) -> Vec<Vec<Module>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        out: Vec<Vec<Module>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: &Module) {
            let n = self.index.len();
            self.index.insert(v.clone(), n);
            self.low.insert(v.clone(), n);
            self.stack.push(v.clone());
            self.on.insert(v.clone());
            for w in self.g.get(v).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v.clone(), l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v.clone(), l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(&w);
                    let done = &w == v;
                    comp.push(w);
                    if done {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

/// Every breach of the rules in the tree at `src`, in words.
fn breaches(src: &Path) -> Vec<String> {
    let g = graph(src);
    let mut out = Vec::new();
    for comp in cycles(&g) {
        let names: Vec<String> = comp.iter().map(|m| name(m)).collect();
        out.push(format!("import cycle between {}", names.join(", ")));
    }
    for (a, edges) in &g {
        if a.is_empty() {
            continue; // the crate root declares the modules
        }
        let Some(la) = layer_of(a) else {
            out.push(format!(
                "module {} is in no layer: add it to LAYERS and docs/architecture.md",
                name(a)
            ));
            continue;
        };
        for (b, why) in edges {
            match layer_of(b) {
                Some(lb) if lb > la => out.push(format!(
                    "{} ({}) imports {} from {} ({}), a layer above",
                    name(a),
                    LAYERS[la].0,
                    why,
                    name(b),
                    LAYERS[lb].0
                )),
                _ => {}
            }
            for (importer, banned) in FORBIDDEN {
                if starts_with(a, importer) && banned.iter().any(|p| starts_with(b, p)) {
                    out.push(format!(
                        "{} imports {} from {}, which {importer} must not import",
                        name(a),
                        why,
                        name(b)
                    ));
                }
            }
        }
    }
    out
}

fn worker_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker/src")
}

#[test]
fn modules_import_only_downward_without_cycles() {
    let found = breaches(&worker_src());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The checker itself, on a tree made for it: an upward import, a cycle,
/// a CLI reaching past the service and the API naming the screens are each
/// reported, so the test above cannot pass by reading nothing.
#[test]
fn the_checker_reports_upward_imports_cycles_and_forbidden_reaches() {
    let dir = std::env::temp_dir().join(format!("userfeed-arch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files: &[(&str, &str)] = &[
        (
            "lib.rs",
            "pub mod config; pub mod db; pub mod cli; pub mod web;",
        ),
        // config (layer 2) imports db (layer 4): upward.
        (
            "config.rs",
            "use crate::db::Pool;\n// use crate::cli::x; (a comment)",
        ),
        (
            "db/mod.rs",
            "pub struct Pool; use crate::config::{self, X};",
        ),
        ("cli/mod.rs", "fn f() { crate::db::Pool; }"),
        ("web/mod.rs", "pub mod api; pub mod ui;"),
        (
            "web/api/mod.rs",
            "use crate::web::ui::pages;\nuse super::Shared;",
        ),
        ("web/ui/mod.rs", "pub mod pages;"),
        (
            "web/ui/pages.rs",
            "#[cfg(test)]\nmod tests { use crate::web::api::X; }",
        ),
    ];
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let found = breaches(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let has = |needle: &str| found.iter().any(|f| f.contains(needle));
    assert!(has("import cycle between"), "{found:#?}");
    assert!(
        has("config (configuration) imports Pool from db (database), a layer above"),
        "{found:#?}"
    );
    assert!(
        has("cli imports Pool from db, which cli must not import"),
        "{found:#?}"
    );
    assert!(
        has("web::api imports pages from web::ui::pages, which web::api must not import"),
        "{found:#?}"
    );
    // Neither the comment nor the test module counts, and a child naming
    // its parent is no edge.
    assert!(!has("config imports x from cli"), "{found:#?}");
    assert!(!has("web::ui::pages imports"), "{found:#?}");
    assert!(!has("imports Shared"), "{found:#?}");
}

//! Turns the `.sql` files of named queries (`src/db/sql/<backend>/*.sql`)
//! into Rust constants, one per statement, documented by the comment header
//! written above it.
//!
//! The format, read by people, editors and `psql` alike:
//!
//! ```sql
//! -- name: renew_lease
//! -- What it does and why it looks the way it does (the doc comment).
//! UPDATE uploads SET ... WHERE id = $1;
//!
//! -- fragment: merge_head
//! WITH batch AS (...),            -- included as {{> merge_head}}
//!
//! -- name: merge_batch
//! -- variant: by_email            -- one constant per variant: MERGE_BATCH_BY_EMAIL
//! --   key = lower(u.email)       -- replaces {{key}}
//! ```
//!
//! Bodies may also use the feed's texts (`src/rules/text.rs`), which keeps
//! each customer-facing message and role name in one place:
//! `{{message NAME expr...}}` (the message as an SQL expression over the
//! given values), `{{role_case expr}}` (the stored role a name means, or
//! NULL), `{{role name}}` (a stored role name as a literal) and
//! `{{row_roles}}` (the stored roles that are rows, as a list of literals).
//!
//! A malformed file fails the build with its path and line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::text::{self, Piece};

/// One statement or fragment as written.
struct Block {
    name: String,
    fragment: bool,
    doc: Vec<String>,
    variants: Vec<(String, Vec<(String, String)>)>,
    body: String,
    file: String,
    line: usize,
}

/// Reads every `.sql` file of `dir` (one backend) and returns the Rust source
/// of its constants, and each statement's name and constant.
pub fn generate(dir: &Path, dialect: &str) -> (String, Vec<(String, String)>) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut blocks = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let shown = format!(
            "worker/src/db/sql/{}/{}",
            dialect,
            path.file_name().unwrap().to_string_lossy()
        );
        blocks.extend(parse(&text, &shown));
    }
    let mut fragments = BTreeMap::new();
    for b in blocks.iter().filter(|b| b.fragment) {
        if fragments.insert(b.name.clone(), b.body.clone()).is_some() {
            panic!("{}:{}: fragment {} defined twice", b.file, b.line, b.name);
        }
    }
    let mut out = String::new();
    let mut all = Vec::new();
    let mut seen = BTreeMap::new();
    for b in blocks.iter().filter(|b| !b.fragment) {
        let variants = if b.variants.is_empty() {
            vec![(String::new(), Vec::new())]
        } else {
            b.variants.clone()
        };
        for (variant, vars) in variants {
            let name = if variant.is_empty() {
                b.name.clone()
            } else {
                format!("{}_{}", b.name, variant)
            };
            let constant = name.to_ascii_uppercase();
            if let Some(prev) = seen.insert(constant.clone(), format!("{}:{}", b.file, b.line)) {
                panic!(
                    "{}:{}: {constant} is also defined at {prev}",
                    b.file, b.line
                );
            }
            let at = format!("{}:{} ({name})", b.file, b.line);
            let sql = expand(&b.body, &fragments, &vars, dialect, &at, 0);
            for line in &b.doc {
                writeln!(out, "#[doc = {:?}]", format!(" {line}").trim_end()).unwrap();
            }
            if !b.doc.is_empty() {
                writeln!(out, "#[doc = \"\"]").unwrap();
            }
            writeln!(
                out,
                "#[doc = {:?}]",
                format!(" Named `{name}` in `{}`.", b.file)
            )
            .unwrap();
            writeln!(out, "pub const {constant}: &str = {sql:?};\n").unwrap();
            all.push((name, constant));
        }
    }
    writeln!(out, "/// Every statement of this backend, by name.").unwrap();
    writeln!(out, "pub const ALL: &[(&str, &str)] = &[").unwrap();
    for (name, constant) in &all {
        writeln!(out, "    ({name:?}, {constant}),").unwrap();
    }
    writeln!(out, "];").unwrap();
    (out, all)
}

/// The statements every backend has, as one struct with a value per
/// backend: code that runs on all of them picks its SQL through it.
/// Statements only one backend has (its fast paths, or a dialect's second
/// step) are used through that backend's module.
pub fn shared(backends: &[(&str, Vec<(String, String)>)]) -> String {
    let (_, first_names) = &backends[0];
    let common: Vec<&(String, String)> = first_names
        .iter()
        .filter(|(name, _)| {
            backends[1..]
                .iter()
                .all(|(_, names)| names.iter().any(|(n, _)| n == name))
        })
        .collect();
    let mut out = String::from(
        "/// The statements that run on every backend, one field per name.\n\
         #[derive(Debug, Clone, Copy)]\npub struct Queries {\n",
    );
    for (name, constant) in &common {
        writeln!(out, "    /// [`{constant}`], this backend's version.").unwrap();
        writeln!(out, "    pub {name}: &'static str,").unwrap();
    }
    out.push_str("}\n");
    for (i, (backend, _)) in backends.iter().enumerate() {
        let module = if i == 0 {
            String::new()
        } else {
            format!("{backend}::")
        };
        writeln!(out, "\n/// The {backend} statements.").unwrap();
        writeln!(
            out,
            "pub const {}: Queries = Queries {{",
            backend.to_ascii_uppercase()
        )
        .unwrap();
        for (name, constant) in &common {
            writeln!(out, "    {name}: {module}{constant},").unwrap();
        }
        out.push_str("};\n");
    }
    out
}

fn parse(text: &str, file: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut in_header = false;
    for (i, line) in text.lines().enumerate() {
        let (named, fragment) = (
            line.strip_prefix("-- name:"),
            line.strip_prefix("-- fragment:"),
        );
        if let Some(name) = named.or(fragment) {
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                panic!(
                    "{file}:{}: a name is lower_snake_case, found {name:?}",
                    i + 1
                );
            }
            blocks.push(Block {
                name: name.into(),
                fragment: fragment.is_some(),
                doc: Vec::new(),
                variants: Vec::new(),
                body: String::new(),
                file: file.into(),
                line: i + 1,
            });
            in_header = true;
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            // The file's own header comment, before the first statement.
            if line.trim().is_empty() || line.starts_with("--") {
                continue;
            }
            panic!("{file}:{}: SQL before the first `-- name:`", i + 1);
        };
        if in_header && line.starts_with("--") {
            if let Some(v) = line.strip_prefix("-- variant:") {
                block.variants.push((v.trim().into(), Vec::new()));
            } else if let (Some(binding), false) =
                (line.strip_prefix("--   "), block.variants.is_empty())
            {
                let (k, v) = binding.split_once('=').unwrap_or_else(|| {
                    panic!("{file}:{}: a variant binding is `--   name = value`", i + 1)
                });
                block
                    .variants
                    .last_mut()
                    .unwrap()
                    .1
                    .push((k.trim().into(), v.trim().into()));
            } else {
                let doc = line
                    .strip_prefix("-- ")
                    .unwrap_or(line.trim_start_matches('-'));
                block.doc.push(doc.into());
            }
            continue;
        }
        in_header = false;
        block.body.push_str(line);
        block.body.push('\n');
    }
    for b in &mut blocks {
        let body = b.body.trim_end();
        let body = body.strip_suffix(';').unwrap_or(body);
        b.body = body.trim_start_matches('\n').to_string();
        if b.body.trim().is_empty() {
            panic!("{}:{}: {} has no SQL", b.file, b.line, b.name);
        }
    }
    blocks
}

fn expand(
    body: &str,
    fragments: &BTreeMap<String, String>,
    vars: &[(String, String)],
    dialect: &str,
    at: &str,
    depth: usize,
) -> String {
    if depth > 8 {
        panic!("{at}: fragments nest too deep (a cycle?)");
    }
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find("}}")
            .unwrap_or_else(|| panic!("{at}: unclosed {{{{"));
        let inner = rest[open + 2..open + close].trim();
        rest = &rest[open + close + 2..];
        let mut words = inner.split_whitespace();
        let head = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let text = match head {
            ">" => {
                let name = args
                    .first()
                    .unwrap_or_else(|| panic!("{at}: {{{{> name}}}}"));
                let f = fragments
                    .get(*name)
                    .unwrap_or_else(|| panic!("{at}: no fragment {name}"));
                expand(f, fragments, vars, dialect, at, depth + 1)
            }
            "message" => message(&args, dialect, at),
            "role_case" => role_case(&args, at),
            "role" => {
                let name = args
                    .first()
                    .unwrap_or_else(|| panic!("{at}: {{{{role name}}}}"));
                let i = text::role_index(name).unwrap_or_else(|| panic!("{at}: no role {name}"));
                literal(text::ROLE_NAMES[i].stored)
            }
            "row_roles" => text::ROLE_NAMES
                .iter()
                .filter(|r| r.is_row)
                .map(|r| literal(r.stored))
                .collect::<Vec<_>>()
                .join(", "),
            var => {
                let (_, value) = vars.iter().find(|(k, _)| k == var).unwrap_or_else(|| {
                    panic!("{at}: {{{{{inner}}}}} is no fragment, text or variable")
                });
                expand(value, fragments, vars, dialect, at, depth + 1)
            }
        };
        out.push_str(&text);
    }
    out.push_str(rest);
    out
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn message(args: &[&str], dialect: &str, at: &str) -> String {
    let (name, values) = args
        .split_first()
        .unwrap_or_else(|| panic!("{at}: {{{{message NAME values}}}}"));
    let (_, msg) = text::MESSAGES
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{at}: no message {name} in src/rules/text.rs"));
    let mut values = values.iter();
    let parts: Vec<String> = msg
        .pieces()
        .into_iter()
        .map(|p| {
            let mut value = || {
                values
                    .next()
                    .unwrap_or_else(|| panic!("{at}: {name} needs more values"))
            };
            match (p, dialect) {
                (Piece::Text(t), _) => literal(t),
                (Piece::Plain, _) => value().to_string(),
                (Piece::Quoted, "postgres") => format!("to_json({})::text", value()),
                (Piece::Quoted, _) => format!("json_quote({})", value()),
            }
        })
        .collect();
    if values.next().is_some() {
        panic!("{at}: {name} takes fewer values");
    }
    parts.join(" || ")
}

fn role_case(args: &[&str], at: &str) -> String {
    let [expr] = args else {
        panic!("{at}: {{{{role_case expr}}}}");
    };
    let mut out = format!("CASE lower({expr})");
    for r in text::ROLE_NAMES {
        for name in std::iter::once(&r.stored).chain(r.aliases) {
            write!(out, " WHEN {} THEN {}", literal(name), literal(r.stored)).unwrap();
        }
    }
    out.push_str(" END");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> String {
        let blocks = parse(text, "t.sql");
        let fragments: BTreeMap<_, _> = blocks
            .iter()
            .filter(|b| b.fragment)
            .map(|b| (b.name.clone(), b.body.clone()))
            .collect();
        let b = blocks.iter().find(|b| !b.fragment).unwrap();
        let vars = b.variants.first().map(|v| v.1.clone()).unwrap_or_default();
        expand(&b.body, &fragments, &vars, "postgres", "t", 0)
    }

    #[test]
    fn a_statement_gets_its_fragments_variables_and_texts() {
        let sql = one(
            "-- name: s\n-- doc\n-- variant: by_email\n--   key = lower(u.email)\n\
             SELECT {{key}}, {{message UNKNOWN_GROUP g.key}}, {{role admin}} {{> tail}};\n\n\
             -- fragment: tail\nFROM ({{row_roles}})\n",
        );
        assert_eq!(
            sql,
            "SELECT lower(u.email), 'group ' || to_json(g.key)::text || \
             ' is not a group of this tenant; membership skipped', 'administrator' \
             FROM ('manager', 'administrator')"
        );
    }

    #[test]
    fn the_sqlite_dialect_quotes_with_json_quote() {
        assert_eq!(
            message(&["EMAIL_TAKEN", "r.email"], "sqlite", "t"),
            "'email ' || json_quote(r.email) || ' already belongs to another user'"
        );
    }

    #[test]
    fn role_case_maps_every_name_and_alias_to_the_stored_role() {
        let case = role_case(&["x"], "t");
        assert!(case.contains("WHEN 'admin' THEN 'administrator'"), "{case}");
        assert!(
            case.starts_with("CASE lower(x)") && case.ends_with(" END"),
            "{case}"
        );
    }

    #[test]
    #[should_panic(expected = "no message NOPE")]
    fn an_unknown_message_fails_the_build() {
        one("-- name: s\nSELECT {{message NOPE}}\n");
    }

    #[test]
    #[should_panic(expected = "is no fragment, text or variable")]
    fn an_unknown_placeholder_fails_the_build() {
        one("-- name: s\nSELECT {{nothing}}\n");
    }

    #[test]
    #[should_panic(expected = "t.sql:1: SQL before the first")]
    fn sql_outside_a_named_block_fails_the_build() {
        parse("SELECT 1;\n-- name: s\nSELECT 2\n", "t.sql");
    }
}

//! The screens' HTML, with `maud`: markup checked at compile time and every
//! value escaped. No page loads anything from elsewhere; the one stylesheet
//! is served from `/ui/static/`. Status is always said in words, never by
//! colour alone; every control has a label; tables have header cells.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use crate::db::entity::{upload, upload_row_error};
use crate::service::{Caller, UploadState};
use crate::web::session::Session;

/// The stylesheet.
pub const CSS: &str = include_str!("app.css");

/// A finished page as a response, with `status`.
pub fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The page around every screen: skip link, header with the navigation and
/// sign-out, and the main content under its heading.
pub fn layout(
    title: &str,
    session: Option<&Session>,
    tenant: Option<&str>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Userfeed" }
                link rel="stylesheet" href="/ui/static/app.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Userfeed" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            ul {
                                @if let Some(t) = tenant {
                                    li { a href={"/ui/t/" (t)} { "Upload history" } }
                                    li { a href={"/ui/t/" (t) "/start"} { "Get started" } }
                                    li { a href={"/ui/t/" (t) "/mapping"} { "Mapping" } }
                                    li { a href={"/ui/t/" (t) "/connection"} { "Connection details" } }
                                    li { a href={"/ui/t/" (t) "/preview"} { "Preview a file" } }
                                    li { a href={"/ui/t/" (t) "/files"} { "Upload a file" } }
                                }
                                @if s.caller == Caller::Platform {
                                    li { a href="/ui/ops" { "All tenants" } }
                                }
                            }
                        }
                        form.signout method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span { "Signed in as " strong { (s.label) } }
                            " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error as a page of its own.
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    page(
        status,
        layout(
            title,
            None,
            None,
            html! {
                p role="alert" { (detail) }
                p { a href="/ui" { "Back to the start" } }
            },
        ),
    )
}

/// The sign-in form.
pub fn sign_in(csrf: &str, problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        None,
        html! {
            @if let Some(p) = problem {
                p.problem role="alert" { (p) }
            }
            p { "Sign in with the API token you were given. It is sent once and kept only as a session." }
            form method="post" action="/ui/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// "3 h ago", "5 min ago": an age in words.
pub fn ago(t: DateTime<Utc>) -> String {
    let s = (Utc::now() - t).num_seconds().max(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A time as people read it, with the machine-readable value beside.
pub fn when(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        // One line; the full time, with seconds and zone, as a tooltip.
        Some(t) => html! {
            time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) {
                (t.format("%Y-%m-%d %H:%M"))
            }
        },
        None => html! { "—" },
    }
}

/// An upload's state in words, with a class for colour on top.
pub fn state(s: &UploadState) -> Markup {
    html! { span class={"state state-" (s)} { (s) } }
}

/// An upload's state as its admin reads it: a resolved hold says how it
/// was resolved and for how many people, not "succeeded".
pub fn upload_state(u: &upload::Model) -> Markup {
    use crate::upload::Resolution;
    match u
        .hold_resolution
        .as_deref()
        .and_then(|r| r.parse::<Resolution>().ok())
    {
        Some(Resolution::Approved) => html! {
            span class="state state-approved" { "approved (" (u.held_deactivations) " deactivated)" }
        },
        Some(Resolution::Rejected) => html! {
            span class="state state-rejected" { "rejected (" (u.held_deactivations) " kept)" }
        },
        None => state(&u.state),
    }
}

/// What happened to an upload, in one sentence.
pub fn reason(u: &upload::Model) -> String {
    match (u.failure_reason.as_deref(), u.hold_reason.as_deref()) {
        (Some(f), _) => f.to_string(),
        (None, Some(h)) => match u.hold_resolution.as_deref() {
            Some(r) => format!("{h} ({r})"),
            None => h.to_string(),
        },
        _ => String::new(),
    }
}

/// The six counts' headings, in the history's order.
pub const COUNTS: [&str; 6] = [
    "Read",
    "Created",
    "Updated",
    "Unchanged",
    "Deactivated",
    "Rejected",
];

/// The six counts of an upload.
pub fn counts(u: &upload::Model) -> [i64; 6] {
    [
        u.rows_read,
        u.rows_created,
        u.rows_updated,
        u.rows_unchanged,
        u.rows_deactivated,
        u.rows_rejected,
    ]
}

/// The file's name within the tenant's drop location.
pub fn file_name(u: &upload::Model) -> &str {
    customer_name(u.object_key.rsplit('/').next().unwrap_or(&u.object_key))
}

/// The name the customer gave a file, without the time stamp Userfeed put
/// before it: `api-20261207T210256.066Z-staff.csv` (a file sent through the
/// API or the screens) and `20261207T210256.066210Z_staff.csv` (a file the
/// drop folder moved on, `-2` before the `_` when two met) are `staff.csv`.
pub fn customer_name(name: &str) -> &str {
    /// The length of a `YYYYMMDDTHHMMSS.fffZ` stamp at the start of `s`.
    fn stamp(s: &str) -> Option<usize> {
        let b = s.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if !(digits(0..8) && b.get(8) == Some(&b'T') && digits(9..15) && b.get(15) == Some(&b'.')) {
            return None;
        }
        let frac = b[16..].iter().take_while(|c| c.is_ascii_digit()).count();
        (frac > 0 && b.get(16 + frac) == Some(&b'Z')).then_some(17 + frac)
    }
    if let Some(rest) = name.strip_prefix("api-")
        && let Some(n) = stamp(rest)
        && let Some(given) = rest[n..].strip_prefix('-')
        && !given.is_empty()
    {
        return given;
    }
    if let Some(n) = stamp(name) {
        let rest = &name[n..];
        // `-2_`, `-3_` … when two files met in the same instant.
        let rest = rest
            .strip_prefix('-')
            .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
            .unwrap_or(rest);
        if let Some(given) = rest.strip_prefix('_')
            && !given.is_empty()
        {
            return given;
        }
    }
    name
}

/// A table of row problems.
pub fn problems_table(items: &[upload_row_error::Model]) -> Markup {
    html! {
        @if items.is_empty() {
            p { "No row problems." }
        } @else {
            table {
                caption.visually-hidden { "Row problems" }
                (head(&[Col::Text("Line"), Col::Text("Column"), Col::Text("Severity"), Col::Text("Problem")]))
                tbody {
                    @for p in items {
                        tr {
                            td.num { (p.line) }
                            td { (p.column_name.as_deref().unwrap_or("")) }
                            td { (p.severity) }
                            td { (p.message) }
                        }
                    }
                }
            }
        }
    }
}

/// A table of changes (the change log, a preview's, an undo's).
pub fn changes_table(items: &[crate::report::Change]) -> Markup {
    html! {
        @if items.is_empty() {
            p { "No changes." }
        } @else {
            table {
                caption.visually-hidden { "Changes" }
                (head(&[Col::Text("Change"), Col::Text("User"), Col::Text("Details")]))
                tbody {
                    @for c in items {
                        tr {
                            td { (c.kind.replace('_', " ")) }
                            td { (c.email) }
                            td { (change_details(c.changes.as_ref())) }
                        }
                    }
                }
            }
        }
    }
}

fn change_details(v: Option<&serde_json::Value>) -> Markup {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "(empty)".into(),
        other => other.to_string(),
    };
    html! {
        @match v {
            Some(serde_json::Value::Object(map)) => {
                ul.plain {
                    @for (field, change) in map {
                        @match change.as_array() {
                            Some(pair) if pair.len() == 2 => {
                                li { (field) ": " (text(&pair[0])) " → " (text(&pair[1])) }
                            }
                            _ => { li { (field) ": " (text(change)) } }
                        }
                    }
                }
            }
            Some(other) => { (text(other)) }
            None => {}
        }
    }
}

/// A form that posts one button, with the session's CSRF token.
pub fn button_form(session: &Session, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(session.csrf);
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A message at the top of a page, announced to screen readers.
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// A column heading of a table.
#[derive(Debug, Clone, Copy)]
pub enum Col {
    /// A heading in words.
    Text(&'static str),
    /// A heading of numbers (right-aligned, as its cells).
    Num(&'static str),
    /// A heading only screen readers read (a column of buttons).
    Hidden(&'static str),
}

/// A table's head row: the one way every table of the screens names its
/// columns.
pub fn head(cols: &[Col]) -> Markup {
    html! {
        thead { tr {
            @for c in cols {
                @match c {
                    Col::Text(t) => th scope="col" { (t) },
                    Col::Num(t) => th.num scope="col" { (t) },
                    Col::Hidden(t) => th scope="col" { span.visually-hidden { (t) } },
                }
            }
        } }
    }
}

/// A head row with the six counts' headings between `before` and `after`.
pub fn head_with_counts(before: &[Col], after: &[Col]) -> Markup {
    let cols: Vec<Col> = before
        .iter()
        .copied()
        .chain(COUNTS.map(Col::Num))
        .chain(after.iter().copied())
        .collect();
    head(&cols)
}

#[cfg(test)]
mod tests {
    use super::customer_name;

    #[test]
    fn a_file_shows_the_name_its_customer_gave_it() {
        for (stored, shown) in [
            ("api-20261207T210256.066Z-staff.csv", "staff.csv"),
            (
                "20261207T210256.066210Z_hr-export-semicolon.csv",
                "hr-export-semicolon.csv",
            ),
            ("20261207T210256.066210Z-2_staff.csv", "staff.csv"),
            ("staff.csv", "staff.csv"),
            ("api-notastamp-staff.csv", "api-notastamp-staff.csv"),
            ("20261207T210256.066210Z_", "20261207T210256.066210Z_"),
        ] {
            assert_eq!(customer_name(stored), shown, "{stored}");
        }
    }
}

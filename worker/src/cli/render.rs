//! The one path by which commands print what they read: JSON for machines
//! (`--json`), text and tables for people. Every text rendering of the CLI
//! is here; the data comes from [`crate::service`].

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::service::{
    Change, RowProblem, Upload, UploadDetail, UploadSource, UploadState, UserListing,
};

/// Writes `value` as pretty JSON when `json`, else as `text` renders it.
pub fn emit<W: Write, T: Serialize + ?Sized>(
    out: &mut W,
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", text(value))?;
    }
    Ok(())
}

/// The change log as a table.
pub fn changes_table(list: &[Change]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let detail = c
                .changes
                .as_ref()
                .and_then(|v| v.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(field, v)| {
                            if let serde_json::Value::String(s) = v {
                                // A link's manager, role or group.
                                return format!("{field}: {s}");
                            }
                            let pair = v.as_array().cloned().unwrap_or_default();
                            let show = |x: Option<&serde_json::Value>| match x {
                                Some(serde_json::Value::String(s)) => s.clone(),
                                Some(serde_json::Value::Null) | None => "(none)".into(),
                                Some(other) => other.to_string(),
                            };
                            format!("{field}: {} -> {}", show(pair.first()), show(pair.get(1)))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            vec![c.kind.clone(), c.email.clone(), detail]
        })
        .collect();
    table(&["CHANGE", "USER", "DETAILS"], &rows)
}

/// Renders rows as a left-aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The upload history as a table.
pub fn uploads_table(list: &[Upload]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.state.to_string(),
                u.queued_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                u.object_key.clone(),
                u.rows_read.to_string(),
                u.rows_created.to_string(),
                u.rows_updated.to_string(),
                u.rows_unchanged.to_string(),
                u.rows_deactivated.to_string(),
                u.rows_rejected.to_string(),
                u.failure_reason
                    .clone()
                    .or_else(|| u.hold_reason.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "QUEUED (UTC)",
            "KEY",
            "READ",
            "CREATED",
            "UPDATED",
            "UNCHANGED",
            "DEACTIVATED",
            "REJECTED",
            "REASON",
        ],
        &rows,
    )
}

/// One upload in full, for people.
pub fn upload_text(d: &UploadDetail) -> String {
    let u = &d.upload;
    let ts = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut s = format!(
        "upload {id} ({tenant})\n  object:      {object}\n  state:       {state}\n  attempts:    {attempts}\n  queued:      {queued}\n  started:     {started}\n  finished:    {finished}\n  rows read:   {read}\n  created:     {created}\n  updated:     {updated}\n  unchanged:   {unchanged}\n  deactivated: {deact}\n  rejected:    {rejected}\n",
        id = u.id,
        tenant = d.tenant,
        object = u.source.location(&u.bucket, &u.object_key),
        state = u.state,
        attempts = u.attempts,
        queued = ts(Some(u.queued_at)),
        started = ts(u.started_at),
        finished = ts(u.finished_at),
        read = u.rows_read,
        created = u.rows_created,
        updated = u.rows_updated,
        unchanged = u.rows_unchanged,
        deact = u.rows_deactivated,
        rejected = u.rows_rejected,
    );
    if let Some(r) = &u.failure_reason {
        s.push_str(&format!("  reason:      {r}\n"));
    }
    if let Some(r) = &u.hold_reason {
        s.push_str(&format!("  held:        {r}\n"));
        match &u.hold_resolution {
            Some(res) => s.push_str(&format!("  resolution:  {res} {}\n", ts(u.resolved_at))),
            None => s.push_str(&format!(
                "  waiting:     {} deactivation(s); `userfeed uploads approve {id}` or `userfeed uploads reject {id}`\n",
                u.held_deactivations,
                id = u.id
            )),
        }
    }
    if let Some(n) = u.superseded_by {
        s.push_str(&format!(
            "  superseded:  by upload {n}, a newer full list of the same tenant\n"
        ));
    }
    if let Some(n) = u.retry_of {
        s.push_str(&format!("  retry of:    upload {n}\n"));
    }
    if u.state == UploadState::Failed && u.source == UploadSource::S3 {
        s.push_str(&format!(
            "  retry:       `userfeed uploads retry {}` once the cause is fixed (refused if a newer file has applied)\n",
            u.id
        ));
    }
    if !d.errors.is_empty() {
        s.push_str("\nrow problems:\n");
        s.push_str(&errors_table(&d.errors));
    }
    if u.row_problems_dropped > 0 {
        s.push_str(&format!(
            "\n... and {} more row problem(s), counted but not kept (limits.max_row_problems)\n",
            u.row_problems_dropped
        ));
    }
    for n in &d.notifications {
        let n_ = &n.notification;
        s.push_str(&format!(
            "\nwebhook {} ({}): {} after {} attempt(s){}\n",
            n_.id,
            n_.event,
            n_.state,
            n_.attempts,
            n_.last_error
                .as_deref()
                .map(|e| format!("; last: {e}"))
                .unwrap_or_default()
        ));
        for a in &n.attempt_log {
            s.push_str(&format!(
                "  {} {} -> {} ({} ms)\n",
                a.attempted_at.format("%Y-%m-%d %H:%M:%S"),
                a.url,
                a.status
                    .map(|c| c.to_string())
                    .or_else(|| a.error.clone())
                    .unwrap_or_default(),
                a.duration_ms
            ));
        }
    }
    s
}

/// Row errors and warnings as a table.
pub fn errors_table(errors: &[RowProblem]) -> String {
    let rows: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            vec![
                e.line.to_string(),
                e.severity.clone(),
                e.column_name.clone().unwrap_or_default(),
                e.message.clone(),
            ]
        })
        .collect();
    table(&["LINE", "SEVERITY", "COLUMN", "MESSAGE"], &rows)
}

/// Users as a table, with their roles, managers and groups.
pub fn users_table(list: &[UserListing]) -> String {
    let dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            let u = &l.user;
            vec![
                u.email.clone(),
                u.external_id.clone().unwrap_or_else(|| "-".into()),
                u.first_name.clone(),
                u.last_name.clone(),
                if u.active { "active" } else { "inactive" }.into(),
                if u.feed_managed { "feed" } else { "platform" }.into(),
                dash(&l.roles),
                dash(&l.managers),
                dash(&l.groups),
            ]
        })
        .collect();
    table(
        &[
            "EMAIL",
            "EXTERNAL ID",
            "FIRST NAME",
            "LAST NAME",
            "STATUS",
            "SOURCE",
            "ROLES",
            "MANAGERS",
            "GROUPS",
        ],
        &rows,
    )
}

/// What an undo did, or would do, for people.
pub fn undo_text(r: &crate::service::UndoReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (head, verb) = match r.undo_id {
        Some(u) => (format!("upload {} undone by upload {u}", r.upload_id), ""),
        None => (
            format!("preview: undoing upload {} would", r.upload_id),
            "(nothing was changed) ",
        ),
    };
    let _ = writeln!(
        out,
        "{head}: {} deactivated, {} reactivated, {} updated, {} link(s) restored {verb}",
        r.deactivated.len(),
        r.reactivated.len(),
        r.updated.len(),
        r.links_restored
    );
    let list = |out: &mut String, title: &str, emails: &[String]| {
        if !emails.is_empty() {
            let _ = writeln!(out, "{title}: {}", emails.join(", "));
        }
    };
    list(&mut out, "deactivated", &r.deactivated);
    list(&mut out, "reactivated", &r.reactivated);
    for u in &r.updated {
        let fields: Vec<String> = u
            .fields
            .iter()
            .map(|(f, v)| format!("{f}: {} -> {}", v[0], v[1]))
            .collect();
        let _ = writeln!(out, "updated {}: {}", u.email, fields.join("; "));
    }
    for l in &r.left_alone {
        let _ = writeln!(out, "left alone: {}", l.reason);
    }
    out
}

/// The report as text: counts, hold, changes and row problems.
pub fn preview_text(file: &Path, tenant: &str, r: &crate::service::PreviewReport) -> String {
    let p = &r.progress;
    let mut out = format!(
        "Preview of {} for tenant {tenant} (nothing was changed)\n\
         read {}, created {}, updated {}, unchanged {}, rejected {}, deactivated {}\n",
        file.display(),
        p.rows_read,
        p.created,
        p.updated,
        p.unchanged,
        p.rejected,
        p.deactivated
    );
    match &r.held {
        Some(h) => out.push_str(&format!(
            "The upload would be HELD: {}. Its {} deactivation(s) would wait for \
             `userfeed uploads approve`.\n",
            h.reason, h.deactivations
        )),
        None => out.push_str("The upload would succeed.\n"),
    }
    if !r.changes.is_empty() {
        out.push_str("\nChanges:\n");
        out.push_str(&changes_table(&r.changes));
    }
    if !r.problems.is_empty() {
        out.push_str("\nRow problems:\n");
        out.push_str(&errors_table(&r.problems));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_with_a_final_newline_and_text_is_written_as_rendered() {
        let mut out = Vec::new();
        emit(&mut out, true, &[1, 2], |_| unreachable!()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[\n  1,\n  2\n]\n");
        let mut out = Vec::new();
        emit(&mut out, false, &[1, 2], |v| format!("{} items\n", v.len())).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "2 items\n");
    }

    #[test]
    fn table_aligns_columns_by_widest_cell() {
        let t = table(
            &["A", "BB"],
            &[vec!["xxx".into(), "y".into()], vec!["z".into(), "".into()]],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz\n");
    }
}

//! Previewing a file: what it would do, changing nothing.

use super::*;

pub(super) async fn preview_form(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
) -> Page {
    reach(&session, &slug)?;
    s.service
        .tenant(&session.caller, &slug)
        .await
        .map_err(failed)?;
    Ok(page(
        StatusCode::OK,
        layout(
            "Preview a file",
            Some(&session),
            Some(&slug),
            file_form(
                &session,
                &format!("/ui/t/{slug}/preview"),
                "See what a file would do before you drop it: nothing changes.",
                "File to preview (CSV)",
                "Preview",
            ),
        ),
    ))
}

pub(super) async fn preview(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    form: Multipart,
) -> Page {
    reach(&session, &slug)?;
    s.service
        .tenant(&session.caller, &slug)
        .await
        .map_err(failed)?;
    let file = read_file_form(&s, &session, form).await?;
    let r = s
        .service
        .preview(&session.caller, &slug, &file.path)
        .await
        .map_err(failed)?;
    let p = &r.progress;
    let body = html! {
        (pages::notice("Nothing has changed: this is what the file would do."))
        table {
            caption.visually-hidden { "Counts" }
            (pages::head_with_counts(&[], &[]))
            tbody { tr {
                @for n in [p.rows_read, p.created, p.updated, p.unchanged, p.deactivated, p.rejected] {
                    td.num { (n) }
                }
            } }
        }
        @if let Some(h) = &r.held {
            p.problem role="alert" { "It would be held for approval: " (h.reason) }
        }
        h2 { "Row problems" }
        (pages::problems_table(&r.problems))
        h2 { "What it would change" }
        (pages::changes_table(&r.changes))
    };
    Ok(page(
        StatusCode::OK,
        layout("Preview", Some(&session), Some(&slug), body),
    ))
}

//! A tenant's upload history.

use super::*;
use crate::web::ui::pages::Col;

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    before: Option<i64>,
    done: Option<String>,
}

pub(super) async fn history(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Page {
    reach(&session, &slug)?;
    let filter = crate::report::UploadFilter {
        before: q.before,
        ..Default::default()
    };
    let ups = s
        .service
        .uploads_page(&session.caller, &slug, &filter, PAGE)
        .await
        .map_err(failed)?;
    let undoable = s
        .service
        .undoable(&session.caller, &slug)
        .await
        .map_err(failed)?;
    let body = html! {
        @if let Some(d) = &q.done { (pages::notice(d)) }
        @if ups.is_empty() && q.before.is_none() {
            p { "No uploads yet. When a file arrives it is listed here with what it did." }
            p { a href={"/ui/t/" (slug) "/start"} { "Set up the feed" } }
        } @else {
            table {
                caption.visually-hidden { "Uploads, newest first" }
                (pages::head_with_counts(
                    &[Col::Text("Upload"), Col::Text("File"), Col::Text("State"), Col::Text("Received"), Col::Text("Finished")],
                    &[Col::Text("Reason"), Col::Hidden("Actions")],
                ))
                tbody {
                    @for u in &ups {
                        tr {
                            td { a href={"/ui/t/" (slug) "/uploads/" (u.id)} { "#" (u.id) } }
                            td.mono { (pages::file_name(u)) }
                            td { (pages::state(&u.state)) }
                            td { (pages::when(Some(u.queued_at))) }
                            td { (pages::when(u.finished_at)) }
                            @for n in pages::counts(u) { td.num { (n) } }
                            td { (pages::reason(u)) }
                            td {
                                @if Some(u.id) == undoable {
                                    a href={"/ui/t/" (slug) "/uploads/" (u.id) "/undo"} { "Undo…" }
                                }
                            }
                        }
                    }
                }
            }
            @if ups.len() as u64 == PAGE {
                @if let Some(last) = ups.last() {
                    p.pager { a href={"/ui/t/" (slug) "?before=" (last.id)} { "Older uploads" } }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(
            &format!("Upload history of {slug}"),
            Some(&session),
            Some(&slug),
            body,
        ),
    ))
}

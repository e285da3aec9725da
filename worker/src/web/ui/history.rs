//! A tenant's upload history.

use super::*;
use crate::web::ui::pages::Col;

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    before: Option<i64>,
    done: Option<String>,
    /// Only uploads in this state (empty: all).
    state: Option<String>,
    /// Only uploads received on or after this day (`YYYY-MM-DD`; empty: all).
    since: Option<String>,
}

impl HistoryQuery {
    /// The filter part of the query, to carry to the next page.
    fn filter_query(&self) -> String {
        let mut q = String::new();
        for (k, v) in [("state", &self.state), ("since", &self.since)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.push_str(&format!(
                    "&{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                ));
            }
        }
        q
    }
}

pub(super) async fn history(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Page {
    reach(&session, &slug)?;
    // A filter that does not read is no filter, said on the page.
    let state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<crate::upload::UploadState>().ok());
    let since = q
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
    let filter = crate::report::UploadFilter {
        before: q.before,
        state,
        since,
    };
    let filtered = state.is_some() || since.is_some();
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
        @if ups.is_empty() && q.before.is_none() && !filtered {
            p { "No uploads yet. When a file arrives it is listed here with what it did." }
            p { a href={"/ui/t/" (slug) "/start"} { "Set up the feed" } }
        } @else {
            form.filters method="get" action={"/ui/t/" (slug)} {
                div {
                    label for="state" { "State" }
                    select #state name="state" {
                        option value="" selected[state.is_none()] { "Any" }
                        @for st in crate::upload::UploadState::ALL {
                            @if st != crate::upload::UploadState::Preview {
                                option value=(st) selected[state == Some(st)] { (st) }
                            }
                        }
                    }
                }
                div {
                    label for="since" { "Received since" }
                    input #since type="date" name="since" value=[q.since.as_deref().filter(|_| since.is_some())];
                }
                button.secondary type="submit" { "Show" }
                @if filtered { a href={"/ui/t/" (slug)} { "Show all" } }
            }
            @if ups.is_empty() {
                p { "No uploads match." }
            } @else {
                div.scroll {
                    table {
                        caption.visually-hidden { "Uploads, newest first" }
                        (pages::head_with_counts(
                            &[Col::Text("Upload"), Col::Text("File"), Col::Text("State"), Col::Text("Received")],
                            &[Col::Text("Reason"), Col::Hidden("Actions")],
                        ))
                        tbody {
                            @for u in &ups {
                                tr {
                                    td { a href={"/ui/t/" (slug) "/uploads/" (u.id)} { "#" (u.id) } }
                                    td.mono { (pages::file_name(u)) }
                                    td { (pages::upload_state(u)) }
                                    td { (pages::when(Some(u.queued_at))) }
                                    @for n in pages::counts(u) { td.num { (n) } }
                                    @let reason = pages::reason(u);
                                    td.reason title=[(!reason.is_empty()).then_some(&reason)] { (reason) }
                                    td {
                                        @if Some(u.id) == undoable {
                                            a href={"/ui/t/" (slug) "/uploads/" (u.id) "/undo"} { "Undo…" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if ups.len() as u64 == PAGE {
                @if let Some(last) = ups.last() {
                    p.pager { a href={"/ui/t/" (slug) "?before=" (last.id) (q.filter_query())} { "Older uploads" } }
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

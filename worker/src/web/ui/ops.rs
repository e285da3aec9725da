//! The operators' overview of every tenant.

use super::*;
use crate::web::ui::pages::Col;

pub(super) async fn ops(State(s): State<WebState>, session: Session) -> Page {
    let o = s.service.overview(&session.caller).await.map_err(failed)?;
    let q = &o.queue;
    let body = html! {
        h2 { "Backlog" }
        dl.facts {
            dt { "Queued" } dd { (q.queued) }
            dt { "Running" } dd { (q.running) }
            dt { "Oldest queued" } dd { (format_seconds(q.oldest_queued_age_s)) }
            dt { "Held for approval" } dd { (q.held) }
            dt { "Oldest held" } dd { (format_seconds(q.oldest_held_age_s)) }
        }
        h2 { "Tenants" }
        table {
            (pages::head(&[Col::Text("Tenant"), Col::Text("Last upload"), Col::Text("State"), Col::Text("Received"), Col::Text("Reason")]))
            tbody {
                @for t in &o.tenants {
                    tr {
                        th scope="row" { a href={"/ui/t/" (t.slug)} { (t.slug) } }
                        @match &t.last_upload {
                            Some(u) => {
                                td { a href={"/ui/t/" (t.slug) "/uploads/" (u.id)} { "#" (u.id) " " (pages::file_name(u)) } }
                                td { (pages::state(&u.state)) }
                                td { (pages::ago(u.queued_at)) }
                                td { (pages::reason(u)) }
                            }
                            None => {
                                td colspan="4" { "No uploads yet" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Failed and held, across tenants" }
        @if o.attention.is_empty() {
            p { "Nothing failed or held." }
        } @else {
            table {
                (pages::head(&[Col::Text("Upload"), Col::Text("Tenant"), Col::Text("State"), Col::Text("Finished"), Col::Text("Reason")]))
                tbody {
                    @for a in &o.attention {
                        tr {
                            td { a href={"/ui/t/" (a.slug) "/uploads/" (a.upload.id)} { "#" (a.upload.id) } }
                            td { (a.slug) }
                            td { (pages::state(&a.upload.state)) }
                            td { (pages::when(a.upload.finished_at)) }
                            td { (pages::reason(&a.upload)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("All tenants", Some(&session), None, body),
    ))
}

pub(super) fn format_seconds(s: f64) -> String {
    match s as i64 {
        0 => "—".into(),
        s @ 1..120 => format!("{s} s"),
        s @ 120..7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

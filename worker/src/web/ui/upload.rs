//! One upload: its detail, problems, changes, and resolving its hold.

use super::*;

#[derive(Deserialize)]
pub(super) struct UploadQuery {
    problems_after: Option<String>,
    held_after: Option<i64>,
    changes_after: Option<String>,
    done: Option<String>,
}

/// The upload `id` of tenant `slug` (others are not found, whatever the
/// caller reaches, so a page never shows another tenant's upload under
/// this tenant's name).
pub(super) async fn tenant_upload(
    s: &WebState,
    session: &Session,
    slug: &str,
    id: i64,
) -> Result<crate::report::UploadDetail, Response> {
    reach(session, slug)?;
    let d = s
        .service
        .upload(&session.caller, id, 0)
        .await
        .map_err(failed)?;
    if d.tenant != slug {
        return Err(failed(ServiceError::NotFound(format!("no upload {id}"))));
    }
    Ok(d)
}

pub(super) async fn upload(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Query(q): Query<UploadQuery>,
) -> Page {
    let d = tenant_upload(&s, &session, &slug, id).await?;
    let p_after = cursor::<crate::report::ProblemCursor>(q.problems_after.as_deref())?;
    let c_after = cursor::<crate::report::ChangeCursor>(q.changes_after.as_deref())?;
    let problems = s
        .service
        .problems_page(&session.caller, id, p_after, PAGE)
        .await
        .map_err(failed)?;
    let (changes, next_change) = s
        .service
        .changes_page(&session.caller, id, c_after, PAGE)
        .await
        .map_err(failed)?;
    let u = &d.upload;
    let base = format!("/ui/t/{slug}/uploads/{id}");
    let held = service::hold_pending(u);
    let held_after = q.held_after;
    let people = if held {
        s.service
            .held_people(&session.caller, id, held_after, PAGE)
            .await
            .map_err(failed)?
    } else {
        Vec::new()
    };
    let body = html! {
        @if let Some(done) = &q.done { (pages::notice(done)) }
        dl.facts {
            dt { "File" } dd.mono { (pages::file_name(u)) }
            dt { "Stored as" } dd.mono { (u.source.location(&u.bucket, &u.object_key)) }
            dt { "State" } dd { (pages::upload_state(u)) }
            dt { "Received" } dd { (pages::when(Some(u.queued_at))) }
            dt { "Started" } dd { (pages::when(u.started_at)) }
            dt { "Finished" } dd { (pages::when(u.finished_at)) }
            @let reason = pages::reason(u);
            @if !reason.is_empty() { dt { "Reason" } dd { (reason) } }
        }
        table {
            caption.visually-hidden { "Counts" }
            (pages::head_with_counts(&[], &[]))
            tbody { tr { @for n in pages::counts(u) { td.num { (n) } } } }
        }
        @if held {
            section aria-labelledby="hold" {
                h2 #hold { "Held for approval" }
                p { (u.held_deactivations) " users would be deactivated. Approve to deactivate them, or reject to keep them active; the rest of the file has been applied." }
                table {
                    caption { "Who would be deactivated" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Employee ID" } } }
                    tbody {
                        @for p in &people {
                            tr {
                                td { (p.first_name) " " (p.last_name) }
                                td.mono { (p.email) }
                                td.mono { (p.external_id.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                p.pager {
                    @if people.len() as u64 == PAGE {
                        @if let Some(last) = people.last() {
                            a href={(base) "?held_after=" (last.user_id) "#hold"} { "More people" }
                            " · "
                        }
                    }
                    a href={(base) "/held.csv"} download { "Download everyone as CSV" }
                }
                (pages::button_form(&session, &format!("{base}/approve"), "Approve deactivations", ""))
                (pages::button_form(&session, &format!("{base}/reject"), "Reject deactivations", "secondary"))
            }
        }
        h2 { "Row problems" }
        @if u.row_problems_dropped > 0 {
            p.hint { (u.row_problems_dropped) " more problems were found but not kept." }
        }
        (pages::problems_table(&problems))
        p.pager {
            a href={(base) "/problems.csv"} download { "Download all row problems (CSV)" }
            @if problems.len() as u64 == PAGE {
                @if let Some(l) = problems.last() {
                    " · "
                    a href={(base) "?problems_after=" (l.line) "-" (l.id)} { "More problems" }
                }
            }
        }
        h2 { "What it changed" }
        (pages::changes_table(&changes))
        @if let Some(c) = next_change {
            p.pager { a href={(base) "?changes_after=" (c)} { "More changes" } }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(&format!("Upload #{id}"), Some(&session), Some(&slug), body),
    ))
}

/// A page cursor from the query, refused (422) when it is not one this
/// page gave out.
pub(super) fn cursor<C: std::str::FromStr<Err = String>>(
    c: Option<&str>,
) -> Result<Option<C>, Response> {
    c.map(str::parse)
        .transpose()
        .map_err(|e| failed(ServiceError::Invalid(e)))
}

pub(super) async fn problems_csv(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Page {
    tenant_upload(&s, &session, &slug, id).await?;
    let all = s
        .service
        .problems_page(&session.caller, id, None, u64::MAX)
        .await
        .map_err(failed)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"upload-{id}-problems.csv\""),
            ),
        ],
        crate::report::problems_csv(&all),
    )
        .into_response())
}

pub(super) async fn held_csv(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Page {
    tenant_upload(&s, &session, &slug, id).await?;
    let all = s
        .service
        .held_people(&session.caller, id, None, u64::MAX)
        .await
        .map_err(failed)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"upload-{id}-held-deactivations.csv\""),
            ),
        ],
        crate::report::people_csv(&all),
    )
        .into_response())
}

pub(super) async fn approve(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    resolve_hold(&s, &session, &slug, id, f, true).await
}

pub(super) async fn reject(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    resolve_hold(&s, &session, &slug, id, f, false).await
}

/// Approves or rejects a held upload's deactivations, then shows the
/// upload with what was done.
pub(super) async fn resolve_hold(
    s: &WebState,
    session: &Session,
    slug: &str,
    id: i64,
    f: CsrfOnly,
    approve: bool,
) -> Page {
    session.check_csrf(f.csrf.as_deref())?;
    tenant_upload(s, session, slug, id).await?;
    let (r, done) = if approve {
        let r = s.service.approve(&session.caller, id).await;
        (r, "Approved: {} users deactivated.")
    } else {
        let r = s.service.reject(&session.caller, id).await;
        (r, "Rejected: {} users stay active.")
    };
    let r = r.map_err(failed)?;
    tracing::info!(audit = true, token = %session.label, upload = id, approve, "hold resolved from the admin screens");
    Ok(done_redirect(
        slug,
        id,
        &done.replace("{}", &r.deactivations.to_string()),
    ))
}

pub(super) fn done_redirect(slug: &str, id: i64, message: &str) -> Response {
    let q: String = url_encode(message);
    Redirect::to(&format!("/ui/t/{slug}/uploads/{id}?done={q}")).into_response()
}

pub(super) fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

//! Undoing the newest upload, after a confirmation that lists what it would do.

use super::*;

pub(super) async fn undo_confirm(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Page {
    tenant_upload(&s, &session, &slug, id).await?;
    let body = match s.service.undo(&session.caller, id, true).await {
        Ok(r) => html! {
            p { "Undoing upload #" (id) " would do this. Nothing has changed yet." }
            (undo_summary(&r))
            form method="post" action={"/ui/t/" (slug) "/uploads/" (id) "/undo"} {
                input type="hidden" name="csrf" value=(session.csrf);
                button.danger type="submit" { "Undo upload #" (id) }
                " "
                a href={"/ui/t/" (slug) "/uploads/" (id)} { "Cancel" }
            }
        },
        Err(ServiceError::Refused(why)) => html! {
            p.problem role="alert" { (why) }
            p { a href={"/ui/t/" (slug)} { "Back to the history" } }
        },
        Err(e) => return Err(failed(e)),
    };
    Ok(page(
        StatusCode::OK,
        layout(
            &format!("Undo upload #{id}?"),
            Some(&session),
            Some(&slug),
            body,
        ),
    ))
}

pub(super) fn undo_summary(r: &crate::apply::undo::UndoReport) -> Markup {
    html! {
        dl.facts {
            dt { "Made inactive" } dd { (r.deactivated.len()) }
            dt { "Made active again" } dd { (r.reactivated.len()) }
            dt { "Fields put back" } dd { (r.updated.len()) }
            dt { "Links restored" } dd { (r.links_restored) }
            dt { "Left alone" } dd { (r.left_alone.len()) }
        }
        // Who, before anyone decides: each list names its people (the first
        // hundred; the API's undo preview has them all).
        (people("Would be made inactive", "They were created or reactivated by this upload.", &r.deactivated))
        (people("Would be made active again", "This upload deactivated them.", &r.reactivated))
        (people(
            "Would have fields put back",
            "Their names or fields as they were before this upload.",
            &r.updated.iter().map(|u| u.email.clone()).collect::<Vec<_>>(),
        ))
        @if !r.left_alone.is_empty() {
            h2 { "Left alone" }
            ul {
                @for l in &r.left_alone { li { (l.email) ", " (l.field) ": " (l.reason) } }
            }
        }
    }
}

/// A titled list of the people one part of an undo touches.
fn people(title: &str, why: &str, emails: &[String]) -> Markup {
    const SHOWN: usize = 100;
    html! {
        @if !emails.is_empty() {
            section {
                h2 { (title) " (" (emails.len()) ")" }
                p.hint { (why) }
                ul.people {
                    @for e in emails.iter().take(SHOWN) { li.mono { (e) } }
                }
                @if emails.len() > SHOWN {
                    p.hint { "And " (emails.len() - SHOWN) " more: the API's undo preview (POST /api/v1/uploads/{id}/undo?preview=true) lists them all." }
                }
            }
        }
    }
}

pub(super) async fn undo(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    session.check_csrf(f.csrf.as_deref())?;
    tenant_upload(&s, &session, &slug, id).await?;
    let r = s
        .service
        .undo(&session.caller, id, false)
        .await
        .map_err(failed)?;
    tracing::info!(audit = true, token = %session.label, upload = id, "upload undone from the admin screens");
    let shown = r.undo_id.unwrap_or(id);
    Ok(done_redirect(
        &slug,
        shown,
        &format!("Upload #{id} was undone."),
    ))
}

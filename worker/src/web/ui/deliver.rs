//! Sending a file from the screens: it goes where the tenant's drops go
//! (the manual upload of `service::deliver_file`), and is then picked up,
//! queued and applied like any drop.

use super::*;

pub(super) async fn deliver_form(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
) -> Page {
    reach(&session, &slug)?;
    let can = s
        .service
        .can_deliver(&session.caller, &slug)
        .await
        .map_err(failed)?;
    let body = if can {
        file_form(
            &session,
            &format!("/ui/t/{slug}/files"),
            "The file goes where your nightly drops go and is applied like one: new people are created, changes made, and people missing from it deactivated (a large drop waits for approval). Preview it first if you are unsure.",
            "File to upload (CSV)",
            "Upload and apply",
        )
    } else {
        // Not offered where it cannot work, and said why in plain words.
        html! {
            p { "Files cannot be sent from this page on this deployment: it takes your files only from your upload location. See " a href={"/ui/t/" (slug) "/connection"} { "Connection details" } " for how to upload them." }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Upload a file", Some(&session), Some(&slug), body),
    ))
}

pub(super) async fn deliver(
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
    let (file, name) = read_named_file_form(&s, &session, form).await?;
    let name = plain_name(name.as_deref());
    let done = s
        .service
        .deliver_file(&session.caller, &slug, Some(&name), &file.path, file.bytes)
        .await
        .map_err(failed)?;
    tracing::info!(audit = true, token = %session.label, tenant = %slug, location = %done.location, "file sent from the admin screens");
    let said = format!(
        "{name} was sent. It is listed below as soon as it is picked up, usually within a minute."
    );
    Ok(Redirect::to(&format!("/ui/t/{slug}?done={}", url_encode(&said))).into_response())
}

/// The name a file had on the person's computer, as a delivered file may
/// be named: letters, digits, `.`, `-` and `_` (others become `-`), no
/// leading dot, at most 100 characters; `upload.csv` when nothing is left.
fn plain_name(given: Option<&str>) -> String {
    let name: String = given
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches('.');
    let name: String = name.chars().take(100).collect();
    if name.trim_matches('-').is_empty() {
        "upload.csv".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::plain_name;

    #[test]
    fn a_sent_file_keeps_its_name_in_the_characters_a_drop_allows() {
        assert_eq!(plain_name(Some("staff.csv")), "staff.csv");
        assert_eq!(
            plain_name(Some("HR export (Dec).csv")),
            "HR-export--Dec-.csv"
        );
        assert_eq!(plain_name(Some("C:\\Users\\ann\\staff.csv")), "staff.csv");
        assert_eq!(plain_name(Some(".hidden.csv")), "hidden.csv");
        assert_eq!(plain_name(Some("ööö")), "upload.csv");
        assert_eq!(plain_name(None), "upload.csv");
    }
}

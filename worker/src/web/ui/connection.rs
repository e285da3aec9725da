//! Connection details and upload credentials.

use super::*;
use crate::web::ui::pages::Col;

#[derive(Deserialize)]
pub(super) struct ConnectionQuery {
    saved: Option<String>,
}

pub(super) async fn connection(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Query(q): Query<ConnectionQuery>,
) -> Page {
    reach(&session, &slug)?;
    let c = s
        .service
        .connection(&session.caller, &slug)
        .await
        .map_err(failed)?;
    let active = c.keys.iter().any(|k| k.state == "active");
    let action = format!("/ui/t/{slug}/credentials");
    let body = html! {
        @if q.saved.is_some() { (pages::notice("Mapping saved. Files dropped from now on are read with it.")) }
        @if c.bucket.is_empty() {
            p { "This tenant's files arrive in the drop folder, not in S3; there is nothing to connect to." }
        } @else {
            dl.facts {
                dt { "Bucket" } dd.mono { (c.bucket) }
                dt { "Prefix" } dd.mono { (c.prefix) }
                dt { "Region" } dd.mono { (c.region) }
                dt { "Upload command" } dd { code { (c.upload_command) } }
            }
            p.hint { "The key can only upload into your prefix: listing the bucket or reading files answers \"Access Denied\", as it should." }
            h2 { "Access keys" }
            @if c.keys.is_empty() {
                p { "No access key yet." }
            } @else {
                table {
                    (pages::head(&[Col::Text("Access key ID"), Col::Text("State"), Col::Text("Created"), Col::Text("Stops working")]))
                    tbody {
                        @for k in &c.keys {
                            tr {
                                td.mono { (k.access_key_id) }
                                td { (k.state) }
                                td { (pages::when(Some(k.created_at))) }
                                td { (pages::when(k.retire_at.or(k.deleted_at))) }
                            }
                        }
                    }
                }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(session.csrf);
                @if active {
                    button type="submit" name="action" value="rotate" { "Rotate key" }
                    " "
                    button.danger type="submit" name="action" value="revoke" { "Revoke all keys" }
                } @else {
                    button type="submit" name="action" value="create" { "Create upload credentials" }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Connection details", Some(&session), Some(&slug), body),
    ))
}

#[derive(Deserialize)]
pub(super) struct CredentialsForm {
    csrf: Option<String>,
    action: String,
}

pub(super) async fn credentials(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Form(f): Form<CredentialsForm>,
) -> Page {
    reach(&session, &slug)?;
    session.check_csrf(f.csrf.as_deref())?;
    let _iam = s.credentials.iam.as_ref();
    let caller = &session.caller;
    let key = match f.action.as_str() {
        "create" => s.service.create_credentials(caller, &slug).await,
        "rotate" => {
            s.service.rotate_credentials(caller, &slug, s.credentials.grace).await
        }
        "revoke" => {
            let r = s.service.revoke_credentials(caller, &slug)
                .await
                .map_err(failed)?;
            let body = html! {
                (pages::notice(&format!("Deleted {} key(s). Uploads with them are refused from now on.", r.access_key_ids.len())))
                p { a href={"/ui/t/" (slug) "/connection"} { "Back to the connection details" } }
            };
            return Ok(page(
                StatusCode::OK,
                layout("Keys revoked", Some(&session), Some(&slug), body),
            ));
        }
        _ => {
            return Err(pages::error_page(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "Use the buttons on the connection details page.",
            ));
        }
    }
    .map_err(failed)?;
    let body = html! {
        div.secret role="alert" {
            p { strong { "Copy the secret access key now." } " It is shown this once and not stored; if it is lost, rotate the key." }
        }
        dl.facts {
            dt { "Access key ID" } dd.mono #access-key-id { (key.access_key_id) }
            dt { "Secret access key" } dd.mono #secret-access-key { (key.secret_access_key.expose()) }
            dt { "Bucket and prefix" } dd.mono { "s3://" (key.bucket) "/" (key.prefix) }
            dt { "Region" } dd.mono { (key.region) }
            dt { "Upload command" } dd { code { (key.upload_command) } }
        }
        @if let Some(r) = &key.retiring {
            p { "The previous key " code { (r.access_key_id) } " keeps working until " (pages::when(Some(r.retire_at))) ", then it is deleted." }
        }
        p { a href={"/ui/t/" (slug) "/connection"} { "Done: back to the connection details" } }
    };
    Ok(page(
        StatusCode::OK,
        layout("Your upload key", Some(&session), Some(&slug), body),
    ))
}

//! Setting up a feed: the start page and its sample file.

use super::*;

pub(super) async fn start(
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
            "Get started",
            Some(&session),
            Some(&slug),
            file_form(
                &session,
                &format!("/ui/t/{slug}/start"),
                "Upload a sample of your HR export. It is only read to set up the mapping: nothing is applied.",
                "Sample file (CSV)",
                "Upload sample",
            ),
        ),
    ))
}

pub(super) async fn start_sample(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    form: Multipart,
) -> Page {
    reach(&session, &slug)?;
    let t = s
        .service
        .tenant(&session.caller, &slug)
        .await
        .map_err(failed)?;
    let file = read_file_form(&s, &session, form).await?;
    let suggested = s
        .service
        .suggest_mapping_for(&session.caller, &slug, &file.path)
        .await
        .map_err(failed)?;
    let profile: Vec<String> = t.profile_fields.keys().cloned().collect();
    let mapping = suggested.mapping.clone();
    Ok(page(
        StatusCode::OK,
        mapping_page(
            &session,
            &slug,
            &MappingForm {
                columns: &suggested.columns,
                mapping: &mapping,
                profile: &profile,
                sample: &suggested.sample,
                problem: None,
            },
        ),
    ))
}

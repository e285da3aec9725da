//! The mapping screen: which column is which field.

use super::*;
use crate::web::ui::pages::Col;

pub(super) struct MappingForm<'a> {
    pub(super) columns: &'a [String],
    pub(super) mapping: &'a Mapping,
    pub(super) profile: &'a [String],
    pub(super) sample: &'a [Vec<String>],
    pub(super) problem: Option<&'a str>,
}

pub(super) fn select(name: &str, id: &str, columns: &[String], chosen: Option<&str>) -> Markup {
    html! {
        select id=(id) name=(name) {
            option value="" selected[chosen.is_none()] { "(not in the file)" }
            @for c in columns {
                option value=(c) selected[chosen == Some(c.as_str())] { (c) }
            }
        }
    }
}

pub(super) fn mapping_page(session: &Session, slug: &str, f: &MappingForm) -> Markup {
    let body = html! {
        @if let Some(p) = f.problem { p.problem role="alert" { (p) } }
        p { "Pick the column of your file that holds each platform field. The choices were guessed from the column names; check them against the file's first rows." }
        @if !f.sample.is_empty() {
            h2 { "The file's first rows" }
            table {
                thead { tr { @for c in f.columns { th scope="col" { (c) } } } }
                tbody {
                    @for row in f.sample {
                        tr { @for v in row { td { (v) } } }
                    }
                }
            }
        }
        form method="post" action={"/ui/t/" (slug) "/mapping"} {
            input type="hidden" name="csrf" value=(session.csrf);
            @for c in f.columns { input type="hidden" name="column" value=(c); }
            fieldset {
                legend { "Platform fields" }
                @for (key, label) in PLATFORM_FIELDS {
                    div.field {
                        label for={"f-" (key)} { (label) }
                        (select(key, &format!("f-{key}"), f.columns, f.mapping.columns.get(key)))
                    }
                }
            }
            @if !f.profile.is_empty() {
                fieldset {
                    legend { "Custom profile fields" }
                    @for key in f.profile {
                        div.field {
                            label for={"p-" (key)} { (key) }
                            (select(&format!("profile.{key}"), &format!("p-{key}"), f.columns,
                                f.mapping.profile.get(key).map(String::as_str)))
                        }
                    }
                }
            }
            button type="submit" { "Save mapping" }
        }
    };
    layout("Map your columns", Some(session), Some(slug), body)
}

pub(super) async fn mapping(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
) -> Page {
    reach(&session, &slug)?;
    let t = s
        .service
        .tenant(&session.caller, &slug)
        .await
        .map_err(failed)?;
    let body = html! {
        @match &t.mapping {
            None => {
                p { "No mapping yet. " a href={"/ui/t/" (slug) "/start"} { "Upload a sample file" } " to set one up." }
            }
            Some(m) => {
                p { "Files are read with this mapping. To change it, " a href={"/ui/t/" (slug) "/start"} { "upload a sample file" } " and pick the columns again." }
                table {
                    (pages::head(&[Col::Text("Platform field"), Col::Text("Column in the file")]))
                    tbody {
                        @for (key, label) in PLATFORM_FIELDS {
                            tr { th scope="row" { (label) } td { (m.columns.get(key).unwrap_or("(not in the file)")) } }
                        }
                        @for (key, col) in &m.profile {
                            tr { th scope="row" { (key) } td { (col) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Mapping", Some(&session), Some(&slug), body),
    ))
}

pub(super) async fn save_mapping(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Page {
    reach(&session, &slug)?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    session.check_csrf(get("csrf"))?;
    let columns: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n == "column")
        .map(|(_, v)| v.clone())
        .collect();
    let mut mapping = Mapping {
        columns: Columns::default(),
        profile: Default::default(),
    };
    for (key, _) in PLATFORM_FIELDS {
        if let (Some(v), Some(slot)) = (
            get(key).filter(|v| !v.is_empty()),
            mapping.columns.slot(key),
        ) {
            *slot = Some(v.to_string());
        }
    }
    for (name, v) in &fields {
        if let Some(key) = name.strip_prefix("profile.")
            && !v.is_empty()
        {
            mapping.profile.insert(key.to_string(), v.clone());
        }
    }
    match s
        .service
        .set_mapping(&session.caller, &slug, &mapping)
        .await
    {
        Ok(_) => {
            tracing::info!(audit = true, token = %session.label, tenant = %slug, "mapping saved from the admin screens");
            Ok(Redirect::to(&format!("/ui/t/{slug}/connection?saved=1")).into_response())
        }
        Err(ServiceError::Invalid(why)) => {
            let t = s
                .service
                .tenant(&session.caller, &slug)
                .await
                .map_err(failed)?;
            let profile: Vec<String> = t.profile_fields.keys().cloned().collect();
            Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                mapping_page(
                    &session,
                    &slug,
                    &MappingForm {
                        columns: &columns,
                        mapping: &mapping,
                        profile: &profile,
                        sample: &[],
                        problem: Some(&why),
                    },
                ),
            ))
        }
        Err(e) => Err(failed(e)),
    }
}

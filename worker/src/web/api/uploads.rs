//! The upload history: pages, one upload, its problems and changes; holds, retries and undo.

use super::*;

/// The query of the upload history: `?limit=&before=&state=&since=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadsQuery {
    /// Uploads per page, 1 to 1000 (default 50).
    limit: Option<u64>,
    /// The cursor: only uploads older than this id (a page's `next` sets it).
    before: Option<i64>,
    /// Only uploads in this state (another is a 422).
    #[param(value_type = Option<crate::jobs::UploadState>)]
    state: Option<String>,
    /// Only uploads queued at or after this time (RFC 3339).
    since: Option<chrono::DateTime<chrono::Utc>>,
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/uploads",
    tag = "uploads",
    summary = "Upload history, newest first, a page at a time",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug"), UploadsQuery),
    responses(
        (status = 200, description = "a page of uploads", body = Page<crate::db::entity::upload::Model>),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::Invalid,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_uploads(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    q: Result<Query<UploadsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Page<crate::db::entity::upload::Model>> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let filter = crate::report::UploadFilter {
        before: q.before,
        state: q.state.as_deref().map(service::upload_state).transpose()?,
        since: q.since,
    };
    let items = s
        .service
        .uploads_page(&t.caller, &slug, &filter, limit)
        .await?;
    // A full page may have a successor: its cursor is the last id shown.
    let next = match items.last() {
        Some(last) if items.len() as u64 == limit => {
            let mut query = format!("limit={limit}&before={}", last.id);
            if let Some(state) = &q.state {
                query.push_str(&format!("&state={state}"));
            }
            if let Some(since) = q.since {
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                query.push_str(&format!("&since={since}"));
            }
            Some(format!("/api/v1/tenants/{slug}/uploads?{query}"))
        }
        _ => None,
    };
    Ok(Json(Page { items, next }))
}

#[utoipa::path(
    get,
    path = "/uploads/{id}",
    tag = "uploads",
    summary = "One upload with its counts, first row problems and notifications",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "the upload", body = crate::report::UploadDetail),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_upload(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<crate::report::UploadDetail> {
    let id = upload_id(&id)?;
    Ok(Json(s.service.upload(&t.caller, id, 200).await?))
}

/// The query of a paged list of an upload: `?limit=&after=` (the cursor a
/// page's `next` gives), and for problems `format=csv`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// Entries per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// The cursor a page's `next` carries.
    #[param(max_length = 255)]
    after: Option<String>,
    /// `json` (default) or, for problems, `csv`.
    format: Option<Format>,
}

/// How a list is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Format {
    /// A page of JSON.
    Json,
    /// All of it as CSV (row problems only).
    Csv,
}

pub(super) fn page_query(
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, Problem> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    Ok(q)
}

pub(super) fn cursor<T: std::str::FromStr<Err = String>>(
    raw: Option<&str>,
) -> Result<Option<T>, Problem> {
    // An empty cursor is the first page, as no cursor is.
    raw.filter(|r| !r.is_empty())
        .map(|r| r.parse())
        .transpose()
        .map_err(|e: String| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e))
}

/// Row problems, by line: a page of JSON, or with `format=csv` all of them
/// as a CSV download (line, severity, column, message).
#[utoipa::path(
    get,
    path = "/uploads/{id}/problems",
    tag = "uploads",
    summary = "Row problems by line, a page at a time, or all as CSV",
    params(("id" = i64, Path, description = "the upload's id"), PageQuery),
    responses(
        (status = 200, description = "a page of problems, or with format=csv all of them as CSV", content(
            (Page<crate::db::entity::upload_row_error::Model> = "application/json"),
            (String = "text/csv")
        )),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_problems(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let id = upload_id(&id)?;
    let q = page_query(q)?;
    let after = cursor::<crate::report::ProblemCursor>(q.after.as_deref())?;
    match q.format {
        Some(Format::Csv) => {
            let all = s
                .service
                .problems_page(&t.caller, id, after, u64::MAX)
                .await?;
            let csv = crate::report::problems_csv(&all);
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"upload-{id}-problems.csv\""),
                    ),
                ],
                csv,
            )
                .into_response())
        }
        Some(Format::Json) | None => {
            let limit = q.limit.unwrap_or(100).clamp(1, 1000);
            let items = s.service.problems_page(&t.caller, id, after, limit).await?;
            let next = match items.last() {
                Some(l) if items.len() as u64 == limit => {
                    let c = crate::report::ProblemCursor {
                        line: l.line,
                        id: l.id,
                    };
                    Some(format!(
                        "/api/v1/uploads/{id}/problems?limit={limit}&after={c}"
                    ))
                }
                _ => None,
            };
            Ok(Json(Page { items, next }).into_response())
        }
    }
}

/// The people a held upload would deactivate if approved: a page of
/// JSON, or with `format=csv` all of them as a CSV download.
#[utoipa::path(
    get,
    path = "/uploads/{id}/held-deactivations",
    tag = "uploads",
    summary = "Who a held upload would deactivate, a page at a time, or all as CSV",
    params(("id" = i64, Path, description = "the upload's id"), PageQuery),
    responses(
        (status = 200, description = "a page of people, or with format=csv all of them as CSV", content(
            (Page<crate::report::Person> = "application/json"),
            (String = "text/csv")
        )),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_held_people(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let id = upload_id(&id)?;
    let q = page_query(q)?;
    let after = cursor::<UserCursor>(q.after.as_deref())?.map(|c| c.0);
    if q.format == Some(Format::Csv) {
        let all = s
            .service
            .held_people(&t.caller, id, after, u64::MAX)
            .await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"upload-{id}-held-deactivations.csv\""),
                ),
            ],
            crate::report::people_csv(&all),
        )
            .into_response());
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = s.service.held_people(&t.caller, id, after, limit).await?;
    let next = match items.last() {
        Some(l) if items.len() as u64 == limit => Some(format!(
            "/api/v1/uploads/{id}/held-deactivations?limit={limit}&after={}",
            l.user_id
        )),
        _ => None,
    };
    Ok(Json(Page { items, next }).into_response())
}

/// A page cursor that is a user's id.
struct UserCursor(i64);

impl std::str::FromStr for UserCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(UserCursor)
            .map_err(|_| format!("{s:?} is not a cursor this list gave"))
    }
}

/// What an upload changed, a page at a time.
#[utoipa::path(
    get,
    path = "/uploads/{id}/changes",
    tag = "uploads",
    summary = "What the upload changed, a page at a time",
    params(("id" = i64, Path, description = "the upload's id"), PageQuery),
    responses(
        (status = 200, description = "a page of changes", body = Page<crate::report::Change>),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_changes(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Page<crate::report::Change>> {
    let id = upload_id(&id)?;
    let q = page_query(q)?;
    if q.format.is_some() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the change log is JSON only",
        ));
    }
    let after = cursor::<crate::report::ChangeCursor>(q.after.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (items, last) = s.service.changes_page(&t.caller, id, after, limit).await?;
    let next = last.map(|c| format!("/api/v1/uploads/{id}/changes?limit={limit}&after={c}"));
    Ok(Json(Page { items, next }))
}

#[utoipa::path(
    post,
    path = "/uploads/{id}/approve",
    tag = "holds",
    summary = "Perform a held upload's deactivations",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "approved", body = service::Resolved),
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn approve(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Resolved> {
    let id = upload_id(&id)?;
    Ok(Json(s.service.approve(&t.caller, id).await?))
}

#[utoipa::path(
    post,
    path = "/uploads/{id}/reject",
    tag = "holds",
    summary = "Drop a held upload's deactivations",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "rejected", body = service::Resolved),
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn reject(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Resolved> {
    let id = upload_id(&id)?;
    Ok(Json(s.service.reject(&t.caller, id).await?))
}

#[utoipa::path(
    post,
    path = "/uploads/{id}/retry",
    tag = "uploads",
    summary = "Queue a failed upload's file again",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "queued", body = service::Retried),
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn retry(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Retried> {
    let id = upload_id(&id)?;
    Ok(Json(s.service.retry(&t.caller, id).await?))
}

/// The query of an undo: `?preview=true` changes nothing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UndoQuery {
    /// Say what the undo would do; change nothing.
    #[serde(default)]
    preview: bool,
}

#[utoipa::path(
    post,
    path = "/uploads/{id}/undo",
    tag = "uploads",
    summary = "Undo the tenant's newest applied upload (or preview that)",
    params(("id" = i64, Path, description = "the upload's id"), UndoQuery),
    responses(
        (status = 200, description = "what the undo did or would do", body = crate::apply::undo::UndoReport),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn undo(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<UndoQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<crate::apply::undo::UndoReport> {
    let id = upload_id(&id)?;
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    Ok(Json(s.service.undo(&t.caller, id, q.preview).await?))
}

//! RFC 9457 problem documents: the one error shape of the admin API, and
//! the one mapping from a service error to an HTTP status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::service::ServiceError;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (relative to the API's docs).
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind, in words.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence, in words.
    pub detail: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("/docs/api.md#{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, Json(&self)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"userfeed\""),
            );
        }
        res
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "not-found", m),
            ServiceError::Refused(m) => Problem::new(StatusCode::CONFLICT, "refused", m),
            ServiceError::Invalid(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            ServiceError::Forbidden(m) => Problem::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::Busy(m) => Problem::new(StatusCode::TOO_MANY_REQUESTS, "busy", m),
            ServiceError::Unavailable(m) => {
                tracing::warn!(detail = %m, "admin API request failed on a dependency");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            ServiceError::Db(e) => {
                // The detail stays in the log: it may name tables or values.
                tracing::error!(error = %e, "admin API request failed on the database");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database did not answer; try again",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_error_becomes_a_problem_without_its_detail() {
        let p = Problem::from(ServiceError::Db(sea_orm::DbErr::Custom(
            "relation \"users\" password=hunter2".into(),
        )));
        assert_eq!(p.status, 503);
        assert!(
            !p.detail.contains("users") && !p.detail.contains("hunter2"),
            "{p:?}"
        );
        let p = Problem::from(ServiceError::Refused(
            "upload 3 is succeeded, not held".into(),
        ));
        assert_eq!(
            (p.status, p.detail.as_str()),
            (409, "upload 3 is succeeded, not held")
        );
    }
}

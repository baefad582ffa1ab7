//! The handlers' error type, answered as RFC 9457 `application/problem+json` with the same
//! titles and details as bareapi.

use axum::Json;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub enum AppError {
    /// One field of the path or query is invalid.
    Validation {
        field: &'static str,
        message: &'static str,
    },
    /// No bearer token (`invalid_token: false`) or one that is not a live session.
    Unauthorized {
        invalid_token: bool,
    },
    NotFound(&'static str),
    /// The database cannot serve now (pool timeout, connection lost, ...). Expected under
    /// overload, so not logged (a 503 storm would otherwise flood stderr).
    Unavailable,
    /// Anything else: a bug. The cause is logged, not sent.
    Internal(String),
}

#[derive(Serialize)]
struct FieldError {
    field: &'static str,
    message: &'static str,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, detail) = match &self {
            AppError::Validation { .. } => (StatusCode::BAD_REQUEST, "The request has invalid fields; see errors."),
            AppError::Unauthorized { invalid_token: false } => {
                (StatusCode::UNAUTHORIZED, "This route needs an Authorization: Bearer token.")
            }
            AppError::Unauthorized { invalid_token: true } => {
                (StatusCode::UNAUTHORIZED, "The bearer token is not valid (unknown, expired or revoked).")
            }
            AppError::NotFound(detail) => (StatusCode::NOT_FOUND, *detail),
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable; retry shortly."),
            AppError::Internal(cause) => {
                eprintln!("axum-ref: internal error: {cause}");
                (StatusCode::INTERNAL_SERVER_ERROR, "An internal error occurred.")
            }
        };
        let field_errors;
        let errors = match &self {
            AppError::Validation { field, message } => {
                field_errors = [FieldError { field, message }];
                Some(&field_errors[..])
            }
            _ => None,
        };
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut res = (status, Json(problem)).into_response();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match self {
            AppError::Unauthorized { invalid_token: true } => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            }
            AppError::Unauthorized { invalid_token: false } => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::Unavailable => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(_: deadpool_postgres::PoolError) -> Self {
        AppError::Unavailable
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Connection exceptions (08), insufficient resources (53), shutdown (57P01..03), a
        // closed connection or no SQLSTATE at all (I/O): the database cannot serve now.
        let unavailable = e.is_closed()
            || e.code().is_none_or(|code| {
                let c = code.code();
                c.starts_with("08") || c.starts_with("53") || matches!(c, "57P01" | "57P02" | "57P03")
            });
        if unavailable { AppError::Unavailable } else { AppError::Internal(e.to_string()) }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Internal(format!("json serialization: {e}"))
    }
}

//! The HTTP layer's error type and its one mapping to RFC 9457 `application/problem+json`.
//!
//! Lower layers keep their own error types (`db::DbError`, ...) and convert into [`AppError`]
//! once; [`AppError::into_response`] is the only place an error becomes a response. Internal
//! causes are logged there and never sent to the client.

use http::header::{ALLOW, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::db::DbError;
use crate::http::{Body, PROBLEM_JSON, response, to_json};

/// `Retry-After` on 503s: the pool wait timeout is seconds at most, so a second is a fair hint.
const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");

#[derive(Debug)]
pub enum AppError {
    NotFound,
    MethodNotAllowed {
        allow: HeaderValue,
    },
    /// The request itself is wrong; the detail is safe to show the client.
    BadRequest(String),
    /// A dependency (the database) cannot serve now; the cause is logged.
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, the client gets a generic body.
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem response; logs the cause of 5xx errors.
    pub fn into_response(self, route: &str) -> Response<Body> {
        let status = self.status();
        let detail = match &self {
            AppError::NotFound => "No route matches this path.",
            AppError::MethodNotAllowed { .. } => "This path does not accept this method; see the Allow header.",
            AppError::BadRequest(detail) => detail.as_str(),
            AppError::Unavailable(cause) => {
                tracing::warn!(route, cause = cause.as_str(), "service unavailable");
                "The database is unavailable; retry shortly."
            }
            AppError::Internal(cause) => {
                tracing::error!(route, cause = cause.as_str(), "internal error");
                "An internal error occurred."
            }
        };
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
        };
        let body = to_json(&problem, 128).unwrap_or_else(|_| bytes::Bytes::from_static(b"{}"));
        let mut res = response(status, PROBLEM_JSON, body);
        match self {
            AppError::MethodNotAllowed { allow } => {
                res.headers_mut().insert(ALLOW, allow);
            }
            AppError::Unavailable(_) => {
                res.headers_mut().insert(RETRY_AFTER, RETRY_AFTER_SECONDS);
            }
            _ => {}
        }
        res
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() { AppError::Unavailable(e.to_string()) } else { AppError::Internal(e.to_string()) }
    }
}

impl From<simd_json::Error> for AppError {
    fn from(e: simd_json::Error) -> Self {
        AppError::Internal(format!("json serialization: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body_of(res: Response<Body>) -> String {
        let bytes = futures::executor::block_on(res.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn problems_carry_status_title_and_detail() {
        let res = AppError::BadRequest("bad \"thing\"".into()).into_response("/x");
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body = body_of(res);
        assert_eq!(body, r#"{"type":"about:blank","title":"Bad Request","status":400,"detail":"bad \"thing\""}"#);
    }

    #[test]
    fn internal_causes_are_not_sent() {
        let body = body_of(AppError::Internal("password=hunter2".into()).into_response("/x"));
        assert!(!body.contains("hunter2"), "{body}");
        let res = AppError::Unavailable("connection refused at 10.0.0.1".into()).into_response("/x");
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        assert!(!body_of(res).contains("10.0.0.1"));
    }

    #[test]
    fn method_not_allowed_sends_allow() {
        let res = AppError::MethodNotAllowed { allow: HeaderValue::from_static("GET, HEAD") }.into_response("/x");
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }
}

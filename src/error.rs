//! The HTTP layer's error type and its one mapping to RFC 9457 `application/problem+json`.
//!
//! Lower layers keep their own error types (`db::DbError`, ...) and convert into [`AppError`]
//! once; [`AppError::into_response`] is the only place an error becomes a response. Internal
//! causes are logged there and never sent to the client.

use std::borrow::Cow;

use http::header::{ALLOW, CONNECTION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::db::DbError;
use crate::http::request_id::{self, REQUEST_ID};
use crate::http::{Body, CLOSE, FieldError, PROBLEM_JSON, RequestError, response, to_json};

/// `Retry-After` on 503s: the pool wait timeout is seconds at most, so a second is a fair hint.
const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");

#[derive(Debug)]
pub enum AppError {
    /// No such route or resource; the detail says which.
    NotFound(&'static str),
    MethodNotAllowed {
        allow: HeaderValue,
    },
    /// The request itself is wrong; the detail is safe to show the client.
    BadRequest(String),
    /// The request head is refused before any handler runs (a flood of query parameters); the
    /// connection is closed after the answer.
    BadHead(String),
    /// Fields of the body or query failed: `errors` lists them (up to a bound), `omitted`
    /// counts the failures past it.
    Validation {
        errors: Vec<FieldError>,
        omitted: usize,
    },
    /// No credentials (`invalid_token: false`) or credentials that are not valid.
    Unauthorized {
        invalid_token: bool,
    },
    /// Wrong email or password (the same answer whether or not the email exists).
    BadCredentials,
    /// Signed in, but not allowed this (another user's account, a wrong current password).
    Forbidden(&'static str),
    Conflict(&'static str),
    /// A precondition (`If-Match`, `If-None-Match`) of a state-changing request failed; nothing
    /// was changed.
    PreconditionFailed,
    UnsupportedMediaType,
    PayloadTooLarge {
        limit: usize,
    },
    /// A header value over the per-header limit.
    HeaderTooLarge {
        limit: usize,
    },
    /// The client sent too many requests of a kind (failed logins for one account, logins or
    /// signups from one address): 429 with `Retry-After` in seconds.
    TooManyRequests {
        retry_after: u64,
        detail: &'static str,
    },
    /// Too many password hashes are waiting already: 503 with `Retry-After`, at once.
    HashingBusy,
    /// A dependency (the database) cannot serve now; the cause is logged.
    Unavailable(String),
    /// The server is shutting down (`/readyz` while draining): ask another instance.
    Draining,
    /// The handler did not finish within the request timeout.
    Timeout(std::time::Duration),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    /// Failing fields not listed in `errors` (an extension member, present when not zero).
    #[serde(skip_serializing_if = "is_zero")]
    errors_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl AppError {
    /// One failing field.
    pub fn invalid(field: &str, message: &str) -> AppError {
        AppError::Validation { errors: vec![FieldError::new(field, message)], omitted: 0 }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest(_) | AppError::BadHead(_) | AppError::Validation { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized { .. } | AppError::BadCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::HashingBusy => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Unavailable(_) | AppError::Draining | AppError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem response. 5xx causes are logged with the request id (the client's
    /// `x-request-id`, or a generated one), which is echoed so a report can be matched to a log.
    pub fn into_response(self, route: &str, request_id: Option<&HeaderValue>) -> Response<Body> {
        let status = self.status();
        let logged_id = self.log_cause(route, request_id);
        let (errors, omitted) = match &self {
            AppError::Validation { errors, omitted } => (Some(errors.as_slice()), *omitted),
            _ => (None, 0),
        };
        let body = problem_body(status, &self.detail(), errors, omitted);
        let mut res = response(status, PROBLEM_JSON, body);
        self.add_headers(res.headers_mut());
        if let Some(id) = logged_id {
            res.headers_mut().insert(REQUEST_ID, id);
        }
        res
    }

    /// Logs the cause of a 5xx (never sent to the client); the request id it was logged with.
    fn log_cause(&self, route: &str, request_id: Option<&HeaderValue>) -> Option<HeaderValue> {
        let id = || request_id.cloned().unwrap_or_else(request_id::generate);
        match self {
            AppError::Unavailable(cause) => {
                let id = id();
                tracing::warn!(route, request_id = id_text(&id), cause = cause.as_str(), "service unavailable");
                Some(id)
            }
            AppError::Timeout(limit) => {
                let id = id();
                tracing::warn!(route, request_id = id_text(&id), timeout = ?limit, "request timed out");
                Some(id)
            }
            AppError::Internal(cause) => {
                let id = id();
                tracing::error!(route, request_id = id_text(&id), cause = cause.as_str(), "internal error");
                Some(id)
            }
            _ => None,
        }
    }

    /// The problem's `detail`: what the client may know.
    fn detail(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            AppError::NotFound(detail)
            | AppError::Forbidden(detail)
            | AppError::Conflict(detail)
            | AppError::TooManyRequests { detail, .. } => detail,
            AppError::HashingBusy => "Too many password checks are waiting; retry shortly.",
            AppError::MethodNotAllowed { .. } => "This path does not accept this method; see the Allow header.",
            AppError::BadRequest(detail) | AppError::BadHead(detail) => detail.as_str(),
            AppError::Validation { omitted: 0, .. } => "The request has invalid fields; see errors.",
            AppError::Validation { omitted, .. } => {
                return Cow::Owned(format!(
                    "The request has invalid fields; see errors, which lists some of them: {omitted} more \
                     are not listed (errors_omitted)."
                ));
            }
            AppError::PreconditionFailed => {
                "A precondition (If-Match or If-None-Match) does not hold for the current state; nothing was changed."
            }
            AppError::Unauthorized { invalid_token: false } => "This route needs an Authorization: Bearer token.",
            AppError::Unauthorized { invalid_token: true } => {
                "The bearer token is not valid (unknown, expired or revoked)."
            }
            AppError::BadCredentials => "Wrong email or password.",
            AppError::UnsupportedMediaType => "The request body must be JSON (Content-Type: application/json).",
            AppError::PayloadTooLarge { limit } => {
                return Cow::Owned(format!("The request body exceeds the limit of {limit} bytes."));
            }
            AppError::HeaderTooLarge { limit } => {
                return Cow::Owned(format!("A request header exceeds the limit of {limit} bytes."));
            }
            AppError::Unavailable(_) => "The database is unavailable; retry shortly.",
            AppError::Draining => "This instance is shutting down; send requests to another one.",
            AppError::Timeout(_) => "The request took longer than the server allows; retry shortly.",
            AppError::Internal(_) => "An internal error occurred.",
        })
    }

    /// The headers some problems carry: `Allow`, `Retry-After`, `WWW-Authenticate`, and
    /// `Connection: close` for a refused head.
    fn add_headers(self, headers: &mut HeaderMap) {
        match self {
            AppError::MethodNotAllowed { allow } => {
                headers.insert(ALLOW, allow);
            }
            AppError::BadHead(_) | AppError::HeaderTooLarge { .. } => {
                headers.insert(CONNECTION, CLOSE);
            }
            AppError::Unavailable(_) | AppError::Draining | AppError::Timeout(_) | AppError::HashingBusy => {
                headers.insert(RETRY_AFTER, RETRY_AFTER_SECONDS);
            }
            AppError::TooManyRequests { retry_after, .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
            }
            AppError::Unauthorized { invalid_token } => {
                let challenge = if invalid_token { "Bearer error=\"invalid_token\"" } else { "Bearer" };
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            _ => {}
        }
    }
}

/// The RFC 9457 body for `status` (also used for answers written outside hyper).
pub fn problem_json(status: StatusCode, detail: &str, errors: Option<&[FieldError]>) -> bytes::Bytes {
    problem_body(status, detail, errors, 0)
}

fn problem_body(status: StatusCode, detail: &str, errors: Option<&[FieldError]>, omitted: usize) -> bytes::Bytes {
    let problem = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        errors,
        errors_omitted: omitted,
    };
    to_json(&problem, 160).unwrap_or_else(|_| bytes::Bytes::from_static(b"{}"))
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() { AppError::Unavailable(e.to_string()) } else { AppError::Internal(e.to_string()) }
    }
}

impl From<RequestError> for AppError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NotJson => AppError::UnsupportedMediaType,
            RequestError::TooLarge { limit } => AppError::PayloadTooLarge { limit },
            RequestError::Malformed(detail) => AppError::BadRequest(detail),
            RequestError::Invalid { errors, omitted } => AppError::Validation { errors, omitted },
        }
    }
}

impl From<simd_json::Error> for AppError {
    fn from(e: simd_json::Error) -> Self {
        AppError::Internal(format!("json serialization: {e}"))
    }
}

/// A request id as log text. Not `Debug`: ids are marked sensitive (see `request_id`), and a
/// sensitive value's `Debug` is `Sensitive`.
fn id_text(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or_default()
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
        let res = AppError::BadRequest("bad \"thing\"".into()).into_response("/x", None);
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body = body_of(res);
        assert_eq!(body, r#"{"type":"about:blank","title":"Bad Request","status":400,"detail":"bad \"thing\""}"#);
    }

    #[test]
    fn internal_causes_are_not_sent() {
        let body = body_of(AppError::Internal("password=hunter2".into()).into_response("/x", None));
        assert!(!body.contains("hunter2"), "{body}");
        let res = AppError::Unavailable("connection refused at 10.0.0.1".into()).into_response("/x", None);
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        assert_eq!(res.headers()["x-request-id"].len(), 32);
        assert!(!body_of(res).contains("10.0.0.1"));
    }

    #[test]
    fn validation_errors_list_every_field_and_request_ids_are_echoed() {
        let errors = vec![FieldError::new("email", "is required"), FieldError::new("x", "is not a known field")];
        let res = AppError::Validation { errors: errors.clone(), omitted: 0 }.into_response("/x", None);
        assert_eq!(res.status(), 400);
        let body = body_of(res);
        assert!(body.contains(r#""errors":[{"field":"email","message":"is required"},{"field":"x""#), "{body}");
        assert!(!body.contains("errors_omitted"), "{body}");
        let body = body_of(AppError::Validation { errors, omitted: 7 }.into_response("/x", None));
        assert!(body.ends_with(r#""errors_omitted":7}"#), "{body}");
        assert!(body.contains("7 more"), "{body}");
        let id = HeaderValue::from_static("abc-123");
        let res = AppError::Internal("boom".into()).into_response("/x", Some(&id));
        assert_eq!(res.headers()["x-request-id"], "abc-123");
    }

    #[test]
    fn refused_heads_close_the_connection_and_other_errors_do_not() {
        let head = AppError::BadHead("too many".into()).into_response("/x", None);
        assert_eq!((head.status().as_u16(), head.headers().get("connection")), (400, Some(&CLOSE)));
        let big = AppError::HeaderTooLarge { limit: 8 }.into_response("/x", None);
        assert_eq!((big.status().as_u16(), big.headers().get("connection")), (431, Some(&CLOSE)));
        let plain = AppError::BadRequest("x".into()).into_response("/x", None);
        assert_eq!(plain.headers().get("connection"), None);
    }

    #[test]
    fn throttling_answers_carry_retry_after() {
        let res = AppError::TooManyRequests { retry_after: 42, detail: "Slow down." }.into_response("/x", None);
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "42");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert!(body_of(res).contains(r#""status":429,"detail":"Slow down.""#));
        let res = AppError::HashingBusy.into_response("/x", None);
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        assert!(body_of(res).contains("retry shortly"));
    }

    #[test]
    fn method_not_allowed_sends_allow() {
        let res = AppError::MethodNotAllowed { allow: HeaderValue::from_static("GET, HEAD") }.into_response("/x", None);
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }
}

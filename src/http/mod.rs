//! HTTP plumbing shared by every handler: the one body type, static header values, response
//! builders, JSON output, and [`RequestError`], what this layer refuses while reading a request.

pub mod body;
pub mod caching;
pub mod client_ip;
pub mod compression;
pub mod date;
pub mod json_in;
pub mod negotiate;
pub mod query;
pub mod request_id;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// Longest field name an error answer repeats, in bytes; a longer one (an unknown key of a
/// client's choosing) is cut at a character boundary and marked with `…`.
pub const MAX_FIELD_NAME_BYTES: usize = 64;

/// One failing field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// `field` is cut to [`MAX_FIELD_NAME_BYTES`].
    pub fn new(field: &str, message: &str) -> Self {
        let field = if field.len() > MAX_FIELD_NAME_BYTES {
            let mut end = MAX_FIELD_NAME_BYTES;
            while !field.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &field[..end])
        } else {
            field.to_owned()
        };
        FieldError { field, message: message.to_owned() }
    }
}

/// What this layer refuses while reading a request (its body, its JSON fields). It becomes a
/// response in one place, through `error::AppError`.
#[derive(Debug)]
pub enum RequestError {
    /// The body is not JSON (415).
    NotJson,
    /// The body is over `limit` bytes (413).
    TooLarge { limit: usize },
    /// The request cannot be read or parsed; the message is safe to show the client (400).
    Malformed(String),
    /// Fields failed (400): `errors` lists them, up to a bound; `omitted` counts the failures
    /// past it, which the answer only counts.
    Invalid { errors: Vec<FieldError>, omitted: usize },
}

/// The body type of every response: bodies are produced whole, so their length is known and
/// hyper writes `Content-Length`.
pub type Body = Full<Bytes>;

pub const SERVER_NAME: HeaderValue = HeaderValue::from_static("bareapi");
pub const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
pub const TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
pub const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
pub const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
/// `Connection: close`.
pub const CLOSE: HeaderValue = HeaderValue::from_static("close");

/// A response with `status`, `Content-Type` and `body`. `Server` is added by the service for
/// every response, errors included (see [`stamp`]); hyper adds `Date`.
pub fn response(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, content_type);
    res
}

/// Adds `Server` to a response. The other header TechEmpower requires on every response, `Date`,
/// is written by hyper itself (HTTP/1 and HTTP/2) from its own once-a-second cache, straight
/// into the output buffer, which is cheaper than carrying it in the header map.
pub fn stamp(res: &mut Response<Body>) {
    res.headers_mut().insert(SERVER, SERVER_NAME);
}

/// Serializes `value` with simd-json into a buffer of `capacity_hint` bytes.
pub fn to_json<T: Serialize>(value: &T, capacity_hint: usize) -> Result<Bytes, simd_json::Error> {
    let mut buf = Vec::with_capacity(capacity_hint);
    simd_json::to_writer(&mut buf, value)?;
    Ok(Bytes::from(buf))
}

/// A `200 application/json` response of `value`.
pub fn json_response<T: Serialize>(value: &T, capacity_hint: usize) -> Result<Response<Body>, simd_json::Error> {
    Ok(response(StatusCode::OK, APPLICATION_JSON, to_json(value, capacity_hint)?))
}

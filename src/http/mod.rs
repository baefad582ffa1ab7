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

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::http::request_id::REQUEST_ID;

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

/// The headers [`response`] starts every response from: `Content-Type` (its value replaced),
/// `Server`, and an empty `x-request-id` that [`stamp`] fills with the request's id (or removes
/// with `--no-request-id`). Cloning a built map costs its two allocations and a copy of each
/// entry; inserting into an empty map costs the same allocations and then hashing and probing
/// for every name, about 200 instructions each (BENCHMARKS.md), so the names are inserted once,
/// here. The id's slot is made here too: a clone has no room to spare, so inserting it later
/// would reallocate the map's entries.
static BASE_HEAD: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut head = HeaderMap::new();
    head.insert(CONTENT_TYPE, TEXT_PLAIN);
    head.insert(SERVER, SERVER_NAME);
    head.insert(REQUEST_ID, HeaderValue::from_static(""));
    head
});

/// A response with `status`, `Content-Type` and `body`, and `Server`; it goes out through
/// [`stamp`], which fills its `x-request-id`. hyper adds `Date`.
pub fn response(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    let mut head = BASE_HEAD.clone();
    if let Some(value) = head.values_mut().next() {
        *value = content_type;
    }
    *res.headers_mut() = head;
    res
}

/// Gives a response the headers every answer carries: `Server`, and `x-request-id` when `id`
/// is given. The other header TechEmpower requires on every response, `Date`, is written by
/// hyper itself (HTTP/1 and HTTP/2) from its own once-a-second cache, straight into the output
/// buffer, which is cheaper than carrying it in the header map.
///
/// A response made by [`response`] has both names already, second and third: they are found
/// by position (no hashing) and only the id is written. Any other response gets them inserted.
pub fn stamp(res: &mut Response<Body>, id: Option<HeaderValue>) {
    let headers = res.headers_mut();
    let mut entries = headers.iter_mut();
    let has_server = entries.nth(1).is_some_and(|(name, value)| name == SERVER && *value == SERVER_NAME);
    let slot = entries.next().filter(|(name, _)| has_server && **name == REQUEST_ID).map(|(_, value)| value);
    match (slot, id) {
        (Some(slot), Some(id)) => *slot = id,
        (Some(slot), None) => {
            // Still empty: no id to send (a 5xx has put the id it was logged with there).
            if slot.is_empty() {
                headers.remove(REQUEST_ID);
            }
        }
        (None, id) => {
            if !has_server {
                headers.insert(SERVER, SERVER_NAME);
            }
            match id {
                Some(id) => {
                    headers.insert(REQUEST_ID, id);
                }
                // A made response whose entries moved (one was removed): its slot may be elsewhere.
                None if headers.get(REQUEST_ID).is_some_and(HeaderValue::is_empty) => {
                    headers.remove(REQUEST_ID);
                }
                None => {}
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(res: &Response<Body>) -> Vec<String> {
        res.headers().iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap())).collect()
    }

    /// `response` and `stamp` give every answer its `Content-Type`, one `Server` and the
    /// request id, in that order; without an id none is sent, not even an empty one.
    #[test]
    fn stamped_responses_carry_server_and_the_request_id_once() {
        let id = || Some(HeaderValue::from_static("abc"));
        let mut res = response(StatusCode::OK, APPLICATION_JSON, Bytes::from_static(b"{}"));
        stamp(&mut res, id());
        assert_eq!(names(&res), ["content-type: application/json", "server: bareapi", "x-request-id: abc"]);

        let mut res = response(StatusCode::OK, TEXT_PLAIN, Bytes::new());
        stamp(&mut res, None);
        assert_eq!(names(&res), ["content-type: text/plain", "server: bareapi"]);

        // A 5xx carries the id it was logged with, even without request ids.
        let mut res = response(StatusCode::INTERNAL_SERVER_ERROR, TEXT_PLAIN, Bytes::new());
        res.headers_mut().insert(REQUEST_ID, HeaderValue::from_static("logged"));
        stamp(&mut res, None);
        assert_eq!(names(&res), ["content-type: text/plain", "server: bareapi", "x-request-id: logged"]);
    }

    /// A response not made by `response` (or rearranged since) gets `Server` and the id inserted,
    /// replacing any `Server` it had.
    #[test]
    fn other_responses_are_stamped_by_name() {
        let mut bare = Response::new(Full::new(Bytes::new()));
        bare.headers_mut().insert("x-a", HeaderValue::from_static("1"));
        bare.headers_mut().insert(SERVER, HeaderValue::from_static("other"));
        stamp(&mut bare, Some(HeaderValue::from_static("abc")));
        assert_eq!(names(&bare), ["x-a: 1", "server: bareapi", "x-request-id: abc"]);

        let mut moved = response(StatusCode::OK, TEXT_PLAIN, Bytes::new());
        moved.headers_mut().remove(CONTENT_TYPE);
        stamp(&mut moved, Some(HeaderValue::from_static("abc")));
        assert_eq!(names(&moved).len(), 2);
        assert_eq!(moved.headers()[SERVER], "bareapi");
        assert_eq!(moved.headers()[REQUEST_ID], "abc");

        let mut moved = response(StatusCode::OK, TEXT_PLAIN, Bytes::new());
        moved.headers_mut().remove(CONTENT_TYPE);
        stamp(&mut moved, None);
        assert_eq!(names(&moved), ["server: bareapi"], "no empty id left behind");

        let mut plain = Response::new(Full::new(Bytes::new()));
        stamp(&mut plain, None);
        assert_eq!(names(&plain), ["server: bareapi"]);
    }
}

//! Users-API JSON responses: conditional GETs (`ETag`, `If-None-Match` → 304) and gzip
//! negotiation, in one place so every resource answers the same way, and the tags a change's
//! preconditions are checked against.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_ENCODING, ETAG, IF_NONE_MATCH, VARY};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use super::caching::{PRIVATE_NO_CACHE, none_match_hits, strong_etag};
use super::compression::{GZIP, MIN_GZIP_BYTES, VARY_ACCEPT_ENCODING, accepts_gzip, gzip};
use super::{APPLICATION_JSON, Body, response};

/// Whether a response may be cached and revalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheable {
    /// `Cache-Control: private, no-cache` with an ETag; `If-None-Match` may answer 304.
    Revalidate,
    No,
}

/// The tags of `body`'s two representations: as it is, and gzip-compressed.
pub fn etags(body: &[u8]) -> [HeaderValue; 2] {
    [strong_etag(body, ""), strong_etag(body, "-gzip")]
}

/// A JSON response of `body`, compressed when the client accepts gzip and the body is large
/// enough, with validators when `cache` says so. Only a GET or HEAD is answered 304: a change
/// checks its preconditions before it is applied (`caching::preconditions_hold`).
pub fn api_json(parts: &Parts, status: StatusCode, body: Bytes, cache: Cacheable) -> Response<Body> {
    let use_gzip = body.len() >= MIN_GZIP_BYTES && accepts_gzip(parts.headers.get(http::header::ACCEPT_ENCODING));
    let etag = (cache == Cacheable::Revalidate).then(|| {
        let [identity, gzipped] = etags(&body);
        let read = parts.method == Method::GET || parts.method == Method::HEAD;
        let hit = read && none_match_hits(parts.headers.get(IF_NONE_MATCH), &[&identity, &gzipped]);
        (if use_gzip { gzipped } else { identity }, hit)
    });
    let mut res = match &etag {
        Some((_, true)) => {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            res
        }
        _ if use_gzip => {
            let mut res = response(status, APPLICATION_JSON, gzip(&body));
            res.headers_mut().insert(CONTENT_ENCODING, GZIP);
            res
        }
        _ => response(status, APPLICATION_JSON, body),
    };
    let headers = res.headers_mut();
    // The representation depends on Accept-Encoding whenever it could have been compressed.
    headers.insert(VARY, VARY_ACCEPT_ENCODING);
    if let Some((tag, _)) = etag {
        headers.insert(ETAG, tag);
        headers.insert(CACHE_CONTROL, PRIVATE_NO_CACHE);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, if_none_match: &str) -> Parts {
        let req = http::Request::builder().method(method).uri("/x").header(IF_NONE_MATCH, if_none_match);
        req.body(()).unwrap().into_parts().0
    }

    /// `If-None-Match` answers 304 to a read only: a change is never answered "not modified".
    #[test]
    fn only_reads_are_answered_not_modified() {
        let body = Bytes::from_static(b"{\"id\":1}");
        for (method, status) in [(Method::GET, 304), (Method::HEAD, 304), (Method::PATCH, 200), (Method::POST, 200)] {
            let res = api_json(&parts(method.clone(), "*"), StatusCode::OK, body.clone(), Cacheable::Revalidate);
            assert_eq!(res.status(), status, "{method}");
        }
    }
}

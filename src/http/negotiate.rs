//! Users-API JSON responses: conditional GETs (`ETag`, `If-None-Match` → 304) and gzip
//! negotiation, in one place so every resource answers the same way.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_ENCODING, ETAG, IF_NONE_MATCH, VARY};
use http::request::Parts;
use http::{Response, StatusCode};
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

/// A JSON response of `body`, compressed when the client accepts gzip and the body is large
/// enough, with validators when `cache` says so.
pub fn api_json(parts: &Parts, status: StatusCode, body: Bytes, cache: Cacheable) -> Response<Body> {
    let use_gzip = body.len() >= MIN_GZIP_BYTES && accepts_gzip(parts.headers.get(http::header::ACCEPT_ENCODING));
    let etag = (cache == Cacheable::Revalidate).then(|| {
        let identity = strong_etag(&body, "");
        let gzipped = strong_etag(&body, "-gzip");
        let hit = none_match_hits(parts.headers.get(IF_NONE_MATCH), &[&identity, &gzipped]);
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

//! Request bodies: the JSON `Content-Type` check and a size-limited read.
//!
//! The limit is checked against `Content-Length` before anything is read, and enforced while
//! reading for chunked bodies, so an oversized body is refused with 413 without being buffered.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::RequestError;

/// True when `Content-Type` is `application/json` or `application/*+json`, parameters allowed.
pub fn is_json_content_type(parts: &Parts) -> bool {
    let Some(value) = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        || (media.len() > "application/+json".len()
            && media[..12].eq_ignore_ascii_case("application/")
            && media[media.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Reads a JSON request body of at most `limit` bytes into a mutable buffer (simd-json parses in
/// place). 415 for another content type, 413 past the limit, 400 if the body cannot be read.
pub async fn read_json<B>(parts: &Parts, body: B, limit: usize) -> Result<Vec<u8>, RequestError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !is_json_content_type(parts) {
        return Err(RequestError::NotJson);
    }
    if let Some(len) =
        parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(RequestError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        // Vec::from(Bytes) reuses the buffer when the body arrived in one piece.
        Ok(collected) => Ok(Vec::from(collected.to_bytes())),
        Err(e) if e.is::<LengthLimitError>() => Err(RequestError::TooLarge { limit }),
        Err(e) => Err(RequestError::Malformed(format!("could not read the request body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn parts(content_type: Option<&str>, len: Option<&str>) -> Parts {
        let mut b = http::Request::builder().method("POST").uri("/x");
        if let Some(ct) = content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        if let Some(len) = len {
            b = b.header(CONTENT_LENGTH, len);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn json_content_types_are_recognised() {
        for ok in ["application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"] {
            assert!(is_json_content_type(&parts(Some(ok), None)), "{ok}");
        }
        for bad in ["text/plain", "application/jsonx", "json", "", "application/+json", "multipart/form-data"] {
            assert!(!is_json_content_type(&parts(Some(bad), None)), "{bad}");
        }
        assert!(!is_json_content_type(&parts(None, None)));
    }

    #[test]
    fn limits_and_types_are_enforced() {
        let run = |p: Parts, body: &'static [u8], limit| {
            futures::executor::block_on(read_json(&p, Full::new(Bytes::from_static(body)), limit))
        };
        assert_eq!(run(parts(Some("application/json"), None), b"{}", 10).unwrap(), b"{}");
        assert!(matches!(run(parts(Some("text/plain"), None), b"{}", 10), Err(RequestError::NotJson)));
        assert!(matches!(
            run(parts(Some("application/json"), Some("11")), b"{}", 10),
            Err(RequestError::TooLarge { .. })
        ));
        assert!(matches!(
            run(parts(Some("application/json"), None), b"{\"a\":\"0123456789\"}", 10),
            Err(RequestError::TooLarge { .. })
        ));
    }
}

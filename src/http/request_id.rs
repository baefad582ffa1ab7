//! Request ids: the `x-request-id` a client sent, if usable, or a new one. Every response
//! echoes it and every 5xx log line carries it.

use std::cell::Cell;

use http::HeaderValue;
use http::request::Parts;

/// The header carrying the id.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest client-supplied `x-request-id` kept; a longer or non-printable one is replaced.
const MAX_REQUEST_ID_BYTES: usize = 128;

thread_local! {
    /// Per-thread request-id state: a random prefix and a counter, so generating an id needs
    /// neither a lock nor the random generator per request.
    static NEXT_ID: Cell<(u64, u64)> = Cell::new((fastrand::u64(..), 0));
}

/// The client's `x-request-id` if it is short and printable, else a new one.
///
/// The client's value is copied rather than cloned: a clone would share hyper's read buffer
/// (8 KiB) and keep it alive for as long as the request is in flight.
pub fn from_request(parts: &Parts) -> HeaderValue {
    if let Some(v) = parts.headers.get(REQUEST_ID)
        && !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_BYTES
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        && let Ok(own) = HeaderValue::from_bytes(v.as_bytes())
    {
        return own;
    }
    generate()
}

/// A new request id: 32 hex characters, a per-thread random prefix and a counter.
pub fn generate() -> HeaderValue {
    let (prefix, n) = NEXT_ID.with(|c| {
        let (prefix, n) = c.get();
        c.set((prefix, n.wrapping_add(1)));
        (prefix, n)
    });
    let mut buf = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in prefix.to_be_bytes().iter().chain(n.to_be_bytes().iter()).enumerate() {
        buf[2 * i] = HEX[usize::from(byte >> 4)];
        buf[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&buf).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_generated_otherwise() {
        assert_eq!(from_request(&parts("/", &[("x-request-id", "abc-123")])), "abc-123");
        let long = "a".repeat(129);
        for bad in ["", long.as_str(), "has space"] {
            let id = from_request(&parts("/", &[("x-request-id", bad)]));
            assert_eq!(id.len(), 32, "{bad:?}");
        }
        let a = from_request(&parts("/", &[]));
        let b = from_request(&parts("/", &[]));
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
    }
}

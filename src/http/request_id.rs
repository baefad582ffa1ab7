//! Request ids: the `x-request-id` a client sent, if usable, or a new one. Every response
//! echoes it and every 5xx log line carries it.

use std::cell::RefCell;

use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;

/// The header carrying the id.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest client-supplied `x-request-id` kept; a longer or non-printable one is replaced.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// A generated id: 16 hex digits of a per-thread random prefix, then 16 of a counter.
type IdText = [u8; 32];

thread_local! {
    /// This thread's next id, as text: the counter half is advanced in place, so generating an
    /// id needs no lock, no random number and no formatting.
    static NEXT_ID: RefCell<IdText> = RefCell::new(first_id(fastrand::u64(..)));
}

fn first_id(prefix: u64) -> IdText {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'0'; 32];
    for (i, byte) in prefix.to_be_bytes().iter().enumerate() {
        id[2 * i] = HEX[usize::from(byte >> 4)];
        id[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    id
}

/// Adds one to the lower-case hex number in `digits` (wrapping to zero past all `f`s).
fn increment_hex(digits: &mut [u8]) {
    for d in digits.iter_mut().rev() {
        match *d {
            b'9' => *d = b'a',
            b'f' => {
                *d = b'0';
                continue;
            }
            _ => *d += 1,
        }
        return;
    }
}

/// The client's `x-request-id` if it is short and printable, else a new one.
///
/// The client's value is copied rather than cloned: a clone would share hyper's read buffer
/// (8 KiB) and keep it alive for as long as the request is in flight.
pub fn from_request(parts: &Parts) -> HeaderValue {
    // A scan rather than `get`: `get` hashes the custom name byte by byte on every request
    // (about 150 instructions), a scan compares it with each header the request has, most of
    // them standard names that differ at once (about 10 instructions for one header). Even at
    // the header limit (100) the scan costs less than hyper's parsing of those headers.
    let sent = parts.headers.iter().find_map(|(name, value)| (*name == REQUEST_ID).then_some(value));
    if let Some(v) = sent
        && !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_BYTES
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return own_value(v.as_bytes());
    }
    generate()
}

/// A header value of its own (not sharing hyper's read buffer) from `bytes`, which the caller
/// has checked are visible ASCII.
///
/// Marked sensitive, which over HTTP/2 means "never indexed": an id differs on every response,
/// so entering it in the connection's HPACK table (as h2 does with every other header) only
/// evicts the entries that repeat, `server` and `content-type` among them, and then re-enters
/// those too. HTTP/1 writes it as any other header.
fn own_value(bytes: &[u8]) -> HeaderValue {
    debug_assert!(bytes.iter().all(|b| b.is_ascii_graphic()));
    // SAFETY: visible ASCII (0x21..=0x7e) is valid in a header value; both callers check it
    // (a client's id byte by byte, a generated one by construction: hex digits).
    let mut value = unsafe { HeaderValue::from_maybe_shared_unchecked(Bytes::copy_from_slice(bytes)) };
    value.set_sensitive(true);
    value
}

/// A new request id: 32 hex characters, a per-thread random prefix and a counter.
pub fn generate() -> HeaderValue {
    NEXT_ID.with_borrow_mut(|next| {
        let id = own_value(next);
        // In place: usually one digit changes.
        increment_hex(&mut next[16..]);
        id
    })
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
        let among = [("host", "h"), ("x-forwarded-for", "1.2.3.4"), ("X-Request-ID", "mixed-case"), ("accept", "*/*")];
        assert_eq!(from_request(&parts("/", &among)), "mixed-case", "found among others, any case");
        let two = [("x-request-id", "first"), ("x-request-id", "second")];
        assert_eq!(from_request(&parts("/", &two)), "first", "the first of two, as `get` would");
        let long = "a".repeat(129);
        for bad in ["", long.as_str(), "has space"] {
            let id = from_request(&parts("/", &[("x-request-id", bad)]));
            assert_eq!(id.len(), 32, "{bad:?}");
        }
        let a = from_request(&parts("/", &[]));
        let b = from_request(&parts("/", &[]));
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.as_bytes()[..16], b.as_bytes()[..16], "one thread, one prefix");
    }

    /// Over HTTP/2 a sensitive value is sent "never indexed", so ids, new on every response,
    /// stay out of the connection's HPACK table (see `own_value`).
    #[test]
    fn ids_kept_or_generated_are_never_indexed() {
        assert!(from_request(&parts("/", &[("x-request-id", "abc-123")])).is_sensitive());
        assert!(from_request(&parts("/", &[])).is_sensitive());
    }

    #[test]
    fn each_generated_id_is_the_one_before_plus_one() {
        let counter = |id: &HeaderValue| u64::from_str_radix(&id.to_str().unwrap()[16..], 16).unwrap();
        let a = generate();
        let b = generate();
        assert_eq!(a.as_bytes()[..16], b.as_bytes()[..16]);
        assert_eq!(counter(&b), counter(&a) + 1);
    }

    #[test]
    fn generated_ids_count_up_in_hex_and_keep_the_old_format() {
        let id = |prefix: u64, n: u64| {
            let mut text = first_id(prefix);
            for _ in 0..n {
                increment_hex(&mut text[16..]);
            }
            String::from_utf8(text.to_vec()).unwrap()
        };
        // The format before the counter was kept as text: {prefix:016x}{n:016x}.
        for (prefix, n) in [(0, 0), (0xdead_beef, 9), (u64::MAX, 15), (1, 16), (7, 255), (3, 4097)] {
            assert_eq!(id(prefix, n), format!("{prefix:016x}{n:016x}"));
        }
        let mut last = *b"0123456789abcdefffffffffffffffff";
        increment_hex(&mut last[16..]);
        assert_eq!(&last, b"0123456789abcdef0000000000000000", "wraps past all f");
    }
}

//! The `Date` header value, rendered at most once a second per thread, for the few answers the
//! server writes without hyper (hyper stamps `Date` on everything it sends).
//!
//! Each worker thread keeps its own rendered value and re-renders it when the wall-clock second
//! changes, so reading it costs one clock read (vDSO, no syscall) and no lock or cross-thread
//! traffic. TechEmpower allows re-rendering once a second; we never render less often.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

struct Cached {
    second: u64,
    value: HeaderValue,
}

thread_local! {
    static CACHED: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

fn render(second: u64) -> HeaderValue {
    let time = UNIX_EPOCH + Duration::from_secs(second);
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).expect("an HTTP date is a valid header value")
}

/// The current `Date` header value.
pub fn now() -> HeaderValue {
    let second = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        match &*cached {
            Some(c) if c.second == second => c.value.clone(),
            _ => {
                let value = render(second);
                *cached = Some(Cached { second, value: value.clone() });
                value
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_imf_fixdate() {
        assert_eq!(render(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn now_parses_and_is_current() {
        let v = now();
        let parsed = httpdate::parse_http_date(v.to_str().unwrap()).unwrap();
        let diff = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(diff < Duration::from_secs(2));
    }
}

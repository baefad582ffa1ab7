//! Caching headers and conditional requests: strong ETags over the response bytes,
//! `If-None-Match` matching for reads, and the preconditions (`If-Match`, `If-None-Match`) of
//! state-changing requests (RFC 9110 section 13).

use http::HeaderValue;
use sha2::{Digest, Sha256};

/// Cached copies must be revalidated (users change), and only by the user's own client.
pub const PRIVATE_NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");
/// For answers that carry a secret (a session token): no cache may keep them.
pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// A strong ETag of `body`: the first 128 bits of its SHA-256, quoted. `suffix` separates the
/// tags of other representations of the same bytes (a gzip body is another representation).
pub fn strong_etag(body: &[u8], suffix: &str) -> HeaderValue {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34 + suffix.len());
    tag.push('"');
    for b in &digest[..16] {
        tag.push_str(&format!("{b:02x}"));
    }
    tag.push_str(suffix);
    tag.push('"');
    HeaderValue::from_str(&tag).expect("hex is a valid header value")
}

/// True when `If-None-Match` names one of `tags` or is `*` (weak comparison, as RFC 9110 says
/// for `If-None-Match`: a `W/` prefix is ignored).
pub fn none_match_hits(if_none_match: Option<&HeaderValue>, tags: &[&HeaderValue]) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| {
        if candidate == "*" {
            return true;
        }
        let opaque = candidate.strip_prefix("W/").unwrap_or(candidate);
        tags.iter().any(|t| t.as_bytes() == opaque.as_bytes())
    })
}

/// True when `If-Match` is `*` or names one of `tags` by strong comparison (a `W/` tag never
/// matches). The resource exists whenever this is asked, so `*` holds.
fn match_hits(if_match: &HeaderValue, tags: &[&HeaderValue]) -> bool {
    let Ok(value) = if_match.to_str() else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || tags.iter().any(|t| t.as_bytes() == candidate.as_bytes()))
}

/// Whether a state-changing request's preconditions hold against the current representation,
/// whose tags are `tags` (RFC 9110 section 13.2.2: `If-Match` first, then `If-None-Match`).
/// When they do not, the request must not be applied and is answered 412: for a change,
/// `If-None-Match` that matches (or `*`, the resource existing) fails as well, never 304.
pub fn preconditions_hold(
    if_match: Option<&HeaderValue>,
    if_none_match: Option<&HeaderValue>,
    tags: &[&HeaderValue],
) -> bool {
    if let Some(value) = if_match
        && !match_hits(value, tags)
    {
        return false;
    }
    !none_match_hits(if_none_match, tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_stable_and_distinct() {
        let a = strong_etag(b"hello", "");
        assert_eq!(a, strong_etag(b"hello", ""));
        assert_ne!(a, strong_etag(b"hellp", ""));
        assert_ne!(a, strong_etag(b"hello", "-gzip"));
        let s = a.to_str().unwrap();
        assert!(s.starts_with('"') && s.ends_with('"') && s.len() == 34, "{s}");
    }

    #[test]
    fn if_none_match_lists_star_and_weak_tags() {
        let tag = strong_etag(b"x", "");
        let other = HeaderValue::from_static("\"nope\"");
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(none_match_hits(Some(&tag), &[&tag]));
        assert!(none_match_hits(Some(&h(&format!("\"a\", {}", tag.to_str().unwrap()))), &[&tag]));
        assert!(none_match_hits(Some(&h(&format!("W/{}", tag.to_str().unwrap()))), &[&tag]));
        assert!(none_match_hits(Some(&h("*")), &[&tag]));
        assert!(!none_match_hits(Some(&other), &[&tag]));
        assert!(!none_match_hits(None, &[&tag]));
    }

    #[test]
    fn preconditions_of_changes_follow_rfc_9110() {
        let tag = strong_etag(b"x", "");
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        let weak = h(&format!("W/{}", tag.to_str().unwrap()));
        let stale = h("\"stale\"");
        let star = h("*");
        let holds = |m: Option<&HeaderValue>, n: Option<&HeaderValue>| preconditions_hold(m, n, &[&tag]);
        assert!(holds(None, None));
        assert!(holds(Some(&tag), None));
        assert!(holds(Some(&h(&format!("\"a\", {}", tag.to_str().unwrap()))), None));
        assert!(holds(Some(&star), None));
        assert!(!holds(Some(&stale), None));
        assert!(!holds(Some(&weak), None), "If-Match compares strongly");
        assert!(!holds(None, Some(&star)), "the resource exists");
        assert!(!holds(None, Some(&tag)));
        assert!(!holds(None, Some(&weak)), "If-None-Match compares weakly");
        assert!(holds(None, Some(&stale)));
        assert!(!holds(Some(&tag), Some(&tag)));
        assert!(!holds(Some(&stale), Some(&stale)), "If-Match is evaluated first");
    }
}

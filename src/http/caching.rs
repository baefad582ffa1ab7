//! Caching headers: strong ETags over the response bytes and `If-None-Match` matching.

use http::HeaderValue;
use sha2::{Digest, Sha256};

/// Cached copies must be revalidated (users change), and only by the user's own client.
pub const PRIVATE_NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");

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
}

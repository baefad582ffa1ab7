//! Query-string parameters, read without allocating.

/// The raw value of the first `name=value` pair in `query` (no percent-decoding: the values
/// this server reads are numbers). A bare `name` yields `Some("")`.
pub fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| match pair.split_once('=') {
        Some((key, value)) if key == name => Some(value),
        None if pair == name => Some(""),
        _ => None,
    })
}

/// The TechEmpower `queries`/`count` rule: an integer clamped to 1..=500; missing, empty or
/// non-integer values count as 1. A number too large for any integer type still clamps to 500.
pub fn query_count(raw: Option<&str>) -> usize {
    const MIN: usize = 1;
    const MAX: usize = 500;
    let Some(raw) = raw else { return MIN };
    let (negative, digits) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return MIN;
    }
    if negative {
        return MIN;
    }
    // All digits: only overflow can make parse fail, and overflow is "very large".
    digits.parse::<usize>().map_or(MAX, |n| n.clamp(MIN, MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_parameter() {
        assert_eq!(param(Some("queries=5"), "queries"), Some("5"));
        assert_eq!(param(Some("a=1&queries=7&queries=8"), "queries"), Some("7"));
        assert_eq!(param(Some("queries="), "queries"), Some(""));
        assert_eq!(param(Some("queries"), "queries"), Some(""));
        assert_eq!(param(Some("queriesx=1"), "queries"), None);
        assert_eq!(param(Some(""), "queries"), None);
        assert_eq!(param(None, "queries"), None);
    }

    #[test]
    fn clamps_counts_by_the_published_rules() {
        for (raw, want) in [
            (None, 1),
            (Some(""), 1),
            (Some("foo"), 1),
            (Some("0"), 1),
            (Some("-1"), 1),
            (Some("1"), 1),
            (Some("20"), 20),
            (Some("+20"), 20),
            (Some("500"), 500),
            (Some("501"), 500),
            (Some("99999999999999999999999999"), 500),
            (Some("-99999999999999999999999999"), 1),
            (Some("1.5"), 1),
            (Some("5a"), 1),
            (Some(" 5"), 1),
            (Some("-"), 1),
        ] {
            assert_eq!(query_count(raw), want, "{raw:?}");
        }
    }
}

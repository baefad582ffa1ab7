//! Validation rules of the users API, each returning the message for a failing field.

/// Longest email accepted, in bytes (the SMTP path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 100;

/// A valid email per the WHATWG HTML "valid email address" rule, at most 254 bytes, returned
/// lower-cased.
pub fn email(raw: &str) -> Result<String, &'static str> {
    if raw.len() > MAX_EMAIL_BYTES {
        return Err("must be at most 254 bytes");
    }
    let Some((local, domain)) = raw.split_once('@') else {
        return Err("must be a valid email address");
    };
    const LOCAL_SPECIALS: &[u8] = b".!#$%&'*+/=?^_`{|}~-";
    let local_ok = !local.is_empty() && local.bytes().all(|b| b.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(&b));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            let bytes = label.as_bytes();
            (1..=63).contains(&bytes.len())
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        });
    if local_ok && domain_ok { Ok(raw.to_ascii_lowercase()) } else { Err("must be a valid email address") }
}

pub fn password(raw: &str) -> Result<(), &'static str> {
    let n = raw.chars().count();
    if n < MIN_PASSWORD_CHARS {
        Err("must be at least 8 characters")
    } else if n > MAX_PASSWORD_CHARS {
        Err("must be at most 128 characters")
    } else {
        Ok(())
    }
}

pub fn name(raw: &str) -> Result<(), &'static str> {
    if raw.chars().count() > MAX_NAME_CHARS {
        Err("must be at most 100 characters")
    } else if raw.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_follow_the_whatwg_rule_and_are_lower_cased() {
        assert_eq!(email("Ann.Lee+tag@Example.COM").unwrap(), "ann.lee+tag@example.com");
        assert_eq!(email("a@b").unwrap(), "a@b");
        assert_eq!(email("x!#$%&'*+/=?^_`{|}~-@sub-domain.example.org").unwrap().len(), 43);
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@.b.com",
            "a@b.com.",
            "\"q\"@b.com",
            "é@b.com",
            "a@bé.com",
            "a@b_c.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        let long_label = format!("a@{}.com", "b".repeat(64));
        assert!(email(&long_label).is_err());
        let ok_label = format!("a@{}.com", "b".repeat(63));
        assert!(email(&ok_label).is_ok());
    }

    #[test]
    fn emails_over_254_bytes_are_refused() {
        let domain = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(59));
        let at_limit = format!("xy@{domain}");
        assert_eq!(at_limit.len(), 254);
        assert!(email(&at_limit).is_ok());
        let over = format!("xyz@{domain}");
        assert_eq!(email(&over), Err("must be at most 254 bytes"));
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"é".repeat(8)).is_ok());
        assert!(password(&"é".repeat(128)).is_ok());
        assert!(password(&"a".repeat(129)).is_err());
    }

    #[test]
    fn names_are_short_and_printable() {
        assert!(name("").is_ok());
        assert!(name(&"ü".repeat(100)).is_ok());
        assert!(name(&"ü".repeat(101)).is_err());
        assert!(name("a\nb").is_err());
    }
}

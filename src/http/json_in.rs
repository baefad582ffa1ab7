//! JSON request bodies: parsed in place by simd-json into values that borrow their strings
//! from the request buffer, then read field by field. Every problem with a body (unknown,
//! missing and mistyped fields, and the caller's validation failures) is collected and reported
//! together in one 400; unknown fields past [`MAX_UNKNOWN_FIELDS`] are only counted.

use std::collections::BinaryHeap;

use simd_json::BorrowedValue;
use simd_json::borrowed::Object;

use super::{FieldError, RequestError};

/// Parses `buf` (rewritten in place) into a JSON object.
pub fn parse_object(buf: &mut [u8]) -> Result<Box<Object<'_>>, RequestError> {
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::Malformed("the request body is empty; a JSON object is expected".to_owned()));
    }
    match simd_json::to_borrowed_value(buf) {
        Ok(BorrowedValue::Object(obj)) => Ok(obj),
        Ok(_) => Err(RequestError::Malformed("the request body must be a JSON object".to_owned())),
        Err(e) => Err(RequestError::Malformed(format!("malformed JSON: {e}"))),
    }
}

/// Unknown fields one answer lists (the first in name order); the rest are counted. A body of
/// thousands of short unknown keys would otherwise get an answer several times its own size,
/// built from an allocation per key.
pub const MAX_UNKNOWN_FIELDS: usize = 20;

/// Reads the fields of one object, recording every problem.
pub struct Fields<'a, 'v> {
    obj: &'a Object<'v>,
    errors: Vec<FieldError>,
    /// Unknown fields not listed in `errors`.
    omitted: usize,
}

impl<'a, 'v> Fields<'a, 'v> {
    /// Starts reading `obj`; keys not in `known` are recorded as unknown fields, the first
    /// [`MAX_UNKNOWN_FIELDS`] of them by name, the rest only counted.
    pub fn new(obj: &'a Object<'v>, known: &[&str]) -> Self {
        // The smallest names seen so far, the largest on top: one bounded heap of borrowed
        // names however many keys the body has.
        let mut first: BinaryHeap<&str> = BinaryHeap::with_capacity(MAX_UNKNOWN_FIELDS + 1);
        let mut unknown = 0;
        for key in obj.keys().map(|k| k.as_ref()).filter(|k| !known.contains(k)) {
            unknown += 1;
            first.push(key);
            if first.len() > MAX_UNKNOWN_FIELDS {
                first.pop();
            }
        }
        let errors: Vec<FieldError> =
            first.into_sorted_vec().into_iter().map(|k| FieldError::new(k, "is not a known field")).collect();
        Fields { obj, omitted: unknown - errors.len(), errors }
    }

    /// A required string field.
    pub fn string(&mut self, name: &'static str) -> Option<&'a str> {
        match self.obj.get(name) {
            None => {
                self.error(name, "is required");
                None
            }
            Some(v) => self.as_str(name, v),
        }
    }

    /// An optional string field; absent and `null` are both `None`.
    pub fn opt_string(&mut self, name: &'static str) -> Option<&'a str> {
        match self.obj.get(name) {
            None | Some(BorrowedValue::Static(simd_json::StaticNode::Null)) => None,
            Some(v) => self.as_str(name, v),
        }
    }

    fn as_str(&mut self, name: &'static str, v: &'a BorrowedValue<'v>) -> Option<&'a str> {
        match v {
            BorrowedValue::String(s) => Some(s.as_ref()),
            _ => {
                self.error(name, "must be a string");
                None
            }
        }
    }

    /// Records a problem with field `name` (also for the caller's own validation).
    pub fn error(&mut self, name: &str, message: &str) {
        self.errors.push(FieldError::new(name, message));
    }

    /// Runs `check` on `value` when present, recording its message on failure.
    pub fn check<T>(
        &mut self,
        name: &'static str,
        value: Option<&str>,
        check: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        match check(value?) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// `Ok` when no problem was recorded, else the 400 listing them.
    pub fn finish(self) -> Result<(), RequestError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(RequestError::Invalid { errors: self.errors, omitted: self.omitted })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(body: &str, known: &[&str], f: impl FnOnce(&mut Fields<'_, '_>)) -> Result<(), RequestError> {
        let mut buf = body.as_bytes().to_vec();
        let obj = parse_object(&mut buf)?;
        let mut fields = Fields::new(&obj, known);
        f(&mut fields);
        fields.finish()
    }

    fn field_names(r: Result<(), RequestError>) -> Vec<String> {
        match r {
            Err(RequestError::Invalid { errors, omitted: 0 }) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    /// A flood of unknown keys gets a bounded answer: the first names in order, each cut to a
    /// bounded length, the rest counted; the known fields' own errors are still all listed.
    #[test]
    fn unknown_fields_are_listed_up_to_a_bound_and_the_rest_counted() {
        let keys: Vec<String> = (0..5_000).map(|i| format!("\"k{i:05}\":1")).collect();
        let long = "é".repeat(100);
        let body = format!("{{{},\"{long}\":1,\"email\":5}}", keys.join(","));
        let r = fields_of(&body, &["email", "password"], |f| {
            f.string("email");
            f.string("password");
        });
        let Err(RequestError::Invalid { errors, omitted }) = r else { panic!("{r:?}") };
        assert_eq!(omitted, 5_001 - MAX_UNKNOWN_FIELDS);
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut want: Vec<String> = (0..MAX_UNKNOWN_FIELDS).map(|i| format!("k{i:05}")).collect();
        want.extend(["email".to_owned(), "password".to_owned()]);
        assert_eq!(names, want);
        // Names past the bound are cut at a character boundary.
        let r = fields_of(&format!("{{\"{long}\":1}}"), &[], |_| {});
        let Err(RequestError::Invalid { errors, omitted: 0 }) = r else { panic!("{r:?}") };
        assert_eq!(errors[0].field, format!("{}…", "é".repeat(32)));
        assert!(errors[0].field.len() <= crate::http::MAX_FIELD_NAME_BYTES + '…'.len_utf8());
    }

    #[test]
    fn strings_borrow_from_the_buffer_even_with_escapes() {
        let mut buf = br#"{"email":"a\u0040b.c","name":"line\nbreak"}"#.to_vec();
        let obj = parse_object(&mut buf).unwrap();
        let mut f = Fields::new(&obj, &["email", "name"]);
        assert_eq!(f.string("email"), Some("a@b.c"));
        assert_eq!(f.opt_string("name"), Some("line\nbreak"));
        assert!(f.finish().is_ok());
    }

    #[test]
    fn all_problems_are_reported_together() {
        let r = fields_of(r#"{"email":5,"zzz":1,"aaa":2}"#, &["email", "password"], |f| {
            f.string("email");
            f.string("password");
        });
        assert_eq!(field_names(r), vec!["aaa", "zzz", "email", "password"]);
    }

    #[test]
    fn null_optional_fields_are_absent() {
        assert!(fields_of(r#"{"name":null}"#, &["name"], |f| assert_eq!(f.opt_string("name"), None)).is_ok());
    }

    #[test]
    fn malformed_and_non_object_bodies_are_bad_requests() {
        for body in ["", "   ", "{", "[1,2]", "\"x\"", "{\"a\":}", "nul", "{\"a\":1}x"] {
            let mut buf = body.as_bytes().to_vec();
            assert!(matches!(parse_object(&mut buf), Err(RequestError::Malformed(_))), "{body:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let body = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let mut buf = body.into_bytes();
        assert!(matches!(parse_object(&mut buf), Err(RequestError::Malformed(_))));
    }
}

//! Error cause chains for log lines and the exit message: an error's own text followed by every
//! error in its `source()` chain, and PostgreSQL's own report (severity, SQLSTATE, message,
//! detail, hint) where the database refused something. Never the statement's parameters: they
//! can hold passwords, and no error in the chain carries them.

use std::error::Error;
use std::fmt::{self, Display, Write};

/// Displays an error and its whole source chain on one line, separated by ": ".
///
/// Many wrappers print their cause and also return it from `source()` (deadpool's "Error
/// occurred while creating a new object: error connecting to server"); a source whose text the
/// line already ends with is not repeated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = match cause.downcast_ref::<tokio_postgres::error::DbError>() {
                Some(pg) => postgres_report(pg),
                None => cause.to_string(),
            };
            if !text.is_empty() && !line.ends_with(&text) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
            next = cause.source();
        }
        f.write_str(&line)
    }
}

/// PostgreSQL's report of a refused statement, on one line: `ERROR 42P07: relation "world"
/// already exists`, then its detail and hint when it gave them.
fn postgres_report(e: &tokio_postgres::error::DbError) -> String {
    let mut out = format!("{} {}: {}", e.severity(), e.code().code(), e.message());
    if let Some(detail) = e.detail() {
        let _ = write!(out, " (detail: {detail})");
    }
    if let Some(hint) = e.hint() {
        let _ = write!(out, " (hint: {hint})");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper {
        text: &'static str,
        source: Option<Box<dyn Error + 'static>>,
    }

    impl Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.text)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.source.as_deref()
        }
    }

    fn wrap(text: &'static str, source: Option<Box<dyn Error + 'static>>) -> Box<dyn Error + 'static> {
        Box::new(Wrapper { text, source })
    }

    #[test]
    fn every_source_is_shown_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let connect = wrap("error connecting to server", Some(Box::new(io)));
        // Like deadpool: prints its cause and also returns it as its source.
        let pool = wrap("creating a new object: error connecting to server", Some(connect));
        assert_eq!(
            Chain(pool.as_ref()).to_string(),
            "creating a new object: error connecting to server: Connection refused"
        );
    }

    #[test]
    fn an_error_without_sources_is_its_own_text() {
        let e = wrap("alone", None);
        assert_eq!(Chain(e.as_ref()).to_string(), "alone");
    }
}

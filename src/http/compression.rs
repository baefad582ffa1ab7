//! gzip response compression (flate2), negotiated from `Accept-Encoding` with q-values.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::HeaderValue;

/// Bodies smaller than this are sent as they are: below about a kilobyte the gzip header and
/// the CPU time cost more than the bytes saved.
pub const MIN_GZIP_BYTES: usize = 1024;

pub const GZIP: HeaderValue = HeaderValue::from_static("gzip");
pub const VARY_ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");

/// True when `Accept-Encoding` accepts gzip: listed (or `x-gzip`) with q > 0, or not listed and
/// `*` has q > 0. An explicit `gzip;q=0` refuses it whatever `*` says.
pub fn accepts_gzip(accept_encoding: Option<&HeaderValue>) -> bool {
    let Some(value) = accept_encoding.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut gzip_q = None;
    let mut star_q = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("q").then(|| v.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip_q = Some(q);
        } else if coding == "*" {
            star_q = Some(q);
        }
    }
    gzip_q.or(star_q).is_some_and(|q| q > 0.0)
}

/// gzip of `body` at a fast level: these are latency-sensitive API answers, and level 1 already
/// takes most of the size off repetitive JSON.
pub fn gzip(body: &[u8]) -> Bytes {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 3 + 64), Compression::fast());
    enc.write_all(body).expect("writing to a Vec cannot fail");
    Bytes::from(enc.finish().expect("writing to a Vec cannot fail"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn accepts(v: &str) -> bool {
        accepts_gzip(Some(&HeaderValue::from_str(v).unwrap()))
    }

    #[test]
    fn accept_encoding_rules() {
        assert!(!accepts_gzip(None));
        assert!(accepts("gzip"));
        assert!(accepts("GZIP"));
        assert!(accepts("deflate, gzip;q=0.5"));
        assert!(accepts("x-gzip"));
        assert!(accepts("*"));
        assert!(accepts("br;q=1.0, *;q=0.1"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip;q=0.0, *"));
        assert!(!accepts("*;q=0"));
        assert!(!accepts("identity"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts(""));
        assert!(accepts("gzip; q=0.001"));
        assert!(accepts("gzip;q=bogus"), "an unparsable q is the default 1");
    }

    #[test]
    fn gzip_round_trips() {
        let body = br#"{"id":1,"email":"a@b.c"}"#.repeat(100);
        let packed = gzip(&body);
        assert!(packed.len() < body.len() / 4);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, body);
    }
}

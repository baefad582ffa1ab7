//! gzip response compression (flate2), negotiated from `Accept-Encoding` with q-values.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
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

thread_local! {
    /// This thread's deflate state, reset for each body. A new one per body (as `GzEncoder`
    /// makes) allocates and clears about 300 KiB of tables every time.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
}

/// The gzip member header (RFC 1952): deflate, no flags, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// gzip of `body` at a fast level: these are latency-sensitive API answers, and level 1 already
/// takes most of the size off repetitive JSON.
pub fn gzip(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(GZIP_HEADER.len() + body.len() / 3 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    DEFLATE.with_borrow_mut(|deflate| {
        deflate.reset();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            // `total_in` counts from the reset: what of `body` the state has taken so far.
            let taken = usize::try_from(deflate.total_in()).unwrap_or(body.len()).min(body.len());
            let status = deflate
                .compress_vec(&body[taken..], &mut out, FlushCompress::Finish)
                .expect("deflate into a Vec cannot fail");
            if status == Status::StreamEnd {
                break;
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(body);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    Bytes::from(out)
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
    fn gzip_round_trips_for_every_size_and_after_reuse() {
        // Empty, tiny, incompressible (larger than its first output guess) and large bodies,
        // one after another on the same thread's reused state.
        let noise: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let bodies = [Vec::new(), b"x".to_vec(), noise, br#"{"id":1}"#.repeat(9000), b"again".to_vec()];
        for body in &bodies {
            let packed = gzip(body);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut out).unwrap();
            assert_eq!(&out, body, "{} bytes", body.len());
        }
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

//! The test client's own checks (tests/common) can fail: a scripted fake server sends answers
//! with a wrong Content-Length, and reading them panics; the correct answers beside them pass.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::Conn;

/// A one-connection server that reads one request and answers it with `raw`, then keeps the
/// connection open a moment (so a short body is not mistaken for a closed connection).
fn answering(raw: &'static [u8]) -> Conn {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed before its request ended");
            got.extend_from_slice(&buf[..n]);
        }
        stream.write_all(raw).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let conn = Conn::new(addr);
    conn.set_read_timeout(Duration::from_millis(500));
    conn
}

/// The panic message of reading the answer to `method /`, or None when it was read fine.
fn read_fails(raw: &'static [u8], method: &str) -> Option<String> {
    let mut conn = answering(raw);
    let outcome = catch_unwind(AssertUnwindSafe(|| conn.request(method, "/")));
    outcome.err().map(|panic| {
        panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap()
    })
}

#[test]
fn a_wrong_content_length_fails_the_read() {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nserver: bareapi\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
        content-length: 4\r\ncontent-type: text/plain\r\n\r\nabcd";
    const TWO_ANSWERS: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nabHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    const LONGER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nabcd";
    const SHORTER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\ncontent-type: text/plain\r\n\r\nabcd";
    const HEAD_WITH_BODY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-type: text/plain\r\n\r\nabcd";

    assert_eq!(read_fails(OK, "GET"), None);
    assert_eq!(read_fails(TWO_ANSWERS, "GET"), None, "a pipelined next answer is not a longer body");
    let longer = read_fails(LONGER, "GET").expect("a body longer than its Content-Length is noticed");
    assert!(longer.contains("bytes past the 2-byte body") && longer.contains("cd"), "{longer}");
    let shorter = read_fails(SHORTER, "GET").expect("a body shorter than its Content-Length is noticed");
    assert!(shorter.contains("shorter than its Content-Length 9"), "{shorter}");
    let head = read_fails(HEAD_WITH_BODY, "HEAD").expect("a body after HEAD is noticed");
    assert!(head.contains("bytes past the (absent) HEAD body"), "{head}");

    let mut conn = answering(OK);
    let res = conn.request("GET", "/");
    res.assert_standard_headers();
    assert_eq!(res.text(), "abcd");
}

//! HTML output: escaping and the fortunes page, written straight into a byte buffer.

/// Appends `text` to `out` with `&`, `<`, `>`, `"` and `'` escaped, copying unescaped runs whole.
pub fn escape_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let entity: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&#x27;",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(entity);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

const FORTUNES_HEAD: &[u8] =
    b"<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>";
const FORTUNES_TAIL: &[u8] = b"</table></body></html>";

/// Renders the fortunes table of `rows` (already sorted) into `out`.
pub fn render_fortunes(out: &mut Vec<u8>, rows: &[(i32, &str)]) {
    let mut id = itoa::Buffer::new();
    out.extend_from_slice(FORTUNES_HEAD);
    for (fortune_id, message) in rows {
        out.extend_from_slice(b"<tr><td>");
        out.extend_from_slice(id.format(*fortune_id).as_bytes());
        out.extend_from_slice(b"</td><td>");
        escape_into(out, message);
        out.extend_from_slice(b"</td></tr>");
    }
    out.extend_from_slice(FORTUNES_TAIL);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escape(s: &str) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_the_five_special_characters() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;");
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape(""), "");
        assert_eq!(escape("フレームワーク — ok"), "フレームワーク — ok");
    }

    #[test]
    fn renders_rows_in_the_given_order() {
        let mut out = Vec::new();
        render_fortunes(&mut out, &[(2, "a<b"), (10, "c")]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>\
             <tr><th>id</th><th>message</th></tr><tr><td>2</td><td>a&lt;b</td></tr>\
             <tr><td>10</td><td>c</td></tr></table></body></html>"
        );
    }
}

//! HTTP/1.1 for a static file server: request heads parsed from a byte buffer (so
//! pipelined requests are parsed one after another from the same buffer), status
//! codes, `Date` formatting and content types. No allocation, no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

/// The methods a static server tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// A syntactically valid method this server does not serve (405).
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The request target's path, undecoded, without the query.
    pub path: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Whether the request announces a body (Content-Length > 0 or chunked).
    pub has_body: bool,
}

/// Why a head cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed.
    Incomplete,
    /// Malformed: 400.
    Bad(&'static str),
    /// The head exceeds the limit: 431.
    TooLarge,
}

/// RFC 9110 token characters, as a table: checked for every byte of the method and of
/// every header name.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Where the head ends (after its empty line), scanning for line feeds only.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&b| b == b'\n') {
        let lf = from + i;
        if lf >= 3 && &buf[lf - 3..lf] == b"\r\n\r" {
            return Some(lf + 1);
        }
        from = lf + 1;
    }
    None
}

/// The lines of a head (without the final empty line), split at CRLF.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(head);
    core::iter::from_fn(move || {
        let text = rest?;
        match text.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                rest = Some(&text[i + 2..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

fn trim(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// A decimal number of at most 19 digits (no sign, no spaces).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

/// Parses one request head from the start of `buf`; on success also returns its length
/// in bytes. A head longer than `max_head` bytes is `TooLarge` even if incomplete.
///
/// Works on bytes in one pass per line: this runs for every request, and `str`
/// splitting and searching cost several times as much.
pub fn parse(buf: &[u8], max_head: usize) -> Result<(Request<'_>, usize), ParseError> {
    let end = match find_head_end(&buf[..buf.len().min(max_head)]) {
        Some(end) => end,
        None if buf.len() >= max_head => return Err(ParseError::TooLarge),
        None => {
            // A line that cannot start a request is bad at once, not after 8 KiB.
            if let Some(&b) = buf.first()
                && !is_token(b)
            {
                return Err(ParseError::Bad("request line does not start with a method"));
            }
            return Err(ParseError::Incomplete);
        }
    };
    let head = &buf[..end - 4];
    if !head.is_ascii() && core::str::from_utf8(head).is_err() {
        return Err(ParseError::Bad("head is not UTF-8"));
    }
    let mut lines = lines(head);
    let request_line = lines.next().unwrap_or(b"");
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Bad("request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(ParseError::Bad("bad method"));
    }
    if target.first() != Some(&b'/') || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(ParseError::Bad("bad request target"));
    }
    let minor_version = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return Err(ParseError::Bad("unsupported HTTP version")),
    };
    let mut keep_alive = minor_version == 1;
    let mut has_body = false;
    let mut host = false;
    let mut content_length: Option<u64> = None;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(ParseError::Bad("header line without a colon"));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(ParseError::Bad("bad header name"));
        }
        if name.eq_ignore_ascii_case(b"host") {
            host = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(trim) {
                if option.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value).ok_or(ParseError::Bad("bad Content-Length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(ParseError::Bad("conflicting Content-Length"));
            }
            content_length = Some(n);
            has_body |= n > 0;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            has_body = true;
        }
    }
    if minor_version == 1 && !host {
        return Err(ParseError::Bad("HTTP/1.1 request without Host"));
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let path = target.split(|&b| b == b'?' || b == b'#').next().unwrap_or(b"/");
    // The whole head is UTF-8, and `path` ends at an ASCII byte, so this cannot fail.
    let path = core::str::from_utf8(path).map_err(|_| ParseError::Bad("head is not UTF-8"))?;
    Ok((Request { method, path, minor_version, keep_alive, has_body }, end))
}

/// Decodes `%XX` escapes of `path` into `out`; `None` for a bad escape, a NUL, or a
/// result longer than `out`.
pub fn decode_path<'o>(path: &str, out: &'o mut [u8]) -> Option<&'o str> {
    let bytes = path.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        let b = if bytes[i] == b'%' {
            let hex = core::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            i += 3;
            u8::from_str_radix(hex, 16).ok()?
        } else {
            i += 1;
            bytes[i - 1]
        };
        if b == 0 {
            return None;
        }
        *out.get_mut(n)? = b;
        n += 1;
    }
    core::str::from_utf8(&out[..n]).ok()
}

/// Whether a decoded path tries to leave the root (`..` segments).
pub fn escapes_root(path: &str) -> bool {
    path.split('/').any(|seg| seg == "..")
}

/// The reason phrase of the status codes this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `Content-Type` by file extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    let mut lower = [0u8; 8];
    if ext.len() > lower.len() {
        return "application/octet-stream";
    }
    for (l, b) in lower.iter_mut().zip(ext.bytes()) {
        *l = b.to_ascii_lowercase();
    }
    match core::str::from_utf8(&lower[..ext.len()]).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

/// `n` in decimal, written into the end of `buf`.
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `unix_seconds`.
pub fn http_date(unix_seconds: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Civil date from days since the epoch (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u64;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days.rem_euclid(7)) as usize]);
    let two = |v: u64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    out[5..7].copy_from_slice(&two(day));
    out[8..11].copy_from_slice(MONTHS[month - 1]);
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year));
    out[17..19].copy_from_slice(&two(secs / 3600));
    out[20..22].copy_from_slice(&two(secs / 60 % 60));
    out[23..25].copy_from_slice(&two(secs % 60));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    fn ok(s: &str) -> (Request<'_>, usize) {
        parse(s.as_bytes(), MAX).unwrap()
    }

    #[test]
    fn simple_get() {
        let (r, n) = ok("GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            r,
            Request {
                method: Method::Get,
                path: "/index.html",
                minor_version: 1,
                keep_alive: true,
                has_body: false
            }
        );
        assert_eq!(n, 41);
    }

    #[test]
    fn http10_and_connection_header() {
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.keep_alive);
        assert!(!ok("HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").0.keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nhost:a\r\nCONNECTION:\tUpgrade ,  Close \r\n\r\n").0.keep_alive);
        assert!(ok("GET / HTTP/1.1\r\nHost: a\r\nContent-Length:  0\t\r\n\r\n").0.keep_alive);
        assert_eq!(ok("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").0.method, Method::Head);
        assert_eq!(ok("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n").0.method, Method::Other);
    }

    #[test]
    fn pipelined_heads_parse_one_by_one() {
        let two = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
        let (a, n) = parse(two, MAX).unwrap();
        assert_eq!(a.path, "/a");
        let (b, m) = parse(&two[n..], MAX).unwrap();
        assert_eq!(b.path, "/b");
        assert_eq!(n + m, two.len());
    }

    #[test]
    fn bodies_are_noticed() {
        assert!(ok("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").0.has_body);
        assert!(!ok("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").0.has_body);
        assert!(ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").0.has_body);
    }

    #[test]
    fn incomplete_and_too_large() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost:", MAX), Err(ParseError::Incomplete));
        assert_eq!(parse(b"", MAX), Err(ParseError::Incomplete));
        let mut big = std::vec::Vec::from(*b"GET / HTTP/1.1\r\nX: ");
        big.resize(MAX + 10, b'a');
        assert_eq!(parse(&big, MAX), Err(ParseError::TooLarge));
        let mut line = std::vec::Vec::from(*b"GET /");
        line.resize(1 << 20, b'a');
        assert_eq!(parse(&line, MAX), Err(ParseError::TooLarge));
    }

    extern crate std;

    #[test]
    fn malformed_heads_are_bad() {
        for bad in [
            "garbage\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
            "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost a\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
            "\r\n\r\n",
        ] {
            assert!(matches!(parse(bad.as_bytes(), MAX), Err(ParseError::Bad(_))), "{bad:?}");
        }
        // Binary garbage is refused before the 8 KiB limit.
        assert!(matches!(parse(&[0x16, 0x03, 0x01, 0x00], MAX), Err(ParseError::Bad(_))));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n", MAX), Err(ParseError::Bad(_))));
    }

    #[test]
    fn paths() {
        let mut buf = [0u8; 64];
        assert_eq!(decode_path("/a%20b.html", &mut buf), Some("/a b.html"));
        assert_eq!(decode_path("/%zz", &mut buf), None);
        assert_eq!(decode_path("/%00", &mut buf), None);
        assert_eq!(decode_path("/%4", &mut buf), None);
        assert_eq!(decode_path(&"/a".repeat(40), &mut buf), None);
        assert!(escapes_root("/a/../b"));
        assert!(escapes_root("/.."));
        assert!(!escapes_root("/a/..b/c"));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/x.PNG"), "image/png");
        assert_eq!(content_type("/noext"), "application/octet-stream");
    }

    #[test]
    fn token_table_matches_rfc_9110() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            assert_eq!(is_token(b), b.is_ascii_alphanumeric() || specials.contains(&b), "{b:#x}");
        }
    }

    #[test]
    fn decimals() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(612, &mut buf), b"612");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn dates() {
        assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&http_date(1_795_648_233), b"Wed, 25 Nov 2026 23:10:33 GMT");
        assert_eq!(&http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    }
}

//! HTTP/1.1 for a static file server: request heads parsed from a byte buffer (so
//! pipelined requests are parsed one after another from the same buffer), request
//! paths resolved to site paths, byte ranges, validators (ETag, HTTP dates), status
//! codes and content types. No allocation, no `unsafe`, no panics on any input.
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

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body (no framing headers, or `Content-Length: 0`).
    None,
    /// `Content-Length` bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`: the end is only known by decoding the chunks.
    Chunked,
}

/// A parsed request head.
///
/// The validator and range fields are the raw field values. A field among them that
/// appears twice is kept as an empty value, which never matches or parses: the server
/// then sends the full 200, which is always a correct answer to a GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The path of the request target (origin or absolute form), undecoded, without
    /// the query.
    pub path: &'a str,
    /// What follows `?` in the request target, if there is a `?`.
    pub query: Option<&'a str>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 and later 1.x.
    pub minor_version: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    pub body: Body,
    /// `Expect: 100-continue`: the client may hold its body back until told to send it.
    pub expect_continue: bool,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
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
    /// An HTTP major version other than 1: 505.
    VersionNotSupported,
    /// A transfer coding this server does not know (before the final `chunked`): 501.
    NotImplemented,
}

impl ParseError {
    /// The status code to answer with; `None` for `Incomplete`.
    pub fn status(self) -> Option<u16> {
        match self {
            ParseError::Incomplete => None,
            ParseError::Bad(_) => Some(400),
            ParseError::TooLarge => Some(431),
            ParseError::VersionNotSupported => Some(505),
            ParseError::NotImplemented => Some(501),
        }
    }
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

/// Control characters other than HTAB may not appear in a field value (RFC 9110 §5.5:
/// NUL and a CR that is not part of a line ending are request-smuggling tools). Bytes
/// 0x80-0xFF (obs-text) are allowed.
fn is_bad_in_value(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Where the head starting at `buf[0]` ends (after its empty line). Lines end in LF,
/// optionally preceded by CR: like nginx, a bare LF is accepted as a line terminator.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&b| b == b'\n') {
        let lf = from + i;
        // The line this LF ends is empty: it starts right after the previous LF.
        let empty = (lf >= 1 && buf[lf - 1] == b'\n') || (lf >= 2 && &buf[lf - 2..lf] == b"\n\r");
        if empty {
            return Some(lf + 1);
        }
        from = lf + 1;
    }
    None
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

/// The elements of a comma-separated field value, trimmed, empty ones skipped.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|e| !e.is_empty())
}

/// Keeps the first occurrence of a singleton field; a repeated one becomes empty.
fn set_once<'a>(field: &mut Option<&'a [u8]>, value: &'a [u8]) {
    *field = match field {
        None => Some(value),
        Some(_) => Some(b""),
    };
}

/// The path and query of a request target: origin form (`/p?q`) or absolute form
/// (`http://host/p?q`, RFC 9112 §3.2.2, whose path is `/` when empty).
fn split_target(target: &[u8]) -> Result<(&[u8], Option<&[u8]>), ParseError> {
    let target = target.split(|&b| b == b'#').next().unwrap_or(b"");
    let path_and_query = if target.first() == Some(&b'/') {
        target
    } else {
        let sep = target.windows(3).position(|w| w == b"://").ok_or(ParseError::Bad("bad request target"))?;
        let scheme = &target[..sep];
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        let rest = &target[sep + 3..];
        let authority_len = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
        if !scheme_ok || authority_len == 0 {
            return Err(ParseError::Bad("bad absolute-form request target"));
        }
        &rest[authority_len..]
    };
    let (path, query) = match path_and_query.iter().position(|&b| b == b'?') {
        Some(q) => (&path_and_query[..q], Some(&path_and_query[q + 1..])),
        None => (path_and_query, None),
    };
    Ok((if path.is_empty() { b"/" } else { path }, query))
}

/// The minor version of an `HTTP/1.x` version; 1.x with x > 1 is served as 1.1.
fn parse_version(version: &[u8]) -> Result<u8, ParseError> {
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                (b'1', b'0') => Ok(0),
                (b'1', _) => Ok(1),
                _ => Err(ParseError::VersionNotSupported),
            }
        }
        _ => Err(ParseError::Bad("bad HTTP version")),
    }
}

/// What the `Transfer-Encoding` fields of a request said so far.
#[derive(Default)]
struct TransferCodings {
    seen: bool,
    chunked: u32,
    last_is_chunked: bool,
    other: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) {
        self.seen = true;
        for coding in list(value) {
            let name = trim(coding.split(|&b| b == b';').next().unwrap_or(b""));
            self.last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
            if self.last_is_chunked {
                self.chunked += 1;
            } else {
                self.other = true;
            }
        }
        if list(value).next().is_none() {
            self.last_is_chunked = false;
        }
    }
}

/// Parses one request head from the start of `buf`; on success also returns its length
/// in bytes. A head longer than `max_head` bytes is `TooLarge` even if incomplete.
/// One empty line before the request line is skipped (RFC 9112 §2.2).
///
/// Works on bytes in one pass per line: this runs for every request, and `str`
/// splitting and searching cost several times as much.
pub fn parse(buf: &[u8], max_head: usize) -> Result<(Request<'_>, usize), ParseError> {
    let start = match buf {
        [b'\r'] => return Err(ParseError::Incomplete),
        [b'\r', b'\n', ..] => 2,
        [b'\n', ..] => 1,
        _ => 0,
    };
    let limited = &buf[start..buf.len().min(max_head.max(start))];
    let Some(head_len) = find_head_end(limited) else {
        if buf.len() >= max_head {
            return Err(ParseError::TooLarge);
        }
        // A line that cannot start a request is bad at once, not after 8 KiB.
        if let Some(&b) = limited.first()
            && !is_token(b)
        {
            return Err(ParseError::Bad("request line does not start with a method"));
        }
        return Err(ParseError::Incomplete);
    };
    let head = &limited[..head_len];
    let mut lines = head.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
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
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(ParseError::Bad("bad request target"));
    }
    let minor_version = parse_version(version)?;
    let (path, query) = split_target(target)?;

    let (mut close, mut keep_alive_option, mut host) = (false, false, false);
    let mut content_length: Option<u64> = None;
    let mut codings = TransferCodings::default();
    let mut expect_continue = false;
    let (mut range, mut if_range, mut if_none_match, mut if_modified_since) = (None, None, None, None);
    for line in lines.take_while(|line| !line.is_empty()) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(ParseError::Bad("header line without a colon"));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(ParseError::Bad("bad header name"));
        }
        if value.iter().any(|&b| is_bad_in_value(b)) {
            return Err(ParseError::Bad("control character in a field value"));
        }
        // Dispatch on the length first: most names are then rejected by one compare.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if host {
                    return Err(ParseError::Bad("more than one Host"));
                }
                host = true;
            }
            5 if name.eq_ignore_ascii_case(b"range") => set_once(&mut range, value),
            6 if name.eq_ignore_ascii_case(b"expect") => {
                expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            8 if name.eq_ignore_ascii_case(b"if-range") => set_once(&mut if_range, value),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for option in list(value) {
                    close |= option.eq_ignore_ascii_case(b"close");
                    keep_alive_option |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            13 if name.eq_ignore_ascii_case(b"if-none-match") => set_once(&mut if_none_match, value),
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let n = parse_decimal(value).ok_or(ParseError::Bad("bad Content-Length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(ParseError::Bad("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
            17 if name.eq_ignore_ascii_case(b"if-modified-since") => set_once(&mut if_modified_since, value),
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => codings.add(value),
            _ => {}
        }
    }
    if minor_version == 1 && !host {
        return Err(ParseError::Bad("HTTP/1.1 request without Host"));
    }
    let body = if codings.seen {
        // RFC 9112 §6.1 and §6.3: each of these makes the body's end ambiguous.
        if minor_version == 0 {
            return Err(ParseError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if content_length.is_some() {
            return Err(ParseError::Bad("both Transfer-Encoding and Content-Length"));
        }
        if !codings.last_is_chunked || codings.chunked > 1 {
            return Err(ParseError::Bad("chunked is not the final transfer coding, once"));
        }
        if codings.other {
            return Err(ParseError::NotImplemented);
        }
        Body::Chunked
    } else {
        match content_length {
            None | Some(0) => Body::None,
            Some(n) => Body::Length(n),
        }
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let path = core::str::from_utf8(path).map_err(|_| ParseError::Bad("path is not UTF-8"))?;
    let query = match query {
        Some(q) => Some(core::str::from_utf8(q).map_err(|_| ParseError::Bad("query is not UTF-8"))?),
        None => None,
    };
    let keep_alive = !close && (minor_version == 1 || keep_alive_option);
    let request = Request {
        method,
        path,
        query,
        minor_version,
        keep_alive,
        body,
        expect_continue,
        range,
        if_range,
        if_none_match,
        if_modified_since,
    };
    Ok((request, start + head_len))
}

/// Decodes `%XX` escapes of `path` into `out`; `None` for a bad escape, a NUL, a result
/// that is not UTF-8, or one longer than `out`.
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

/// Removes `.` and `..` segments in place (RFC 3986 §5.2.4) from a path that starts
/// with `/`, and returns the new length. `..` at the root stays at the root, so the
/// result cannot leave it.
fn remove_dot_segments(path: &mut [u8]) -> usize {
    let n = path.len();
    // `written` never passes `read - 1`: each segment is written no further on than it
    // was read from, so copying within one buffer is safe.
    let (mut written, mut read) = (0, 1);
    loop {
        let end = path[read..].iter().position(|&b| b == b'/').map_or(n, |i| read + i);
        let ends_in_directory = match &path[read..end] {
            b"." => true,
            b".." => {
                written = path[..written].iter().rposition(|&b| b == b'/').unwrap_or(0);
                true
            }
            _ => {
                path[written] = b'/';
                path.copy_within(read..end, written + 1);
                written += 1 + end - read;
                false
            }
        };
        if end >= n {
            if ends_in_directory || written == 0 {
                path[written] = b'/';
                written += 1;
            }
            return written;
        }
        read = end + 1;
    }
}

/// The site path a request path names: `%XX` escapes decoded, then dot segments
/// removed, in `out`. `None` for a path that does not start with `/`, a bad escape, a
/// NUL, or one longer than `out`.
pub fn resolve_path<'o>(path: &str, out: &'o mut [u8]) -> Option<&'o str> {
    let len = decode_path(path, out)?.len();
    if out.first() != Some(&b'/') || len == 0 {
        return None;
    }
    let len = remove_dot_segments(&mut out[..len]);
    // Whole segments were removed, so the bytes are still UTF-8; checked, not assumed.
    core::str::from_utf8(&out[..len]).ok()
}

/// Writes `path` with every byte outside RFC 3986's `pchar` and `/` as `%XX`, in pieces
/// through `emit` (for a `Location` built from a decoded path).
pub fn encode_path(path: &str, mut emit: impl FnMut(&[u8])) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = path.as_bytes();
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !plain(b) {
            emit(&bytes[from..i]);
            emit(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            from = i + 1;
        }
    }
    emit(&bytes[from..]);
}

/// What to send for a `Range` field (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole representation (200): the field is malformed, not in bytes, or asks
    /// for several ranges, which this server answers in full.
    Whole,
    /// Bytes `first..=last` (206).
    Part { first: u64, last: u64 },
    /// No byte of the representation is in the range (416).
    Unsatisfiable,
}

/// Evaluates a `Range` field value against a representation of `len` bytes.
pub fn byte_range(value: &[u8], len: u64) -> ByteRange {
    let Some(unit_end) = value.iter().position(|&b| b == b'=') else {
        return ByteRange::Whole;
    };
    if !value[..unit_end].eq_ignore_ascii_case(b"bytes") {
        return ByteRange::Whole;
    }
    let spec = trim(&value[unit_end + 1..]);
    if spec.contains(&b',') {
        return ByteRange::Whole;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return ByteRange::Whole;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        // `-n`: the last n bytes.
        return match parse_decimal(last) {
            None => ByteRange::Whole,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if len == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part { first: len.saturating_sub(n), last: len - 1 },
        };
    }
    let Some(first) = parse_decimal(first) else {
        return ByteRange::Whole;
    };
    let last = match last {
        b"" => u64::MAX,
        digits => match parse_decimal(digits) {
            Some(last) if last >= first => last,
            _ => return ByteRange::Whole,
        },
    };
    if first >= len {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part { first, last: last.min(len - 1) }
}

/// The entity-tags of a list value (`"a", W/"b"`), each as `(weak, "tag")` with its
/// quotes; stops at the first malformed element.
fn entity_tags(value: &[u8]) -> impl Iterator<Item = (bool, &[u8])> {
    let mut rest = value;
    core::iter::from_fn(move || {
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        let (weak, tag) = match rest {
            [b'W', b'/', tail @ ..] => (true, tail),
            tail => (false, tail),
        };
        let [b'"', inside @ ..] = tag else {
            rest = b"";
            return None;
        };
        let close = inside.iter().position(|&b| b == b'"' || b < 0x21 || b == 0x7f)?;
        if inside[close] != b'"' {
            rest = b"";
            return None;
        }
        let (tag, tail) = tag.split_at(close + 2);
        rest = tail;
        Some((weak, tag))
    })
}

/// Whether an `If-None-Match` value matches `etag` (quoted) by the weak comparison
/// (RFC 9110 §13.1.2): `*`, or any listed tag with the same opaque part.
pub fn if_none_match_hits(value: &[u8], etag: &[u8]) -> bool {
    trim(value) == b"*" || entity_tags(value).any(|(_, tag)| tag == etag)
}

/// Whether an `If-Range` value still describes the representation (RFC 9110 §13.1.5):
/// a strong entity-tag equal to `etag`, or an HTTP date equal to `modified`.
pub fn if_range_holds(value: &[u8], etag: &[u8], modified: u64) -> bool {
    let value = trim(value);
    match value.first() {
        Some(b'"') => value == etag,
        Some(b'W') if value.starts_with(b"W/") => false,
        _ => parse_http_date(value) == Some(modified),
    }
}

/// The reason phrase of the status codes this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
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

const DAY_NAMES: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTH_NAMES: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// Days since 1970-01-01 of a proleptic Gregorian date (a March-based year puts the
/// leap day last, so the day of the year is a closed formula).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let march_month = (month + 9) % 12;
    let day_of_year = (153 * march_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `unix_seconds`.
pub fn http_date(unix_seconds: u64) -> [u8; 29] {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Civil date from days since the epoch: the inverse of `days_from_civil`.
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
    out[..3].copy_from_slice(DAY_NAMES[(days.rem_euclid(7)) as usize]);
    let two = |v: u64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    out[5..7].copy_from_slice(&two(day));
    out[8..11].copy_from_slice(MONTH_NAMES[month - 1]);
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year));
    out[17..19].copy_from_slice(&two(secs / 3600));
    out[20..22].copy_from_slice(&two(secs / 60 % 60));
    out[23..25].copy_from_slice(&two(secs % 60));
    out
}

/// Seconds since the epoch of an IMF-fixdate; `None` for anything else (the obsolete
/// RFC 850 and asctime forms included), an impossible date, or one before 1970.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let [
        d0,
        d1,
        d2,
        b',',
        b' ',
        a0,
        a1,
        b' ',
        m0,
        m1,
        m2,
        b' ',
        y0,
        y1,
        y2,
        y3,
        b' ',
        h0,
        h1,
        b':',
        n0,
        n1,
        b':',
        s0,
        s1,
        b' ',
        b'G',
        b'M',
        b'T',
    ] = *value
    else {
        return None;
    };
    // The day name is checked for form only: the date itself says which day it is.
    DAY_NAMES.iter().position(|d| *d == &[d0, d1, d2])?;
    let month = MONTH_NAMES.iter().position(|m| *m == &[m0, m1, m2])? + 1;
    let (day, year) = (parse_decimal(&[a0, a1])?, parse_decimal(&[y0, y1, y2, y3])?);
    let (hour, minute, second) =
        (parse_decimal(&[h0, h1])?, parse_decimal(&[n0, n1])?, parse_decimal(&[s0, s1])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    // Second 60 is a leap second, which the grammar allows.
    if year < 1970 || day == 0 || day > month_days[month - 1] || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64) as u64;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    const MAX: usize = 8192;

    fn ok(s: &str) -> (Request<'_>, usize) {
        parse(s.as_bytes(), MAX).unwrap()
    }

    fn bad(s: &[u8]) -> bool {
        matches!(parse(s, MAX), Err(ParseError::Bad(_)))
    }

    #[test]
    fn simple_get() {
        let (r, n) = ok("GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            r,
            Request {
                method: Method::Get,
                path: "/index.html",
                query: Some("x=1"),
                minor_version: 1,
                keep_alive: true,
                body: Body::None,
                expect_continue: false,
                range: None,
                if_range: None,
                if_none_match: None,
                if_modified_since: None,
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
    fn close_anywhere_in_connection_wins() {
        for head in [
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n",
        ] {
            assert!(!ok(head).0.keep_alive, "{head:?}");
        }
        assert!(ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, closed\r\n\r\n").0.keep_alive);
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
    fn body_framing() {
        let body = |s: &str| ok(s).0.body;
        assert_eq!(body("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), Body::Length(5));
        assert_eq!(body("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), Body::None);
        assert_eq!(
            body("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n"),
            Body::Length(7)
        );
        assert_eq!(body("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), Body::Chunked);
        assert_eq!(body("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED \r\n\r\n"), Body::Chunked);
        assert!(
            ok("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n")
                .0
                .expect_continue
        );
        // The head ends where the body starts; the body is not part of what `parse` used.
        let smuggle = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 31\r\n\r\nGET /index.html HTTP/1.1\r\nH: a\r\n\r\n";
        let (r, used) = parse(smuggle, MAX).unwrap();
        assert_eq!((r.body, &smuggle[used..used + 3]), (Body::Length(31), &b"GET"[..]));
    }

    #[test]
    fn ambiguous_body_framing_is_refused() {
        for head in [
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(bad(head.as_bytes()), "{head:?}");
        }
        for head in [
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(parse(head.as_bytes(), MAX), Err(ParseError::NotImplemented), "{head:?}");
        }
    }

    #[test]
    fn field_values() {
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"));
        // obs-text (Latin-1 here) is legal in a field value; HTAB too.
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: Ren\xe9 M\xfcller\r\n\r\n", MAX).is_ok());
        assert!(parse(b"GET / HTTP/1.1\r\nHost: \xff\r\nX-A: a\tb\r\n\r\n", MAX).is_ok());
        // Folded lines (obs-fold) are refused.
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n"));
    }

    #[test]
    fn request_line_forms() {
        let (r, _) = ok("GET http://example.com/docs/about.html?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.path, r.query), ("/docs/about.html", Some("q=1")));
        assert_eq!(ok("GET HTTP://example.com HTTP/1.1\r\nHost: x\r\n\r\n").0.path, "/");
        assert_eq!(ok("GET http://example.com:8080?x HTTP/1.1\r\nHost: x\r\n\r\n").0, {
            let mut r = ok("GET /?x HTTP/1.1\r\nHost: x\r\n\r\n").0;
            r.query = Some("x");
            r
        });
        assert!(bad(b"GET http:/// HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(bad(b"GET 1http://a/ HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(bad(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"));
        // One empty line before the request line is skipped, and counted as used.
        let head = "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let (r, n) = ok(head);
        assert_eq!((r.path, n), ("/a", head.len()));
        assert_eq!(ok(&head[1..]).1, head.len() - 1);
        assert_eq!(parse(b"\r", MAX), Err(ParseError::Incomplete));
        assert_eq!(parse(b"\r\n", MAX), Err(ParseError::Incomplete));
        assert!(bad(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
        // HTTP/1.x beyond 1.1 is served as 1.1; other majors get 505.
        assert_eq!(ok("GET / HTTP/1.2\r\nHost: x\r\n\r\n").0.minor_version, 1);
        assert_eq!(ok("GET / HTTP/1.9\r\nHost: x\r\n\r\n").0.minor_version, 1);
        for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0"] {
            let head = std::format!("GET / {version}\r\nHost: x\r\n\r\n");
            assert_eq!(parse(head.as_bytes(), MAX), Err(ParseError::VersionNotSupported), "{version}");
        }
        for version in ["HTTP/1.10", "HTTP/1", "http/1.1", "HTTP/1.x", "HTTP/11"] {
            let head = std::format!("GET / {version}\r\nHost: x\r\n\r\n");
            assert!(bad(head.as_bytes()), "{version}");
        }
    }

    #[test]
    fn bare_line_feeds_end_lines() {
        let head = "GET /a HTTP/1.1\nHost: x\nConnection: close\n\n";
        let (r, n) = ok(head);
        assert_eq!((r.path, r.keep_alive, n), ("/a", false, head.len()));
        for head in ["GET /a HTTP/1.1\r\nHost: x\n\r\n", "GET /a HTTP/1.1\nHost: x\r\n\n"] {
            assert_eq!(ok(head).1, head.len());
        }
        assert_eq!(parse(b"GET /a HTTP/1.1\nHost: x\n", MAX), Err(ParseError::Incomplete));
        let two = b"GET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\nHost: x\n\n";
        let (_, n) = parse(two, MAX).unwrap();
        assert_eq!(parse(&two[n..], MAX).unwrap().0.path, "/b");
    }

    #[test]
    fn repeated_validator_fields_are_emptied() {
        let (r, _) = ok(
            "GET / HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\nIf-None-Match: \"x\"\r\n\r\n",
        );
        assert_eq!((r.range, r.if_none_match), (Some(&b""[..]), Some(&b"\"x\""[..])));
        let (r, _) = ok("GET / HTTP/1.1\r\nHost: a\r\nIf-Range: \"x\"\r\nIf-Modified-Since: y\r\n\r\n");
        assert_eq!((r.if_range, r.if_modified_since), (Some(&b"\"x\""[..]), Some(&b"y"[..])));
    }

    #[test]
    fn incomplete_and_too_large() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost:", MAX), Err(ParseError::Incomplete));
        assert_eq!(parse(b"", MAX), Err(ParseError::Incomplete));
        let mut big = Vec::from(*b"GET / HTTP/1.1\r\nX: ");
        big.resize(MAX + 10, b'a');
        assert_eq!(parse(&big, MAX), Err(ParseError::TooLarge));
        let mut line = Vec::from(*b"GET /");
        line.resize(1 << 20, b'a');
        assert_eq!(parse(&line, MAX), Err(ParseError::TooLarge));
        assert_eq!(parse(b"\r\nGET", 1), Err(ParseError::TooLarge));
    }

    #[test]
    fn malformed_heads_are_bad() {
        for bad_head in [
            "garbage\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
            "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost a\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
            "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
            "\r\n\r\n",
        ] {
            assert!(bad(bad_head.as_bytes()), "{bad_head:?}");
        }
        // Binary garbage is refused before the 8 KiB limit.
        assert!(bad(&[0x16, 0x03, 0x01, 0x00]));
        // A path must be UTF-8 to be looked up; a field value need not be.
        assert!(bad(b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET /?\xff HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    /// Every prefix and every single-byte change of some heads parse without panicking,
    /// and whatever is accepted stays inside the buffer.
    #[test]
    fn mangled_heads_do_not_panic() {
        let seeds: [&[u8]; 4] = [
            b"\r\nGET http://h/a/../b?q HTTP/1.1\r\nHost: a\r\nRange: bytes=1-2\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.0\nContent-Length: 5\nConnection: keep-alive\n\nhello",
            b"GET / HTTP/1.1\r\nIf-None-Match: W/\"a\", \"b\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nHost: x\r\n\r\n",
            b"\n\r\n\r",
        ];
        for seed in seeds {
            for cut in 0..=seed.len() {
                for max in [0, 1, 5, MAX] {
                    if let Ok((_, used)) = parse(&seed[..cut], max) {
                        assert!(used <= cut);
                    }
                }
            }
            let mut copy = seed.to_vec();
            for i in 0..seed.len() {
                for b in [0u8, b'\r', b'\n', b' ', b':', b'/', b'.', b'"', b',', 0xff] {
                    copy[i] = b;
                    let _ = parse(&copy, MAX);
                    copy[i] = seed[i];
                }
            }
        }
    }

    /// Random inputs from an alphabet of the bytes the parsers act on: nothing panics,
    /// and what is accepted stays inside its input.
    #[test]
    fn random_inputs_do_not_panic() {
        const ALPHABET: &[u8] = b"GET /HTP1.0\r\n:, \t\"W*=-?%2e#bytes;chunkedHostContent-Length9\0\xff";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            // xorshift64: reproducible, and enough to spread inputs over the alphabet.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut input = Vec::new();
        let mut scratch = [0u8; 48];
        for _ in 0..100_000 {
            input.clear();
            let len = (next() % 64) as usize;
            input.extend((0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]));
            if let Ok((_, used)) = parse(&input, 48) {
                assert!(used <= input.len());
            }
            let _ = byte_range(&input, next() % 200);
            let _ = if_none_match_hits(&input, b"\"a\"");
            let _ = if_range_holds(&input, b"\"a\"", 0);
            let _ = parse_http_date(&input);
            if let Ok(text) = core::str::from_utf8(&input) {
                if let Some(path) = resolve_path(text, &mut scratch) {
                    assert!(
                        path.starts_with('/') && !path.split('/').any(|s| s == ".." || s == "."),
                        "{path:?}"
                    );
                }
                encode_path(text, |_| {});
            }
        }
    }

    fn resolve(path: &str) -> Option<std::string::String> {
        let mut buf = [0u8; 64];
        resolve_path(path, &mut buf).map(std::string::String::from)
    }

    #[test]
    fn paths_are_decoded_then_dot_segments_removed() {
        let mut buf = [0u8; 64];
        assert_eq!(decode_path("/a%20b.html", &mut buf), Some("/a b.html"));
        assert_eq!(decode_path("/%zz", &mut buf), None);
        assert_eq!(decode_path("/%00", &mut buf), None);
        assert_eq!(decode_path("/%4", &mut buf), None);
        assert_eq!(decode_path("/%ff", &mut buf), None);
        assert_eq!(decode_path(&"/a".repeat(40), &mut buf), None);
        for (path, site_path) in [
            ("/", "/"),
            ("/index.html", "/index.html"),
            ("/a/../index.html", "/index.html"),
            ("/./index.html", "/index.html"),
            ("/../../etc", "/etc"),
            ("/%2e%2e/%2E%2E/etc/passwd", "/etc/passwd"),
            ("/docs/.", "/docs/"),
            ("/docs/..", "/"),
            ("/docs/../", "/"),
            ("/a/b/c/./../../g", "/a/g"),
            ("/a//..", "/a/"),
            ("/a/..b/.c", "/a/..b/.c"),
            ("/..", "/"),
            ("/.", "/"),
            ("/a%2f..%2fb", "/b"),
            ("/caf%C3%A9/", "/café/"),
        ] {
            assert_eq!(resolve(path).as_deref(), Some(site_path), "{path}");
        }
        assert_eq!(resolve("index.html"), None);
        assert_eq!(resolve(""), None);
    }

    #[test]
    fn locations_are_percent_encoded() {
        let encode = |path: &str| {
            let mut out = Vec::new();
            encode_path(path, |piece| out.extend_from_slice(piece));
            std::string::String::from_utf8(out).unwrap()
        };
        assert_eq!(encode("/docs/"), "/docs/");
        assert_eq!(encode("/my docs/café?#%"), "/my%20docs/caf%C3%A9%3F%23%25");
        assert_eq!(encode("/a\r\nb"), "/a%0D%0Ab");
    }

    #[test]
    fn byte_ranges() {
        use ByteRange::*;
        let range = |v: &str, len| byte_range(v.as_bytes(), len);
        assert_eq!(range("bytes=0-9", 100), Part { first: 0, last: 9 });
        assert_eq!(range("bytes=10-", 100), Part { first: 10, last: 99 });
        assert_eq!(range("bytes=-10", 100), Part { first: 90, last: 99 });
        assert_eq!(range("bytes=-1000", 100), Part { first: 0, last: 99 });
        assert_eq!(range("bytes=90-1000", 100), Part { first: 90, last: 99 });
        assert_eq!(range("Bytes=5-5", 100), Part { first: 5, last: 5 });
        assert_eq!(range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(range("bytes=-5", 0), Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=9-5",
            "bytes=a-b",
            "bytes=",
            "bytes=-",
            "items=0-1",
            "bytes 0-1",
            "bytes=0--1",
            "bytes=1-2-3",
            "bytes=- 1",
            "",
        ] {
            assert_eq!(range(ignored, 100), Whole, "{ignored:?}");
        }
    }

    #[test]
    fn entity_tag_matching() {
        let etag = b"\"abc\"";
        assert!(if_none_match_hits(b"\"abc\"", etag));
        assert!(if_none_match_hits(b"W/\"abc\"", etag));
        assert!(if_none_match_hits(b"\"x\", W/\"y\" ,\"abc\"", etag));
        assert!(if_none_match_hits(b" * ", etag));
        assert!(!if_none_match_hits(b"\"abcd\"", etag));
        assert!(!if_none_match_hits(b"abc", etag));
        assert!(!if_none_match_hits(b"", etag));
        assert!(!if_none_match_hits(b"\"x\" junk \"abc\"", etag));
        assert!(!if_none_match_hits(b"\"ab", etag));
        assert!(!if_none_match_hits(b"\"a b\", \"abc\"", etag));
        let modified = 784_111_777;
        assert!(if_range_holds(b"\"abc\"", etag, modified));
        assert!(!if_range_holds(b"W/\"abc\"", etag, modified));
        assert!(!if_range_holds(b"\"abd\"", etag, modified));
        assert!(if_range_holds(b"Sun, 06 Nov 1994 08:49:37 GMT", etag, modified));
        assert!(!if_range_holds(b"Sun, 06 Nov 1994 08:49:38 GMT", etag, modified));
        assert!(!if_range_holds(b"", etag, modified));
    }

    #[test]
    fn reasons_and_error_statuses() {
        assert_eq!(reason(505), "HTTP Version Not Supported");
        assert_eq!(reason(416), "Range Not Satisfiable");
        assert_eq!(ParseError::VersionNotSupported.status(), Some(505));
        assert_eq!(ParseError::NotImplemented.status(), Some(501));
        assert_eq!(ParseError::Incomplete.status(), None);
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

    #[test]
    fn dates_parse_back() {
        // Every day over four centuries, at a varying time of day, round-trips.
        for day in 0..146_097u64 {
            let t = day * 86_400 + (day * 7919) % 86_400;
            assert_eq!(
                parse_http_date(&http_date(t)),
                Some(t),
                "{}",
                std::string::String::from_utf8_lossy(&http_date(t))
            );
        }
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        for bad_date in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "Abc, 06 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "",
        ] {
            assert_eq!(parse_http_date(bad_date.as_bytes()), None, "{bad_date:?}");
        }
        assert_eq!(parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"), Some(951_782_400));
    }
}

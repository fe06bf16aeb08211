//! Requests in RESP2 (an array of bulk strings) and in the inline form (words on a line,
//! as telnet and redis-cli's `PING` send them), parsed from the front of a connection's
//! buffer so that pipelined requests come out one after another.
//!
//! Nothing is allocated for what a header announces: the argument list grows only as
//! arguments actually arrive, and a bulk string is only ever the bytes in the buffer.
//! The error texts are Redis's (`networking.c`), which clients and tests match.

use alloc::vec::Vec;
use core::ops::Range;

/// Longest inline request, and longest `*N` / `$N` header line, before the client is
/// refused (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;
/// Most arguments one request may announce (Redis refuses more than `INT_MAX`).
const MULTIBULK_MAX: i64 = i32::MAX as i64;

/// Where an argument's bytes are: in the connection's buffer, or (for an inline request
/// whose quotes were undone) in the parser's scratch buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Buffer(Range<usize>),
    Scratch(Range<usize>),
}

/// What [`Parser::parse`] found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A request of [`Parser::len`] arguments, `used` bytes long. An empty request (a
    /// blank inline line, `*0`) has no arguments and is skipped, as Redis does.
    Request { used: usize },
    /// More bytes are needed; nothing can be decided before the buffer holds at least
    /// `need` bytes (so a bulk string arriving in pieces is not parsed again per piece).
    Incomplete { need: usize },
}

/// A request the protocol does not allow: the client gets this error (Redis's
/// `-ERR Protocol error: ...`) and its connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

impl ProtocolError {
    /// The reply line, without its CRLF.
    pub fn message(&self) -> &'static str {
        self.0
    }
}

/// The parsed arguments of the latest request, kept between requests so that a
/// connection allocates its argument list once.
#[derive(Debug, Default)]
pub struct Parser {
    args: Vec<Arg>,
    scratch: Vec<u8>,
    /// The most bytes one bulk string may have (`proto-max-bulk-len`).
    max_bulk: usize,
}

/// The arguments of one parsed request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    buf: &'a [u8],
    scratch: &'a [u8],
    args: &'a [Arg],
}

impl<'a> Request<'a> {
    pub fn len(&self) -> usize {
        self.args.len()
    }

    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i`; panics past the end, like a slice (handlers check arity first).
    pub fn arg(&self, i: usize) -> &'a [u8] {
        match &self.args[i] {
            Arg::Buffer(r) => &self.buf[r.clone()],
            Arg::Scratch(r) => &self.scratch[r.clone()],
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(|i| self.arg(i))
    }
}

/// Redis's `string2ll`: an optional `-`, then digits without a leading zero (bar "0"
/// itself), within `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        value = if negative {
            value.checked_mul(10)?.checked_sub(d)?
        } else {
            value.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(value)
}

/// The line at the front of `buf` (without its CRLF) and the offset after it.
enum Line<'a> {
    Found(&'a [u8], usize),
    /// No CRLF yet.
    Missing,
    /// A CR not followed by LF.
    Broken,
}

fn line(buf: &[u8], from: usize) -> Line<'_> {
    let rest = &buf[from..];
    match rest.iter().position(|&b| b == b'\r') {
        Some(cr) if cr + 1 == rest.len() => Line::Missing,
        Some(cr) if rest[cr + 1] == b'\n' => Line::Found(&rest[..cr], from + cr + 2),
        Some(_) => Line::Broken,
        None => Line::Missing,
    }
}

impl Parser {
    pub fn new(max_bulk: usize) -> Parser {
        Parser { args: Vec::new(), scratch: Vec::new(), max_bulk }
    }

    /// The request `parse` last returned, read from the same `buf`.
    pub fn request<'a>(&'a self, buf: &'a [u8]) -> Request<'a> {
        Request { buf, scratch: &self.scratch, args: &self.args }
    }

    /// Parses the request at the front of `buf`.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        self.args.clear();
        self.scratch.clear();
        match buf.first() {
            None => Ok(Parsed::Incomplete { need: 1 }),
            Some(b'*') => self.multibulk(buf),
            Some(_) => self.inline(buf),
        }
    }

    fn multibulk(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let (count, mut at) = match line(buf, 1) {
            Line::Found(digits, next) => match parse_i64(digits) {
                Some(n) if n <= MULTIBULK_MAX => (n, next),
                _ => return Err(ProtocolError("ERR Protocol error: invalid multibulk length")),
            },
            Line::Missing if buf.len() > INLINE_MAX => {
                return Err(ProtocolError("ERR Protocol error: too big mbulk count string"));
            }
            Line::Missing => return Ok(Parsed::Incomplete { need: buf.len() + 1 }),
            Line::Broken => return Err(ProtocolError("ERR Protocol error: invalid multibulk length")),
        };
        // `*0` and `*-1` are empty requests.
        for _ in 0..count.max(0) {
            match buf.get(at) {
                None => return Ok(Parsed::Incomplete { need: at + 1 }),
                Some(b'$') => {}
                Some(&other) => return Err(expected_dollar(other)),
            }
            let (len, data) = match line(buf, at + 1) {
                Line::Found(digits, next) => match parse_i64(digits) {
                    Some(n) if n >= 0 && n as u64 <= self.max_bulk as u64 => (n as usize, next),
                    _ => return Err(ProtocolError("ERR Protocol error: invalid bulk length")),
                },
                Line::Missing if buf.len() - at > INLINE_MAX => {
                    return Err(ProtocolError("ERR Protocol error: too big bulk count string"));
                }
                Line::Missing => return Ok(Parsed::Incomplete { need: buf.len() + 1 }),
                Line::Broken => return Err(ProtocolError("ERR Protocol error: invalid bulk length")),
            };
            let end = data + len;
            if buf.len() < end + 2 {
                return Ok(Parsed::Incomplete { need: end + 2 });
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("ERR Protocol error: expected CRLF after bulk data"));
            }
            self.args.push(Arg::Buffer(data..end));
            at = end + 2;
        }
        Ok(Parsed::Request { used: at })
    }

    fn inline(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError("ERR Protocol error: too big inline request"));
            }
            return Ok(Parsed::Incomplete { need: buf.len() + 1 });
        };
        if newline > INLINE_MAX {
            return Err(ProtocolError("ERR Protocol error: too big inline request"));
        }
        let mut text = &buf[..newline];
        if let [head @ .., b'\r'] = text {
            text = head;
        }
        split_args(text, &mut self.scratch, &mut self.args)?;
        Ok(Parsed::Request { used: newline + 1 })
    }
}

fn expected_dollar(got: u8) -> ProtocolError {
    // The byte is part of the message; a static table keeps the error allocation-free.
    const MESSAGES: [&str; 3] = [
        "ERR Protocol error: expected '$', got '*'",
        "ERR Protocol error: expected '$', got ':'",
        "ERR Protocol error: expected '$', got another byte",
    ];
    ProtocolError(match got {
        b'*' => MESSAGES[0],
        b':' => MESSAGES[1],
        _ => MESSAGES[2],
    })
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline request into words as Redis's `sdssplitargs` does: blanks between
/// words; `"..."` with backslash escapes (`\n`, `\r`, `\t`, `\b`, `\a`, `\xHH`) and
/// `'...'` with `\'` only; a closing quote must be followed by a blank or the end.
fn split_args(text: &[u8], scratch: &mut Vec<u8>, args: &mut Vec<Arg>) -> Result<(), ProtocolError> {
    const UNBALANCED: ProtocolError = ProtocolError("ERR Protocol error: unbalanced quotes in request");
    let blank = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0);
    let mut i = 0;
    loop {
        while i < text.len() && blank(text[i]) {
            i += 1;
        }
        if i == text.len() {
            return Ok(());
        }
        let start = scratch.len();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let Some(&c) = text.get(i) else {
                if in_double || in_single {
                    return Err(UNBALANCED);
                }
                break;
            };
            if in_double {
                let next = text.get(i + 1).copied();
                let hex = (
                    text.get(i + 2).copied().and_then(hex_value),
                    text.get(i + 3).copied().and_then(hex_value),
                );
                match (c, next, hex) {
                    (b'\\', Some(b'x'), (Some(hi), Some(lo))) => {
                        scratch.push(hi * 16 + lo);
                        i += 3;
                    }
                    (b'\\', Some(e), _) => {
                        scratch.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 1;
                    }
                    (b'"', _, _) => {
                        if next.is_some_and(|n| !blank(n)) {
                            return Err(UNBALANCED);
                        }
                        i += 1;
                        break;
                    }
                    _ => scratch.push(c),
                }
            } else if in_single {
                match (c, text.get(i + 1).copied()) {
                    (b'\\', Some(b'\'')) => {
                        scratch.push(b'\'');
                        i += 1;
                    }
                    (b'\'', next) => {
                        if next.is_some_and(|n| !blank(n)) {
                            return Err(UNBALANCED);
                        }
                        i += 1;
                        break;
                    }
                    _ => scratch.push(c),
                }
            } else {
                match c {
                    c if blank(c) => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => scratch.push(c),
                }
            }
            i += 1;
        }
        args.push(Arg::Scratch(start..scratch.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn parse_all(input: &[u8]) -> Result<(Vec<Vec<u8>>, Parsed), ProtocolError> {
        let mut p = Parser::new(512 << 20);
        let parsed = p.parse(input)?;
        let args = p.request(input).iter().map(|a| a.to_vec()).collect();
        Ok((args, parsed))
    }

    fn words(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_request() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n";
        let (args, parsed) = parse_all(input).unwrap();
        assert_eq!(args, vec![b"SET".to_vec(), b"k".to_vec(), vec![]]);
        assert_eq!(parsed, Parsed::Request { used: 26 });
    }

    #[test]
    fn binary_bulk_strings_keep_every_byte() {
        let input = b"*2\r\n$4\r\n\r\n\0x\r\n$2\r\n\xff\xfe\r\n";
        let (args, _) = parse_all(input).unwrap();
        assert_eq!(args, vec![b"\r\n\0x".to_vec(), b"\xff\xfe".to_vec()]);
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let input = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        for cut in 0..input.len() {
            let (_, parsed) = parse_all(&input[..cut]).unwrap();
            match parsed {
                Parsed::Incomplete { need } => {
                    assert!(need > cut && need <= input.len(), "cut {cut} need {need}")
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert_eq!(parse_all(input).unwrap().1, Parsed::Request { used: input.len() });
    }

    #[test]
    fn a_bulk_in_pieces_asks_for_its_whole_length() {
        let (_, parsed) = parse_all(b"*1\r\n$100\r\nabc").unwrap();
        assert_eq!(parsed, Parsed::Incomplete { need: 10 + 100 + 2 });
    }

    #[test]
    fn empty_requests() {
        assert_eq!(parse_all(b"*0\r\n").unwrap(), (vec![], Parsed::Request { used: 4 }));
        assert_eq!(parse_all(b"*-1\r\n").unwrap(), (vec![], Parsed::Request { used: 5 }));
        assert_eq!(parse_all(b"\r\n").unwrap(), (vec![], Parsed::Request { used: 2 }));
    }

    #[test]
    fn inline_requests() {
        assert_eq!(parse_all(b"PING\r\n").unwrap(), (words(&["PING"]), Parsed::Request { used: 6 }));
        assert_eq!(parse_all(b"set  k v\n").unwrap().0, words(&["set", "k", "v"]));
        assert_eq!(
            parse_all(b"SET \"a b\" 'c\\'d' \"\\x41\\n\"\r\n").unwrap().0,
            vec![b"SET".to_vec(), b"a b".to_vec(), b"c'd".to_vec(), b"A\n".to_vec()]
        );
        assert_eq!(parse_all(b"SET \"\" x\r\n").unwrap().0, vec![b"SET".to_vec(), vec![], b"x".to_vec()]);
        assert_eq!(parse_all(b"PING").unwrap().1, Parsed::Incomplete { need: 5 });
    }

    #[test]
    fn unbalanced_quotes() {
        let err = ProtocolError("ERR Protocol error: unbalanced quotes in request");
        assert_eq!(parse_all(b"SET \"abc\r\n"), Err(err));
        assert_eq!(parse_all(b"SET 'abc\r\n"), Err(err));
        assert_eq!(parse_all(b"SET \"a\"b\r\n"), Err(err));
    }

    #[test]
    fn bad_forms_get_redis_protocol_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"*2147483648\r\n", "ERR Protocol error: invalid multibulk length"),
            (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
            (b"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\n$99999999999999999999\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\n$536870913\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\n*1\r\n$1\r\na\r\n", "ERR Protocol error: expected '$', got '*'"),
            (b"*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
            (b"*1\r\n$1\r\nab\r\n", "ERR Protocol error: expected CRLF after bulk data"),
            (b"*1\rx", "ERR Protocol error: invalid multibulk length"),
        ];
        for (input, message) in cases {
            assert_eq!(
                parse_all(input),
                Err(ProtocolError(message)),
                "{:?}",
                input.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn over_long_lines_are_refused_without_waiting_for_their_end() {
        let mut inline = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(parse_all(&inline), Err(ProtocolError("ERR Protocol error: too big inline request")));
        inline.push(b'\n');
        assert_eq!(parse_all(&inline), Err(ProtocolError("ERR Protocol error: too big inline request")));
        let mut header = b"*1".to_vec();
        header.resize(INLINE_MAX + 10, b'1');
        assert_eq!(parse_all(&header), Err(ProtocolError("ERR Protocol error: too big mbulk count string")));
        let mut bulk = b"*1\r\n$1".to_vec();
        bulk.resize(INLINE_MAX + 10, b'1');
        assert_eq!(parse_all(&bulk), Err(ProtocolError("ERR Protocol error: too big bulk count string")));
    }

    #[test]
    fn the_bulk_limit_is_the_parsers() {
        let mut p = Parser::new(4);
        assert!(p.parse(b"*1\r\n$4\r\nabcd\r\n").is_ok());
        assert_eq!(p.parse(b"*1\r\n$5\r\n"), Err(ProtocolError("ERR Protocol error: invalid bulk length")));
    }

    #[test]
    fn a_huge_announced_array_allocates_only_what_arrived() {
        let mut p = Parser::new(512 << 20);
        assert_eq!(p.parse(b"*2147483647\r\n$1\r\na\r\n"), Ok(Parsed::Incomplete { need: 21 }));
        assert!(p.args.capacity() < 16);
    }

    #[test]
    fn integers_as_redis_reads_them() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"01", b"-0", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1.0"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}

//! RESP2 replies, written straight into a connection's output buffer.

use alloc::vec::Vec;

/// Redis's shared error replies, word for word (clients match some of them).
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// Appends `n` in decimal without `core::fmt` (on the path of every reply).
pub fn decimal(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

fn header(out: &mut Vec<u8>, kind: u8, n: i64) {
    out.push(kind);
    decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

pub fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// A status reply (`+...`); `text` must not contain CR or LF.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An error reply (`-...`); CR and LF in `text` become spaces, as Redis does.
pub fn error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

pub fn integer(out: &mut Vec<u8>, n: i64) {
    header(out, b':', n);
}

pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    header(out, b'$', data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string holding `n` in decimal.
pub fn bulk_integer(out: &mut Vec<u8>, n: i64) {
    let mut text = Vec::with_capacity(20);
    decimal(&mut text, n);
    bulk(out, &text);
}

pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

pub fn null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

pub fn array(out: &mut Vec<u8>, len: usize) {
    header(out, b'*', len as i64);
}

pub fn bulk_or_null(out: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        Some(d) => bulk(out, d),
        None => null(out),
    }
}

/// A double as Redis replies with it (sorted-set scores): the shortest digits that read
/// back to the same value, in `%g`'s layout (exponent form below 1e-4 and from 1e17),
/// and `inf` / `-inf`.
pub fn format_score(value: f64, out: &mut Vec<u8>) {
    use core::fmt::Write;
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    let mut text = Text::default();
    // `{:e}` gives the shortest round-trip digits: "1.5e0", "-1e21", "1.2345e-7".
    let _ = write!(text, "{value:e}");
    let s = text.as_str();
    let (mantissa, exponent) = s.split_once('e').unwrap_or((s, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-5..17).contains(&exponent) {
        let _ = write!(FmtVec(out), "{value}");
    } else {
        out.extend_from_slice(mantissa.as_bytes());
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        decimal(out, i64::from(magnitude));
    }
}

/// A double as `INCRBYFLOAT` replies with it: fixed notation, shortest digits.
pub fn format_float_fixed(value: f64, out: &mut Vec<u8>) {
    use core::fmt::Write;
    let _ = write!(FmtVec(out), "{value}");
}

/// A small stack buffer for `{:e}` output (a double needs under 32 bytes).
#[derive(Default)]
struct Text {
    bytes: [u8; 32],
    len: usize,
}

impl Text {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `core::fmt` into a byte vector.
#[derive(Debug)]
pub struct FmtVec<'a>(pub &'a mut Vec<u8>);

impl core::fmt::Write for FmtVec<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(v: f64) -> String {
        let mut out = Vec::new();
        format_score(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scores_as_redis_prints_them() {
        assert_eq!(score(1.0), "1");
        assert_eq!(score(-2.5), "-2.5");
        assert_eq!(score(0.1), "0.1");
        assert_eq!(score(1e21), "1e+21");
        assert_eq!(score(1.5e-7), "1.5e-07");
        assert_eq!(score(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(score(f64::INFINITY), "inf");
        assert_eq!(score(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn decimals() {
        for n in [0, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}

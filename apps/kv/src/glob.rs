//! Redis's glob patterns (`KEYS`, `SCAN MATCH`, `CONFIG GET`): `*` any run of bytes,
//! `?` one byte, `[abc]`, `[^abc]` and `[a-z]` a byte from (or not from) a set, `\x`
//! the byte `x` itself.
//!
//! Matching is iterative with one remembered `*` (the classic backtracking walk), so a
//! pattern of many stars costs `O(pattern × subject)`, not exponential time.

/// Matches one pattern element starting at `p` against byte `c`. Returns whether it
/// matched and where the next element starts; `None` at the pattern's end or at a `*`.
fn element(pattern: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    match *pattern.get(p)? {
        b'*' => None,
        b'?' => Some((true, p + 1)),
        b'\\' if p + 1 < pattern.len() => Some((pattern[p + 1] == c, p + 2)),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            // An unterminated set ends with the pattern, as in Redis.
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    hit |= pattern[i + 1] == c;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
                    let (a, b) = (pattern[i], pattern[i + 2]);
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    hit |= (lo..=hi).contains(&c);
                    i += 3;
                } else {
                    hit |= pattern[i] == c;
                    i += 1;
                }
            }
            Some((hit != negate, (i + 1).min(pattern.len())))
        }
        literal => Some((literal == c, p + 1)),
    }
}

/// Whether `subject` matches `pattern`.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let (mut p, mut s) = (0, 0);
    // After the latest `*`: where the pattern resumes, and the subject position the star
    // has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            p += 1;
            star = Some((p, s));
            continue;
        }
        if s == subject.len() {
            // Only stars may be left.
            return pattern[p..].iter().all(|&b| b == b'*');
        }
        match element(pattern, p, subject[s]) {
            Some((true, next)) => {
                p = next;
                s += 1;
            }
            _ => match star {
                // Let the star take one more byte and try again from there.
                Some((resume, taken)) => {
                    star = Some((resume, taken + 1));
                    p = resume;
                    s = taken + 1;
                }
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_questions() {
        assert!(matches(b"*", b""));
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"h*llo", b"hllo"));
        assert!(matches(b"h*llo", b"heeeello"));
        assert!(matches(b"*:*:*", b"a:b:c"));
        assert!(!matches(b"*:*:*", b"a:b"));
        assert!(matches(b"key:*", b"key:"));
        assert!(!matches(b"key:*", b"ke"));
        assert!(matches(b"a*b*c", b"aXbYbZc"));
        assert!(!matches(b"a*b*c", b"aXbYbZ"));
    }

    #[test]
    fn sets_ranges_and_escapes() {
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-b]llo", b"hbllo"));
        assert!(matches(b"h[b-a]llo", b"hallo"), "reversed ranges are swapped");
        assert!(!matches(b"h[a-b]llo", b"hcllo"));
        assert!(matches(b"\\*", b"*"));
        assert!(!matches(b"\\*", b"a"));
        assert!(matches(b"[\\]]", b"]"));
        assert!(matches(b"a[bc", b"ab"), "an unterminated set ends with the pattern");
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = [b'*'; 64].iter().chain(b"b").copied().collect::<Vec<u8>>();
        let subject = [b'a'; 10_000];
        assert!(!matches(&pattern, &subject));
    }
}

//! httpd's request-head parser on arbitrary bytes, pipelined as httpd parses its
//! receive buffer, then what httpd does with each head's client-chosen parts: the path
//! resolved to a site path (and encoded back for a `Location`), the `Range` field
//! against a few file sizes, and the validator fields against an ETag and a date.
#![no_main]

use http::ByteRange;
use libfuzzer_sys::fuzz_target;

/// httpd's limit on a request head (apps/httpd: MAX_HEAD).
const MAX_HEAD: usize = 8 * 1024;
const ETAG: &[u8] = b"\"0123456789abcdef\"";

fn parse_all(mut buf: &[u8], max_head: usize) {
    // httpd's path buffer.
    let mut scratch = [0u8; 1024];
    while let Ok((request, used)) = http::parse(buf, max_head) {
        assert!(used > 0 && used <= buf.len() && used <= max_head, "head length {used} of {}", buf.len());
        assert!(request.path.starts_with('/'), "path {:?}", request.path);
        if let Some(path) = http::decode_path(request.path, &mut scratch) {
            assert!(!path.contains('\0'), "decoded path {path:?} has a NUL");
        }
        if let Some(path) = http::resolve_path(request.path, &mut scratch) {
            assert!(path.starts_with('/'), "resolved path {path:?}");
            assert!(!path.split('/').any(|s| s == ".." || s == "."), "dot segment left in {path:?}");
            let mut encoded = Vec::new();
            http::encode_path(path, |piece| encoded.extend_from_slice(piece));
            assert!(encoded.iter().all(|&b| b.is_ascii_graphic()), "Location {encoded:?}");
        }
        if let Some(range) = request.range {
            for len in [0, 1, 612, u64::MAX] {
                if let ByteRange::Part { first, last } = http::byte_range(range, len) {
                    assert!(first <= last && last < len, "range {first}-{last} of {len}");
                }
            }
        }
        for value in
            [request.if_none_match, request.if_range, request.if_modified_since].into_iter().flatten()
        {
            let _ = http::if_none_match_hits(value, ETAG);
            let _ = http::if_range_holds(value, ETAG, 784_111_777);
            if let Some(date) = http::parse_http_date(value) {
                assert_eq!(http::parse_http_date(&http::http_date(date)), Some(date), "date {value:?}");
            }
        }
        buf = &buf[used..];
    }
}

fuzz_target!(|data: &[u8]| {
    parse_all(data, MAX_HEAD);
    // A limit inside the input, so heads also meet TooLarge.
    parse_all(data, data.len() / 2 + 1);
});

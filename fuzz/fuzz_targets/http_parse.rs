//! httpd's request-head parser on arbitrary bytes, pipelined as httpd parses its
//! receive buffer, then the request path's percent-decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// httpd's limit on a request head (apps/httpd: MAX_HEAD).
const MAX_HEAD: usize = 8 * 1024;

fn parse_all(mut buf: &[u8], max_head: usize) {
    // httpd's path buffer.
    let mut decoded = [0u8; 1024];
    while let Ok((request, used)) = http::parse(buf, max_head) {
        assert!(used > 0 && used <= buf.len() && used <= max_head, "head length {used} of {}", buf.len());
        assert!(request.path.starts_with('/'), "path {:?}", request.path);
        if let Some(path) = http::decode_path(request.path, &mut decoded) {
            assert!(!path.contains('\0'), "decoded path {path:?} has a NUL");
        }
        buf = &buf[used..];
    }
}

fuzz_target!(|data: &[u8]| {
    parse_all(data, MAX_HEAD);
    // A limit inside the input, so heads also meet TooLarge.
    parse_all(data, data.len() / 2 + 1);
});

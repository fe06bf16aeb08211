//! kv's request path on arbitrary bytes: the bytes arrive in pieces (the first input
//! byte picks the piece size), the parser takes requests from the front of the buffer as
//! a connection does, and every request runs against one server, its clock moving and
//! its memory crossing `maxmemory` as the input says. Checks: the parser consumes within
//! the buffer and never holds more arguments than arrived, every reply is one
//! well-formed RESP2 value, and a protocol error ends the session as it would the
//! connection.
#![no_main]

use kv::commands::{After, execute};
use kv::resp::{Parsed, Parser};
use kv::server::{Config, Env, Memory, Server};
use libfuzzer_sys::fuzz_target;

/// The length of the RESP2 value at the front of `bytes`, which must be all of it.
fn reply_len(bytes: &[u8]) -> usize {
    let end = bytes.windows(2).position(|w| w == b"\r\n").expect("a reply line ends in CRLF");
    let line = &bytes[1..end];
    assert!(!line.contains(&b'\n') && !line.contains(&b'\r'), "a reply line holding CR or LF");
    // Status and error lines may echo a client's bytes; numbers are ASCII.
    let line = std::str::from_utf8(line).unwrap_or("");
    let after = end + 2;
    match bytes[0] {
        b'+' | b'-' => after,
        b':' => {
            line.parse::<i64>().expect("an integer reply");
            after
        }
        b'$' if line == "-1" => after,
        b'$' => {
            let len: usize = line.parse().expect("a bulk length");
            assert_eq!(&bytes[after + len..after + len + 2], b"\r\n", "a bulk ends in CRLF");
            after + len + 2
        }
        b'*' if line == "-1" => after,
        b'*' => {
            let mut at = after;
            for _ in 0..line.parse::<usize>().expect("an array length") {
                at += reply_len(&bytes[at..]);
            }
            at
        }
        other => panic!("a reply starting with {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else { return };
    let piece = usize::from(piece).max(1);
    let config = Config { port: 6379, maxmemory: 1 << 16, max_bulk: 4096, idle_timeout: 0 };
    let mut server = Server::new(config, 1);
    let mut client = server.connect();
    let mut parser = Parser::new(4096);
    let mut buf = Vec::new();
    let mut now = 1_700_000_000_000u64;
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        let mut used = 0;
        loop {
            match parser.parse(&buf[used..]) {
                Ok(Parsed::Request { used: n }) => {
                    assert!(n > 0 && used + n <= buf.len(), "request of {n} at {used} in {}", buf.len());
                    let request = parser.request(&buf[used..]);
                    // An argument takes two bytes at the least (`a ` inline).
                    assert!(request.len() * 2 <= n, "{} arguments in {n} bytes", request.len());
                    if !request.is_empty() {
                        // The clock moves with the request, and memory crosses maxmemory.
                        now += u64::from(request.arg(0).first().copied().unwrap_or(0)) * 100;
                        let env = Env {
                            now_ms: now,
                            now_us: now * 1000,
                            uptime_ms: 0,
                            memory: Memory { used: (now as usize % 3) << 15, heap: 1 << 20, ram: 1 << 26 },
                        };
                        let mut out = Vec::new();
                        let after = execute(&mut server, &mut client, &env, &request, &mut out);
                        assert_eq!(
                            reply_len(&out),
                            out.len(),
                            "one reply: {:?}",
                            String::from_utf8_lossy(&out)
                        );
                        if after == After::Close {
                            return;
                        }
                    }
                    used += n;
                }
                Ok(Parsed::Incomplete { need }) => {
                    assert!(need > buf.len() - used, "need {need} with {} buffered", buf.len() - used);
                    break;
                }
                Err(error) => {
                    assert!(error.message().starts_with("ERR Protocol error: "));
                    return;
                }
            }
        }
        buf.drain(..used);
    }
    // Whatever the commands did, the keyspace's own figures agree with it.
    assert!(server.db.volatile() <= server.db.len());
});

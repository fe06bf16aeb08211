//! httpd's code: built for the kernel target only (see main.rs).

extern crate alloc;

use alloc::vec::Vec;
use core::time::Duration;

use http::{Body, ByteRange, Method, ParseError};
use kernel::app::{self, AppResult, Args, TcpListener, TcpStream, println, timeout};

/// An embedded file, with what its responses say about it worked out at build time.
#[derive(Debug)]
struct File {
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    /// A strong entity-tag, quoted: a hash of the bytes.
    etag: &'static str,
    /// `modified` as an IMF-fixdate.
    last_modified: [u8; 29],
    /// Seconds since the epoch.
    modified: u64,
}

mod site {
    use super::File;
    include!(concat!(env!("OUT_DIR"), "/site.rs"));
}

/// Request heads longer than this get 431.
const MAX_HEAD: usize = 8 * 1024;
/// Bytes taken from the socket per read.
const READ_CHUNK: usize = 2048;
/// Pipelined response heads (and error bodies) are gathered up to this size before a
/// write; file bodies go out as they come.
const WRITE_BATCH: usize = 4 * 1024;
// A connection's memory at its worst: the request buffer (a head just short of
// `MAX_HEAD` plus a read), the response buffer (a batch plus one head, in a `Vec` that
// doubles: 8 KiB) and the task (read chunk, path scratch, state: under 4 KiB). The
// kernel's connection budget allows 24 KiB per connection for all of it.
const _: () = assert!(MAX_HEAD + READ_CHUNK + 2 * WRITE_BATCH + 4096 <= 24 * 1024);
/// An unwanted request body up to this size is read and dropped so that the connection
/// can stay open (as nginx discards bodies); a larger one closes the connection.
const MAX_DISCARD: u64 = 64 * 1024;
/// Responses go out in pieces this big, each under the send timeout: a slow reader that
/// keeps taking data is served, one that stops is dropped.
const SEND_PIECE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy)]
struct Config {
    port: u16,
    idle: Duration,
    header: Duration,
    send: Duration,
}

fn parse_args(args: &Args<'_>) -> Result<Config, alloc::string::String> {
    let ten = Duration::from_secs(10);
    let mut config = Config { port: 80, idle: ten, header: ten, send: ten };
    let seconds = |name: &str, v: &str| {
        v.parse().map(Duration::from_secs).map_err(|_| alloc::format!("bad {name} {v:?}"))
    };
    for arg in args.args() {
        match arg.split_once('=') {
            Some(("port", v)) => config.port = v.parse().map_err(|_| alloc::format!("bad port {v:?}"))?,
            Some(("idle", v)) => config.idle = seconds("idle", v)?,
            Some(("header", v)) => config.header = seconds("header", v)?,
            Some(("send", v)) => config.send = seconds("send", v)?,
            _ => {
                return Err(alloc::format!(
                    "unknown argument {arg:?} (known: port=N idle=SECONDS header=SECONDS send=SECONDS)"
                ));
            }
        }
    }
    Ok(config)
}

/// What a resolved site path names.
enum Found {
    File(&'static File),
    /// A directory asked for without its final `/`.
    Directory,
    Missing,
}

/// Looks a resolved path up: a path ending in `/` means that directory's `index.html`.
fn find(path: &str) -> Found {
    const INDEX: &str = "index.html";
    let named = |p: &str| match path.ends_with('/') {
        true => p.len() == path.len() + INDEX.len() && p.starts_with(path) && p.ends_with(INDEX),
        false => p == path,
    };
    match site::FILES.iter().find(|f| named(f.path)) {
        Some(file) => Found::File(file),
        None if site::DIRECTORIES.contains(&path) => Found::Directory,
        None => Found::Missing,
    }
}

// Response heads are written piece by piece rather than through `core::fmt`, which
// costs several times as much on a path taken for every request.

fn status_line(out: &mut Vec<u8>, status: u16) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(http::decimal(u64::from(status), &mut digits));
    out.push(b' ');
    out.extend_from_slice(http::reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: chameleon-httpd\r\nDate: ");
    out.extend_from_slice(&http::http_date(app::wall_clock().unwrap_or_default().as_secs()));
    out.extend_from_slice(b"\r\n");
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length` (if any), `Connection` and the empty line.
fn end_head(out: &mut Vec<u8>, content_length: Option<u64>, keep_alive: bool) {
    if let Some(len) = content_length {
        let mut digits = [0u8; 20];
        field(out, b"Content-Length", http::decimal(len, &mut digits));
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
}

/// `ETag` and `Last-Modified`, sent with 200, 206 and 304.
fn validators(out: &mut Vec<u8>, file: &File) {
    field(out, b"ETag", file.etag.as_bytes());
    field(out, b"Last-Modified", &file.last_modified);
}

/// A response with a short text body (`NNN Reason`); `fields` adds header fields. A
/// response to HEAD has the same head and no body.
fn error_with(
    out: &mut Vec<u8>,
    status: u16,
    keep_alive: bool,
    with_body: bool,
    fields: impl FnOnce(&mut Vec<u8>),
) {
    let reason = http::reason(status).as_bytes();
    status_line(out, status);
    field(out, b"Content-Type", b"text/plain; charset=utf-8");
    if status == 405 {
        field(out, b"Allow", b"GET, HEAD");
    }
    fields(out);
    end_head(out, Some(3 + 1 + reason.len() as u64 + 1), keep_alive);
    if with_body {
        let mut digits = [0u8; 20];
        out.extend_from_slice(http::decimal(u64::from(status), &mut digits));
        out.push(b' ');
        out.extend_from_slice(reason);
        out.push(b'\n');
    }
}

fn error(out: &mut Vec<u8>, status: u16, keep_alive: bool, with_body: bool) {
    error_with(out, status, keep_alive, with_body, |_| {});
}

/// What `respond` wrote into `out` (a head, and any short body), and what follows it.
struct Answer {
    /// Whether the connection stays open.
    open: bool,
    /// A file's body (or part of it), sent from where it is embedded rather than
    /// copied into `out`.
    body: &'static [u8],
    /// Bytes of the request's body to read and drop before the next request.
    discard: u64,
}

impl Answer {
    fn head_only(open: bool) -> Answer {
        Answer { open, body: &[], discard: 0 }
    }
}

/// Answers one parsed request into `out`. `scratch` holds the resolved path.
fn respond(req: &http::Request<'_>, out: &mut Vec<u8>, scratch: &mut [u8]) -> Answer {
    let keep_alive = req.keep_alive;
    let with_body = req.method != Method::Head;
    match (req.method, req.body) {
        (Method::Other, body) => {
            // The body is not wanted, and its bytes must never be taken for a request:
            // a small one of known length is read and dropped, anything else closes
            // the connection. A client expecting 100-continue may never send its body,
            // so that closes too.
            let discard = match body {
                Body::None => Some(0),
                Body::Length(n) if n <= MAX_DISCARD && !req.expect_continue => Some(n),
                Body::Length(_) | Body::Chunked => None,
            };
            let open = keep_alive && discard.is_some();
            error(out, 405, open, true);
            return Answer { open, body: &[], discard: discard.unwrap_or(0) };
        }
        (_, Body::None) => {}
        (_, Body::Length(_) | Body::Chunked) => {
            // A GET or HEAD with a body: content that has no meaning there (RFC 9110
            // §9.3.1), so it is refused and the connection closed rather than read.
            error(out, 413, false, with_body);
            return Answer::head_only(false);
        }
    }
    let Some(path) = http::resolve_path(req.path, scratch) else {
        error(out, 400, false, with_body);
        return Answer::head_only(false);
    };
    // Per request, so at trace: `log=debug` (the heap figures tests and the soak read)
    // must not put a console line on every request.
    log::trace!("httpd: {:?} {}", req.method, req.path);
    match find(path) {
        Found::File(file) => serve_file(req, file, out),
        Found::Directory => {
            error_with(out, 301, keep_alive, with_body, |out| {
                out.extend_from_slice(b"Location: ");
                http::encode_path(path, |piece| out.extend_from_slice(piece));
                out.push(b'/');
                if let Some(query) = req.query {
                    out.push(b'?');
                    out.extend_from_slice(query.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            });
            Answer::head_only(keep_alive)
        }
        Found::Missing => {
            error(out, 404, keep_alive, with_body);
            Answer::head_only(keep_alive)
        }
    }
}

/// A GET or HEAD of a file: 304 when the client's copy is current, else 200, or 206 /
/// 416 for a range of a GET.
fn serve_file(req: &http::Request<'_>, file: &'static File, out: &mut Vec<u8>) -> Answer {
    let keep_alive = req.keep_alive;
    let etag = file.etag.as_bytes();
    // RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since.
    let not_modified = match (req.if_none_match, req.if_modified_since) {
        (Some(tags), _) => http::if_none_match_hits(tags, etag),
        (None, Some(date)) => http::parse_http_date(date).is_some_and(|since| file.modified <= since),
        (None, None) => false,
    };
    if not_modified {
        // RFC 9110 §15.4.5: the validators, and no body or content fields.
        status_line(out, 304);
        validators(out, file);
        end_head(out, None, keep_alive);
        return Answer::head_only(keep_alive);
    }
    let len = file.body.len() as u64;
    // Ranges are defined for GET only, and If-Range that no longer holds asks for all.
    let range = match (req.method, req.range) {
        (Method::Get, Some(range))
            if req.if_range.is_none_or(|validator| http::if_range_holds(validator, etag, file.modified)) =>
        {
            http::byte_range(range, len)
        }
        _ => ByteRange::Whole,
    };
    let mut digits = [0u8; 20];
    match range {
        ByteRange::Part { first, last } => {
            let Some(part) = file.body.get(first as usize..=last as usize) else {
                error(out, 500, false, true);
                return Answer::head_only(false);
            };
            status_line(out, 206);
            field(out, b"Content-Type", file.content_type.as_bytes());
            out.extend_from_slice(b"Content-Range: bytes ");
            out.extend_from_slice(http::decimal(first, &mut digits));
            out.push(b'-');
            out.extend_from_slice(http::decimal(last, &mut digits));
            out.push(b'/');
            out.extend_from_slice(http::decimal(len, &mut digits));
            out.extend_from_slice(b"\r\n");
            validators(out, file);
            end_head(out, Some(part.len() as u64), keep_alive);
            Answer { open: keep_alive, body: part, discard: 0 }
        }
        ByteRange::Unsatisfiable => {
            error_with(out, 416, keep_alive, true, |out| {
                out.extend_from_slice(b"Content-Range: bytes */");
                out.extend_from_slice(http::decimal(len, &mut digits));
                out.extend_from_slice(b"\r\n");
            });
            Answer::head_only(keep_alive)
        }
        ByteRange::Whole => {
            status_line(out, 200);
            field(out, b"Content-Type", file.content_type.as_bytes());
            field(out, b"Accept-Ranges", b"bytes");
            validators(out, file);
            end_head(out, Some(len), keep_alive);
            let body = if req.method == Method::Get { file.body } else { &[] };
            Answer { open: keep_alive, body, discard: 0 }
        }
    }
}

/// Appends to the request buffer, whose capacity doubles as a `Vec`'s would but stops at
/// the most a head can need (the connection's memory stays within its budget).
fn append(buf: &mut Vec<u8>, data: &[u8]) {
    let needed = buf.len() + data.len();
    if needed > buf.capacity() {
        let capacity = (buf.capacity() * 2).clamp(needed, (MAX_HEAD + READ_CHUNK).max(needed));
        buf.reserve_exact(capacity - buf.len());
    }
    buf.extend_from_slice(data);
}

async fn serve(mut stream: TcpStream, config: Config) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; READ_CHUNK];
    // Zeroed once per connection, not per request.
    let mut scratch = [0u8; 1024];
    // Bytes of an unwanted request body still to drop.
    let mut discard: u64 = 0;
    // When the head (or discarded body) being received must be complete. Set when a
    // read has to wait for the rest, so a request that arrives whole reads no clock.
    let mut deadline: Option<Duration> = None;
    loop {
        // Answer every complete request already buffered (pipelining), in order.
        let mut open = true;
        loop {
            if discard > 0 {
                let dropped = discard.min(buf.len() as u64);
                buf.drain(..dropped as usize);
                discard -= dropped;
                if discard > 0 {
                    break;
                }
            }
            match http::parse(&buf, MAX_HEAD) {
                Ok((req, used)) => {
                    let answer = respond(&req, &mut out, &mut scratch);
                    buf.drain(..used);
                    deadline = None;
                    discard = answer.discard;
                    open = answer.open;
                    if !answer.body.is_empty() {
                        if stream.write_all_within(&out, SEND_PIECE, config.send).await.is_err()
                            || stream.write_all_within(answer.body, SEND_PIECE, config.send).await.is_err()
                        {
                            stream.abort();
                            return;
                        }
                        out.clear();
                    }
                    if !open || out.len() >= WRITE_BATCH {
                        break;
                    }
                }
                Err(ParseError::Incomplete) => break,
                Err(refused) => {
                    log::debug!("httpd: refused request: {refused:?}");
                    error(&mut out, refused.status().unwrap_or(400), false, true);
                    open = false;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all_within(&out, SEND_PIECE, config.send).await.is_err() {
                stream.abort();
                return;
            }
            out.clear();
        }
        if !open {
            stream.close().await;
            return;
        }
        if discard == 0 && http::parse(&buf, MAX_HEAD).is_ok() {
            continue;
        }
        let between_requests = discard == 0 && buf.is_empty();
        let read = if between_requests {
            timeout(config.idle, stream.read(&mut chunk)).await
        } else {
            let now = app::now();
            let until = *deadline.get_or_insert(now + config.header);
            timeout(until.saturating_sub(now), stream.read(&mut chunk)).await
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                let dropped = discard.min(n as u64) as usize;
                discard -= dropped as u64;
                if dropped > 0 && discard == 0 {
                    // The body is done: the next head gets a deadline of its own.
                    deadline = None;
                }
                append(&mut buf, &chunk[dropped..n]);
            }
            Err(_) if between_requests => {
                // Nothing was asked, so nothing is answered (an unsolicited 408 would
                // be taken as the response to a request the client sends meanwhile).
                stream.close().await;
                return;
            }
            Err(_) if discard > 0 => {
                log::debug!("httpd: request body not complete within {:?}", config.header);
                stream.close().await;
                return;
            }
            Err(_) => {
                log::debug!("httpd: request head not complete within {:?}", config.header);
                error(&mut out, 408, false, true);
                if stream.write_all_within(&out, SEND_PIECE, config.send).await.is_ok() {
                    stream.close().await;
                }
                return;
            }
        }
    }
}

fn main(args: &Args<'_>) -> AppResult {
    let config = parse_args(args)?;
    app::block_on(async move {
        let mut listener = TcpListener::bind(config.port).map_err(|e| alloc::format!("httpd: {e}"))?;
        println!(
            "httpd: listening on port {} ({} files, backlog {})",
            config.port,
            site::FILES.len(),
            listener.backlog()
        );
        loop {
            match listener.accept().await {
                Ok(stream) => app::spawn(serve(stream, config)),
                Err(e) => return Err(alloc::format!("httpd: accept: {e}").into()),
            }
        }
    })
}

kernel::app!(main);

//! httpd: serves the files embedded at build time over HTTP/1.1 on port 80, with
//! keep-alive and pipelining.
//!
//! Arguments (after ` -- `): `port=N` (default 80), `idle=SECONDS` (default 10): a
//! connection idle that long gets 408 and is closed.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::time::Duration;

use http::{Method, ParseError};
use kernel::app::{AppResult, Args};
use kernel::executor::{self, timeout};
use kernel::net::{TcpListener, TcpStream};
use kernel::println;

mod site {
    include!(concat!(env!("OUT_DIR"), "/site.rs"));
}

/// Request heads longer than this get 431.
const MAX_HEAD: usize = 8 * 1024;
/// Pipelined response heads (and error bodies) are gathered up to this size before a
/// write; file bodies go out as they come.
const WRITE_BATCH: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
struct Config {
    port: u16,
    idle: Duration,
}

fn parse_args(args: &Args<'_>) -> Result<Config, alloc::string::String> {
    let mut config = Config { port: 80, idle: Duration::from_secs(10) };
    for arg in args.args() {
        match arg.split_once('=') {
            Some(("port", v)) => config.port = v.parse().map_err(|_| alloc::format!("bad port {v:?}"))?,
            Some(("idle", v)) => {
                config.idle = Duration::from_secs(v.parse().map_err(|_| alloc::format!("bad idle {v:?}"))?)
            }
            _ => return Err(alloc::format!("unknown argument {arg:?} (known: port=N idle=SECONDS)")),
        }
    }
    Ok(config)
}

/// The embedded file for a decoded path (a directory path means its `index.html`), and
/// its content type.
fn find(path: &str) -> Option<(&'static [u8], &'static str)> {
    const INDEX: &str = "index.html";
    let names = |p: &str| match path.ends_with('/') {
        true => p.len() == path.len() + INDEX.len() && p.starts_with(path) && p.ends_with(INDEX),
        false => p == path,
    };
    site::FILES.iter().find(|(p, _)| names(p)).map(|(p, body)| (*body, http::content_type(p)))
}

/// Appends a response head. Written piece by piece rather than through `core::fmt`,
/// which costs several times as much on a path taken for every request.
fn head(out: &mut Vec<u8>, status: u16, content_type: &str, len: usize, keep_alive: bool) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(http::decimal(u64::from(status), &mut digits));
    out.push(b' ');
    out.extend_from_slice(http::reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: chameleon-httpd\r\nDate: ");
    out.extend_from_slice(&http::http_date(kernel::time::wall_clock_ns() / 1_000_000_000));
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(http::decimal(len as u64, &mut digits));
    out.extend_from_slice(if keep_alive {
        b"\r\nConnection: keep-alive\r\n"
    } else {
        b"\r\nConnection: close\r\n"
    });
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// An error response with a short text body.
fn error(out: &mut Vec<u8>, status: u16, keep_alive: bool) {
    let body = alloc::format!("{status} {}\n", http::reason(status));
    head(out, status, "text/plain; charset=utf-8", body.len(), keep_alive);
    out.extend_from_slice(body.as_bytes());
}

/// What `respond` wrote into `out` (a head, and any short body), and what follows it.
struct Answer {
    /// Whether the connection stays open.
    open: bool,
    /// A file's body, sent from where it is embedded rather than copied into `out`.
    body: &'static [u8],
}

/// Answers one parsed request into `out`. `decoded` is scratch for the path.
fn respond(req: &http::Request<'_>, out: &mut Vec<u8>, decoded: &mut [u8]) -> Answer {
    let keep_alive = req.keep_alive;
    if req.method == Method::Other {
        error(out, 405, keep_alive);
        return Answer { open: keep_alive, body: &[] };
    }
    if req.body != http::Body::None {
        // A GET or HEAD with a body: refuse, and close (the body is not read).
        error(out, 413, false);
        return Answer { open: false, body: &[] };
    }
    let file = match http::resolve_path(req.path, decoded) {
        Some(path) => find(path),
        None => {
            error(out, 400, false);
            return Answer { open: false, body: &[] };
        }
    };
    log::debug!("httpd: {:?} {}", req.method, req.path);
    match file {
        Some((body, content_type)) => {
            head(out, 200, content_type, body.len(), keep_alive);
            let body = if req.method == Method::Get { body } else { &[] };
            Answer { open: keep_alive, body }
        }
        None => {
            error(out, 404, keep_alive);
            Answer { open: keep_alive, body: &[] }
        }
    }
}

async fn serve(mut stream: TcpStream, idle: Duration) {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 2048];
    // Zeroed once per connection, not per request.
    let mut decoded = [0u8; 1024];
    loop {
        // Answer every complete request already buffered (pipelining), in order.
        let mut open = true;
        loop {
            match http::parse(&buf, MAX_HEAD) {
                Ok((req, used)) => {
                    let answer = respond(&req, &mut out, &mut decoded);
                    buf.drain(..used);
                    open = answer.open;
                    if !answer.body.is_empty() {
                        if stream.write_all(&out).await.is_err()
                            || stream.write_all(answer.body).await.is_err()
                        {
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
                    error(&mut out, refused.status().unwrap_or(400), false);
                    open = false;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if !open {
            stream.close().await;
            return;
        }
        if http::parse(&buf, MAX_HEAD).is_ok() {
            continue;
        }
        match timeout(idle, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                error(&mut out, 408, false);
                let _ = stream.write_all(&out).await;
                stream.close().await;
                return;
            }
        }
    }
}

fn main(args: &Args<'_>) -> AppResult {
    let config = parse_args(args)?;
    executor::block_on(async move {
        let mut listener = TcpListener::bind(config.port).map_err(|e| alloc::format!("httpd: {e}"))?;
        println!(
            "httpd: listening on port {} ({} files, backlog {})",
            config.port,
            site::FILES.len(),
            listener.backlog()
        );
        loop {
            match listener.accept().await {
                Ok(stream) => executor::spawn(serve(stream, config.idle)),
                Err(e) => return Err(alloc::format!("httpd: accept: {e}").into()),
            }
        }
    })
}

kernel::app!(main);

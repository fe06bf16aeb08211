//! httpd: serves the files embedded at build time over HTTP/1.1 on port 80, with
//! keep-alive, pipelining, byte ranges and conditional requests.
//!
//! Arguments (after ` -- `), times in seconds, each 10 by default:
//! - `port=N` (default 80);
//! - `idle=SECONDS`: a connection with no byte of a next request that long is closed,
//!   without a response;
//! - `header=SECONDS`: a request head must be complete that long after its first byte,
//!   else 408 and close (nginx's `client_header_timeout`);
//! - `send=SECONDS`: a client that takes no response data that long is dropped
//!   (nginx's `send_timeout`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

// An app runs only as a kernel image (x86_64-unknown-none). On the host, where
// `cargo test --workspace` builds every workspace member, it is an empty program and the
// kernel crate is empty too.
#[cfg(target_os = "none")]
mod app;

#[cfg(not(target_os = "none"))]
fn main() {}

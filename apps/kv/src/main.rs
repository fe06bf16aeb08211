//! kv: a Redis-compatible key-value server on port 6379 (RESP2), for redis-cli,
//! redis-benchmark and client libraries as they are.
//!
//! Arguments (after ` -- `):
//! - `port=N` (default 6379);
//! - `maxmemory=BYTES` (units `kb`, `mb`, `gb` as Redis takes them; default half of the
//!   memory free at start): writes beyond it get `-OOM`;
//! - `timeout=SECONDS`: a client silent that long is disconnected (default 0: never);
//! - `send=SECONDS`: a client that takes no reply data that long is dropped (default 10).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

// Like every app, an empty program on the host; the library (lib.rs) is what the host
// tests.
#[cfg(target_os = "none")]
mod app;

#[cfg(not(target_os = "none"))]
fn main() {}

//! kv's protocol, store and commands: a Redis-compatible key-value server without the
//! network, so that all of it is tested on the host (`cargo test -p kv`) and fuzzed. The
//! app (`app.rs`, built for the kernel only) feeds it bytes from connections.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod commands;
pub mod glob;
pub mod list;
pub mod reply;
pub mod resp;
pub mod server;
pub mod store;

#[cfg(test)]
mod tests;

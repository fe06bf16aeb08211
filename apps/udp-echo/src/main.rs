//! udp-echo: sends every datagram on port 7 back to its sender. Arguments (after
//! ` -- `): `port=N`, once per port to echo on instead of 7; `count=N` exits 0 after N
//! datagrams, for tests.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

// An app runs only as a kernel image (x86_64-unknown-none). On the host, where
// `cargo test --workspace` builds every workspace member, it is an empty program and the
// kernel crate is empty too.
#[cfg(target_os = "none")]
mod app;

#[cfg(not(target_os = "none"))]
fn main() {}

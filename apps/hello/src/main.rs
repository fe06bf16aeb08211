//! hello: prints what the kernel found at boot, then exits 0.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

// An app runs only as a kernel image (x86_64-unknown-none). On the host, where
// `cargo test --workspace` builds every workspace member, it is an empty program and the
// kernel crate is empty too.
#[cfg(target_os = "none")]
mod app;

#[cfg(not(target_os = "none"))]
fn main() {}

//! The Chameleon kernel.
//!
//! All of the kernel's `unsafe` lives in this crate, most of it under `arch/`; drivers,
//! the boot-info parsers, the frame allocator and the apps are `unsafe`-free crates.
//! An app is a binary crate that calls [`app!`] with its entry function and uses the
//! kernel through [`app`](mod@app) alone; the kernel boots, then calls it and exits with its
//! result.
// The kernel only exists for the bare-metal target. On the host, where
// `cargo test --workspace` builds every member, the crate is empty (and the apps are
// empty programs, see apps/hello/src/main.rs).
#![cfg(target_os = "none")]
#![no_std]

extern crate alloc;

pub mod app;
mod arch;
mod boot;
// Public only because `println!` expands to `$crate::console::_print`; apps print
// through `app::println!`.
#[doc(hidden)]
pub mod console;
mod dma;
mod executor;
mod exit;
mod interrupts;
mod logger;
mod memory;
mod net;
mod panic;
mod pci;
mod selftest;
mod time;
mod traps;

/// The heap's current figures.
pub(crate) fn heap_stats() -> memory::HeapStats {
    memory::heap_stats()
}

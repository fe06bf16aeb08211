//! The Chameleon kernel.
//!
//! All of the kernel's `unsafe` lives in this crate, most of it under `arch/`; drivers,
//! the boot-info parsers, the frame allocator and the apps are `unsafe`-free crates.
//! An app is a binary crate that calls [`app!`] with its entry function; the kernel boots,
//! then calls it and exits with its result.
#![no_std]

extern crate alloc;

pub mod app;
mod arch;
mod boot;
pub mod console;
mod dma;
pub mod executor;
mod exit;
mod interrupts;
mod logger;
mod memory;
pub mod net;
mod panic;
mod pci;
mod selftest;
pub mod time;
mod traps;

pub use exit::ExitCode;
pub use memory::HeapStats;

/// The heap's current figures.
pub fn heap_stats() -> HeapStats {
    memory::heap_stats()
}

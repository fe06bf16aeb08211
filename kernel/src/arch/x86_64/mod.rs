//! x86_64: entry, descriptor tables, exceptions, paging and the privileged instructions.

pub mod backtrace;
pub mod claims;
pub mod cpu;
pub mod entry;
pub mod gdt;
pub mod idt;
pub mod mmio;
pub mod paging;
pub mod port;

//! Paravirtualization support.
//!
//! Today: which hypervisor the kernel runs under, decided by a pure function over a
//! [`Cpuid`] source so host tests can replay recorded CPUID leaves.
#![no_std]
#![forbid(unsafe_code)]

pub mod detect;

/// Executes CPUID (the kernel) or replays recorded leaves (tests).
pub trait Cpuid {
    /// `[eax, ebx, ecx, edx]` for `leaf`/`subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
}

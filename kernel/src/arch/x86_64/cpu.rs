//! The CPU operations the kernel uses, reached through the pv-ops table (or its patched
//! call sites) so that each hypervisor backend can supply its own.

use core::arch::asm;

use pv::ops::CpuidResult;
use pv::site;
use pv::table::ops;

pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    (ops().cpu.cpuid)(leaf, subleaf)
}

pub fn read_cr2() -> u64 {
    (ops().cpu.read_cr2)()
}

pub fn read_cr3() -> u64 {
    (ops().cpu.read_cr3)()
}

/// Switches to the page tables rooted at physical `pml4`.
///
/// # Safety
/// The tables must map the running code, its stack and every live reference.
pub unsafe fn write_cr3(pml4: u64) {
    // SAFETY: the caller guarantees the new tables keep everything in use mapped.
    unsafe { (ops().mmu.switch_address_space)(pml4) };
}

pub fn invlpg(addr: u64) {
    site::flush_tlb_one(addr);
}

const MSR_EFER: u32 = 0xc000_0080;
const EFER_NXE: u64 = 1 << 11;

/// Whether the CPU has no-execute page protection.
pub fn has_nx() -> bool {
    cpuid(0x8000_0000, 0).eax >= 0x8000_0001 && cpuid(0x8000_0001, 0).edx & (1 << 20) != 0
}

/// Turns on no-execute page protection if the CPU has it; returns whether it did.
pub fn enable_nx() -> bool {
    if !has_nx() {
        return false;
    }
    let cpu = ops().cpu;
    // SAFETY: EFER exists on every x86_64 CPU; NXE only makes the NX bit in page-table
    // entries meaningful, and no entry in use has it set yet.
    unsafe { (cpu.wrmsr)(MSR_EFER, (cpu.rdmsr)(MSR_EFER) | EFER_NXE) };
    true
}

pub fn disable_interrupts() {
    site::irq_disable();
}

/// Halts forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        site::irq_disable();
        (ops().irq.halt)();
    }
}

/// The frame pointer of the caller's frame.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp;
    // SAFETY: reading RBP has no side effects.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The CPU's brand string, for the boot banner.
pub fn brand(buf: &mut [u8; 48]) -> &str {
    if cpuid(0x8000_0000, 0).eax < 0x8000_0004 {
        return "unknown CPU";
    }
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let r = cpuid(leaf, 0);
        for (j, reg) in [r.eax, r.ebx, r.ecx, r.edx].into_iter().enumerate() {
            buf[i * 16 + j * 4..][..4].copy_from_slice(&reg.to_le_bytes());
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(48);
    core::str::from_utf8(&buf[..end]).map(str::trim).unwrap_or("unknown CPU")
}

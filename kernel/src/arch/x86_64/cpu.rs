//! Thin wrappers over the privileged instructions the kernel uses.
//!
//! (The pv-ops issue routes the hot ones through a patchable table; until then they are
//! the native instructions.)

use core::arch::asm;
use core::arch::x86_64::CpuidResult;

pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; CR4.TSD is clear (ring 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Switches to the page tables rooted at physical `pml4`.
///
/// # Safety
/// The tables must map the running code, its stack and every live reference.
pub unsafe fn write_cr3(pml4: u64) {
    // SAFETY: the caller guarantees the new tables keep everything in use mapped.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) };
}

pub fn invlpg(addr: u64) {
    // SAFETY: dropping a TLB entry only makes the CPU re-read the page tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: callers read only architectural MSRs that exist on every x86_64 CPU.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// # Safety
/// Writing an MSR can change how the CPU runs everything; the caller knows the effect.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR and value.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

pub const MSR_EFER: u32 = 0xc000_0080;
const EFER_NXE: u64 = 1 << 11;

/// Turns on no-execute page protection if the CPU has it; returns whether it did.
pub fn enable_nx() -> bool {
    let ext = cpuid(0x8000_0000, 0).eax;
    if ext < 0x8000_0001 || cpuid(0x8000_0001, 0).edx & (1 << 20) == 0 {
        return false;
    }
    // SAFETY: NXE only makes the NX bit in page-table entries meaningful; no entry in
    // use has it set yet.
    unsafe { wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE) };
    true
}

pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Halts forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        // SAFETY: HLT with interrupts masked just stops this CPU.
        unsafe { asm!("hlt", options(nomem, nostack)) };
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

/// A CPU's vendor, family/model and brand string, for the boot banner.
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

/// CPUID on this CPU, for the detection code in `pv`.
#[derive(Debug)]
pub struct NativeCpuid;

impl pv::Cpuid for NativeCpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = cpuid(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }
}

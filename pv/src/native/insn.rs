//! The privileged instructions other native pieces (the local APIC, the TSC clock) and
//! the hypervisor backends also use: CPUID, MSR and port accesses. Each is the native
//! backend's op of the same name.

use core::arch::asm;

use crate::ops::CpuidResult;

pub(crate) extern "C" fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult { eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx }
}

pub(crate) unsafe extern "C" fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller reads an MSR that exists (the op's contract); RDMSR has no
    // memory effects.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

pub(crate) unsafe extern "C" fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR and its value (the op's contract).
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

macro_rules! port_io {
    ($in:ident, $out:ident, $t:ty, $reg:tt) => {
        pub(crate) unsafe extern "C" fn $in(port: u16) -> $t {
            let v: $t;
            // SAFETY: the caller drives the device behind the port and vouches for the
            // access (the op's contract).
            unsafe { asm!(concat!("in ", $reg, ", dx"), in("dx") port, out($reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        pub(crate) unsafe extern "C" fn $out(port: u16, value: $t) {
            // SAFETY: as for the read.
            unsafe { asm!(concat!("out dx, ", $reg), in("dx") port, in($reg) value, options(nomem, nostack, preserves_flags)) };
        }
    };
}
port_io!(inb, outb, u8, "al");
port_io!(inw, outw, u16, "ax");
port_io!(inl, outl, u32, "eax");

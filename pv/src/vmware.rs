//! The VMware backend: the TSC rate from CPUID 0x40000010 or the backdoor's GETHZ, port
//! delays dropped (VMware's virtual devices need none); native for the rest.

use crate::clock::TscSource;
use crate::detect::VMWARE_MAGIC;
use crate::ops::{IoOps, PvOps};
use crate::{native, tsc};

const PORT: u16 = 0x5658;
const CMD_GETHZ: u32 = 45;

/// One backdoor call: `in eax, dx` with the magic in EAX, the command in ECX and the
/// port in DX; the answer is in EAX, EBX, ECX, EDX.
pub fn backdoor(cmd: u32) -> [u32; 4] {
    let (eax, ecx, edx): (u32, u32, u32);
    let ebx_wide: u64;
    // SAFETY: an `in` from the backdoor port touches no memory; with nothing behind the
    // port it reads all ones. RBX is saved around the call (LLVM reserves it).
    unsafe {
        core::arch::asm!(
            "xchg {b:r}, rbx",
            "in eax, dx",
            "xchg {b:r}, rbx",
            b = inout(reg) u64::from(u32::MAX) => ebx_wide,
            inout("eax") VMWARE_MAGIC => eax,
            inout("ecx") cmd => ecx,
            inout("edx") u32::from(PORT) => edx,
            options(nomem, nostack),
        )
    };
    let ebx = ebx_wide as u32;
    [eax, ebx, ecx, edx]
}

extern "C" fn no_io_delay() {}

/// Sets the TSC rate and returns the backend's table. `hv_max_leaf` is the highest
/// hypervisor leaf CPUID reports (0 when VMware hides its leaves).
pub fn init(hv_max_leaf: u32) -> PvOps {
    let [lo, hi, _, _] = backdoor(CMD_GETHZ);
    let hz = (u64::from(hi) << 32) | u64::from(lo);
    if hv_max_leaf < 0x4000_0010 && hi != u32::MAX && hz >= 1_000_000 {
        tsc::set_khz(hz / 1000, TscSource::VmwareBackdoor);
    } else {
        // The timing leaf (when shown), then the generic chain.
        tsc::calibrate(hv_max_leaf);
    }
    PvOps { io: IoOps { io_delay: no_io_delay, ..native::OPS.io }, ..native::OPS }
}

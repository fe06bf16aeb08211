//! The VMware backend: the TSC rate from CPUID 0x40000010 or the backdoor's GETHZ, port
//! delays dropped (VMware's virtual devices need none); native for the rest.

use crate::backend::{Backend, Claim, Probe, Started};
use crate::clock::TscSource;
use crate::cpuid::Vendor;
use crate::native::{self, tsc};
use crate::ops::{IoOps, PvOps};

/// The backdoor's magic ("VMXh") and port.
pub const MAGIC: u32 = 0x564d_5868;
const PORT: u16 = 0x5658;
const CMD_GETVERSION: u32 = 10;
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
            inout("eax") MAGIC => eax,
            inout("ecx") cmd => ecx,
            inout("edx") u32::from(PORT) => edx,
            options(nomem, nostack),
        )
    };
    let ebx = ebx_wide as u32;
    [eax, ebx, ecx, edx]
}

extern "C" fn no_io_delay() {}

fn backdoor_answers(probe: &Probe<'_>) -> bool {
    let [version, magic, _, _] = probe.platform.vmware_backdoor(CMD_GETVERSION);
    magic == MAGIC && version != u32::MAX
}

/// VMware's signature; or, since VMware can hide its CPUID leaves, the backdoor behind an
/// unknown signature. A known signature (KVM, TCG, ...) wins over the backdoor, which
/// QEMU also emulates, unless `pv=vmware` asks for it. Bare metal never trusts the port.
fn claim(probe: &Probe<'_>) -> Claim {
    match probe.hypervisor {
        Some(h) if h.vendor == Vendor::VMware => Ok(20),
        Some(h) if (probe.forced || matches!(h.vendor, Vendor::Unknown(_))) && backdoor_answers(probe) => {
            Ok(10)
        }
        Some(_) if probe.forced => Err("the VMware backdoor (I/O port 0x5658) does not answer"),
        Some(_) => Err("no VMware signature, and another hypervisor's signature is present"),
        None => Err("no hypervisor present"),
    }
}

/// Sets the TSC rate and returns the backend's table.
fn start(probe: &Probe<'_>) -> Result<Started, &'static str> {
    // The highest hypervisor leaf CPUID reports (0 when VMware hides its leaves).
    let hv_max_leaf = probe.hypervisor.map_or(0, |h| h.max_leaf);
    let [lo, hi, _, _] = backdoor(CMD_GETHZ);
    let hz = (u64::from(hi) << 32) | u64::from(lo);
    if hv_max_leaf < 0x4000_0010 && hi != u32::MAX && hz >= 1_000_000 {
        tsc::set_khz(hz / 1000, TscSource::VmwareBackdoor);
    } else {
        // The timing leaf (when shown), then the generic chain.
        tsc::calibrate(hv_max_leaf);
    }
    Ok(Started::with(PvOps { io: IoOps { io_delay: no_io_delay, ..native::OPS.io }, ..native::OPS }))
}

pub const BACKEND: Backend = Backend {
    vendor: Some(Vendor::VMware),
    hypervisor_name: Some("vmware"),
    ..Backend::new("vmware", claim, start)
};

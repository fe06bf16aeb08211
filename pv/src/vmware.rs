//! The VMware backend: the TSC rate from CPUID 0x40000010 or the backdoor's GETHZ, the
//! wall clock from the backdoor's GETTIMEFULL (the host's time to the microsecond, where
//! the CMOS clock has seconds and may keep local time), port delays dropped (VMware's
//! virtual devices need none); native for the rest.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::backend::{Backend, Claim, Probe, Started};
use crate::clock::TscSource;
use crate::cpuid::Vendor;
use crate::native::{self, tsc};
use crate::ops::{IoOps, PvOps, TimeOps};

/// The backdoor's magic ("VMXh") and port.
pub const MAGIC: u32 = 0x564d_5868;
const PORT: u16 = 0x5658;
const CMD_GETVERSION: u32 = 10;
const CMD_GETHZ: u32 = 45;
const CMD_GETTIMEFULL: u32 = 46;

/// The registers a backdoor call leaves: EAX, EBX, ECX, EDX, ESI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub esi: u32,
}

/// One backdoor call: `in eax, dx` with the magic in EAX, the command in ECX, the port
/// in DX, and `ebx`, `esi` as given (a command that does not answer may leave them).
fn call(cmd: u32, ebx: u32, esi: u32) -> Answer {
    let (eax, ecx, edx, esi_out): (u32, u32, u32, u32);
    let ebx_wide: u64;
    // SAFETY: an `in` from the backdoor port touches no memory; with nothing behind the
    // port it reads all ones. RBX is saved around the call (LLVM reserves it).
    unsafe {
        core::arch::asm!(
            "xchg {b:r}, rbx",
            "in eax, dx",
            "xchg {b:r}, rbx",
            b = inout(reg) u64::from(ebx) => ebx_wide,
            inout("eax") MAGIC => eax,
            inout("ecx") cmd => ecx,
            inout("edx") u32::from(PORT) => edx,
            inout("esi") esi => esi_out,
            options(nomem, nostack),
        )
    };
    Answer { eax, ebx: ebx_wide as u32, ecx, edx, esi: esi_out }
}

/// One backdoor call with EBX all ones: EAX, EBX, ECX, EDX.
pub fn backdoor(cmd: u32) -> [u32; 4] {
    let a = call(cmd, u32::MAX, 0);
    [a.eax, a.ebx, a.ecx, a.edx]
}

/// The host's time from a GETTIMEFULL answer, in nanoseconds since the Unix epoch:
/// seconds in ESI:EDX, microseconds in EBX (ECX is the largest lag the host allows).
/// VMware leaves EAX at the magic when it answers (open-vm-tools checks that); QEMU's
/// port also leaves every register as it was for a command it does not implement, so
/// EBX goes in all ones and an answer must bring it below a million.
pub fn host_time_ns(a: Answer) -> Option<u64> {
    let seconds = (u64::from(a.esi) << 32) | u64::from(a.edx);
    let valid = a.eax == MAGIC && a.ebx < 1_000_000 && seconds != 0;
    valid.then(|| seconds.checked_mul(1_000_000_000)?.checked_add(u64::from(a.ebx) * 1000)).flatten()
}

/// Wall-clock time at the clock's zero, from GETTIMEFULL at start (0: not answered).
static WALL_BASE_NS: AtomicU64 = AtomicU64::new(0);

extern "C" fn wall_clock_base_ns() -> u64 {
    WALL_BASE_NS.load(Ordering::Relaxed)
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
    let io = IoOps { io_delay: no_io_delay, ..native::OPS.io };
    // Read once against the clock just started: the TSC keeps the time from there.
    let Some(now_ns) = host_time_ns(call(CMD_GETTIMEFULL, u32::MAX, 0)) else {
        // The CMOS clock then, as native reads it.
        return Ok(Started::with(PvOps { io, ..native::OPS }));
    };
    WALL_BASE_NS.store(now_ns.saturating_sub(tsc::monotonic_ns()), Ordering::Relaxed);
    let time = TimeOps { wall_clock_base_ns, ..native::OPS.time };
    Ok(Started { wall_clock: Some("vmware GETTIMEFULL"), ..Started::with(PvOps { io, time, ..native::OPS }) })
}

pub const BACKEND: Backend = Backend {
    vendor: Some(Vendor::VMware),
    hypervisor_name: Some("vmware"),
    ..Backend::new("vmware", claim, start)
};

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(eax: u32, ebx: u32, edx: u32, esi: u32) -> Answer {
        Answer { eax, ebx, ecx: 1_000_000, edx, esi }
    }

    #[test]
    fn gettimefull_answers() {
        // 2026-11-30 19:00:00.250000 UTC: 1796065200 s.
        assert_eq!(host_time_ns(answer(MAGIC, 250_000, 1_796_065_200, 0)), Some(1_796_065_200_250_000_000));
        // Past 2106: the high word of the seconds.
        assert_eq!(host_time_ns(answer(MAGIC, 0, 5, 1)), Some(((1 << 32) + 5) * 1_000_000_000));
    }

    #[test]
    fn gettimefull_refusals() {
        // VMware's error: EAX changed.
        assert_eq!(host_time_ns(answer(u32::MAX, 0, 1_796_065_200, 0)), None);
        // A port that does not implement the command leaves EBX as it went in.
        assert_eq!(host_time_ns(answer(MAGIC, u32::MAX, 0, 0)), None);
        assert_eq!(host_time_ns(answer(MAGIC, 1_000_000, 1_796_065_200, 0)), None);
        assert_eq!(host_time_ns(answer(MAGIC, 0, 0, 0)), None, "no seconds");
        // Seconds too large for nanoseconds in 64 bits.
        assert_eq!(host_time_ns(answer(MAGIC, 0, u32::MAX, u32::MAX)), None);
    }
}

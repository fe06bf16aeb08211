//! The KVM backend: kvmclock (pvclock through `MSR_KVM_SYSTEM_TIME_NEW`) for time and
//! the TSC rate, the kvmclock wall clock, PV EOI and steal time, and the REALTIME hint
//! (which lets the idle loop poll); native for the rest (KVM's idle is the native `hlt`,
//! which exits to the host).

use core::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{Backend, Claim, Probe, Started};
use crate::cpuid::Vendor;
use crate::native::{self, apic, tsc};
use crate::ops::{ApicOps, PvOps, TimeOps};
use crate::pvclock::{self, HostShared};

const MSR_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
const MSR_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
const MSR_STEAL_TIME: u32 = 0x4b56_4d03;
const MSR_PV_EOI_EN: u32 = 0x4b56_4d04;

pub const FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
pub const FEATURE_STEAL_TIME: u32 = 1 << 5;
pub const FEATURE_PV_EOI: u32 = 1 << 6;
/// In the feature leaf's EDX: vCPUs are never preempted for long (the host pins them).
pub const HINT_REALTIME: u32 = 1 << 0;

static SYSTEM_TIME: HostShared<32> = HostShared::new();
static WALL_CLOCK: HostShared<16> = HostShared::new();
static STEAL: HostShared<64> = HostShared::new();
static PV_EOI_WORD: HostShared<4> = HostShared::new();
static STEAL_ON: AtomicBool = AtomicBool::new(false);

extern "C" fn monotonic_ns() -> u64 {
    pvclock::read_ns(&SYSTEM_TIME, 0)
}

extern "C" fn tsc_khz() -> u64 {
    pvclock::record(&SYSTEM_TIME, 0).tsc_khz()
}

static WALL_BASE_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

extern "C" fn wall_clock_base_ns() -> u64 {
    WALL_BASE_NS.load(Ordering::Relaxed)
}

/// PV EOI: if the host flagged that this interrupt needs no EOI, clear the flag and
/// skip the APIC write (one `btr`, as the ABI requires); else do the native EOI.
extern "C" fn pv_eoi() {
    let was_set: u8;
    // SAFETY: the word is ours, registered with the host; BTR clears bit 0 in one
    // instruction so a host update cannot slip in between test and clear.
    unsafe {
        core::arch::asm!("btr dword ptr [{}], 0", "setc {}", in(reg) PV_EOI_WORD.addr(), out(reg_byte) was_set, options(nostack))
    };
    if was_set == 0 {
        apic::eoi();
    }
}

/// Nanoseconds this vCPU was ready but not running (0 unless the host reports it).
extern "C" fn steal_ns() -> u64 {
    if !STEAL_ON.load(Ordering::Relaxed) {
        return 0;
    }
    STEAL.read_versioned(8, |s| s.read_u64(0))
}

/// KVM's signature, with its range reaching the feature leaf.
fn claim(probe: &Probe<'_>) -> Claim {
    let hv = probe.hypervisor.filter(|h| h.vendor == Vendor::Kvm).ok_or("no KVM signature in CPUID")?;
    if hv.max_leaf < hv.base + 1 {
        return Err("KVM's CPUID range ends before its feature leaf");
    }
    Ok(20)
}

/// Registers the shared pages with the host and returns the backend's table.
fn start(probe: &Probe<'_>) -> Result<Started, &'static str> {
    // Leaf base+1: EAX the feature bits, EDX the hints.
    let features = probe.hypervisor.map_or(0, |h| h.features[0]);
    let hints = probe.hypervisor.map_or(0, |h| h.features[3]);
    if features & FEATURE_CLOCKSOURCE2 == 0 {
        return Err("KVM without kvmclock (CLOCKSOURCE2)");
    }
    let wrmsr = native::wrmsr;
    // SAFETY: KVM's CPUID says these MSRs exist; each takes the physical address of a
    // buffer reserved for the host (identity-mapped, so its address) with bit 0 = enable.
    unsafe {
        wrmsr(MSR_SYSTEM_TIME_NEW, SYSTEM_TIME.addr() | 1);
        wrmsr(MSR_WALL_CLOCK_NEW, WALL_CLOCK.addr());
        if features & FEATURE_STEAL_TIME != 0 {
            wrmsr(MSR_STEAL_TIME, STEAL.addr() | 1);
            STEAL_ON.store(true, Ordering::Relaxed);
        }
        if features & FEATURE_PV_EOI != 0 {
            wrmsr(MSR_PV_EOI_EN, PV_EOI_WORD.addr() | 1);
        }
    }
    // Wall time at kvmclock zero, under the same version rule.
    let wall =
        WALL_CLOCK.read_versioned(0, |w| u64::from(w.read_u32(4)) * 1_000_000_000 + u64::from(w.read_u32(8)));
    WALL_BASE_NS.store(wall, Ordering::Relaxed);
    tsc::set_khz(pvclock::record(&SYSTEM_TIME, 0).tsc_khz(), crate::clock::TscSource::Pvclock);
    let eoi = if features & FEATURE_PV_EOI != 0 { pv_eoi as extern "C" fn() } else { apic::eoi };
    Ok(Started {
        dedicated_cpu: hints & HINT_REALTIME != 0,
        ..Started::with(PvOps {
            time: TimeOps { monotonic_ns, tsc_khz, wall_clock_base_ns, steal_ns },
            apic: ApicOps { eoi, ..native::OPS.apic },
            ..native::OPS
        })
    })
}

pub const BACKEND: Backend = Backend { vendor: Some(Vendor::Kvm), ..Backend::new("kvm", claim, start) };

//! A monotonic clock from the TSC.
//!
//! The TSC rate comes from the first source that answers: CPUID 0x15 (crystal ratio),
//! CPUID 0x16 (base MHz), then a 2 ms measurement against PIT channel 2. The pv-ops
//! issue adds the paravirtual clocks (kvmclock, Xen pvclock, VMware) ahead of these.

use core::sync::atomic::{AtomicU64, Ordering};
use drivers::Registers;

use crate::arch::cpu::{cpuid, rdtsc};
use crate::arch::port::PortRange;

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);

/// Where the TSC rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    CpuidCrystal,
    CpuidBaseFrequency,
    Pit,
    /// Nothing answered; 1 GHz is assumed so timestamps still advance.
    Assumed,
}

const PIT_HZ: u64 = 1_193_182;
const PIT_CALIBRATION_TICKS: u16 = 2_386; // 2 ms

fn from_cpuid() -> Option<(u64, TscSource)> {
    let max = cpuid(0, 0).eax;
    if max >= 0x15 {
        let r = cpuid(0x15, 0);
        if r.eax != 0 && r.ebx != 0 && r.ecx != 0 {
            return Some((
                u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax) / 1000,
                TscSource::CpuidCrystal,
            ));
        }
    }
    if max >= 0x16 {
        let mhz = cpuid(0x16, 0).eax & 0xffff;
        if mhz != 0 {
            return Some((u64::from(mhz) * 1000, TscSource::CpuidBaseFrequency));
        }
    }
    None
}

/// Counts TSC ticks while PIT channel 2 counts down `PIT_CALIBRATION_TICKS`.
fn from_pit() -> Option<u64> {
    // SAFETY: ports 0x40..0x44 are the PIT and 0x61 the system control port B; only
    // this function touches them, and only at boot.
    let (pit, port_b) = unsafe { (PortRange::new(0x40, 4), PortRange::new(0x61, 1)) };
    // Gate channel 2 on, speaker off.
    port_b.write8(0, (port_b.read8(0) & !0x02) | 0x01);
    pit.write8(3, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
    pit.write8(2, PIT_CALIBRATION_TICKS as u8);
    pit.write8(2, (PIT_CALIBRATION_TICKS >> 8) as u8);
    // In mode 0 OUT2 drops when the count is loaded; if it reads high now, nothing is
    // counting (QEMU microvm has no port 0x61, which reads as all ones).
    if port_b.read8(0) & 0x20 != 0 {
        return None;
    }
    let start = rdtsc();
    // OUT2 (bit 5) goes high when the count reaches zero. Bound the wait so a machine
    // without a PIT cannot hang the boot.
    for _ in 0..10_000_000u32 {
        if port_b.read8(0) & 0x20 != 0 {
            let ticks = rdtsc() - start;
            return Some(ticks * PIT_HZ / u64::from(PIT_CALIBRATION_TICKS) / 1000);
        }
    }
    None
}

/// Starts the clock at zero and works out the TSC rate.
pub(crate) fn init() -> TscSource {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
    let (khz, source) = from_cpuid()
        .or_else(|| from_pit().filter(|&k| k > 0).map(|k| (k, TscSource::Pit)))
        .unwrap_or((1_000_000, TscSource::Assumed));
    TSC_KHZ.store(khz, Ordering::Relaxed);
    source
}

/// The TSC rate in kHz (0 before [`init`]).
pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

/// Nanoseconds since boot.
pub fn since_boot_ns() -> u64 {
    let khz = tsc_khz();
    if khz == 0 {
        return 0;
    }
    let ticks = rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000 / u128::from(khz)) as u64
}

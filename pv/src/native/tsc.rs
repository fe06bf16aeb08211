//! The TSC as a clock: its rate from the first source that answers, and the wall-clock
//! time at its zero from the CMOS RTC. Used by the native backend and by backends whose
//! hypervisor tells the rate but offers no clock of its own (VMware).

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::insn::{cpuid, inb, inl, outb};
use crate::clock::{self, Rtc, TscSource};

static KHZ: AtomicU64 = AtomicU64::new(0);
/// `ns = (ticks * NS_PER_TICK_32) >> 32`: a multiply, not a division, per read.
static NS_PER_TICK_32: AtomicU64 = AtomicU64::new(0);
static BASE: AtomicU64 = AtomicU64::new(0);
static WALL_BASE_NS: AtomicU64 = AtomicU64::new(0);
static SOURCE: AtomicU8 = AtomicU8::new(TscSource::Assumed as u8);
/// The ACPI PM timer's port in the low 16 bits, bit 16 set for a 32-bit counter; 0: none.
static PM_TIMER: AtomicU32 = AtomicU32::new(0);

/// Names the ACPI PM timer (from the FADT) for [`calibrate`] to fall back on where the
/// PIT does not answer (UEFI machines need not have one). The caller has claimed the
/// port for this alone.
pub fn set_pm_timer(port: u16, wide: bool) {
    PM_TIMER.store(u32::from(port) | (u32::from(wide) << 16), Ordering::Relaxed);
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Sets the rate and restarts the clock at zero. A pvclock backend only records the
/// rate (its wall clock is the hypervisor's, and a Xen PV guest has no CMOS to read).
pub fn set_khz(khz: u64, source: TscSource) {
    let khz = khz.max(1);
    KHZ.store(khz, Ordering::Relaxed);
    NS_PER_TICK_32.store(((1_000_000u128 << 32) / u128::from(khz)) as u64, Ordering::Relaxed);
    SOURCE.store(source as u8, Ordering::Relaxed);
    BASE.store(rdtsc(), Ordering::Relaxed);
    if source != TscSource::Pvclock {
        WALL_BASE_NS.store(read_rtc_ns().unwrap_or(0), Ordering::Relaxed);
    }
}

pub fn source() -> TscSource {
    TscSource::from_u8(SOURCE.load(Ordering::Relaxed))
}

pub extern "C" fn khz() -> u64 {
    KHZ.load(Ordering::Relaxed)
}

pub extern "C" fn monotonic_ns() -> u64 {
    let ticks = rdtsc().wrapping_sub(BASE.load(Ordering::Relaxed));
    ((u128::from(ticks) * u128::from(NS_PER_TICK_32.load(Ordering::Relaxed))) >> 32) as u64
}

pub extern "C" fn wall_clock_base_ns() -> u64 {
    WALL_BASE_NS.load(Ordering::Relaxed)
}

/// Works out the TSC rate: CPUID 0x15 (crystal ratio), CPUID 0x16 (base MHz), the
/// hypervisor's timing leaf 0x40000010 (VMware's layout, which QEMU/KVM copy), then
/// 1 ms counts against PIT channel 2, against PIT channel 0 read through latches, then
/// against the ACPI PM timer (when [`set_pm_timer`] named one). `hv_max_leaf` is the hypervisor's highest leaf, 0 if
/// there is none.
pub fn calibrate(hv_max_leaf: u32) -> TscSource {
    let max = cpuid(0, 0).eax;
    let leaf15 = (max >= 0x15).then(|| cpuid(0x15, 0));
    let leaf16 = (max >= 0x16).then(|| cpuid(0x16, 0));
    let hv10 = (hv_max_leaf >= 0x4000_0010).then(|| cpuid(0x4000_0010, 0));
    let (khz, source) = clock::tsc_khz_from_cpuid(leaf15, leaf16, hv10)
        .or_else(|| pit_khz().map(|k| (k, TscSource::Pit)))
        .or_else(|| clock::settle_khz(pit_latch_run).map(|k| (k, TscSource::Pit)))
        .or_else(|| clock::settle_khz(pm_timer_run).map(|k| (k, TscSource::PmTimer)))
        .unwrap_or((1_000_000, TscSource::Assumed));
    set_khz(khz, source);
    source
}

const PIT_HZ: u64 = 1_193_182;
const PIT_CALIBRATION_TICKS: u16 = 1_193; // 1 ms

/// The TSC rate from 1 ms counts of PIT channel 2, repeated until two agree.
fn pit_khz() -> Option<u64> {
    clock::settle_khz(pit_run)
}

/// Counts TSC ticks while PIT channel 2 counts down 1 ms.
fn pit_run() -> Option<u64> {
    // PIT channel 2 (0x42, 0x43) and its gate in port 0x61 belong to this calibration
    // alone (the kernel hands them to no driver), and none of them can start DMA.
    // SAFETY: as just said.
    let inb = |port| unsafe { inb(port) };
    // SAFETY: as just said.
    let outb = |port, value| unsafe { outb(port, value) };
    // Gate channel 2 on, speaker off; channel 2, lobyte/hibyte, mode 0, binary.
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    outb(0x43, 0b1011_0000);
    outb(0x42, PIT_CALIBRATION_TICKS as u8);
    // Counting starts with the high byte. Reading the TSC just before it means a delay
    // anywhere (a descheduled vCPU) can only lengthen the measured interval.
    let start = rdtsc();
    outb(0x42, (PIT_CALIBRATION_TICKS >> 8) as u8);
    // In mode 0 OUT2 drops when the count is loaded; if it reads high now, nothing is
    // counting (QEMU microvm has no port 0x61, which reads as all ones).
    if inb(0x61) & 0x20 != 0 {
        return None;
    }
    // Bounded, so a machine without a PIT cannot hang the boot.
    for _ in 0..10_000_000u32 {
        if inb(0x61) & 0x20 != 0 {
            let khz = (rdtsc() - start) * PIT_HZ / u64::from(PIT_CALIBRATION_TICKS) / 1000;
            return (khz > 0).then_some(khz);
        }
    }
    None
}

/// Counts TSC ticks while PIT channel 0 counts down 1 ms, read through latch commands:
/// for a PIT without the port 0x61 gate that channel 2 needs (QEMU's microvm, whose
/// only other clock is the TSC). Channel 0's interrupt goes nowhere: the PICs are
/// masked and no I/O APIC pin is routed to it.
fn pit_latch_run() -> Option<u64> {
    // The PIT's ports (0x40-0x43) belong to this calibration alone (the kernel hands
    // them to no driver), and none of them can start DMA.
    // SAFETY: as just said.
    let inb = |port| unsafe { inb(port) };
    // SAFETY: as just said.
    let outb = |port, value| unsafe { outb(port, value) };
    // Channel 0, lobyte/hibyte, mode 0 (counts down once), from 0xffff: 55 ms.
    outb(0x43, 0b0011_0000);
    outb(0x40, 0xff);
    outb(0x40, 0xff);
    // Read-back of channel 0's status: lobyte/hibyte, mode 0, binary, as just set. Absent
    // ports read as all ones (mode 7), so a machine without a PIT stops here at once.
    outb(0x43, 0b1110_0010);
    if inb(0x40) & 0x3f != 0b11_0000 {
        return None;
    }
    let read = || {
        outb(0x43, 0b0000_0000); // latch channel 0's count
        u16::from_le_bytes([inb(0x40), inb(0x40)])
    };
    // The count goes down; `elapsed` wants a counter that goes up.
    count_against(|| u64::from(!read()), 0xffff, PIT_HZ, u64::from(PIT_CALIBRATION_TICKS))
}

/// TSC ticks per ms (kHz) over `ticks` of a counter running at `hz` that `read` returns
/// (rising, `mask` bits wide, wrapping), measured from one of its edges. A counter that
/// never moves is no timer: the waits are bounded so that it cannot hang the boot.
fn count_against(read: impl Fn() -> u64, mask: u64, hz: u64, ticks: u64) -> Option<u64> {
    let first = read();
    let mut start = None;
    for _ in 0..1_000_000u32 {
        let now = read();
        if now != first {
            start = Some((now, rdtsc()));
            break;
        }
    }
    let (count0, tsc0) = start?;
    for _ in 0..10_000_000u32 {
        let elapsed = read().wrapping_sub(count0) & mask;
        if elapsed >= ticks {
            let khz = (rdtsc() - tsc0) * hz / elapsed / 1000;
            return (khz > 0).then_some(khz);
        }
    }
    None
}

const PM_TIMER_HZ: u64 = 3_579_545;
const PM_TIMER_CALIBRATION_TICKS: u64 = 3_580; // 1 ms

/// Counts TSC ticks while the ACPI PM timer advances 1 ms.
fn pm_timer_run() -> Option<u64> {
    let named = PM_TIMER.load(Ordering::Relaxed);
    let port = named as u16;
    if port == 0 {
        return None;
    }
    let mask = if named >> 16 != 0 { u32::MAX } else { 0x00ff_ffff };
    // SAFETY: the PM timer's port was claimed for this calibration (see set_pm_timer);
    // reading the free-running counter changes nothing.
    let read = || u64::from(unsafe { inl(port) } & mask);
    count_against(read, u64::from(mask), PM_TIMER_HZ, PM_TIMER_CALIBRATION_TICKS)
}

/// Reads the CMOS real-time clock as nanoseconds since the Unix epoch.
fn read_rtc_ns() -> Option<u64> {
    let read = |reg: u8| {
        // SAFETY: the CMOS index and data ports (0x70, 0x71) are read only here, at boot;
        // selecting a register and reading it cannot start DMA.
        unsafe {
            outb(0x70, reg);
            inb(0x71)
        }
    };
    // Wait out an update in progress (at most ~2 ms), then read twice until stable.
    for _ in 0..100_000 {
        if read(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let snapshot = || Rtc {
        second: read(0x00),
        minute: read(0x02),
        hour: read(0x04),
        day: read(0x07),
        month: read(0x08),
        year: read(0x09),
        century: read(0x32),
        status_b: read(0x0b),
    };
    let mut a = snapshot();
    for _ in 0..4 {
        let b = snapshot();
        if a == b {
            break;
        }
        a = b;
    }
    clock::rtc_to_unix_seconds(&a).map(|s| s * 1_000_000_000)
}

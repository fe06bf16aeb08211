//! The local APIC (xAPIC through MMIO, x2APIC through MSRs): end of interrupt, IPIs,
//! and the one-shot timer (TSC-deadline mode when the CPU offers it, else a count-down
//! calibrated against the monotonic clock). Shared by every backend on hardware
//! virtualisation; the KVM backend layers PV EOI on top.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::insn::{cpuid, rdmsr, wrmsr};
use super::tsc::{self, rdtsc};

const MSR_APIC_BASE: u32 = 0x1b;
const MSR_TSC_DEADLINE: u32 = 0x6e0;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

const REG_EOI: u32 = 0xb0;
const REG_SPURIOUS: u32 = 0xf0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_1: u32 = 0b1011;

/// How the APIC is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Off = 0,
    XApic,
    X2Apic,
}

/// How the one-shot timer is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    TscDeadline,
    /// The APIC's own count-down, calibrated at boot.
    CountDown,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Off as u8);
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0);
static DEADLINE_MODE: AtomicU8 = AtomicU8::new(0);
/// Count-down ticks per nanosecond, as a 32.32 fixed-point number.
static TICKS_PER_NS_32: AtomicU64 = AtomicU64::new(0);

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::XApic,
        2 => Mode::X2Apic,
        _ => Mode::Off,
    }
}

fn read(reg: u32) -> u32 {
    match mode() {
        // SAFETY: in x2APIC mode its registers are MSRs 0x800 + reg/16, and reading
        // them has no side effects.
        Mode::X2Apic => unsafe { rdmsr(0x800 + (reg >> 4)) as u32 },
        Mode::XApic => {
            let addr = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg);
            // SAFETY: `init` recorded the xAPIC window after the kernel mapped it as
            // device memory at its physical address; `reg` is an architectural register.
            unsafe { (addr as *const u32).read_volatile() }
        }
        Mode::Off => 0,
    }
}

fn write(reg: u32, value: u32) {
    match mode() {
        // SAFETY: x2APIC registers are MSRs 0x800 + reg/16; writing them only programs
        // the local APIC.
        Mode::X2Apic => unsafe { wrmsr(0x800 + (reg >> 4), u64::from(value)) },
        Mode::XApic => {
            let addr = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg);
            // SAFETY: as in `read`.
            unsafe { (addr as *mut u32).write_volatile(value) }
        }
        Mode::Off => {}
    }
}

/// The xAPIC's physical MMIO window, which the kernel must map uncached (identity)
/// before [`init`] when the CPU has no x2APIC.
pub fn xapic_window() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no effect.
    unsafe { rdmsr(MSR_APIC_BASE) & 0x000f_ffff_ffff_f000 }
}

/// Brings up the local APIC with `timer_vector` for the one-shot timer and
/// `spurious_vector` for spurious interrupts. Interrupts must be off.
pub fn init(timer_vector: u8, spurious_vector: u8) -> (Mode, TimerMode) {
    let leaf1 = cpuid(1, 0);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no effect.
    let base = unsafe { rdmsr(MSR_APIC_BASE) };
    let mode = if leaf1.ecx & (1 << 21) != 0 {
        // SAFETY: enabling x2APIC mode on a CPU that reports it only changes how the
        // APIC is addressed.
        unsafe { wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_X2APIC) };
        Mode::X2Apic
    } else {
        XAPIC_BASE.store(base & 0x000f_ffff_ffff_f000, Ordering::Relaxed);
        Mode::XApic
    };
    MODE.store(mode as u8, Ordering::Relaxed);
    write(REG_SPURIOUS, 0x100 | u32::from(spurious_vector));
    let deadline = leaf1.ecx & (1 << 24) != 0;
    let timer = if deadline {
        write(REG_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(timer_vector));
        TimerMode::TscDeadline
    } else {
        write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
        write(REG_LVT_TIMER, LVT_MASKED | u32::from(timer_vector));
        calibrate_countdown();
        write(REG_LVT_TIMER, u32::from(timer_vector));
        TimerMode::CountDown
    };
    DEADLINE_MODE.store(deadline as u8, Ordering::Relaxed);
    (mode, timer)
}

/// Measures the count-down rate against the TSC clock (rated by every backend that uses
/// the APIC) over half a millisecond.
fn calibrate_countdown() {
    let now = tsc::monotonic_ns;
    write(REG_TIMER_INITIAL, u32::MAX);
    // Read both clocks once first: the first run of a code path can be slow (TCG
    // translates it), and that time must not land inside the measurement.
    let _ = (read(REG_TIMER_CURRENT), now());
    let (count0, start) = (read(REG_TIMER_CURRENT), now());
    while now() - start < 500_000 {
        core::hint::spin_loop();
    }
    let (count1, end) = (read(REG_TIMER_CURRENT), now());
    write(REG_TIMER_INITIAL, 0);
    let (ticks, elapsed) = (count0.saturating_sub(count1), end - start);
    let per_ns = (u128::from(ticks) << 32) / u128::from(elapsed.max(1));
    TICKS_PER_NS_32.store(per_ns.max(1) as u64, Ordering::Relaxed);
}

/// Count-down ticks per second, for the boot log (0 in TSC-deadline mode).
pub fn countdown_hz() -> u64 {
    ((u128::from(TICKS_PER_NS_32.load(Ordering::Relaxed)) * 1_000_000_000) >> 32) as u64
}

pub extern "C" fn eoi() {
    write(REG_EOI, 0);
}

pub extern "C" fn send_ipi(apic_id: u32, vector: u8) {
    match mode() {
        // SAFETY: writing the x2APIC ICR sends an IPI; it touches no memory.
        Mode::X2Apic => unsafe { wrmsr(0x830, (u64::from(apic_id) << 32) | u64::from(vector)) },
        _ => {
            write(REG_ICR_HIGH, apic_id << 24);
            write(REG_ICR_LOW, u32::from(vector));
        }
    }
}

pub extern "C" fn set_oneshot_timer(after_ns: u64) {
    let delta_ns = after_ns.max(1);
    if DEADLINE_MODE.load(Ordering::Relaxed) != 0 {
        let ticks = u128::from(delta_ns) * u128::from(tsc::khz()) / 1_000_000;
        let deadline = rdtsc().saturating_add(ticks.min(u128::from(u64::MAX)) as u64);
        // SAFETY: arming the TSC deadline only schedules the timer interrupt.
        unsafe { wrmsr(MSR_TSC_DEADLINE, deadline) };
    } else {
        let ticks = (u128::from(delta_ns) * u128::from(TICKS_PER_NS_32.load(Ordering::Relaxed))) >> 32;
        write(REG_TIMER_INITIAL, ticks.clamp(1, u128::from(u32::MAX)) as u32);
    }
}

/// This CPU's local APIC ID (for MSI/MSI-X destinations).
pub fn id() -> u32 {
    match mode() {
        Mode::X2Apic => read(0x20),
        _ => read(0x20) >> 24,
    }
}

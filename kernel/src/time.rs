//! The kernel's time: a monotonic clock, wall-clock time, and halting until a deadline.
//!
//! The clock is the pv-ops backend's `time.monotonic_ns` (a pvclock where the
//! hypervisor offers one, else the TSC at its calibrated rate); halting arms the
//! backend's one-shot timer. Apps get [`now`] and [`wall_clock`] through
//! [`crate::app`], and sleep with the executor's timers, which keep the network polled.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use pv::site;
use pv::table::ops;

/// The backend clock's reading when the kernel's clock started.
static BOOT_NS: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Vector of the one-shot timer interrupt, and of the APIC's spurious interrupt.
pub(crate) const TIMER_VECTOR: u8 = 0xec;
pub(crate) const SPURIOUS_VECTOR: u8 = 0xff;

/// Starts the kernel's clock at zero (after the pv-ops backend set its clock up).
pub(crate) fn start() {
    BOOT_NS.store(site::monotonic_ns(), Ordering::Relaxed);
    STARTED.store(true, Ordering::Release);
}

/// Nanoseconds since boot (0 until the clock starts).
pub(crate) fn since_boot_ns() -> u64 {
    if !STARTED.load(Ordering::Acquire) {
        return 0;
    }
    site::monotonic_ns().saturating_sub(BOOT_NS.load(Ordering::Relaxed))
}

/// Time since boot, on a clock that never goes backwards.
pub fn now() -> Duration {
    Duration::from_nanos(since_boot_ns())
}

/// The TSC rate in kHz.
pub(crate) fn tsc_khz() -> u64 {
    (ops().time.tsc_khz)()
}

/// Wall-clock time, as nanoseconds since the Unix epoch (0 if no source knew it).
pub(crate) fn wall_clock_ns() -> u64 {
    let base = (ops().time.wall_clock_base_ns)();
    if base == 0 { 0 } else { base + site::monotonic_ns() }
}

/// Wall-clock time since the Unix epoch; `None` when no source knew it.
pub fn wall_clock() -> Option<Duration> {
    match wall_clock_ns() {
        0 => None,
        ns => Some(Duration::from_nanos(ns)),
    }
}

/// The backend-clock deadline the one-shot timer is armed for; `u64::MAX` for none, or
/// once it fired (timers may fire a little early: a calibrated count-down, a hypervisor's slop).
static ARMED_NS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Called from the timer's interrupt (or the hypervisor's timer event): the one-shot
/// timer is spent.
pub(crate) fn on_timer_interrupt() {
    ARMED_NS.store(u64::MAX, Ordering::Relaxed);
}

/// Halts once: until an interrupt or `deadline_ns` (kernel clock), unless the deadline
/// has passed or `pending()` says there is work already. Interrupts are off again on
/// return.
///
/// The timer is re-armed only when the new deadline is earlier than the armed one, or
/// the armed one fired. A later deadline leaves the armed one alone, which then wakes us
/// early, once; a server moves its deadline on every request (retransmission, idle
/// timeouts), and reprogramming the timer around every halt would cost two trips to the
/// hypervisor per request.
pub(crate) fn halt_until_ns(deadline_ns: u64, pending: impl Fn() -> bool) {
    let deadline = BOOT_NS.load(Ordering::Relaxed).saturating_add(deadline_ns);
    site::irq_disable();
    let now = site::monotonic_ns();
    if now >= deadline || pending() {
        return;
    }
    // `ARMED_NS` is `u64::MAX` when nothing is armed, so "no deadline" never arms.
    if deadline < ARMED_NS.load(Ordering::Relaxed) {
        (ops().apic.set_oneshot_timer)(deadline - now);
        ARMED_NS.store(deadline, Ordering::Relaxed);
    }
    // Enables interrupts and halts atomically; the timer (or any interrupt) wakes us.
    (ops().irq.safe_halt)();
    site::irq_disable();
}

/// Halts the CPU for `duration`: nothing else runs meanwhile, the network included.
/// For self-tests that run without the executor; tasks sleep with
/// [`crate::executor::sleep`].
pub(crate) fn halt_for(duration: Duration) {
    let deadline = since_boot_ns().saturating_add(duration.as_nanos().min(u128::from(u64::MAX)) as u64);
    while since_boot_ns() < deadline {
        halt_until_ns(deadline, || false);
    }
}

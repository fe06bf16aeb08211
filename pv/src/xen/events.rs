//! Event channels (2-level ABI) and Xen's one-shot timer: VIRQ_TIMER bound to a port,
//! and the upcall handler that finds which ports fired. PV guests get the upcall through
//! their event callback, HVM/PVH guests on the IDT vector the kernel names; both end in
//! the `irq.upcall` op.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{
    EVTCHN_MASK, EVTCHN_PENDING, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_VCPU_OP, Refused, SHARED_INFO,
    VCPU0_PENDING_SEL, VCPU0_UPCALL_PENDING, check, hypercall3,
};

const EVTCHNOP_BIND_VIRQ: u64 = 1;
const EVTCHNOP_SEND: u64 = 4;
const EVTCHNOP_BIND_IPI: u64 = 7;
const EVTCHNOP_UNMASK: u64 = 9;
const VIRQ_TIMER: u32 = 0;
const VCPUOP_STOP_PERIODIC_TIMER: u64 = 7;
const VCPUOP_SET_SINGLESHOT_TIMER: u64 = 8;

const NO_PORT: u32 = u32::MAX;
/// The port VIRQ_TIMER is bound to.
static TIMER_PORT: AtomicU32 = AtomicU32::new(NO_PORT);
/// The 2-level ABI's ports on a 64-bit guest: 64 words of 64 bits.
const PORTS: usize = 64 * 64;
/// Ports whose events only need to end a halt (the console's, xenstore's, a device's:
/// whoever waits polls its ring), one bit each.
static EXPECTED: [AtomicU64; PORTS / 64] = [const { AtomicU64::new(0) }; PORTS / 64];

/// Accepts events on `port` from now on (they end a halt; the waiter polls).
pub(crate) fn expect(port: u32) {
    if let Some(word) = EXPECTED.get(port as usize / 64) {
        word.fetch_or(1 << (port % 64), Ordering::Relaxed);
    }
}

/// Stops accepting events on `port` (a closed channel).
pub(crate) fn forget(port: u32) {
    if let Some(word) = EXPECTED.get(port as usize / 64) {
        word.fetch_and(!(1 << (port % 64)), Ordering::Relaxed);
    }
}

fn claimed(port: u32) -> bool {
    port == TIMER_PORT.load(Ordering::Relaxed)
        || EXPECTED
            .get(port as usize / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (port % 64)) != 0)
}

fn event_channel_op<T>(call: &'static str, cmd: u64, arg: &mut T) -> Result<i64, Refused> {
    // SAFETY: `arg` is the structure `cmd` takes, alive across the call.
    check(call, unsafe { hypercall3(HYPERVISOR_EVENT_CHANNEL_OP, cmd, arg as *mut T as u64, 0) })
}

pub(crate) fn unmask(port: u32) -> Result<(), Refused> {
    let mut arg = port;
    event_channel_op("EVTCHNOP_unmask", EVTCHNOP_UNMASK, &mut arg).map(|_| ())
}

/// Binds VIRQ_TIMER on vCPU 0 and turns off the periodic tick Xen starts PV vCPUs with,
/// so the only timer events are the ones [`set_timer`] asks for.
pub(crate) fn bind_timer() -> Result<u32, Refused> {
    // SAFETY: stop_periodic_timer takes no argument.
    let rc = unsafe { hypercall3(HYPERVISOR_VCPU_OP, VCPUOP_STOP_PERIODIC_TIMER, 0, 0) };
    check("VCPUOP_stop_periodic_timer", rc)?;
    #[repr(C)]
    struct BindVirq {
        virq: u32,
        vcpu: u32,
        port: u32,
    }
    let mut arg = BindVirq { virq: VIRQ_TIMER, vcpu: 0, port: 0 };
    event_channel_op("EVTCHNOP_bind_virq(VIRQ_TIMER)", EVTCHNOP_BIND_VIRQ, &mut arg)?;
    TIMER_PORT.store(arg.port, Ordering::Relaxed);
    unmask(arg.port)?;
    Ok(arg.port)
}

/// The one-shot timer op: fire VIRQ_TIMER `after_ns` from now, on Xen's system time (the
/// pvclock).
pub(crate) extern "C" fn set_timer(after_ns: u64) {
    let deadline_ns = super::monotonic_ns().saturating_add(after_ns);
    #[repr(C)]
    struct SingleShot {
        timeout_abs_ns: u64,
        flags: u32,
    }
    let arg = SingleShot { timeout_abs_ns: deadline_ns, flags: 0 };
    // SAFETY: `arg` lives across the call.
    let rc = unsafe { hypercall3(HYPERVISOR_VCPU_OP, VCPUOP_SET_SINGLESHOT_TIMER, 0, &raw const arg as u64) };
    if let Err(e) = check("VCPUOP_set_singleshot_timer", rc) {
        panic!("xen: the one-shot timer cannot be armed: {e}");
    }
}

/// An event on a port nothing here bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclaimed {
    pub port: u32,
}

impl core::fmt::Display for Unclaimed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "an event arrived on channel {}, which no handler is bound to", self.port)
    }
}

/// What an upcall delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    /// The one-shot timer's event (VIRQ_TIMER) was among them.
    pub timer: bool,
}

/// Handles an upcall: finds every pending, unmasked port and acknowledges it. The timer
/// and the expected ports need no more than that (their events only end a halt). Any
/// other port is masked, so it cannot storm, and reported.
pub fn handle_upcall() -> Result<Delivered, Unclaimed> {
    let pending_flag = SHARED_INFO.atomic_u8(VCPU0_UPCALL_PENDING);
    let selector = SHARED_INFO.atomic_u64(VCPU0_PENDING_SEL);
    let mut unclaimed = None;
    let mut delivered = Delivered::default();
    loop {
        // Cleared before the scan, so an event set during it brings us round again.
        pending_flag.store(0, Ordering::SeqCst);
        let mut words = selector.swap(0, Ordering::SeqCst);
        while words != 0 {
            let word = words.trailing_zeros() as usize;
            words &= words - 1;
            let pending = SHARED_INFO.atomic_u64(EVTCHN_PENDING + 8 * word);
            let mask = SHARED_INFO.atomic_u64(EVTCHN_MASK + 8 * word);
            let mut ready = pending.load(Ordering::SeqCst) & !mask.load(Ordering::SeqCst);
            while ready != 0 {
                let bit = ready.trailing_zeros();
                ready &= ready - 1;
                pending.fetch_and(!(1 << bit), Ordering::SeqCst);
                let port = (word * 64) as u32 + bit;
                delivered.timer |= port == TIMER_PORT.load(Ordering::Relaxed);
                if !claimed(port) {
                    mask.fetch_or(1 << bit, Ordering::SeqCst);
                    unclaimed = Some(Unclaimed { port });
                }
            }
        }
        if pending_flag.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
    match unclaimed {
        Some(u) => Err(u),
        None => Ok(delivered),
    }
}

/// The event upcall op.
pub(crate) extern "C" fn upcall() -> bool {
    match handle_upcall() {
        Ok(delivered) => delivered.timer,
        // An event nobody bound is a fault in the making: end the run.
        Err(e) => panic!("xen: {e}"),
    }
}

const EVTCHNOP_CLOSE: u64 = 3;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;

/// A new port that domain `remote` may bind to (a device backend's channel), accepted
/// (`expect`) and unmasked.
pub(crate) fn alloc_unbound(remote: u16) -> Result<u32, Refused> {
    #[repr(C)]
    struct AllocUnbound {
        dom: u16,
        remote_dom: u16,
        port: u32,
    }
    let mut arg = AllocUnbound { dom: super::DOMID_SELF as u16, remote_dom: remote, port: 0 };
    event_channel_op("EVTCHNOP_alloc_unbound", EVTCHNOP_ALLOC_UNBOUND, &mut arg)?;
    expect(arg.port);
    unmask(arg.port)?;
    Ok(arg.port)
}

/// Closes `port`.
pub(crate) fn close(port: u32) -> Result<(), Refused> {
    forget(port);
    let mut arg = port;
    event_channel_op("EVTCHNOP_close", EVTCHNOP_CLOSE, &mut arg).map(|_| ())
}

/// Signals `port` (EVTCHNOP_send).
pub(crate) fn send(port: u32) -> Result<(), Refused> {
    let mut arg = port;
    event_channel_op("EVTCHNOP_send", EVTCHNOP_SEND, &mut arg).map(|_| ())
}

/// Raises an event that nothing claims (an IPI channel to ourselves with no handler):
/// the bad-input self-test. It arrives once events are enabled.
fn raise_unclaimed() -> Result<u32, Refused> {
    let mut bind = [0u32; 2]; // vcpu in, port out
    event_channel_op("EVTCHNOP_bind_ipi", EVTCHNOP_BIND_IPI, &mut bind)?;
    send(bind[1])?;
    Ok(bind[1])
}

/// `selftest=xen-unclaimed-event`: an event on a channel no handler is bound to must be
/// reported by the upcall and end the run.
pub(crate) const UNCLAIMED_EVENT: crate::backend::SelfTest = crate::backend::SelfTest {
    name: "xen-unclaimed-event",
    run: |env| match raise_unclaimed() {
        Ok(port) => {
            (env.print)(format_args!("selftest xen-unclaimed-event: raised an event on channel {port}"));
            (env.sleep_ms)(100);
            "the event went unreported"
        }
        Err(_) => "cannot raise the event",
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The upcall scan over a `shared_info` laid out by hand: the timer's port is
    /// acknowledged (and reported as the timer), a stranger's is acknowledged, masked and
    /// reported, and a masked port stays pending for later.
    #[test]
    fn upcall_scan() {
        let word = |off: usize| SHARED_INFO.atomic_u64(off);
        TIMER_PORT.store(3, Ordering::Relaxed);
        word(EVTCHN_PENDING).store(1 << 3, Ordering::Relaxed);
        word(EVTCHN_PENDING + 8).store((1 << 6) | (1 << 9), Ordering::Relaxed); // ports 70, 73
        word(EVTCHN_MASK + 8).store(1 << 9, Ordering::Relaxed); // 73 is masked
        word(VCPU0_PENDING_SEL).store(0b11, Ordering::Relaxed);
        SHARED_INFO.atomic_u8(VCPU0_UPCALL_PENDING).store(1, Ordering::Relaxed);

        assert_eq!(handle_upcall(), Err(Unclaimed { port: 70 }));
        assert_eq!(word(EVTCHN_PENDING).load(Ordering::Relaxed), 0);
        assert_eq!(word(EVTCHN_PENDING + 8).load(Ordering::Relaxed), 1 << 9, "the masked port stays pending");
        assert_eq!(word(EVTCHN_MASK + 8).load(Ordering::Relaxed), (1 << 6) | (1 << 9), "70 is masked now");
        assert_eq!(word(VCPU0_PENDING_SEL).load(Ordering::Relaxed), 0);
        assert_eq!(SHARED_INFO.atomic_u8(VCPU0_UPCALL_PENDING).load(Ordering::Relaxed), 0);

        // The timer and an expected port are no error.
        expect(5);
        word(EVTCHN_PENDING).store((1 << 3) | (1 << 5), Ordering::Relaxed);
        word(VCPU0_PENDING_SEL).store(1, Ordering::Relaxed);
        assert_eq!(handle_upcall(), Ok(Delivered { timer: true }));
        assert_eq!(word(EVTCHN_PENDING).load(Ordering::Relaxed), 0);

        // An expected port alone does not spend the timer.
        word(EVTCHN_PENDING).store(1 << 5, Ordering::Relaxed);
        word(VCPU0_PENDING_SEL).store(1, Ordering::Relaxed);
        assert_eq!(handle_upcall(), Ok(Delivered { timer: false }));
    }
}

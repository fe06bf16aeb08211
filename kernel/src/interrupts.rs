//! Interrupt controllers: the legacy 8259 PICs are masked for good, and the local APIC
//! delivers the timer.

use pv::apic::{self, Mode, TimerMode};
use pv::ops::ops;

use crate::time::{SPURIOUS_VECTOR, TIMER_VECTOR};

/// Masks both PICs and brings up the local APIC. Interrupts stay off.
pub(crate) fn init() -> (Mode, TimerMode) {
    let io = ops().io;
    // All eight lines of the primary and the secondary PIC masked: the APIC delivers.
    (io.outb)(0x21, 0xff);
    (io.outb)(0xa1, 0xff);
    let window = apic::xapic_window();
    if let Err(e) = crate::memory::map_device(window, 4096) {
        log::warn!("APIC: cannot map the xAPIC window at {window:#x}: {e:?}");
    }
    apic::init(TIMER_VECTOR, SPURIOUS_VECTOR)
}

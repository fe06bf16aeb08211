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

/// The I/O APIC: its MMIO window and the first GSI it serves (from the MADT, else the
/// PC default).
static IOAPIC: spin::Once<(u64, u32)> = spin::Once::new();

pub(crate) fn set_ioapic(addr: u64, gsi_base: u32) {
    IOAPIC.call_once(|| (addr, gsi_base));
}

/// Delivers GSI `gsi` as `vector` to this CPU: edge-triggered, active high. (Level
/// lines such as virtio-mmio's are acknowledged at the device before each halt, so an
/// edge per new event is enough.)
/// Returns whether the line was routed.
pub(crate) fn route_gsi(gsi: u32, vector: u8) -> bool {
    let &(addr, base) = IOAPIC.call_once(|| (0xfec0_0000, 0));
    if crate::memory::map_device(addr, 0x20).is_err() || gsi < base || gsi - base >= 24 {
        log::warn!("I/O APIC at {addr:#x}: cannot route GSI {gsi}; the card will be polled");
        return false;
    }
    // SAFETY: the I/O APIC's two registers (select at +0, window at +0x10), just mapped
    // uncached; only this function programs it.
    let ioapic = unsafe { crate::arch::mmio::MmioRange::new(addr, 0x20) };
    let pin = gsi - base;
    let write = |reg: u32, value: u32| {
        use drivers::Registers;
        ioapic.write32(0, reg);
        ioapic.write32(0x10, value);
    };
    write(0x10 + 2 * pin + 1, (apic::id() & 0xff) << 24);
    write(0x10 + 2 * pin, u32::from(vector));
    true
}

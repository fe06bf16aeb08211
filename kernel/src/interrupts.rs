//! Interrupt controllers: the legacy 8259 PICs are masked for good, the local APIC
//! delivers the timer, and the I/O APIC routes device lines.

use drivers::Registers;
use pv::native::apic::{self, Mode, TimerMode};

use crate::arch::port::PortRange;
use crate::time::{SPURIOUS_VECTOR, TIMER_VECTOR};

/// The vector the hypervisor's event upcall arrives on (the pv-ops `irq.upcall`).
pub(crate) const UPCALL_VECTOR: u8 = 0xf3;

/// Masks both PICs and brings up the local APIC, on platforms that have them. Interrupts
/// stay off.
pub(crate) fn init() -> (Mode, TimerMode) {
    // All eight lines of the primary and the secondary PIC masked: the APIC delivers.
    for base in [0x20, 0xa0] {
        // SAFETY: the 8259 PICs' command and data ports, driven only here; masking
        // lines cannot start DMA.
        match unsafe { PortRange::claim(base, 2) } {
            Ok(pic) => pic.write8(1, 0xff),
            Err(e) => log::warn!("PIC at {base:#x}: {e}"),
        }
    }
    let window = apic::xapic_window();
    if let Err(e) = crate::memory::map_device(window, 4096) {
        log::warn!("APIC: cannot map the xAPIC window at {window:#x}: {e:?}");
    }
    apic::init(TIMER_VECTOR, SPURIOUS_VECTOR)
}

/// The MADT's view of the I/O APIC (or the PC defaults), set at boot.
static MADT: spin::Once<bootinfo::acpi::Madt> = spin::Once::new();

pub(crate) fn set_madt(madt: bootinfo::acpi::Madt) {
    MADT.call_once(|| madt);
}

fn madt() -> &'static bootinfo::acpi::Madt {
    MADT.call_once(bootinfo::acpi::Madt::default)
}

/// An interrupt line as the I/O APIC sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line {
    pub gsi: u32,
    pub level: bool,
    pub active_low: bool,
}

/// The line a PCI function's INTx arrives on: its interrupt-line register names an
/// ISA IRQ that the MADT may override; without an override, PCI lines are level and
/// active low.
pub(crate) fn pci_intx_line(irq: u8) -> Line {
    match madt().irq_override(irq) {
        Some(o) => Line { gsi: o.gsi, level: o.level, active_low: o.active_low },
        None => Line { gsi: u32::from(irq), level: true, active_low: true },
    }
}

/// One I/O APIC: its register window (select at +0, window at +0x10), the GSI of its
/// pin 0, and its pin count (from its version register).
struct IoApic {
    regs: crate::arch::mmio::MmioRange,
    base: u32,
    pins: u32,
}

/// The MADT's I/O APICs (the PC's one at 0xfec00000 without a MADT), claimed once.
static IOAPICS: spin::Once<alloc::vec::Vec<IoApic>> = spin::Once::new();

/// The I/O APIC that has `gsi`, and the pin.
fn ioapic_for(gsi: u32) -> Option<(&'static crate::arch::mmio::MmioRange, u32)> {
    let ioapics = IOAPICS.call_once(|| {
        let listed = madt().ioapics.iter().flatten().copied();
        let listed: alloc::vec::Vec<(u64, u32)> =
            if madt().ioapics[0].is_some() { listed.collect() } else { alloc::vec![(0xfec0_0000, 0)] };
        listed
            .into_iter()
            .filter_map(|(addr, base)| {
                crate::memory::map_device(addr, 0x20).ok()?;
                // SAFETY: an I/O APIC's two registers, just mapped uncached; only this
                // module programs it, and routing interrupts cannot start DMA.
                let regs = unsafe { crate::arch::mmio::MmioRange::claim(addr, 0x20) }
                    .inspect_err(|e| log::warn!("I/O APIC at {addr:#x}: {e}"))
                    .ok()?;
                // Register 1, bits 16-23: the highest redirection entry.
                let pins = ((ioapic_read(&regs, 1) >> 16) & 0xff) + 1;
                Some(IoApic { regs, base, pins })
            })
            .collect()
    });
    let found = ioapics.iter().find(|a| gsi >= a.base && gsi - a.base < a.pins);
    if found.is_none() {
        log::warn!("no I/O APIC has GSI {gsi}");
    }
    found.map(|a| (&a.regs, gsi - a.base))
}

fn ioapic_write(ioapic: &crate::arch::mmio::MmioRange, reg: u32, value: u32) {
    ioapic.write32(0, reg);
    ioapic.write32(0x10, value);
}

fn ioapic_read(ioapic: &crate::arch::mmio::MmioRange, reg: u32) -> u32 {
    ioapic.write32(0, reg);
    ioapic.read32(0x10)
}

const REDIRECT_MASKED: u32 = 1 << 16;

/// Delivers `line` as `vector` to this CPU; whether it could be routed.
pub(crate) fn route(line: Line, vector: u8) -> bool {
    let Some((ioapic, pin)) = ioapic_for(line.gsi) else { return false };
    let mut low = u32::from(vector);
    if line.active_low {
        low |= 1 << 13;
    }
    if line.level {
        low |= 1 << 15;
    }
    ioapic_write(ioapic, 0x10 + 2 * pin + 1, (apic::id() & 0xff) << 24);
    ioapic_write(ioapic, 0x10 + 2 * pin, low);
    true
}

/// Masks or unmasks a routed line. A level-triggered device line is masked from its
/// interrupt until the driver has acknowledged the device, so it cannot fire again and
/// again in between.
pub(crate) fn set_masked(gsi: u32, masked: bool) {
    let Some((ioapic, pin)) = ioapic_for(gsi) else { return };
    let low = ioapic_read(ioapic, 0x10 + 2 * pin);
    let low = if masked { low | REDIRECT_MASKED } else { low & !REDIRECT_MASKED };
    ioapic_write(ioapic, 0x10 + 2 * pin, low);
}

//! Finding an Intel e1000-family card on PCI and starting it: registers in BAR 0,
//! MSI-X or else MSI where the card has them (the 82574L), else its INTx line.

use bootinfo::cmdline::IrqLimit;
use drivers::e1000::{self, E1000, Model};
use drivers::net::{AnyNic, NicError};
use drivers::pci;

use super::{DMA, NET_VECTOR, Probed, Signal, queue_limit};
use crate::pci::{config, map_bar};

/// Starts the e1000 or e1000e at `f`.
pub(super) fn start(f: &pci::Function, model: Model, irq: IrqLimit) -> Probed {
    let Some(regs) = map_bar(f.bdf, 0, 0, e1000::REGISTERS_LEN) else {
        return Err(NicError::E1000(e1000::Error::MissingBar(model)));
    };
    let cfg = config();
    let apic = pv::native::apic::id() as u8;
    // MSI-X where the card offers it (the 82574L: every cause on entry 0, see
    // `E1000::use_msix`), else MSI; the 82540EM has neither.
    let msix = irq >= IrqLimit::Msix
        && model == Model::I82574L
        && pci::msix(cfg, f.bdf).is_some_and(|info| {
            let Some(table) = map_bar(f.bdf, info.table_bar, u64::from(info.table_offset), 16) else {
                return false;
            };
            pci::msix_set_entry(&table, 0, apic, NET_VECTOR);
            pci::msix_enable(cfg, f.bdf, &info);
            true
        });
    let msi = !msix && irq >= IrqLimit::Msi && pci::msi_enable(cfg, f.bdf, apic, NET_VECTOR);
    pci::enable(cfg, f.bdf, msix || msi);
    let signal = match f.interrupt_line {
        _ if msix => Signal::Msix,
        _ if msi => Signal::Msi,
        irq @ 1..=0xfe => {
            let line = crate::interrupts::pci_intx_line(irq);
            if crate::interrupts::route(line, NET_VECTOR) { Signal::Line(line) } else { Signal::Polled }
        }
        _ => Signal::Polled,
    };
    log::info!("net: {} ({}) at {}, {signal}", model.family(), model.chip(), f.bdf);
    let mut nic = E1000::new(regs, model, &DMA, queue_limit())?;
    if msix {
        // The reset in `new` cleared the card's routing: set after it.
        nic.use_msix(0)?;
    }
    Ok((AnyNic::E1000(nic), signal))
}

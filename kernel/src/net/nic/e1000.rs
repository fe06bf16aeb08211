//! Finding an Intel e1000-family card on PCI and starting it: registers in BAR 0, MSI
//! where the card has it (the 82574L), else its INTx line.

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
    // MSI where the card offers it (the 82574L also has MSI-X, whose interrupt causes
    // need IVAR routing; one MSI message is all this driver needs). The 82540EM has
    // neither.
    let msi = irq >= IrqLimit::Msi && pci::msi_enable(cfg, f.bdf, pv::native::apic::id() as u8, NET_VECTOR);
    pci::enable(cfg, f.bdf, msi);
    let signal = match f.interrupt_line {
        _ if msi => Signal::Msi,
        irq @ 1..=0xfe => {
            let line = crate::interrupts::pci_intx_line(irq);
            if crate::interrupts::route(line, NET_VECTOR) { Signal::Line(line) } else { Signal::Polled }
        }
        _ => Signal::Polled,
    };
    log::info!("net: {} ({}) at {}, {signal}", model.family(), model.chip(), f.bdf);
    E1000::new(regs, model, &DMA, queue_limit()).map(|nic| (AnyNic::E1000(nic), signal)).map_err(Into::into)
}

//! Finding an Intel e1000-family card on PCI and starting it: registers in BAR 0,
//! MSI-X or else MSI where the card has them (the 82574L), else its INTx line.

use bootinfo::cmdline::IrqLimit;
use drivers::e1000::{self, E1000, Model};
use drivers::net::{AnyNic, NicError};
use drivers::pci;

use super::{DMA, Probed, Signal, queue_limit, single_vector};
use crate::pci::map_bar;

/// Starts the e1000 or e1000e at `f`.
pub(super) fn start(f: &pci::Function, model: Model, irq: IrqLimit) -> Probed {
    let Some(regs) = map_bar(f.bdf, 0, 0, e1000::REGISTERS_LEN) else {
        return Err(NicError::E1000(e1000::Error::MissingBar(model)));
    };
    // MSI-X where the card offers it (the 82574L: every cause on entry 0, see
    // `E1000::use_msix`), else MSI; the 82540EM has neither.
    let signal = single_vector(f, irq, model == Model::I82574L);
    let msix = signal == Signal::Msix;
    log::info!("net: {} ({}) at {}, {signal}", model.family(), model.chip(), f.bdf);
    let mut nic = E1000::new(regs, model, &DMA, queue_limit())?;
    if msix {
        // The reset in `new` cleared the card's routing: set after it.
        nic.use_msix(0)?;
    }
    Ok((AnyNic::E1000(nic), signal))
}

//! Finding and starting the network card: virtio-net over modern or legacy PCI, with
//! MSI-X when the device has it.

use drivers::pci::{self, CAP_VENDOR, ConfigSpace};
use drivers::virtio::net::{MsixEntries, VirtioNet};
use drivers::virtio::pci::{
    CAP_COMMON, CAP_DEVICE, CAP_ISR, CAP_NOTIFY, DEVICE_NET_MODERN, DEVICE_NET_TRANSITIONAL, LegacyPci,
    ModernPci, PciTransport, VENDOR,
};

use crate::arch::mmio::MmioRange;
use crate::arch::port::PortRange;
use crate::dma::Dma;
use crate::pci::{config, functions, io_bar, map_bar};

pub type Transport = PciTransport<MmioRange, PortRange>;
pub type Nic = VirtioNet<Transport, Dma>;

/// The interrupt vector network cards signal on.
pub const NET_VECTOR: u8 = 0x40;

pub static DMA: Dma = Dma::new();

/// One virtio PCI capability: `(type, bar, offset, length, notify multiplier)`.
fn virtio_caps(bdf: pci::Bdf) -> alloc::vec::Vec<(u8, u8, u32, u32, u32)> {
    let cfg = config();
    pci::capabilities(cfg, bdf)
        .into_iter()
        .filter(|(id, _)| *id == CAP_VENDOR)
        .map(|(_, at)| {
            let kind = cfg.read8(bdf, at + 3);
            let bar = cfg.read8(bdf, at + 4);
            let offset = cfg.read32(bdf, at + 8);
            let length = cfg.read32(bdf, at + 12);
            let multiplier = if kind == CAP_NOTIFY { cfg.read32(bdf, at + 16) } else { 0 };
            (kind, bar, offset, length, multiplier)
        })
        .collect()
}

fn modern(bdf: pci::Bdf, msix: bool) -> Option<ModernPci<MmioRange>> {
    let caps = virtio_caps(bdf);
    let window = |kind: u8| {
        let &(_, bar, offset, length, mult) = caps.iter().find(|c| c.0 == kind)?;
        Some((map_bar(bdf, bar, u64::from(offset), u64::from(length).max(4))?, mult))
    };
    let (common, _) = window(CAP_COMMON)?;
    let (notify, notify_multiplier) = window(CAP_NOTIFY)?;
    let (isr, _) = window(CAP_ISR)?;
    let (device, _) = window(CAP_DEVICE)?;
    Some(ModernPci { common, notify, notify_multiplier, isr, device, msix })
}

/// Starts the first virtio-net card found, if any.
pub fn probe() -> Option<Result<Nic, drivers::virtio::Error>> {
    let f = functions().iter().find(|f| {
        f.vendor == VENDOR && (f.device == DEVICE_NET_MODERN || f.device == DEVICE_NET_TRANSITIONAL)
    })?;
    let cfg = config();
    // MSI-X first: it moves the legacy device-config window, and queue vectors can only
    // be set while it is on.
    let msix = pci::msix(cfg, f.bdf).and_then(|info| {
        let table =
            map_bar(f.bdf, info.table_bar, u64::from(info.table_offset), u64::from(info.table_size) * 16)?;
        let apic = pv::apic::id() as u8;
        for entry in 0..info.table_size.min(2) {
            pci::msix_set_entry(&table, entry, apic, NET_VECTOR);
        }
        pci::msix_enable(cfg, f.bdf, &info);
        (info.table_size >= 2).then_some(MsixEntries { rx: 0, tx: 1 })
    });
    pci::enable(cfg, f.bdf, msix.is_some());
    let transport = match modern(f.bdf, msix.is_some()) {
        Some(m) => PciTransport::Modern(m),
        None => PciTransport::Legacy(LegacyPci { io: io_bar(f.bdf, 0)?, msix: msix.is_some() }),
    };
    let kind = match transport {
        PciTransport::Modern(_) => "modern",
        PciTransport::Legacy(_) => "legacy",
    };
    log::info!("net: virtio-net ({kind}) at {}, {}", f.bdf, if msix.is_some() { "MSI-X" } else { "polled" });
    Some(VirtioNet::new(transport, &DMA, msix))
}

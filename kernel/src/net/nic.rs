//! Finding and starting the network card: virtio-net over modern or legacy PCI (with
//! MSI-X when the device has it, else MSI, else its INTx line), else an Intel e1000 or
//! e1000e on PCI ([`e1000`]), else virtio over MMIO (interrupt through the I/O APIC),
//! else the card on the hypervisor's own bus (events through its upcall).

mod e1000;

use bootinfo::cmdline::{IrqLimit, NicChoice};
use drivers::net::choice::{Candidate, Chooser, Want};
use drivers::net::{AnyNic, NetDevice, NicError, NicTypes};
use drivers::pci::{self, CAP_VENDOR, ConfigSpace};
use drivers::virtio::AnyTransport;
use drivers::virtio::mmio::{self, Mmio, MmioDevice};
use drivers::virtio::net::{MsixEntries, VirtioNet};
use drivers::virtio::pci::{
    CAP_COMMON, CAP_DEVICE, CAP_ISR, CAP_NOTIFY, DEVICE_NET_MODERN, DEVICE_NET_TRANSITIONAL, LegacyPci,
    ModernPci, VENDOR,
};

use crate::arch::mmio::MmioRange;
use crate::arch::port::PortRange;
use crate::dma::Dma;
use crate::pci::{config, functions, io_bar, map_bar};

pub type Transport = AnyTransport<MmioRange, PortRange>;

/// The kernel's handles, as the drivers take them.
#[derive(Debug)]
pub enum Kernel {}

impl NicTypes for Kernel {
    type Dma = Dma;
    type Virtio = Transport;
    type HypervisorBus = pv::bus::Handles;
    type Mmio = MmioRange;
}

pub type Nic = AnyNic<Kernel>;

/// The interrupt vector network cards signal on.
pub const NET_VECTOR: u8 = 0x40;

pub static DMA: Dma = Dma::new();

/// One virtio PCI capability: `(type, bar, offset, length, notify multiplier)`.
fn virtio_caps(bdf: pci::Bdf) -> alloc::vec::Vec<(u8, u8, u32, u32, u32)> {
    let cfg = config();
    pci::capabilities(cfg, bdf)
        .into_iter()
        .filter(|&(id, at)| id == CAP_VENDOR && pci::capability_fits(at, 16))
        .filter_map(|(_, at)| {
            let kind = cfg.read8(bdf, at + 3);
            let bar = cfg.read8(bdf, at + 4);
            let offset = cfg.read32(bdf, at + 8);
            let length = cfg.read32(bdf, at + 12);
            let multiplier = match kind {
                // The notify capability has a fifth register.
                CAP_NOTIFY if !pci::capability_fits(at, 20) => return None,
                CAP_NOTIFY => cfg.read32(bdf, at + 16),
                _ => 0,
            };
            Some((kind, bar, offset, length, multiplier))
        })
        .collect()
}

fn modern(bdf: pci::Bdf, msix: bool) -> Option<ModernPci<MmioRange>> {
    let caps = virtio_caps(bdf);
    let window = |kind: u8| {
        let &(_, bar, offset, length, mult) = caps.iter().find(|c| c.0 == kind)?;
        let length = length.max(4);
        Some((map_bar(bdf, bar, u64::from(offset), u64::from(length))?, length, mult))
    };
    let (common, ..) = window(CAP_COMMON)?;
    let (notify, notify_len, notify_multiplier) = window(CAP_NOTIFY)?;
    let (isr, ..) = window(CAP_ISR)?;
    let (device, ..) = window(CAP_DEVICE)?;
    Some(ModernPci::new(common, notify, notify_len, notify_multiplier, isr, device, msix))
}

/// How a card signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Msix,
    /// One MSI message (the device still reports causes in its ISR, as with INTx).
    Msi,
    /// A line through the I/O APIC; level lines are masked between interrupt and ack.
    Line(crate::interrupts::Line),
    /// Nothing: the stack polls the card.
    Polled,
    /// The hypervisor's event upcall (a card on its own bus).
    Event,
}

impl core::fmt::Display for Signal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Signal::Msix => f.write_str("MSI-X"),
            Signal::Msi => f.write_str("MSI"),
            Signal::Line(l) => write!(
                f,
                "GSI {} ({}, active {})",
                l.gsi,
                if l.level { "level" } else { "edge" },
                if l.active_low { "low" } else { "high" }
            ),
            Signal::Polled => f.write_str("polled"),
            Signal::Event => f.write_str("hypervisor events"),
        }
    }
}

/// A started card and how it signals.
pub type Probed = Result<(Nic, Signal), NicError>;

/// Where a card sits, for logs and `net.nic=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Pci(pci::Bdf),
    Mmio(u64),
}

impl core::fmt::Display for Place {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Place::Pci(bdf) => write!(f, "{bdf}"),
            Place::Mmio(base) => write!(f, "{base:#x}"),
        }
    }
}

/// A card that started, while the probe looks at the others.
struct Found {
    nic: Nic,
    signal: Signal,
    place: Place,
}

impl Candidate for Found {
    fn mac(&self) -> [u8; 6] {
        self.nic.mac()
    }
    fn link_up(&self) -> bool {
        self.nic.link_up()
    }
    /// Resets the card and takes it off the bus: the stack uses another.
    fn stop(self) {
        self.nic.stop();
        if let Place::Pci(bdf) = self.place {
            pci::disable(config(), bdf);
        }
    }
}

/// Starts the card the stack uses: the one `choice` names (`net.nic=`), else the first
/// with its link up, else the first that started. PCI cards come in bus order, each to
/// the driver that claims its IDs (virtio-net, e1000/e1000e, vmxnet3), then the
/// virtio-mmio windows; the card on the hypervisor's own bus only when there is no
/// other. A card that fails to start is named in the log and left alone; the others are
/// still tried. Cards started but not chosen are reset and taken off the bus. `irq`
/// caps how PCI cards interrupt (`net.irq=`).
pub fn probe(
    mmio_devices: &[Option<MmioDevice>],
    choice: Option<NicChoice>,
    irq: IrqLimit,
) -> Option<Probed> {
    if let Some(choice) = choice {
        let want = match choice {
            NicChoice::Pci { bus, device, function } => Want::Pci(pci::Bdf { bus, device, function }),
            NicChoice::Mac(mac) => Want::Mac(mac),
        };
        match pick(mmio_devices, want, irq) {
            Some(Ok(found)) => {
                log::info!("net: using the {} at {} (net.nic={choice})", found.nic.name(), found.place);
                return Some(Ok((found.nic, found.signal)));
            }
            Some(Err(e)) => log::warn!("net: `net.nic={choice}`: {e}"),
            None => log::warn!("net: `net.nic={choice}` names no card here; taking the first with a link"),
        }
    }
    match pick(mmio_devices, Want::FirstWithLink, irq) {
        Some(Ok(found)) => {
            if !found.nic.link_up() {
                log::warn!("net: no card has its link up; taking the first");
            }
            log::info!("net: using the {} at {}", found.nic.name(), found.place);
            Some(Ok((found.nic, found.signal)))
        }
        Some(Err(e)) => Some(Err(e)),
        None => probe_hypervisor_bus(),
    }
}

/// One pass over the cards for [`probe`]; the first error when no card started.
fn pick(mmio_devices: &[Option<MmioDevice>], want: Want, irq: IrqLimit) -> Option<Result<Found, NicError>> {
    let mut chooser = Chooser::new(want);
    // Started one at a time, as the chooser asks: a card's DMA memory is never freed,
    // so cards after the one taken are best left unstarted.
    let pci_cards = functions().iter().filter(|f| want.considers(f.bdf)).filter_map(|f| {
        let started =
            if f.vendor == VENDOR && (f.device == DEVICE_NET_MODERN || f.device == DEVICE_NET_TRANSITIONAL) {
                start_virtio_pci(f, irq)
            } else if let Some(model) = drivers::e1000::Model::from_ids(f.vendor, f.device) {
                e1000::start(f, model, irq)
            } else if f.vendor == drivers::vmxnet3::VENDOR && f.device == drivers::vmxnet3::DEVICE {
                start_vmxnet3(f, irq)
            } else {
                return None;
            };
        Some((Place::Pci(f.bdf), started))
    });
    let mmio_cards = mmio_devices
        .iter()
        .flatten()
        .filter(|_| want.considers_non_pci())
        .filter_map(|d| Some((Place::Mmio(d.base), start_mmio(d)?)));
    let mut first_error = None;
    for (place, started) in pci_cards.chain(mmio_cards) {
        match started {
            Ok((nic, signal)) => {
                if let Some(found) = chooser.offer(Found { nic, signal, place }) {
                    return Some(Ok(found));
                }
            }
            Err(e) => {
                log::warn!("net: {place}: {e}; card left alone");
                first_error.get_or_insert(e);
            }
        }
    }
    chooser.finish().map(Ok).or(first_error.map(Err))
}

pub(crate) fn probe_hypervisor_bus() -> Option<Probed> {
    let nic = pv::bus::probe_nic::<Kernel>(&DMA)?;
    if let Ok(nic) = &nic {
        log::info!("net: {} on the hypervisor's bus, {}", nic.name(), Signal::Event);
    }
    Some(nic.map(|nic| (nic, Signal::Event)))
}

/// A virtio-net card in a virtio-mmio window (`None`: no card, or another kind).
fn start_mmio(dev: &MmioDevice) -> Option<Probed> {
    crate::memory::map_device(dev.base, dev.size).ok()?;
    // SAFETY: the window was announced for a virtio-mmio device (command line or ACPI)
    // and just mapped uncached; this driver is its only user.
    let regs = unsafe { MmioRange::claim(dev.base, dev.size.min(0x1000)) }.ok()?;
    let (transport, device_type) = Mmio::probe(regs)?;
    if device_type != mmio::DEVICE_NET {
        return None;
    }
    // virtio-mmio lines are level, active high.
    let line = crate::interrupts::Line { gsi: dev.irq, level: true, active_low: false };
    let signal = if crate::interrupts::route(line, NET_VECTOR) { Signal::Line(line) } else { Signal::Polled };
    let transport = AnyTransport::Mmio(transport);
    log::info!("net: virtio-net ({}) at {:#x}, {signal}", transport.name(), dev.base);
    Some(virtio_net(transport, None, signal))
}

fn virtio_net(transport: Transport, msix: Option<MsixEntries>, signal: Signal) -> Probed {
    let nic = VirtioNet::new(transport, &DMA, msix, queue_limit())?;
    Ok((AnyNic::Virtio(nic), signal))
}

/// Queue slots per direction for the memory there is: each slot holds a 2 KiB buffer in
/// both queues, and the card gets at most a quarter of free memory (64 slots at `-m 3`,
/// the full 256 from about 8 MiB up).
pub(super) fn queue_limit() -> u16 {
    let free = crate::heap_stats().frames_free;
    let per_slot = 2 * drivers::virtio::net::BUFFER_LEN as u64;
    let slots = (free / 4 / per_slot).clamp(16, u64::from(drivers::virtio::net::MAX_QUEUE));
    // A power of two, as modern devices require.
    1 << slots.ilog2()
}

fn start_virtio_pci(f: &pci::Function, irq: IrqLimit) -> Probed {
    let cfg = config();
    // MSI-X first: it moves the legacy device-config window, and queue vectors can only
    // be set while it is on.
    let msix = pci::msix(cfg, f.bdf).filter(|_| irq >= IrqLimit::Msix).and_then(|info| {
        let table =
            map_bar(f.bdf, info.table_bar, u64::from(info.table_offset), u64::from(info.table_size) * 16)?;
        let apic = pv::native::apic::id() as u8;
        for entry in 0..info.table_size.min(2) {
            pci::msix_set_entry(&table, entry, apic, NET_VECTOR);
        }
        pci::msix_enable(cfg, f.bdf, &info);
        (info.table_size >= 2).then_some(MsixEntries { rx: 0, tx: 1 })
    });
    // MSI next. QEMU's virtio cards offer only MSI-X, so this path is exercised by the
    // `pci-msi` self-test on QEMU's `edu` device rather than by a NIC.
    let msi = msix.is_none()
        && irq >= IrqLimit::Msi
        && pci::msi_enable(cfg, f.bdf, pv::native::apic::id() as u8, NET_VECTOR);
    pci::enable(cfg, f.bdf, msix.is_some() || msi);
    let transport = match modern(f.bdf, msix.is_some()) {
        Some(m) => AnyTransport::ModernPci(m),
        None => match io_bar(f.bdf, 0) {
            Some(io) => AnyTransport::LegacyPci(LegacyPci { io, msix: msix.is_some() }),
            None => return Err(NicError::Virtio(drivers::virtio::Error::Missing("an I/O BAR 0"))),
        },
    };
    // Else the INTx line the firmware routed (interrupt-line register).
    let signal = match (msix, f.interrupt_line) {
        (Some(_), _) => Signal::Msix,
        (None, _) if msi => Signal::Msi,
        (None, irq @ 1..=0xfe) => {
            let line = crate::interrupts::pci_intx_line(irq);
            if crate::interrupts::route(line, NET_VECTOR) { Signal::Line(line) } else { Signal::Polled }
        }
        (None, _) => Signal::Polled,
    };
    log::info!("net: virtio-net ({}) at {}, {signal}", transport.name(), f.bdf);
    virtio_net(transport, msix, signal)
}

/// Sets up the one interrupt a card with a single vector uses: MSI-X entry 0 (when
/// `msix_ok` and the card has MSI-X), else MSI, else its INTx line, as far as `irq`
/// allows; polled when none works. Enables the function either way.
pub(super) fn single_vector(f: &pci::Function, irq: IrqLimit, msix_ok: bool) -> Signal {
    let cfg = config();
    let apic = pv::native::apic::id() as u8;
    let msix = msix_ok
        && irq >= IrqLimit::Msix
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
    match f.interrupt_line {
        _ if msix => Signal::Msix,
        _ if msi => Signal::Msi,
        irq @ 1..=0xfe => {
            let line = crate::interrupts::pci_intx_line(irq);
            if crate::interrupts::route(line, NET_VECTOR) { Signal::Line(line) } else { Signal::Polled }
        }
        _ => Signal::Polled,
    }
}

/// vmxnet3: BAR0 (doorbells, interrupt masks) and BAR1 (commands, registers). The
/// driver runs its queues and events on interrupt 0: MSI-X entry 0 when the card has
/// MSI-X (QEMU's does, in BAR2), else MSI, else its INTx line.
fn start_vmxnet3(f: &pci::Function, irq: IrqLimit) -> Probed {
    use drivers::vmxnet3::{Error, Vmxnet3};
    let (Some(pt), Some(vd)) = (map_bar(f.bdf, 0, 0, 0x1000), map_bar(f.bdf, 1, 0, 0x1000)) else {
        return Err(NicError::Vmxnet3(Error::MissingBar));
    };
    let signal = single_vector(f, irq, true);
    log::info!("net: vmxnet3 at {}, {signal}", f.bdf);
    let nic = Vmxnet3::new(pt, vd, &DMA, queue_limit()).map_err(NicError::from);
    nic.map(|nic| (AnyNic::Vmxnet3(nic), signal))
}

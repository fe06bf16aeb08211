//! virtio 1.x: transports (modern PCI, legacy PCI, MMIO) behind [`Transport`], the split
//! virtqueue, and the network device.
//!
//! Written here rather than taken from `virtio-drivers`: that crate (0.13) has no
//! legacy PCI transport and does not negotiate `VIRTIO_NET_F_MRG_RXBUF`, both of which
//! this kernel must support.

pub mod mmio;
pub mod net;
pub mod pci;
pub mod queue;

use crate::Registers;

/// Device status bits (virtio 1.x §2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const FAILED: u8 = 128;
}

pub const F_VERSION_1: u64 = 1 << 32;
/// The device reaches memory through the platform's address translation (an IOMMU):
/// accepted, since the addresses the kernel gives devices (`phys_to_dma`) are the
/// platform's (a PVH dom0's guest frames, which Xen's IOMMU tables translate).
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;
pub const F_EVENT_IDX: u64 = 1 << 29;

/// What a driver needs from a transport.
pub trait Transport {
    fn device_features(&self) -> u64;
    fn set_driver_features(&self, features: u64);
    fn status(&self) -> u8;
    fn set_status(&self, status: u8);
    /// The largest size queue `index` supports (0: no such queue).
    fn max_queue_size(&self, index: u16) -> u16;
    /// Whether queues must use the legacy contiguous layout (one address, 4096-aligned
    /// used ring).
    fn legacy_layout(&self) -> bool;
    /// Hands a queue to the device: its size and the three ring addresses, and the
    /// MSI-X entry for its interrupts (if MSI-X is on).
    fn setup_queue(
        &self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
        msix: Option<u16>,
    ) -> Result<(), Error>;
    fn notify(&self, index: u16);
    /// Reads and clears the interrupt status (bit 0: a queue, bit 1: configuration).
    fn interrupt_status(&self) -> u8;
    fn config_read8(&self, offset: u16) -> u8;
    fn config_read16(&self, offset: u16) -> u16;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The device refused our feature set.
    FeaturesRejected,
    NoQueue(u16),
    /// The device did not take an MSI-X vector.
    MsixRejected,
    OutOfMemory,
    /// A transport structure is missing.
    Missing(&'static str),
    /// A queue's notify register (the device's queue offset times its multiplier)
    /// lies outside the notify window.
    NotifyOutsideWindow {
        queue: u16,
        queue_offset: u16,
        multiplier: u32,
        window: u32,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::FeaturesRejected => write!(f, "device refused the negotiated features"),
            Error::NoQueue(q) => write!(f, "device has no queue {q}"),
            Error::MsixRejected => write!(f, "device did not accept an MSI-X vector"),
            Error::OutOfMemory => write!(f, "out of DMA memory"),
            Error::Missing(what) => write!(f, "transport lacks {what}"),
            Error::NotifyOutsideWindow { queue, queue_offset, multiplier, window } => write!(
                f,
                "queue {queue}'s notify register (offset {queue_offset} x multiplier {multiplier}) lies outside the {window}-byte notify window"
            ),
        }
    }
}

/// Reads 64 feature bits through a select register and a 32-bit window (modern PCI and
/// MMIO lay them out alike).
pub(crate) fn read_features(regs: &impl Registers, select: u16, window: u16) -> u64 {
    regs.write32(select, 0);
    let low = regs.read32(window);
    regs.write32(select, 1);
    (u64::from(regs.read32(window)) << 32) | u64::from(low)
}

/// Writes 64 feature bits through a select register and a 32-bit window.
pub(crate) fn write_features(regs: &impl Registers, select: u16, window: u16, features: u64) {
    regs.write32(select, 0);
    regs.write32(window, features as u32);
    regs.write32(select, 1);
    regs.write32(window, (features >> 32) as u32);
}

/// Writes a 64-bit register as two 32-bit halves, low first (the virtio rule).
pub(crate) fn write64(regs: &impl Registers, low: u16, value: u64) {
    regs.write32(low, value as u32);
    regs.write32(low + 4, (value >> 32) as u32);
}

/// Resets the device and negotiates: ACKNOWLEDGE, DRIVER, features (`wanted` ∩ offered),
/// FEATURES_OK (for modern devices). Returns the accepted features.
pub fn negotiate(t: &impl Transport, wanted: u64) -> Result<u64, Error> {
    t.set_status(0);
    t.set_status(status::ACKNOWLEDGE);
    t.set_status(status::ACKNOWLEDGE | status::DRIVER);
    let features = t.device_features() & wanted;
    t.set_driver_features(features);
    if features & F_VERSION_1 != 0 {
        t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        if t.status() & status::FEATURES_OK == 0 {
            t.set_status(status::FAILED);
            return Err(Error::FeaturesRejected);
        }
    }
    Ok(features)
}

/// Any transport, chosen at runtime: `M` reaches MMIO windows, `P` I/O ports.
#[derive(Debug)]
pub enum AnyTransport<M: Registers, P: Registers> {
    ModernPci(pci::ModernPci<M>),
    LegacyPci(pci::LegacyPci<P>),
    Mmio(mmio::Mmio<M>),
}

impl<M: Registers, P: Registers> AnyTransport<M, P> {
    pub fn name(&self) -> &'static str {
        match self {
            AnyTransport::ModernPci(_) => "modern PCI",
            AnyTransport::LegacyPci(_) => "legacy PCI",
            AnyTransport::Mmio(m) if m.version() == 1 => "legacy MMIO",
            AnyTransport::Mmio(_) => "MMIO",
        }
    }
}

macro_rules! any {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            AnyTransport::ModernPci($t) => $e,
            AnyTransport::LegacyPci($t) => $e,
            AnyTransport::Mmio($t) => $e,
        }
    };
}

impl<M: Registers, P: Registers> Transport for AnyTransport<M, P> {
    fn device_features(&self) -> u64 {
        any!(self, t => t.device_features())
    }
    fn set_driver_features(&self, features: u64) {
        any!(self, t => t.set_driver_features(features))
    }
    fn status(&self) -> u8 {
        any!(self, t => t.status())
    }
    fn set_status(&self, status: u8) {
        any!(self, t => t.set_status(status))
    }
    fn max_queue_size(&self, index: u16) -> u16 {
        any!(self, t => t.max_queue_size(index))
    }
    fn legacy_layout(&self) -> bool {
        any!(self, t => t.legacy_layout())
    }
    fn setup_queue(
        &self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
        msix: Option<u16>,
    ) -> Result<(), Error> {
        any!(self, t => t.setup_queue(index, size, desc, avail, used, msix))
    }
    fn notify(&self, index: u16) {
        any!(self, t => t.notify(index))
    }
    fn interrupt_status(&self) -> u8 {
        any!(self, t => t.interrupt_status())
    }
    fn config_read8(&self, offset: u16) -> u8 {
        any!(self, t => t.config_read8(offset))
    }
    fn config_read16(&self, offset: u16) -> u16 {
        any!(self, t => t.config_read16(offset))
    }
}

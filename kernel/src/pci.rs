//! PCI configuration access through ports 0xCF8/0xCFC, and finding devices' register
//! windows (mapped uncached) for their drivers.

use alloc::vec::Vec;

use drivers::Registers;
use drivers::pci::{self, Bar, Bdf, ConfigSpace, Function};
use spin::Once;

use crate::arch::mmio::MmioRange;
use crate::arch::port::PortRange;

/// Configuration mechanism #1: address to 0xCF8, data at 0xCFC.
#[derive(Debug)]
pub struct PortConfig {
    ports: PortRange,
}

impl PortConfig {
    fn address(bdf: Bdf, offset: u16) -> u32 {
        0x8000_0000
            | (u32::from(bdf.bus) << 16)
            | (u32::from(bdf.device) << 11)
            | (u32::from(bdf.function) << 8)
            | u32::from(offset & 0xfc)
    }
}

impl ConfigSpace for PortConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.ports.write32(0, Self::address(bdf, offset));
        self.ports.read32(4)
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        self.ports.write32(0, Self::address(bdf, offset));
        self.ports.write32(4, value);
    }
}

static CONFIG: Once<PortConfig> = Once::new();
static FUNCTIONS: Once<Vec<Function>> = Once::new();

pub fn config() -> &'static PortConfig {
    // SAFETY: 0xCF8..0xD00 is the PCI configuration mechanism on every PC platform,
    // driven only through this handle.
    CONFIG.call_once(|| PortConfig { ports: unsafe { PortRange::new(0xcf8, 8) } })
}

/// The functions on the bus, enumerated once.
pub fn functions() -> &'static [Function] {
    FUNCTIONS.call_once(|| {
        let found = pci::enumerate(config());
        for f in &found {
            log::debug!("pci: {} {:04x}:{:04x} class {:08x}", f.bdf, f.vendor, f.device, f.class);
        }
        found
    })
}

/// A memory BAR's window `[offset, offset + len)`, mapped uncached.
pub fn map_bar(bdf: Bdf, index: u8, offset: u64, len: u64) -> Option<MmioRange> {
    match pci::bar(config(), bdf, index)? {
        Bar::Memory { addr, size, .. } if offset.checked_add(len)? <= size => {
            crate::memory::map_device(addr + offset, len).ok()?;
            // SAFETY: the window lies inside the device's memory BAR (checked against
            // its size) and was just mapped uncached; the driver it goes to owns the
            // device.
            Some(unsafe { MmioRange::new(addr + offset, len) })
        }
        _ => None,
    }
}

/// An I/O BAR as a port window.
pub fn io_bar(bdf: Bdf, index: u8) -> Option<PortRange> {
    match pci::bar(config(), bdf, index)? {
        // SAFETY: the ports are the device's own I/O BAR, handed to its one driver.
        Bar::Io { port, size } => Some(unsafe { PortRange::new(port, size) }),
        Bar::Memory { .. } => None,
    }
}

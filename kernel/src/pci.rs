//! PCI configuration access (ECAM from the ACPI MCFG where present, else ports
//! 0xCF8/0xCFC), and finding devices' register windows (mapped uncached) for their
//! drivers.

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

/// The memory-mapped (ECAM) configuration window: each function's 4 KiB page is mapped
/// the first time it is touched.
#[derive(Debug)]
pub struct EcamConfig {
    ecam: bootinfo::acpi::Ecam,
    mapped: spin::Mutex<alloc::collections::BTreeSet<Bdf>>,
}

impl EcamConfig {
    fn function(&self, bdf: Bdf) -> Option<MmioRange> {
        if bdf.bus < self.ecam.first_bus || bdf.bus > self.ecam.last_bus {
            return None;
        }
        let page = self.ecam.base
            + ((u64::from(bdf.bus - self.ecam.first_bus) << 20)
                | (u64::from(bdf.device) << 15)
                | (u64::from(bdf.function) << 12));
        let mut mapped = self.mapped.lock();
        if !mapped.contains(&bdf) {
            crate::memory::map_device(page, 4096).ok()?;
            mapped.insert(bdf);
        }
        // SAFETY: the page is this function's configuration space inside the MCFG's
        // window, mapped uncached above; configuration accesses have no memory effects.
        unsafe { MmioRange::claim(page, 4096) }.ok()
    }
}

impl ConfigSpace for EcamConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.function(bdf).map_or(u32::MAX, |f| f.read32(offset & 0xffc))
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(f) = self.function(bdf) {
            f.write32(offset & 0xffc, value);
        }
    }
}

/// Whichever configuration mechanism the platform has.
#[derive(Debug)]
pub enum Config {
    Ecam(EcamConfig),
    Ports(PortConfig),
}

impl ConfigSpace for Config {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        match self {
            Config::Ecam(c) => c.read32(bdf, offset),
            Config::Ports(c) => c.read32(bdf, offset),
        }
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        match self {
            Config::Ecam(c) => c.write32(bdf, offset, value),
            Config::Ports(c) => c.write32(bdf, offset, value),
        }
    }
}

static ECAM: Once<bootinfo::acpi::Ecam> = Once::new();
static CONFIG: Once<Config> = Once::new();
static FUNCTIONS: Once<Vec<Function>> = Once::new();

/// Records the MCFG's window (at boot, while the ACPI tables are still intact).
pub(crate) fn set_ecam(ecam: bootinfo::acpi::Ecam) {
    ECAM.call_once(|| ecam);
}

pub fn config() -> &'static Config {
    CONFIG.call_once(|| match ECAM.get() {
        Some(&ecam) => {
            log::info!("pci: ECAM at {:#x}, buses {}-{}", ecam.base, ecam.first_bus, ecam.last_bus);
            Config::Ecam(EcamConfig { ecam, mapped: spin::Mutex::new(alloc::collections::BTreeSet::new()) })
        }
        None => {
            // SAFETY: 0xCF8..0xD00 is the PCI configuration mechanism on every PC
            // platform; configuration accesses cannot start DMA by themselves.
            let ports = unsafe { PortRange::claim(0xcf8, 8) };
            Config::Ports(PortConfig { ports: ports.expect("the PCI configuration ports are claimed once") })
        }
    })
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

/// BAR `index` of `bdf`, with a BAR that wraps logged and left unused.
fn decoded_bar(bdf: Bdf, index: u8) -> Option<Bar> {
    pci::bar(config(), bdf, index).unwrap_or_else(|e| {
        log::warn!("pci: {bdf}: {e}; not used");
        None
    })
}

/// A memory BAR's window `[offset, offset + len)`, mapped uncached.
pub fn map_bar(bdf: Bdf, index: u8, offset: u64, len: u64) -> Option<MmioRange> {
    match decoded_bar(bdf, index)? {
        // `bar` checked that addr + size does not wrap.
        Bar::Memory { addr, size, .. } if offset.checked_add(len)? <= size => {
            crate::memory::map_device(addr + offset, len).ok()?;
            // SAFETY: the window lies inside the device's memory BAR (checked against
            // its size) and was just mapped uncached; the driver it goes to owns the
            // device.
            unsafe { MmioRange::claim(addr + offset, len) }
                .inspect_err(|e| log::warn!("pci: {bdf}: BAR {index}: {e}"))
                .ok()
        }
        _ => None,
    }
}

/// An I/O BAR as a port window.
pub fn io_bar(bdf: Bdf, index: u8) -> Option<PortRange> {
    match decoded_bar(bdf, index)? {
        Bar::Io { port, size } => {
            // SAFETY: the ports are the device's own I/O BAR, handed to its one driver.
            let ports = unsafe { PortRange::claim(port, size) };
            ports.inspect_err(|e| log::warn!("pci: {bdf}: BAR {index}: {e}")).ok()
        }
        Bar::Memory { .. } => None,
    }
}

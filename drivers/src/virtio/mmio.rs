//! virtio over MMIO (virtio 1.x §4.2): version 2 (modern) and version 1 (legacy), as
//! QEMU's microvm and Firecracker provide.

use super::{Error, Transport};
use crate::Registers;

const MAGIC: u16 = 0x000;
const VERSION: u16 = 0x004;
const DEVICE_ID: u16 = 0x008;
const DEVICE_FEATURES: u16 = 0x010;
const DEVICE_FEATURES_SEL: u16 = 0x014;
const DRIVER_FEATURES: u16 = 0x020;
const DRIVER_FEATURES_SEL: u16 = 0x024;
const GUEST_PAGE_SIZE: u16 = 0x028;
const QUEUE_SEL: u16 = 0x030;
const QUEUE_NUM_MAX: u16 = 0x034;
const QUEUE_NUM: u16 = 0x038;
const QUEUE_ALIGN: u16 = 0x03c;
const QUEUE_PFN: u16 = 0x040;
const QUEUE_READY: u16 = 0x044;
const QUEUE_NOTIFY: u16 = 0x050;
const INTERRUPT_STATUS: u16 = 0x060;
const INTERRUPT_ACK: u16 = 0x064;
const STATUS: u16 = 0x070;
const QUEUE_DESC: u16 = 0x080;
const QUEUE_DRIVER: u16 = 0x090;
const QUEUE_DEVICE: u16 = 0x0a0;
const CONFIG: u16 = 0x100;

/// "virt"
const MAGIC_VALUE: u32 = 0x7472_6976;
pub const DEVICE_NET: u32 = 1;

#[derive(Debug)]
pub struct Mmio<R: Registers> {
    regs: R,
    version: u32,
}

impl<R: Registers> Mmio<R> {
    /// The transport and its device type, if a virtio device answers in `regs`.
    pub fn probe(regs: R) -> Option<(Self, u32)> {
        if regs.read32(MAGIC) != MAGIC_VALUE {
            return None;
        }
        let version = regs.read32(VERSION);
        let device = regs.read32(DEVICE_ID);
        ((version == 1 || version == 2) && device != 0).then_some((Mmio { regs, version }, device))
    }

    pub fn version(&self) -> u32 {
        self.version
    }
}

impl<R: Registers> Transport for Mmio<R> {
    fn device_features(&self) -> u64 {
        super::read_features(&self.regs, DEVICE_FEATURES_SEL, DEVICE_FEATURES)
    }
    fn set_driver_features(&self, features: u64) {
        super::write_features(&self.regs, DRIVER_FEATURES_SEL, DRIVER_FEATURES, features);
    }
    fn status(&self) -> u8 {
        self.regs.read32(STATUS) as u8
    }
    fn set_status(&self, status: u8) {
        self.regs.write32(STATUS, u32::from(status));
    }
    fn max_queue_size(&self, index: u16) -> u16 {
        self.regs.write32(QUEUE_SEL, u32::from(index));
        self.regs.read32(QUEUE_NUM_MAX).min(u32::from(u16::MAX)) as u16
    }
    fn legacy_layout(&self) -> bool {
        self.version == 1
    }
    fn setup_queue(
        &self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
        _msix: Option<u16>,
    ) -> Result<(), Error> {
        self.regs.write32(QUEUE_SEL, u32::from(index));
        if self.regs.read32(QUEUE_NUM_MAX) == 0 {
            return Err(Error::NoQueue(index));
        }
        self.regs.write32(QUEUE_NUM, u32::from(size));
        if self.version == 1 {
            self.regs.write32(GUEST_PAGE_SIZE, 4096);
            self.regs.write32(QUEUE_ALIGN, 4096);
            self.regs.write32(QUEUE_PFN, (desc >> 12) as u32);
        } else {
            super::write64(&self.regs, QUEUE_DESC, desc);
            super::write64(&self.regs, QUEUE_DRIVER, avail);
            super::write64(&self.regs, QUEUE_DEVICE, used);
            self.regs.write32(QUEUE_READY, 1);
        }
        Ok(())
    }
    fn notify(&self, index: u16) {
        self.regs.write32(QUEUE_NOTIFY, u32::from(index));
    }
    fn interrupt_status(&self) -> u8 {
        let status = self.regs.read32(INTERRUPT_STATUS);
        if status != 0 {
            self.regs.write32(INTERRUPT_ACK, status);
        }
        status as u8
    }
    fn config_read8(&self, offset: u16) -> u8 {
        self.regs.read8(CONFIG + offset)
    }
    fn config_read16(&self, offset: u16) -> u16 {
        self.regs.read16(CONFIG + offset)
    }
}

/// One `virtio_mmio.device=<size>@<base>:<irq>` entry (the Linux syntax QEMU's microvm
/// and Firecracker put on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDevice {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

/// Parses the value of a `virtio_mmio.device=` setting; the error says what is wrong.
pub fn parse_cmdline_device(value: &str) -> Result<MmioDevice, &'static str> {
    const SYNTAX: &str = "expected <size>@<base>:<irq>";
    let (size, rest) = value.split_once('@').ok_or(SYNTAX)?;
    let (base, rest) = rest.split_once(':').ok_or(SYNTAX)?;
    let irq = rest.split(':').next().ok_or(SYNTAX)?;
    let (digits, scale) = match size.as_bytes().last().ok_or(SYNTAX)? {
        b'K' | b'k' => (&size[..size.len() - 1], 1 << 10),
        b'M' | b'm' => (&size[..size.len() - 1], 1 << 20),
        _ => (size, 1),
    };
    let number = |s: &str| match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    };
    let size = number(digits).ok_or(SYNTAX)?.checked_mul(scale).ok_or("the size does not fit 64 bits")?;
    let irq = u32::try_from(number(irq).ok_or(SYNTAX)?).map_err(|_| "the interrupt does not fit 32 bits")?;
    let dev = MmioDevice { base: number(base).ok_or(SYNTAX)?, size, irq };
    if dev.size < 0x100 {
        return Err("the window is smaller than the 0x100 bytes of virtio-mmio registers");
    }
    if dev.base.checked_add(dev.size).is_none() {
        return Err("the window runs past the end of the address space");
    }
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_devices() {
        assert_eq!(
            parse_cmdline_device("512@0xfeb00000:12"),
            Ok(MmioDevice { base: 0xfeb0_0000, size: 512, irq: 12 })
        );
        assert_eq!(
            parse_cmdline_device("4K@0xd0000000:5:2"),
            Ok(MmioDevice { base: 0xd000_0000, size: 4096, irq: 5 })
        );
        assert_eq!(parse_cmdline_device("1K@4096:48"), Ok(MmioDevice { base: 4096, size: 1024, irq: 48 }));
        for bad in ["", "512", "512@0xfeb00000", "x@0x1000:1", "512@0xzz:1", "512@0x1000:", "M@0x1000:1"] {
            assert_eq!(parse_cmdline_device(bad), Err("expected <size>@<base>:<irq>"), "{bad}");
        }
        assert!(parse_cmdline_device("16@0x1000:1").unwrap_err().contains("smaller"));
        assert!(parse_cmdline_device("512@0x1000:0x100000000").unwrap_err().contains("interrupt"));
        assert!(parse_cmdline_device("0xffffffffffffffffM@0:1").unwrap_err().contains("64 bits"));
    }

    #[test]
    fn a_cmdline_window_that_wraps_is_refused() {
        assert_eq!(
            parse_cmdline_device("4K@0xfffffffffffff800:5"),
            Err("the window runs past the end of the address space")
        );
        // The last window that fits ends at 2^64 - 1.
        assert!(parse_cmdline_device("0x7ff@0xfffffffffffff800:5").is_ok());
    }

    #[test]
    fn probe_checks_magic_version_and_device() {
        use crate::mock::MockRegisters;
        let regs = MockRegisters::new(0);
        regs.reads.borrow_mut().insert(MAGIC, MAGIC_VALUE);
        regs.reads.borrow_mut().insert(VERSION, 2);
        regs.reads.borrow_mut().insert(DEVICE_ID, DEVICE_NET);
        let (t, id) = Mmio::probe(regs).unwrap();
        assert_eq!((t.version(), id), (2, DEVICE_NET));
        let empty = MockRegisters::new(0);
        empty.reads.borrow_mut().insert(MAGIC, MAGIC_VALUE);
        empty.reads.borrow_mut().insert(VERSION, 2);
        assert!(Mmio::probe(empty).is_none(), "device id 0 is an empty slot");
        assert!(Mmio::probe(MockRegisters::new(0xffff_ffff)).is_none());
    }
}

//! Device drivers.
//!
//! Drivers never touch hardware directly: the kernel hands each one a [`Registers`]
//! handle for exactly the I/O ports or MMIO window of its device, DMA memory through
//! [`dma`], and (Xen's front ends) shared pages and hypercall services through the
//! traits of [`xen`]. That keeps `unsafe` out of this crate and lets every driver run on
//! the host against a mock device. Network cards serve the kernel's stack through
//! [`net::NetDevice`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi_pm;
pub mod debug_exit;
pub mod dma;
pub mod e1000;
pub mod net;
pub mod pci;
pub mod uart16550;
pub mod virtio;
pub mod vmxnet3;
pub mod xen;

/// Access to one device's register window, by byte offset.
pub trait Registers {
    fn read8(&self, offset: u16) -> u8;
    fn write8(&self, offset: u16, value: u8);
    fn read16(&self, offset: u16) -> u16;
    fn write16(&self, offset: u16, value: u16);
    fn read32(&self, offset: u16) -> u32;
    fn write32(&self, offset: u16, value: u32);
}

/// A byte sink for kernel output: a serial port, or a hypervisor's console.
pub trait Console: Sync {
    fn write(&self, bytes: &[u8]);
}

/// A recording register window for host tests.
#[cfg(test)]
pub(crate) mod mock {
    extern crate std;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Reads return `reads[offset]` (or `default`); every access is logged.
    #[derive(Debug)]
    pub struct MockRegisters {
        pub reads: RefCell<BTreeMap<u16, u32>>,
        pub default: u32,
        pub writes: RefCell<Vec<(u16, u32, u8)>>,
    }

    impl MockRegisters {
        pub fn new(default: u32) -> Self {
            MockRegisters { reads: RefCell::new(BTreeMap::new()), default, writes: RefCell::new(Vec::new()) }
        }
        fn read(&self, offset: u16) -> u32 {
            *self.reads.borrow().get(&offset).unwrap_or(&self.default)
        }
        fn write(&self, offset: u16, value: u32, width: u8) {
            self.writes.borrow_mut().push((offset, value, width));
        }
    }

    impl super::Registers for MockRegisters {
        fn read8(&self, offset: u16) -> u8 {
            self.read(offset) as u8
        }
        fn write8(&self, offset: u16, value: u8) {
            self.write(offset, value.into(), 1)
        }
        fn read16(&self, offset: u16) -> u16 {
            self.read(offset) as u16
        }
        fn write16(&self, offset: u16, value: u16) {
            self.write(offset, value.into(), 2)
        }
        fn read32(&self, offset: u16) -> u32 {
            self.read(offset)
        }
        fn write32(&self, offset: u16, value: u32) {
            self.write(offset, value, 4)
        }
    }

    /// A borrowed window, so a test can still read the log after the driver that was
    /// given the window is gone.
    impl super::Registers for &MockRegisters {
        fn read8(&self, offset: u16) -> u8 {
            (**self).read8(offset)
        }
        fn write8(&self, offset: u16, value: u8) {
            (**self).write8(offset, value)
        }
        fn read16(&self, offset: u16) -> u16 {
            (**self).read16(offset)
        }
        fn write16(&self, offset: u16, value: u16) {
            (**self).write16(offset, value)
        }
        fn read32(&self, offset: u16) -> u32 {
            (**self).read32(offset)
        }
        fn write32(&self, offset: u16, value: u32) {
            (**self).write32(offset, value)
        }
    }
}

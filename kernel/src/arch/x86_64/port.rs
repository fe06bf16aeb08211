//! I/O port handles. The accesses themselves go through the pv-ops table.

use pv::ops::ops;

/// A device's window of I/O ports, `[base, base + len)`.
#[derive(Debug)]
pub struct PortRange {
    base: u16,
    len: u16,
}

impl PortRange {
    /// # Safety
    /// The ports must belong to one device that nothing else drives, and accessing them
    /// must not break memory safety (no port here starts DMA on its own).
    pub const unsafe fn new(base: u16, len: u16) -> Self {
        PortRange { base, len }
    }

    fn port(&self, offset: u16, width: u16) -> u16 {
        assert!(
            offset.checked_add(width).is_some_and(|end| end <= self.len),
            "port offset {offset} out of range"
        );
        self.base + offset
    }
}

impl drivers::Registers for PortRange {
    fn read8(&self, offset: u16) -> u8 {
        (ops().io.inb)(self.port(offset, 1))
    }
    fn write8(&self, offset: u16, value: u8) {
        (ops().io.outb)(self.port(offset, 1), value)
    }
    fn read16(&self, offset: u16) -> u16 {
        (ops().io.inw)(self.port(offset, 2))
    }
    fn write16(&self, offset: u16, value: u16) {
        (ops().io.outw)(self.port(offset, 2), value)
    }
    fn read32(&self, offset: u16) -> u32 {
        (ops().io.inl)(self.port(offset, 4))
    }
    fn write32(&self, offset: u16, value: u32) {
        (ops().io.outl)(self.port(offset, 4), value)
    }
}

//! I/O port handles. The accesses themselves go through the pv-ops table.

use pv::table::ops;

use super::claims::{self, ClaimError, Space};

/// A device's window of I/O ports, `[base, base + len)`, held by one driver.
#[derive(Debug)]
pub struct PortRange {
    base: u16,
    len: u16,
}

impl PortRange {
    /// Takes the ports for one driver; refused if any of them is already taken.
    ///
    /// # Safety
    /// The ports must belong to one device, and no access to them may break memory
    /// safety (no port here starts DMA on its own).
    pub unsafe fn claim(base: u16, len: u16) -> Result<Self, ClaimError> {
        claims::claim(Space::Port, u64::from(base), u64::from(len))?;
        Ok(PortRange { base, len })
    }

    fn port(&self, offset: u16, width: u16) -> u16 {
        assert!(
            offset.checked_add(width).is_some_and(|end| end <= self.len),
            "port offset {offset} out of range"
        );
        self.base + offset
    }
}

impl Drop for PortRange {
    fn drop(&mut self) {
        claims::release(Space::Port, u64::from(self.base), u64::from(self.len));
    }
}

// SAFETY (every access below): the port is inside the window (`port` checks), which this
// handle holds alone, and `claim`'s caller vouched that accesses to it are safe.
impl drivers::Registers for PortRange {
    fn read8(&self, offset: u16) -> u8 {
        // SAFETY: see above.
        unsafe { (ops().io.inb)(self.port(offset, 1)) }
    }
    fn write8(&self, offset: u16, value: u8) {
        // SAFETY: see above.
        unsafe { (ops().io.outb)(self.port(offset, 1), value) }
    }
    fn read16(&self, offset: u16) -> u16 {
        // SAFETY: see above.
        unsafe { (ops().io.inw)(self.port(offset, 2)) }
    }
    fn write16(&self, offset: u16, value: u16) {
        // SAFETY: see above.
        unsafe { (ops().io.outw)(self.port(offset, 2), value) }
    }
    fn read32(&self, offset: u16) -> u32 {
        // SAFETY: see above.
        unsafe { (ops().io.inl)(self.port(offset, 4)) }
    }
    fn write32(&self, offset: u16, value: u32) {
        // SAFETY: see above.
        unsafe { (ops().io.outl)(self.port(offset, 4), value) }
    }
}

//! I/O port handles: the only place the kernel executes `in` and `out`.

use core::arch::asm;

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
        let v;
        // SAFETY: the port is inside this handle's range (checked), which `new`'s caller vouched for.
        unsafe {
            asm!("in al, dx", in("dx") self.port(offset, 1), out("al") v, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn write8(&self, offset: u16, value: u8) {
        // SAFETY: as in read8.
        unsafe {
            asm!("out dx, al", in("dx") self.port(offset, 1), in("al") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn read16(&self, offset: u16) -> u16 {
        let v;
        // SAFETY: as in read8.
        unsafe {
            asm!("in ax, dx", in("dx") self.port(offset, 2), out("ax") v, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn write16(&self, offset: u16, value: u16) {
        // SAFETY: as in read8.
        unsafe {
            asm!("out dx, ax", in("dx") self.port(offset, 2), in("ax") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn read32(&self, offset: u16) -> u32 {
        let v;
        // SAFETY: as in read8.
        unsafe {
            asm!("in eax, dx", in("dx") self.port(offset, 4), out("eax") v, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn write32(&self, offset: u16, value: u32) {
        // SAFETY: as in read8.
        unsafe {
            asm!("out dx, eax", in("dx") self.port(offset, 4), in("eax") value, options(nomem, nostack, preserves_flags))
        };
    }
}

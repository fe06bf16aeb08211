//! Memory-mapped register handles: the only place the kernel does volatile device
//! accesses.

use super::claims::{self, ClaimError, Space};

/// A device's MMIO window `[base, base + len)`, identity-mapped uncached, held by one
/// driver.
#[derive(Debug)]
pub struct MmioRange {
    base: u64,
    len: u64,
}

impl MmioRange {
    /// Takes the window for one driver; refused if it overlaps one already taken.
    ///
    /// # Safety
    /// The window must be mapped as device memory at its physical address and belong to
    /// one device, and no access to it may break memory safety.
    pub unsafe fn claim(base: u64, len: u64) -> Result<Self, ClaimError> {
        claims::claim(Space::Mmio, base, len)?;
        Ok(MmioRange { base, len })
    }

    fn addr(&self, offset: u16, width: u64) -> u64 {
        assert!(u64::from(offset) + width <= self.len, "MMIO offset {offset} out of range");
        self.base + u64::from(offset)
    }
}

impl Drop for MmioRange {
    fn drop(&mut self) {
        claims::release(Space::Mmio, self.base, self.len);
    }
}

macro_rules! mmio_access {
    ($read:ident, $write:ident, $t:ty) => {
        fn $read(&self, offset: u16) -> $t {
            let p = self.addr(offset, core::mem::size_of::<$t>() as u64) as *const $t;
            // SAFETY: in-range (checked) address of a mapped device window, as `new`'s
            // caller vouched.
            unsafe { p.read_volatile() }
        }
        fn $write(&self, offset: u16, value: $t) {
            let p = self.addr(offset, core::mem::size_of::<$t>() as u64) as *mut $t;
            // SAFETY: as for the read.
            unsafe { p.write_volatile(value) }
        }
    };
}

impl drivers::Registers for MmioRange {
    mmio_access!(read8, write8, u8);
    mmio_access!(read16, write16, u16);
    mmio_access!(read32, write32, u32);
}

//! What the loader hands the kernel, parsed into typed values.
//!
//! Everything here reads guest-physical memory through [`PhysMemory`], so the same code
//! runs in the kernel (identity-mapped memory) and in host tests (a byte buffer). Nothing
//! here allocates: it runs before the heap exists.
#![no_std]
#![forbid(unsafe_code)]

pub mod acpi;
pub mod cmdline;
pub mod memmap;
pub mod multiboot2;
pub mod pvh;
pub mod xen_pv;

/// Reads guest-physical memory.
pub trait PhysMemory {
    /// Fills `buf` from guest-physical address `addr`, or fails if any byte of the
    /// range is not readable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Unreadable>;

    fn read_u8(&self, addr: u64) -> Result<u8, Unreadable> {
        let mut b = [0; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }
    fn read_u16(&self, addr: u64) -> Result<u16, Unreadable> {
        let mut b = [0; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn read_u32(&self, addr: u64) -> Result<u32, Unreadable> {
        let mut b = [0; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_u64(&self, addr: u64) -> Result<u64, Unreadable> {
        let mut b = [0; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// A guest-physical range that [`PhysMemory`] cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable {
    pub addr: u64,
    pub len: usize,
}

impl core::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} bytes at {:#x} are not readable", self.len, self.addr)?;
        if self.addr.checked_add(self.len as u64).is_none() {
            write!(f, " (they run past the end of the address space)")?;
        }
        Ok(())
    }
}

/// `base + offset` for an address built from loader-supplied values: a sum past the
/// end of the address space is unreadable rather than a wrapped (wrong) address.
pub(crate) fn offset(base: u64, offset: u64) -> Result<u64, Unreadable> {
    base.checked_add(offset)
        .ok_or(Unreadable { addr: base, len: usize::try_from(offset).unwrap_or(usize::MAX) })
}

/// The little-endian `u32` at `at` in a structure copied out of guest memory.
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The little-endian `u64` at `at` in a structure copied out of guest memory.
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Test memory: a few byte buffers at guest-physical addresses.
#[cfg(test)]
pub(crate) mod testmem {
    extern crate std;
    use std::vec::Vec;

    pub struct TestMemory(pub Vec<(u64, Vec<u8>)>);

    impl TestMemory {
        pub fn new() -> Self {
            TestMemory(Vec::new())
        }
        pub fn put(&mut self, addr: u64, bytes: &[u8]) {
            self.0.push((addr, bytes.to_vec()));
        }
    }

    impl super::PhysMemory for TestMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), super::Unreadable> {
            for (base, bytes) in &self.0 {
                // u128: test memory may end at the very top of the address space.
                let end = u128::from(*base) + bytes.len() as u128;
                if addr >= *base && u128::from(addr) + buf.len() as u128 <= end {
                    let off = (addr - base) as usize;
                    buf.copy_from_slice(&bytes[off..off + buf.len()]);
                    return Ok(());
                }
            }
            Err(super::Unreadable { addr, len: buf.len() })
        }
    }
}

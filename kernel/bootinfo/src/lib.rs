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
        write!(f, "{} bytes at {:#x} are not readable", self.len, self.addr)
    }
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
                let end = base + bytes.len() as u64;
                if addr >= *base && addr + buf.len() as u64 <= end {
                    let off = (addr - base) as usize;
                    buf.copy_from_slice(&bytes[off..off + buf.len()]);
                    return Ok(());
                }
            }
            Err(super::Unreadable { addr, len: buf.len() })
        }
    }
}

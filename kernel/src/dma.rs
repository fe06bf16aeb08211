//! DMA memory for drivers: physically contiguous frames from the frame allocator,
//! identity-mapped, handed out as the safe handles `drivers::dma` defines.

use drivers::dma::{DmaAllocator, DmaBuffer, DmaRing};
use mm::PAGE_SIZE;
use pv::table::ops;
use spin::Mutex;

use crate::memory::FRAMES;

/// Ring memory: frames owned by one virtqueue for good.
#[derive(Debug)]
pub struct Ring {
    addr: u64,
    len: usize,
}

impl Ring {
    fn at(&self, offset: usize, size: usize) -> u64 {
        assert!(offset + size <= self.len, "DMA ring access out of range");
        self.addr + offset as u64
    }
}

// SAFETY (all accessors below): `at` checks the access lies inside the frames this ring
// owns, which are RAM, identity-mapped and never freed; accesses are volatile because
// the device writes the same memory.
impl DmaRing for Ring {
    fn device_addr(&self) -> u64 {
        (ops().mmu.phys_to_dma)(self.addr)
    }
    fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: see above.
        unsafe { (self.at(offset, 2) as *const u16).read_volatile() }
    }
    fn write_u16(&self, offset: usize, value: u16) {
        // SAFETY: see above.
        unsafe { (self.at(offset, 2) as *mut u16).write_volatile(value) }
    }
    fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: see above.
        unsafe { (self.at(offset, 4) as *const u32).read_volatile() }
    }
    fn write_u32(&self, offset: usize, value: u32) {
        // SAFETY: see above.
        unsafe { (self.at(offset, 4) as *mut u32).write_volatile(value) }
    }
    fn write_u64(&self, offset: usize, value: u64) {
        // SAFETY: see above.
        unsafe { (self.at(offset, 8) as *mut u64).write_volatile(value) }
    }
}

/// A packet buffer carved out of a DMA page.
#[derive(Debug)]
pub struct Buffer {
    addr: u64,
    len: usize,
}

impl DmaBuffer for Buffer {
    fn device_addr(&self) -> u64 {
        (ops().mmu.phys_to_dma)(self.addr)
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the buffer's bytes are RAM owned by this handle alone (never freed,
        // never handed out twice); the device writes them only while the driver has
        // given the handle away inside its queue, so no reference lives then.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }
}

/// Hands out DMA memory; small buffers share pages (they live as long as their device).
#[derive(Debug)]
pub struct Dma {
    /// The unused tail of the current page for small buffers: (address, bytes left).
    tail: Mutex<(u64, usize)>,
}

impl Dma {
    pub const fn new() -> Self {
        Dma { tail: Mutex::new((0, 0)) }
    }

    fn frames(len: usize) -> Option<u64> {
        let pages = (len as u64).div_ceil(PAGE_SIZE);
        let addr = FRAMES.lock().alloc(pages, PAGE_SIZE)?;
        // A device sees one run only if the frames are contiguous at its addresses too,
        // which a paravirtual guest's pseudo-physical frames need not be.
        let dma = ops().mmu.phys_to_dma;
        if (1..pages).any(|i| dma(addr + i * PAGE_SIZE) != dma(addr) + i * PAGE_SIZE) {
            log::warn!("DMA: the {pages} frames at {addr:#x} are not contiguous for devices; refused");
            let _ = FRAMES.lock().free(addr, pages);
            return None;
        }
        // SAFETY: the frames were just allocated to us: RAM, identity-mapped, unshared.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, (pages * PAGE_SIZE) as usize) };
        Some(addr)
    }
}

impl DmaAllocator for Dma {
    type Ring = Ring;
    type Buffer = Buffer;

    fn alloc_ring(&self, len: usize) -> Option<Ring> {
        Some(Ring { addr: Self::frames(len)?, len })
    }

    fn alloc_buffer(&self, len: usize) -> Option<Buffer> {
        let len = len.next_multiple_of(64);
        if len as u64 >= PAGE_SIZE {
            return Some(Buffer { addr: Self::frames(len)?, len });
        }
        let mut tail = self.tail.lock();
        if tail.1 < len {
            *tail = (Self::frames(PAGE_SIZE as usize)?, PAGE_SIZE as usize);
        }
        let addr = tail.0;
        *tail = (addr + len as u64, tail.1 - len);
        Some(Buffer { addr, len })
    }
}

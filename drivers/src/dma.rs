//! Memory shared with devices. The kernel allocates it (physically contiguous,
//! identity-mapped) and hands drivers handles; tests use host vectors.

/// Ring memory: the device may change it at any time, so every access is volatile.
pub trait DmaRing {
    /// The address the device uses.
    fn device_addr(&self) -> u64;
    fn read_u16(&self, offset: usize) -> u16;
    fn write_u16(&self, offset: usize, value: u16);
    fn read_u32(&self, offset: usize) -> u32;
    fn write_u32(&self, offset: usize, value: u32);
    fn write_u64(&self, offset: usize, value: u64);
}

/// A packet buffer: while the driver holds it the device does not touch it, so it is
/// plain bytes.
pub trait DmaBuffer {
    fn device_addr(&self) -> u64;
    fn bytes(&self) -> &[u8];
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Called before the device reads what the driver wrote. The kernel's DMA memory is
    /// coherent, so this does nothing there; the host tests' fake memory keeps the
    /// device's view of the bytes apart and copies it here.
    fn sync_for_device(&mut self) {}
    /// Called when the device hands the buffer back, before the driver reads it (see
    /// [`sync_for_device`](Self::sync_for_device)).
    fn sync_for_cpu(&mut self) {}
}

/// Allocates DMA memory: zeroed, physically contiguous, 4096-aligned.
pub trait DmaAllocator {
    type Ring: DmaRing;
    type Buffer: DmaBuffer;
    fn alloc_ring(&self, len: usize) -> Option<Self::Ring>;
    fn alloc_buffer(&self, len: usize) -> Option<Self::Buffer>;
}

#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    extern crate std;
    use core::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    /// Ring memory whose clones share bytes: the test's "device" keeps one.
    #[derive(Clone, Debug)]
    pub struct FakeRing {
        pub addr: u64,
        pub mem: Rc<RefCell<Vec<u8>>>,
    }

    impl FakeRing {
        pub fn new(addr: u64, len: usize) -> Self {
            FakeRing { addr, mem: Rc::new(RefCell::new(std::vec![0; len])) }
        }
    }

    impl super::DmaRing for FakeRing {
        fn device_addr(&self) -> u64 {
            self.addr
        }
        fn read_u16(&self, o: usize) -> u16 {
            u16::from_le_bytes(self.mem.borrow()[o..o + 2].try_into().unwrap())
        }
        fn write_u16(&self, o: usize, v: u16) {
            self.mem.borrow_mut()[o..o + 2].copy_from_slice(&v.to_le_bytes());
        }
        fn read_u32(&self, o: usize) -> u32 {
            u32::from_le_bytes(self.mem.borrow()[o..o + 4].try_into().unwrap())
        }
        fn write_u32(&self, o: usize, v: u32) {
            self.mem.borrow_mut()[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn write_u64(&self, o: usize, v: u64) {
            self.mem.borrow_mut()[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// A packet buffer in host memory, and the device's view of it (what a fake device
    /// reads and writes), synchronised by `sync_for_device`/`sync_for_cpu`.
    #[derive(Debug)]
    pub struct FakeBuffer {
        pub addr: u64,
        pub bytes: Vec<u8>,
        pub device: Rc<RefCell<Vec<u8>>>,
    }

    impl super::DmaBuffer for FakeBuffer {
        fn device_addr(&self) -> u64 {
            self.addr
        }
        fn bytes(&self) -> &[u8] {
            &self.bytes
        }
        fn bytes_mut(&mut self) -> &mut [u8] {
            &mut self.bytes
        }
        fn sync_for_device(&mut self) {
            self.device.borrow_mut().copy_from_slice(&self.bytes);
        }
        fn sync_for_cpu(&mut self) {
            self.bytes.copy_from_slice(&self.device.borrow());
        }
    }

    /// Bytes as the device sees them, shared with the driver's handle.
    pub type Memory = Rc<RefCell<Vec<u8>>>;

    /// Hands out rings and buffers at made-up device addresses; after `buffers` buffers
    /// it runs out, as the kernel's allocator does when memory is short.
    #[derive(Debug)]
    pub struct FakeDma {
        pub next_addr: core::cell::Cell<u64>,
        pub buffers: core::cell::Cell<usize>,
        /// Every ring and buffer handed out, as the device sees it: (address, bytes).
        pub memory: RefCell<Vec<(u64, Memory)>>,
    }

    impl FakeDma {
        pub fn new(buffers: usize) -> Self {
            FakeDma {
                next_addr: core::cell::Cell::new(0x10_0000),
                buffers: core::cell::Cell::new(buffers),
                memory: RefCell::new(Vec::new()),
            }
        }

        /// The device's view of the memory at `addr`: the region holding it and the
        /// offset of `addr` in it.
        pub fn at(&self, addr: u64) -> Option<(Memory, usize)> {
            self.memory.borrow().iter().find_map(|(base, mem)| {
                let offset = usize::try_from(addr.checked_sub(*base)?).ok()?;
                (offset < mem.borrow().len()).then(|| (mem.clone(), offset))
            })
        }
        fn addr(&self, len: usize) -> u64 {
            let addr = self.next_addr.get();
            self.next_addr.set(addr + (len as u64).next_multiple_of(4096));
            addr
        }
    }

    impl super::DmaAllocator for FakeDma {
        type Ring = FakeRing;
        type Buffer = FakeBuffer;
        fn alloc_ring(&self, len: usize) -> Option<FakeRing> {
            let ring = FakeRing::new(self.addr(len), len);
            self.memory.borrow_mut().push((ring.addr, ring.mem.clone()));
            Some(ring)
        }
        fn alloc_buffer(&self, len: usize) -> Option<FakeBuffer> {
            let left = self.buffers.get().checked_sub(1)?;
            self.buffers.set(left);
            let device = Rc::new(RefCell::new(std::vec![0; len]));
            let addr = self.addr(len);
            self.memory.borrow_mut().push((addr, device.clone()));
            Some(FakeBuffer { addr, bytes: std::vec![0; len], device })
        }
    }
}

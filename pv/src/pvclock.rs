//! pvclock: the time records KVM and Xen share (`pvclock_vcpu_time_info`), read under
//! their version counter, over memory the hypervisor writes.

use core::cell::UnsafeCell;
use core::sync::atomic::{Ordering, fence};

use crate::clock::PvclockRecord;

/// Memory the hypervisor writes into: the guest only reads it (volatile) and hands the
/// hypervisor its physical address, which is its address (the kernel is identity-mapped).
/// Page-aligned, so a whole frame can be handed over (Xen's shared_info).
#[repr(C, align(4096))]
pub(crate) struct HostShared<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the guest reads these buffers with volatile reads, and writes them only
// through atomics (KVM's PV EOI word, Xen's event flags and bitmaps), as the host does.
unsafe impl<const N: usize> Sync for HostShared<N> {}

impl<const N: usize> HostShared<N> {
    pub(crate) const fn new() -> Self {
        HostShared(UnsafeCell::new([0; N]))
    }
    pub(crate) fn addr(&self) -> u64 {
        self.0.get() as u64
    }
    pub(crate) fn read_u32(&self, off: usize) -> u32 {
        assert!(off + 4 <= N);
        // SAFETY: in bounds (checked), aligned by layout, and read volatile because the
        // host may change it at any time.
        unsafe { (self.0.get().cast::<u8>().add(off) as *const u32).read_volatile() }
    }
    pub(crate) fn read_u64(&self, off: usize) -> u64 {
        assert!(off + 8 <= N);
        // SAFETY: as in `read_u32`.
        unsafe { (self.0.get().cast::<u8>().add(off) as *const u64).read_volatile() }
    }
}

impl<const N: usize> HostShared<N> {
    /// The byte at `off`, shared with the host.
    pub(crate) fn atomic_u8(&self, off: usize) -> &core::sync::atomic::AtomicU8 {
        assert!(off < N);
        // SAFETY: in bounds (checked); the host changes it only with atomic operations
        // or plain stores of whole bytes, which atomics tolerate.
        unsafe { core::sync::atomic::AtomicU8::from_ptr(self.0.get().cast::<u8>().add(off)) }
    }
    /// The 4-byte word at `off` (4-aligned), shared with the host.
    pub(crate) fn atomic_u32(&self, off: usize) -> &core::sync::atomic::AtomicU32 {
        assert!(off + 4 <= N && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned (checked; the buffer is page-aligned); the host
        // updates these words whole.
        unsafe { core::sync::atomic::AtomicU32::from_ptr(self.0.get().cast::<u8>().add(off).cast()) }
    }
    /// The 8-byte word at `off` (8-aligned), shared with the host.
    pub(crate) fn atomic_u64(&self, off: usize) -> &core::sync::atomic::AtomicU64 {
        assert!(off + 8 <= N && off.is_multiple_of(8));
        // SAFETY: in bounds and aligned (checked; the buffer is page-aligned); the host
        // updates these words with locked instructions.
        unsafe { core::sync::atomic::AtomicU64::from_ptr(self.0.get().cast::<u8>().add(off).cast()) }
    }

    /// Runs `read` until it saw a consistent snapshot: the hypervisor makes the version
    /// at `version_off` odd while it updates the fields and bumps it when done.
    pub(crate) fn read_versioned<T>(&self, version_off: usize, read: impl Fn(&Self) -> T) -> T {
        loop {
            let version = self.read_u32(version_off);
            fence(Ordering::Acquire);
            let value = read(self);
            fence(Ordering::Acquire);
            if version & 1 == 0 && self.read_u32(version_off) == version {
                return value;
            }
        }
    }
}

/// Copies the record at `off` out under its version counter.
pub(crate) fn record<const N: usize>(mem: &HostShared<N>, off: usize) -> PvclockRecord {
    mem.read_versioned(off, |mem| {
        let mul_shift_flags = mem.read_u64(off + 24);
        PvclockRecord {
            tsc_timestamp: mem.read_u64(off + 8),
            system_time: mem.read_u64(off + 16),
            tsc_to_system_mul: mul_shift_flags as u32,
            tsc_shift: (mul_shift_flags >> 32) as u8 as i8,
            flags: (mul_shift_flags >> 40) as u8,
        }
    })
}

/// The record's clock now, in nanoseconds.
pub(crate) fn read_ns<const N: usize>(mem: &HostShared<N>, off: usize) -> u64 {
    mem.read_versioned(off, |mem| {
        let r = PvclockRecord {
            tsc_timestamp: mem.read_u64(off + 8),
            system_time: mem.read_u64(off + 16),
            tsc_to_system_mul: mem.read_u32(off + 24),
            tsc_shift: (mem.read_u32(off + 28) as u8) as i8,
            flags: 0,
        };
        // LFENCE orders RDTSC after the record reads.
        // SAFETY: LFENCE has no effect but ordering.
        unsafe { core::arch::x86_64::_mm_lfence() };
        r.ns_at(crate::native::tsc::rdtsc())
    })
}

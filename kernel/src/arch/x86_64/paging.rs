//! The kernel's page tables: an identity map of RAM (virtual == physical) where the image
//! gets per-section rights (text RX, rodata R, data RW+NX), all other RAM is RW+NX,
//! stack guard pages and page 0 stay unmapped, and device windows are mapped uncached
//! on demand.

use bootinfo::memmap::MemoryMap;
use mm::{FrameAllocator, PAGE_SIZE, align_down, align_up};

bitflags::bitflags! {
    /// Page-table entry bits (the address bits are kept apart, in `ADDR_MASK`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Pte: u64 {
        const PRESENT = 1 << 0;
        const WRITABLE = 1 << 1;
        const WRITE_THROUGH = 1 << 3;
        const CACHE_DISABLE = 1 << 4;
        const HUGE = 1 << 7;
        const NO_EXECUTE = 1 << 63;
    }
}

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const HUGE_SIZE: u64 = 2 << 20;

/// What a mapping may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Execute,
    Read,
    ReadWrite,
    /// Device registers: read-write, uncached, never executed.
    Device,
}

/// Ran out of frames for page tables.
#[derive(Debug, Clone, Copy)]
pub struct NoFrames;

/// The physical extent of the image and the rights of each part.
#[derive(Debug, Clone, Copy)]
pub struct ImageLayout {
    pub start: u64,
    pub text_end: u64,
    pub rodata_end: u64,
    pub end: u64,
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

pub fn image_layout() -> ImageLayout {
    let at = |p: *const u8| p as u64;
    ImageLayout {
        start: at(&raw const __image_start),
        text_end: at(&raw const __text_end),
        rodata_end: at(&raw const __rodata_end),
        end: at(&raw const __image_end),
    }
}

/// A 4-level page-table tree whose table frames this code owns exclusively.
#[derive(Debug)]
pub struct PageTables {
    pml4: u64,
    /// `NO_EXECUTE` where the CPU has it, else empty (the bit would be reserved).
    nx: Pte,
}

/// # Safety
/// `frame` must be a page-table frame owned by the `PageTables` the caller holds
/// `&mut` to (or one just allocated for it), so no other reference to it is live. All
/// RAM is identity-mapped, by the boot tables and by ours, so the frame is reachable
/// at its physical address.
unsafe fn table<'a>(frame: u64) -> &'a mut [u64; 512] {
    // SAFETY: as the caller guarantees.
    unsafe { &mut *(frame as *mut [u64; 512]) }
}

fn new_table(frames: &mut FrameAllocator) -> Result<u64, NoFrames> {
    let frame = frames.alloc(1, PAGE_SIZE).ok_or(NoFrames)?;
    // SAFETY: the frame was just allocated for a new table; nothing else refers to it.
    unsafe { table(frame) }.fill(0);
    Ok(frame)
}

impl PageTables {
    pub fn new(frames: &mut FrameAllocator, nx: bool) -> Result<Self, NoFrames> {
        Ok(PageTables { pml4: new_table(frames)?, nx: if nx { Pte::NO_EXECUTE } else { Pte::empty() } })
    }

    pub fn root(&self) -> u64 {
        self.pml4
    }

    fn leaf_flags(&self, access: Access) -> u64 {
        let flags = match access {
            Access::Execute => Pte::PRESENT,
            Access::Read => Pte::PRESENT | self.nx,
            Access::ReadWrite => Pte::PRESENT | Pte::WRITABLE | self.nx,
            Access::Device => {
                Pte::PRESENT | Pte::WRITABLE | Pte::CACHE_DISABLE | Pte::WRITE_THROUGH | self.nx
            }
        };
        flags.bits()
    }

    /// Walks to the table at `depth` (1 = PD, 0 = PT) for `virt`, creating tables.
    /// Returns `None` if a huge page already covers `virt`.
    fn walk(&mut self, frames: &mut FrameAllocator, virt: u64, depth: u32) -> Result<Option<u64>, NoFrames> {
        let mut t = self.pml4;
        for level in (depth + 1..=3).rev() {
            let index = ((virt >> (12 + 9 * level)) & 511) as usize;
            // SAFETY: `t` is the root or was read from one of our own entries, and we
            // hold `&mut self`.
            let entries = unsafe { table(t) };
            let entry = entries[index];
            let flags = Pte::from_bits_truncate(entry);
            if !flags.contains(Pte::PRESENT) {
                let next = new_table(frames)?;
                // Intermediate entries allow everything; the leaf decides.
                entries[index] = next | (Pte::PRESENT | Pte::WRITABLE).bits();
                t = next;
            } else if flags.contains(Pte::HUGE) {
                return Ok(None);
            } else {
                t = entry & ADDR_MASK;
            }
        }
        Ok(Some(t))
    }

    pub fn map_4k(&mut self, frames: &mut FrameAllocator, addr: u64, access: Access) -> Result<(), NoFrames> {
        if let Some(pt) = self.walk(frames, addr, 0)? {
            // SAFETY: `walk` returned one of our tables; we hold `&mut self`.
            let entries = unsafe { table(pt) };
            entries[((addr >> 12) & 511) as usize] = addr | self.leaf_flags(access);
        }
        Ok(())
    }

    fn map_2m(&mut self, frames: &mut FrameAllocator, addr: u64, access: Access) -> Result<(), NoFrames> {
        if let Some(pd) = self.walk(frames, addr, 1)? {
            // SAFETY: `walk` returned one of our tables; we hold `&mut self`.
            let entry = &mut unsafe { table(pd) }[((addr >> 21) & 511) as usize];
            if !Pte::from_bits_truncate(*entry).contains(Pte::PRESENT) {
                *entry = addr | Pte::HUGE.bits() | self.leaf_flags(access);
            }
        }
        Ok(())
    }

    /// Builds the kernel's tables: RAM from `memmap` identity-mapped read-write and
    /// no-execute, the image with its section rights, and nothing at page 0 or at the
    /// guard pages in `holes`.
    pub fn build(
        frames: &mut FrameAllocator,
        memmap: &MemoryMap,
        image: &ImageLayout,
        holes: &[u64],
        nx: bool,
    ) -> Result<Self, NoFrames> {
        let mut pt = PageTables::new(frames, nx)?;
        let in_image = |a: u64| (image.start..image.end).contains(&a);
        for region in memmap.ram() {
            let mut addr = align_up(region.start, PAGE_SIZE);
            let end = align_down(region.end(), PAGE_SIZE);
            while addr < end {
                let huge_ok = addr.is_multiple_of(HUGE_SIZE)
                    && addr >= HUGE_SIZE // keeps page 0 out
                    && end - addr >= HUGE_SIZE
                    && (addr + HUGE_SIZE <= image.start || addr >= image.end);
                if huge_ok {
                    pt.map_2m(frames, addr, Access::ReadWrite)?;
                    addr += HUGE_SIZE;
                } else {
                    if addr != 0 && !in_image(addr) {
                        pt.map_4k(frames, addr, Access::ReadWrite)?;
                    }
                    addr += PAGE_SIZE;
                }
            }
        }
        for addr in (image.start..image.end).step_by(PAGE_SIZE as usize) {
            if holes.contains(&addr) {
                continue;
            }
            let access = if addr < image.text_end {
                Access::Execute
            } else if addr < image.rodata_end {
                Access::Read
            } else {
                Access::ReadWrite
            };
            pt.map_4k(frames, addr, access)?;
        }
        Ok(pt)
    }

    /// Maps `[phys, phys + len)` as device memory at the same virtual address in the live
    /// tables.
    pub fn map_device(&mut self, frames: &mut FrameAllocator, phys: u64, len: u64) -> Result<(), NoFrames> {
        let end = align_up(phys + len, PAGE_SIZE);
        for addr in (align_down(phys, PAGE_SIZE)..end).step_by(PAGE_SIZE as usize) {
            self.map_4k(frames, addr, Access::Device)?;
            super::cpu::invlpg(addr);
        }
        Ok(())
    }
}

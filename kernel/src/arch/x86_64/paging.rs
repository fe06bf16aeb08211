//! The kernel's page tables, written through the pv-ops `mmu` group (Linux's
//! `pv_mmu_ops`): entries are read from table memory and written with `set_pte`, in the
//! kernel's form (physical addresses) that `make_pte`/`pte_value` translate; a new table
//! is announced with `alloc_pt` before it is linked in; bulk changes are batched.
//!
//! Two uses. On PVH the kernel builds its own identity map of RAM (virtual == physical)
//! where the image gets per-section rights (text RX, rodata R, data RW+NX), all other
//! RAM is RW+NX, stack guard pages and page 0 stay unmapped, and device windows are
//! mapped uncached on demand. Where the loader's tables must stay live (a PV guest's),
//! it extends them the same way.

use bootinfo::memmap::MemoryMap;
use mm::{PAGE_SIZE, align_down, align_up};
use pv::table::ops;

bitflags::bitflags! {
    /// Page-table entry bits (the address bits are kept apart, in `ADDR_MASK`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Pte: u64 {
        const PRESENT = 1 << 0;
        const WRITABLE = 1 << 1;
        const USER = 1 << 2;
        const WRITE_THROUGH = 1 << 3;
        const CACHE_DISABLE = 1 << 4;
        const ACCESSED = 1 << 5;
        const DIRTY = 1 << 6;
        const HUGE = 1 << 7;
        const NO_EXECUTE = 1 << 63;
    }
}

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const HUGE_SIZE: u64 = 2 << 20;

/// What a mapping may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: the page is unmapped.
    None,
    Execute,
    Read,
    ReadWrite,
    /// Device registers: read-write, uncached, never executed.
    Device,
}

/// Ran out of frames for page tables.
#[derive(Debug, Clone, Copy)]
pub struct NoFrames;

/// Where new table frames come from: a zeroable, identity-mapped free frame, or `None`.
pub type TableFrames<'a> = &'a mut dyn FnMut() -> Option<u64>;

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

/// A 4-level page-table tree this code alone changes.
#[derive(Debug)]
pub struct PageTables {
    root: u64,
    /// `NO_EXECUTE` where the CPU has it, else empty (the bit would be reserved).
    nx: Pte,
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * level)) & 511) as usize
}

/// Entry `i` of page table `table`, as the hardware holds it.
fn read_raw(table: u64, i: usize) -> u64 {
    debug_assert!(i < 512);
    // SAFETY: every caller passes a table frame of a tree the kernel holds (a root, or
    // found through its entries), identity-mapped and readable (read-only under some
    // backends).
    unsafe { (table as *const u64).add(i).read_volatile() }
}

/// Entry `i` of `table` in the kernel's form.
fn read(table: u64, i: usize) -> u64 {
    (ops().mmu.pte_value)(read_raw(table, i))
}

/// The 4 KiB leaf entry for `va` in the tree at `root`, if its tables exist: its table
/// and index.
fn leaf(root: u64, va: u64) -> Option<(u64, usize)> {
    let mut t = root;
    for level in (1..=3).rev() {
        let entry = Pte::from_bits_retain(read(t, index(va, level)));
        if !entry.contains(Pte::PRESENT) || entry.contains(Pte::HUGE) {
            return None;
        }
        t = entry.bits() & ADDR_MASK;
    }
    Some((t, index(va, 0)))
}

/// Looks at a tree without changing it.
#[derive(Debug, Clone, Copy)]
pub struct Reader {
    root: u64,
}

impl Reader {
    /// Whether `va` is mapped by a 4 KiB page.
    pub fn is_mapped(&self, va: u64) -> bool {
        leaf(self.root, va).is_some_and(|(pt, i)| read_raw(pt, i) & Pte::PRESENT.bits() != 0)
    }
}

impl PageTables {
    /// A new, empty tree.
    pub fn new(frames: TableFrames<'_>, nx: bool) -> Result<Self, NoFrames> {
        let root = Self::new_table(frames)?;
        Ok(PageTables { root, nx: if nx { Pte::NO_EXECUTE } else { Pte::empty() } })
    }

    /// The tree the loader left live, to extend in place.
    ///
    /// # Safety
    /// Nothing else may change that tree from now on.
    pub unsafe fn live(nx: bool) -> Self {
        PageTables { root: (ops().cpu.read_cr3)(), nx: if nx { Pte::NO_EXECUTE } else { Pte::empty() } }
    }

    pub fn root(&self) -> u64 {
        self.root
    }

    fn new_table(frames: TableFrames<'_>) -> Result<u64, NoFrames> {
        let frame = frames().ok_or(NoFrames)?;
        // SAFETY: the frame was just handed out for a new table, identity-mapped and
        // writable; nothing else refers to it.
        unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE_SIZE as usize) };
        // SAFETY: the zeroed frame is written only through `set_pte` from now on.
        unsafe { (ops().mmu.alloc_pt)(frame) };
        Ok(frame)
    }

    fn read(&self, table: u64, i: usize) -> u64 {
        read(table, i)
    }

    fn read_raw(&self, table: u64, i: usize) -> u64 {
        read_raw(table, i)
    }

    /// Sets entry `i` of `table` to `raw`, already in the hardware's form.
    fn write_raw(&mut self, table: u64, i: usize, raw: u64) {
        // SAFETY: `table` is a table frame of this tree, which `&mut self` lets nobody
        // else change; every caller keeps an identity map (a page maps its own address or
        // nothing), so no live reference comes to see other memory.
        unsafe { (ops().mmu.set_pte)((table as *mut u64).add(i), raw) };
    }

    fn write(&mut self, table: u64, i: usize, entry: u64) {
        self.write_raw(table, i, (ops().mmu.make_pte)(entry));
    }

    fn leaf_flags(&self, access: Access) -> u64 {
        let flags = match access {
            Access::None => return 0,
            Access::Execute => Pte::PRESENT | Pte::ACCESSED,
            Access::Read => Pte::PRESENT | Pte::ACCESSED | self.nx,
            Access::ReadWrite => Pte::PRESENT | Pte::WRITABLE | Pte::ACCESSED | Pte::DIRTY | self.nx,
            Access::Device => {
                Pte::PRESENT | Pte::WRITABLE | Pte::CACHE_DISABLE | Pte::WRITE_THROUGH | self.nx
            }
        };
        flags.bits()
    }

    /// Walks to the table at `depth` (1 = PD, 0 = PT) for `virt`, creating tables when
    /// `frames` are given. Returns `None` if a huge page covers `virt`, or a table is
    /// missing and none may be created.
    fn walk(
        &mut self,
        mut frames: Option<TableFrames<'_>>,
        virt: u64,
        depth: u32,
    ) -> Result<Option<u64>, NoFrames> {
        let mut t = self.root;
        for level in (depth + 1..=3).rev() {
            let entry = self.read(t, index(virt, level));
            let flags = Pte::from_bits_truncate(entry);
            if !flags.contains(Pte::PRESENT) {
                let Some(frames) = frames.as_deref_mut() else { return Ok(None) };
                let next = Self::new_table(frames)?;
                // Intermediate entries allow everything (user too: a PV kernel runs in
                // ring 3); the leaf decides.
                let link = Pte::PRESENT | Pte::WRITABLE | Pte::USER | Pte::ACCESSED;
                self.write(t, index(virt, level), next | link.bits());
                t = next;
            } else if flags.contains(Pte::HUGE) {
                return Ok(None);
            } else {
                t = entry & ADDR_MASK;
            }
        }
        Ok(Some(t))
    }

    pub fn map_4k(&mut self, frames: TableFrames<'_>, addr: u64, access: Access) -> Result<(), NoFrames> {
        if let Some(pt) = self.walk(Some(frames), addr, 0)? {
            let flags = self.leaf_flags(access);
            self.write(pt, index(addr, 0), addr | flags);
        }
        Ok(())
    }

    fn map_2m(&mut self, frames: TableFrames<'_>, addr: u64, access: Access) -> Result<(), NoFrames> {
        if let Some(pd) = self.walk(Some(frames), addr, 1)?
            && !Pte::from_bits_truncate(self.read(pd, index(addr, 1))).contains(Pte::PRESENT)
        {
            let flags = Pte::HUGE.bits() | self.leaf_flags(access);
            self.write(pd, index(addr, 1), addr | flags);
        }
        Ok(())
    }

    /// Builds the kernel's tables: RAM from `memmap` identity-mapped read-write and
    /// no-execute, the image with its section rights, and nothing at page 0 or at the
    /// guard pages in `holes`.
    pub fn build(
        frames: TableFrames<'_>,
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
            if !holes.contains(&addr) {
                pt.map_4k(frames, addr, image.access(addr))?;
            }
        }
        Ok(pt)
    }

    /// Maps `[from, to)` at the same addresses, read-write and no-execute, in 4 KiB
    /// pages: the tables for each 2 MiB first, then its entries in one batch.
    pub fn map_ram(&mut self, frames: TableFrames<'_>, from: u64, to: u64) -> Result<(), NoFrames> {
        let flags = self.leaf_flags(Access::ReadWrite);
        let mut va = align_down(from, PAGE_SIZE);
        while va < to {
            let Some(pt) = self.walk(Some(&mut *frames), va, 0)? else { return Err(NoFrames) };
            let end = to.min((va | (HUGE_SIZE - 1)) + 1);
            (ops().mmu.batch_begin)();
            while va < end {
                self.write(pt, index(va, 0), va | flags);
                va += PAGE_SIZE;
            }
            (ops().mmu.batch_end)();
        }
        Ok(())
    }

    fn leaf(&self, va: u64) -> Option<(u64, usize)> {
        leaf(self.root, va)
    }

    /// A read-only view of the tree, which may be held while the tree is extended.
    pub fn reader(&self) -> Reader {
        Reader { root: self.root }
    }

    /// Gives the 4 KiB pages mapped in `[start, end)` new rights, keeping the frames they
    /// map (some may map frames that are not RAM of ours, such as a hypervisor's shared
    /// page: the entry's address is kept as it stands, which `make_pte` never changes
    /// the flags of).
    ///
    /// # Safety
    /// The new rights must allow every use still made of those pages (no running code
    /// made non-executable, no live data unmapped or made read-only).
    pub unsafe fn protect(&mut self, start: u64, end: u64, access: Access) {
        let flags = self.leaf_flags(access);
        (ops().mmu.batch_begin)();
        for va in (align_down(start, PAGE_SIZE)..end).step_by(PAGE_SIZE as usize) {
            if let Some((pt, i)) = self.leaf(va) {
                let old = self.read_raw(pt, i);
                if old & Pte::PRESENT.bits() != 0 {
                    let new = if flags == 0 { 0 } else { (old & ADDR_MASK) | flags };
                    self.write_raw(pt, i, new);
                }
            }
        }
        (ops().mmu.batch_end)();
        (ops().mmu.flush_tlb)();
    }

    /// Maps `[phys, phys + len)` as ordinary memory (read-write, no-execute) at the same
    /// virtual address in the live tables: a page a hypervisor shares.
    pub fn map_shared(&mut self, frames: TableFrames<'_>, phys: u64, len: u64) -> Result<(), NoFrames> {
        let end = align_up(phys + len, PAGE_SIZE);
        for addr in (align_down(phys, PAGE_SIZE)..end).step_by(PAGE_SIZE as usize) {
            self.map_4k(frames, addr, Access::ReadWrite)?;
            super::cpu::invlpg(addr);
        }
        Ok(())
    }

    /// Maps `[phys, phys + len)` as device memory at the same virtual address in the live
    /// tables.
    pub fn map_device(&mut self, frames: TableFrames<'_>, phys: u64, len: u64) -> Result<(), NoFrames> {
        let end = align_up(phys + len, PAGE_SIZE);
        for addr in (align_down(phys, PAGE_SIZE)..end).step_by(PAGE_SIZE as usize) {
            self.map_4k(frames, addr, Access::Device)?;
            super::cpu::invlpg(addr);
        }
        Ok(())
    }
}

impl ImageLayout {
    /// The rights the image's page at `addr` gets.
    pub fn access(&self, addr: u64) -> Access {
        if addr < self.text_end {
            Access::Execute
        } else if addr < self.rodata_end {
            Access::Read
        } else {
            Access::ReadWrite
        }
    }
}

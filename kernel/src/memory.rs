//! Physical memory and the heap.
//!
//! The frame allocator owns all free RAM. The heap (`talc`) starts empty and, when it
//! runs out, takes another contiguous run of frames, extending its last arena when the
//! run is adjacent, so memory goes to whoever asks first.

use core::alloc::Layout;
use core::ptr::NonNull;

use bootinfo::memmap::MemoryMap;
use mm::{FrameAllocator, PAGE_SIZE};
use spin::Mutex;
use talc::TalcLock;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;

use crate::arch::paging::{Access, ImageLayout, NoFrames, PageTables};

pub(crate) static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::new());
static KERNEL_TABLES: Mutex<Option<PageTables>> = Mutex::new(None);

/// Less free RAM than this after the kernel is loaded is not enough to run an app.
pub(crate) const MIN_FREE_BYTES: u64 = 1 << 20;

/// Why memory could not be set up.
#[derive(Debug)]
pub(crate) enum MemoryError {
    /// The free list overflowed while recording the memory map.
    MapTooFragmented,
    TooLittle {
        free: u64,
    },
    NoFramesForPageTables,
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::MapTooFragmented => write!(f, "memory map too fragmented to record"),
            Self::TooLittle { free } => write!(
                f,
                "not enough memory: {} KiB free after loading the kernel, at least {} KiB needed",
                free / 1024,
                MIN_FREE_BYTES / 1024
            ),
            Self::NoFramesForPageTables => write!(f, "out of memory while building page tables"),
        }
    }
}

impl From<NoFrames> for MemoryError {
    fn from(_: NoFrames) -> Self {
        Self::NoFramesForPageTables
    }
}

/// Records free RAM, minus `reserved` ranges, in the frame allocator.
pub(crate) fn init_frames(memmap: &MemoryMap, reserved: &[(u64, u64)]) -> Result<u64, MemoryError> {
    let mut frames = FRAMES.lock();
    for region in memmap.ram() {
        frames.add(region.start, region.end()).map_err(|_| MemoryError::MapTooFragmented)?;
    }
    for &(start, end) in reserved {
        frames.reserve(start, end).map_err(|_| MemoryError::MapTooFragmented)?;
    }
    let free = frames.free_bytes();
    if free < MIN_FREE_BYTES {
        return Err(MemoryError::TooLittle { free });
    }
    Ok(free)
}

/// Builds the kernel's page tables and switches to them.
pub(crate) fn init_paging(
    memmap: &MemoryMap,
    image: &ImageLayout,
    holes: &[u64],
    nx: bool,
) -> Result<(), MemoryError> {
    let mut frames = FRAMES.lock();
    let tables = PageTables::build(&mut || frames.alloc(1, PAGE_SIZE), memmap, image, holes, nx)?;
    // SAFETY: the new tables identity-map all RAM, which holds the image, the stacks and
    // every static; guard pages and page 0 are unmapped, and nothing refers to them.
    unsafe { crate::arch::cpu::write_cr3(tables.root()) };
    *KERNEL_TABLES.lock() = Some(tables);
    Ok(())
}

/// What a loader that leaves its own page tables live (a PV domain builder) says about
/// memory.
#[derive(Debug)]
pub(crate) struct LoaderTables<'a> {
    /// Where the guest's pages end (all of them RAM, at pseudo-physical addresses).
    pub ram_end: u64,
    /// The end of what the loader put at the bottom: image, start info, its tables.
    pub boot_end: u64,
    /// A boot module placed elsewhere, `[start, end)`.
    pub module: (u64, u64),
    pub memmap: &'a MemoryMap,
}

/// Memory on the loader's tables: they are extended to map all RAM at its physical
/// address (table frames from the first free pages), the image gets its rights (text RX,
/// rodata R, data RW+NX; page 0 and the stack guard pages unmapped), and what lies
/// beyond the boot region and the new tables goes to the frame allocator. Returns the
/// free bytes. Device windows stay unmapped (`map_device` refuses): the guest has no
/// machine addresses for them.
pub(crate) fn init_on_loader_tables(
    loader: &LoaderTables<'_>,
    image: &ImageLayout,
    guards: &[u64],
    nx: bool,
) -> Result<u64, MemoryError> {
    // SAFETY: the boot path hands these tables to this function alone.
    let mut tables = unsafe { PageTables::live(nx) };
    let reader = tables.reader();
    let mut next_free = loader.boot_end;
    let mut mapped_end = next_free;
    while reader.is_mapped(mapped_end) {
        mapped_end += PAGE_SIZE;
    }
    // Table frames come from the lowest free pages, which the loader's mapping (at least
    // 512 KiB past its end) or our own earlier 2 MiB steps already map.
    let (module, ram_end) = (loader.module, loader.ram_end);
    let mut alloc = || {
        let frame = next_free;
        if frame >= ram_end || !reader.is_mapped(frame) || (module.0..module.1).contains(&frame) {
            return None;
        }
        next_free += PAGE_SIZE;
        Some(frame)
    };
    tables.map_ram(&mut alloc, mapped_end, ram_end)?;
    let rights = [
        (0, PAGE_SIZE, Access::None),
        (image.start, image.text_end, Access::Execute),
        (image.text_end, image.rodata_end, Access::Read),
        (image.rodata_end, image.end, Access::ReadWrite),
    ];
    // SAFETY: the rights are the image's own (code executable, data writable); page 0
    // and the guard pages are never used. Only the stack's guard page cannot work as on
    // PVH: the hypervisor writes exception frames on the faulting stack, so an overflow
    // ends in its own crash report of the domain, not ours.
    unsafe {
        for (start, end, access) in rights {
            tables.protect(start, end, access);
        }
        for &guard in guards {
            tables.protect(guard, guard + PAGE_SIZE, Access::None);
        }
    }
    log::debug!(
        "memory: on the loader's tables: mapped {} MiB, {} KiB of boot region and new tables",
        ram_end >> 20,
        next_free / 1024
    );
    // A module placed after the guest's other pages lies beyond the boot region.
    init_frames(loader.memmap, &[(0, next_free), module])
}

/// Maps a device's register window (uncached) so it can be reached at its physical
/// address.
pub(crate) fn map_device(phys: u64, len: u64) -> Result<(), NoFrames> {
    let mut tables = KERNEL_TABLES.lock();
    let tables = tables.as_mut().ok_or(NoFrames)?;
    tables.map_device(&mut || FRAMES.lock().alloc(1, PAGE_SIZE), phys, len)
}

/// Maps a page a hypervisor shares (outside RAM) at its physical address, write-back.
pub(crate) fn map_shared(phys: u64, len: u64) -> Result<(), NoFrames> {
    let mut tables = KERNEL_TABLES.lock();
    let tables = tables.as_mut().ok_or(NoFrames)?;
    tables.map_shared(&mut || FRAMES.lock().alloc(1, PAGE_SIZE), phys, len)
}

/// Feeds the heap from the frame allocator.
#[derive(Debug, Default)]
pub(crate) struct FrameSource {
    /// The end of the newest arena, to extend it when the next run is adjacent.
    last_arena_end: Option<NonNull<u8>>,
}

// SAFETY: `FrameSource` is only used inside the `TalcLock`; the pointer is talc's own
// heap-end handle and carries no thread affinity.
unsafe impl Send for FrameSource {}

/// The heap grows by up to this much at a time, to keep arenas few; but by no more than
/// an eighth of the free frames, so that in a small guest (`-m 4`) the heap's first
/// growth does not take the memory the network card's DMA buffers need next.
const HEAP_GROW_PAGES: u64 = 256;

// SAFETY: `acquire` touches only the frame allocator (never the heap) and hands talc
// memory that nothing else uses.
unsafe impl Source for FrameSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for talc's own tags and alignment slack.
        let need = layout.size() as u64 + layout.align() as u64 + 2 * PAGE_SIZE;
        let min_pages = need.div_ceil(PAGE_SIZE);
        let mut frames = FRAMES.lock();
        let grow = HEAP_GROW_PAGES.min(frames.free_bytes() / PAGE_SIZE / 8);
        let (addr, pages) = frames.alloc_run(min_pages, min_pages.max(grow)).ok_or(())?;
        drop(frames);
        let base = addr as *mut u8;
        let size = (pages * PAGE_SIZE) as usize;
        let end = match talc.source.last_arena_end {
            Some(end) if end.as_ptr() as u64 == addr => {
                // SAFETY: `end` is the end of talc's newest arena and the frames that
                // follow it were just allocated for the heap alone.
                unsafe { talc.extend(end, base.wrapping_add(size)) }
            }
            // SAFETY: the run is identity-mapped RAM that the frame allocator gave to the
            // heap alone, for good.
            _ => unsafe { talc.claim(base, size) }.ok_or(())?,
        };
        talc.source.last_arena_end = Some(end);
        Ok(())
    }
}

#[global_allocator]
static HEAP: TalcLock<spin::Mutex<()>, FrameSource> = TalcLock::new(FrameSource { last_arena_end: None });

/// The heap's current figures.
#[derive(Debug, Clone, Copy)]
pub struct HeapStats {
    /// Bytes handed out and not yet freed.
    pub allocated: usize,
    /// Live allocations.
    pub allocations: usize,
    /// Bytes the heap has taken from the frame allocator.
    pub claimed: usize,
    /// Free bytes still with the frame allocator.
    pub frames_free: u64,
}

pub(crate) fn heap_stats() -> HeapStats {
    let counters = *HEAP.lock().counters();
    HeapStats {
        allocated: counters.allocated_bytes,
        allocations: counters.allocation_count,
        claimed: counters.claimed_bytes,
        frames_free: FRAMES.lock().free_bytes(),
    }
}

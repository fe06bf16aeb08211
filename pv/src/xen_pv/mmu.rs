//! Page tables under Xen PV. The kernel keeps Xen's boot tables and extends them; every
//! table frame is mapped read-only, and entries change only through `mmu_update`
//! (batched, validated by Xen) or `update_va_mapping`. Entries hold machine frame
//! numbers: the p2m list from the start info translates pseudo-physical frames, and Xen's
//! read-only m2p table at [`M2P`] translates back.
//!
//! Virtual addresses equal pseudo-physical ones (XEN_ELFNOTE_VIRT_BASE is 0), as on PVH.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::xen::{
    self, DOMID_SELF, HYPERVISOR_MMU_UPDATE, HYPERVISOR_MMUEXT_OP, HYPERVISOR_UPDATE_VA_MAPPING, Refused,
    check,
};

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const PAGE: u64 = 4096;

/// Xen's machine-to-phys table (`MACH2PHYS_VIRT_START`), mapped read-only into every
/// 64-bit PV guest.
const M2P: u64 = 0xffff_8000_0000_0000;

const MMUEXT_NEW_BASEPTR: u32 = 5;
const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
const MMUEXT_INVLPG_LOCAL: u32 = 7;
const UVMF_INVLPG: u64 = 2;

/// The L4 in use (its virtual = pseudo-physical address).
static ROOT: AtomicU64 = AtomicU64::new(0);
static P2M: AtomicU64 = AtomicU64::new(0);
static P2M_LEN: AtomicU64 = AtomicU64::new(0);

/// Takes Xen's boot tables and p2m list into use.
///
/// # Safety
/// `pt_base` must be the loaded L4 and `mfn_list` a mapped list of `nr_pages` frames, as
/// the start info gives them.
pub(crate) unsafe fn init(pt_base: u64, mfn_list: u64, nr_pages: u64) {
    ROOT.store(pt_base, Ordering::Relaxed);
    P2M.store(mfn_list, Ordering::Relaxed);
    P2M_LEN.store(nr_pages, Ordering::Relaxed);
}

pub(crate) fn root() -> u64 {
    ROOT.load(Ordering::Relaxed)
}

/// The no-execute bit where the CPU has it (Xen turns EFER.NXE on when it does). Asked
/// once: each CPUID is a trap into Xen.
pub fn nx_bit() -> u64 {
    const UNKNOWN: u64 = 1;
    static NX: AtomicU64 = AtomicU64::new(UNKNOWN);
    let nx = NX.load(Ordering::Relaxed);
    if nx != UNKNOWN {
        return nx;
    }
    let cpuid = crate::ops::ops().cpu.cpuid;
    let nx = if cpuid(0x8000_0000, 0).eax >= 0x8000_0001 && cpuid(0x8000_0001, 0).edx & (1 << 20) != 0 {
        NO_EXECUTE
    } else {
        0
    };
    NX.store(nx, Ordering::Relaxed);
    nx
}

/// The machine frame behind pseudo-physical frame `pfn`.
pub fn pfn_to_mfn(pfn: u64) -> u64 {
    let len = P2M_LEN.load(Ordering::Relaxed);
    assert!(pfn < len, "xen_pv: frame {pfn:#x} is beyond the domain's {len:#x} pages");
    // SAFETY: the p2m list is mapped and holds `len` entries (see `init`); the index was
    // checked.
    unsafe { (P2M.load(Ordering::Relaxed) as *const u64).add(pfn as usize).read_volatile() }
}

fn mfn_to_pfn(mfn: u64) -> u64 {
    // SAFETY: Xen maps the m2p table read-only at `M2P` in every 64-bit PV guest, one
    // entry per machine frame; the frames asked about are ones our tables hold.
    unsafe { (M2P as *const u64).add(mfn as usize).read_volatile() }
}

/// The machine address of pseudo-physical `phys` (the DMA address under PV).
pub extern "C" fn phys_to_machine(phys: u64) -> u64 {
    (pfn_to_mfn(phys / PAGE) * PAGE) | (phys % PAGE)
}

/// `mmu_update`: each request names an entry by machine address and its new value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct MmuUpdate {
    ptr: u64,
    val: u64,
}

fn mmu_update(requests: &[MmuUpdate]) -> Result<(), Refused> {
    let mut done = 0u32;
    // SAFETY: the requests and `done` live across the call; Xen validates every request.
    let rc = unsafe {
        xen::hypercall(
            HYPERVISOR_MMU_UPDATE,
            requests.as_ptr() as u64,
            requests.len() as u64,
            &raw mut done as u64,
            DOMID_SELF,
            0,
        )
    };
    check("mmu_update", rc).map(|_| ())
}

fn mmuext(cmd: u32, arg1: u64) -> Result<(), Refused> {
    #[repr(C)]
    struct MmuextOp {
        cmd: u32,
        arg1: u64,
        arg2: u64,
    }
    let op = MmuextOp { cmd, arg1, arg2: 0 };
    // SAFETY: `op` lives across the call.
    let rc = unsafe { xen::hypercall(HYPERVISOR_MMUEXT_OP, &raw const op as u64, 1, 0, DOMID_SELF, 0) };
    check("mmuext_op", rc).map(|_| ())
}

/// Points the page at `va` at `pte` (which holds a machine address) and flushes it.
///
/// # Safety
/// Nothing may be using the page at `va` as what it mapped before (no references into
/// it, not the running code or stack).
pub unsafe fn remap_page(va: u64, pte: u64) -> Result<(), Refused> {
    // SAFETY: Xen validates the new entry; the caller vouches for the page at `va`.
    let rc = unsafe { xen::hypercall3(HYPERVISOR_UPDATE_VA_MAPPING, va, pte, UVMF_INVLPG) };
    check("update_va_mapping", rc).map(|_| ())
}

/// The pv-ops `set_pte`: `value` holds a machine address, as every PV entry does.
pub(crate) unsafe extern "C" fn set_pte(pte: *mut u64, value: u64) {
    if let Err(e) = mmu_update(&[MmuUpdate { ptr: phys_to_machine(pte as u64), val: value }]) {
        panic!("xen_pv: cannot set the page-table entry at {pte:p} to {value:#x}: {e}");
    }
}

pub(crate) extern "C" fn flush_tlb() {
    if let Err(e) = mmuext(MMUEXT_TLB_FLUSH_LOCAL, 0) {
        panic!("xen_pv: TLB flush: {e}");
    }
}

pub(crate) extern "C" fn flush_tlb_one(addr: u64) {
    if let Err(e) = mmuext(MMUEXT_INVLPG_LOCAL, addr) {
        panic!("xen_pv: invlpg {addr:#x}: {e}");
    }
}

/// Switches to the (pinned) L4 at pseudo-physical `root`.
pub(crate) unsafe extern "C" fn switch_address_space(root: u64) {
    if let Err(e) = mmuext(MMUEXT_NEW_BASEPTR, pfn_to_mfn(root / PAGE)) {
        panic!("xen_pv: switching to the tables at {root:#x}: {e}");
    }
    ROOT.store(root, Ordering::Relaxed);
}

fn entry(table: u64, index: u64) -> u64 {
    // SAFETY: `table` is a page-table frame of the live tree (the root, or found through
    // its entries), mapped read-only at its pseudo-physical address.
    unsafe { ((table + index * 8) as *const u64).read_volatile() }
}

fn child(entry: u64) -> u64 {
    mfn_to_pfn((entry & ADDR_MASK) / PAGE) * PAGE
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & 511
}

/// The L1 entry for `va`, if its tables exist: its address and its value.
fn l1_entry(va: u64) -> Option<(u64, u64)> {
    let mut table = root();
    for level in (2..=4).rev() {
        let e = entry(table, index(va, level));
        if e & PRESENT == 0 {
            return None;
        }
        table = child(e);
    }
    Some((table + index(va, 1) * 8, entry(table, index(va, 1))))
}

/// Whether the page at `va` is mapped.
pub fn is_mapped(va: u64) -> bool {
    l1_entry(va).is_some_and(|(_, pte)| pte & PRESENT != 0)
}

/// The first page at or above `va` that is not mapped.
pub fn first_unmapped(mut va: u64) -> u64 {
    while is_mapped(va) {
        va += PAGE;
    }
    va
}

/// Why the tables could not be extended or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    NoFrames,
    Refused(Refused),
}

impl From<Refused> for MapError {
    fn from(r: Refused) -> Self {
        MapError::Refused(r)
    }
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::NoFrames => write!(f, "out of frames for page tables"),
            MapError::Refused(r) => write!(f, "{r}"),
        }
    }
}

/// The table `table[index]` points to, made from a fresh frame if there is none: zeroed
/// while still writable, mapped read-only (Xen takes no writable frame as a table), then
/// linked in, which has Xen validate it.
fn table_at(table: u64, index: u64, alloc: &mut dyn FnMut() -> Option<u64>) -> Result<u64, MapError> {
    let e = entry(table, index);
    if e & PRESENT != 0 {
        return Ok(child(e));
    }
    let frame = alloc().ok_or(MapError::NoFrames)?;
    // SAFETY: `map_ram`'s contract: the allocator hands out a free frame that is already
    // mapped writable at its pseudo-physical address, and nothing else refers to it.
    unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE as usize) };
    let mfn = pfn_to_mfn(frame / PAGE);
    // SAFETY: as above; the frame becomes a page table and nothing else uses it.
    unsafe { remap_page(frame, (mfn * PAGE) | PRESENT | ACCESSED | nx_bit()) }?;
    let link = MmuUpdate {
        ptr: phys_to_machine(table + index * 8),
        val: (mfn * PAGE) | PRESENT | WRITABLE | USER | ACCESSED,
    };
    mmu_update(&[link])?;
    Ok(frame)
}

/// Maps pseudo-physical `[from, to)` at the same addresses, read-write and no-execute,
/// one `mmu_update` per 2 MiB. `alloc` gives table frames that are already mapped (the
/// lowest free ones: the mapping grows upward far faster than tables use frames).
///
/// # Safety
/// `[from, to)` must be free RAM of this domain that nothing maps yet, and every frame
/// `alloc` returns must be free, mapped writable, and unused by anything else.
pub unsafe fn map_ram(from: u64, to: u64, alloc: &mut dyn FnMut() -> Option<u64>) -> Result<(), MapError> {
    let nx = nx_bit();
    let mut batch = [MmuUpdate::default(); 512];
    let mut va = from & !(PAGE - 1);
    while va < to {
        let l3 = table_at(root(), index(va, 4), alloc)?;
        let l2 = table_at(l3, index(va, 3), alloc)?;
        let l1 = table_at(l2, index(va, 2), alloc)?;
        let end = to.min((va | 0x1f_ffff) + 1);
        let mut n = 0;
        while va < end {
            batch[n] = MmuUpdate {
                ptr: phys_to_machine(l1 + index(va, 1) * 8),
                val: phys_to_machine(va) | PRESENT | WRITABLE | ACCESSED | DIRTY | nx,
            };
            n += 1;
            va += PAGE;
        }
        mmu_update(&batch[..n])?;
    }
    Ok(())
}

/// What a page of the kernel may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rights {
    Unmapped,
    Execute,
    Read,
    ReadWrite,
}

/// Gives the mapped pages of `[start, end)` new rights, keeping the frames they map
/// (some of the image's pages map Xen's frames, such as `shared_info`).
///
/// # Safety
/// The new rights must allow every use still made of those pages (no running code made
/// non-executable, no live data unmapped or made read-only).
pub unsafe fn protect(start: u64, end: u64, rights: Rights) -> Result<(), MapError> {
    let nx = nx_bit();
    let flags = match rights {
        Rights::Unmapped => 0,
        Rights::Execute => PRESENT | ACCESSED,
        Rights::Read => PRESENT | ACCESSED | nx,
        Rights::ReadWrite => PRESENT | WRITABLE | ACCESSED | DIRTY | nx,
    };
    let mut batch = [MmuUpdate::default(); 64];
    let mut n = 0;
    let mut va = start & !(PAGE - 1);
    while va < end {
        if let Some((e, old)) = l1_entry(va)
            && old & PRESENT != 0
        {
            let val = if flags == 0 { 0 } else { (old & ADDR_MASK) | flags };
            batch[n] = MmuUpdate { ptr: phys_to_machine(e), val };
            n += 1;
        }
        va += PAGE;
        if n == batch.len() || (va >= end && n > 0) {
            mmu_update(&batch[..n])?;
            n = 0;
        }
    }
    flush_tlb();
    Ok(())
}

/// For the bad-input self-test: the L1 entry that maps the root table (read-only, as Xen
/// requires) and that entry made writable, a change Xen must refuse.
pub fn root_mapping_made_writable() -> Option<(*mut u64, u64)> {
    let (e, old) = l1_entry(root())?;
    Some((e as *mut u64, old | WRITABLE))
}

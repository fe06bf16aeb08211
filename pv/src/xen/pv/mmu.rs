//! Page tables under Xen PV: the `mmu` ops. The kernel keeps Xen's boot tables and
//! extends them with its own page-table code; every table frame is mapped read-only
//! (`alloc_pt`), and entries change only through `mmu_update` (validated by Xen, batched
//! between `batch_begin` and `batch_end`) or `update_va_mapping`. Entries hold machine
//! frame numbers: the p2m list from the start info translates pseudo-physical frames
//! (`make_pte`), and Xen's read-only m2p table at [`M2P`] translates back (`pte_value`).
//!
//! Virtual addresses equal pseudo-physical ones (XEN_ELFNOTE_VIRT_BASE is 0), as on PVH.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::xen::{
    self, DOMID_SELF, HYPERVISOR_MMU_UPDATE, HYPERVISOR_MMUEXT_OP, HYPERVISOR_UPDATE_VA_MAPPING, Refused,
    check,
};

pub(crate) const PRESENT: u64 = 1 << 0;
pub(crate) const WRITABLE: u64 = 1 << 1;
const ACCESSED: u64 = 1 << 5;
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
/// the start info gives them. `nx`: whether the CPU has no-execute pages.
pub(crate) unsafe fn init(pt_base: u64, mfn_list: u64, nr_pages: u64, nx: bool) {
    NX.store(if nx { NO_EXECUTE } else { 0 }, Ordering::Relaxed);
    ROOT.store(pt_base, Ordering::Relaxed);
    P2M.store(mfn_list, Ordering::Relaxed);
    P2M_LEN.store(nr_pages, Ordering::Relaxed);
}

pub(crate) fn root() -> u64 {
    ROOT.load(Ordering::Relaxed)
}

/// The no-execute bit where the CPU has it (Xen turns EFER.NXE on when it does).
static NX: AtomicU64 = AtomicU64::new(0);

pub(crate) fn nx_bit() -> u64 {
    NX.load(Ordering::Relaxed)
}

/// The machine frame behind pseudo-physical frame `pfn`.
fn pfn_to_mfn(pfn: u64) -> u64 {
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
pub(crate) extern "C" fn phys_to_machine(phys: u64) -> u64 {
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
pub(crate) unsafe fn remap_page(va: u64, pte: u64) -> Result<(), Refused> {
    // SAFETY: Xen validates the new entry; the caller vouches for the page at `va`.
    let rc = unsafe { xen::hypercall3(HYPERVISOR_UPDATE_VA_MAPPING, va, pte, UVMF_INVLPG) };
    check("update_va_mapping", rc).map(|_| ())
}

/// `set_pte`s deferred between `batch_begin` and `batch_end`: (entry's machine address,
/// value) pairs, sent in one `mmu_update`.
const BATCH: usize = 64;
static BATCHING: AtomicBool = AtomicBool::new(false);
static QUEUED: AtomicUsize = AtomicUsize::new(0);
static QUEUE: [(AtomicU64, AtomicU64); BATCH] = [const { (AtomicU64::new(0), AtomicU64::new(0)) }; BATCH];

fn apply(requests: &[MmuUpdate]) {
    if let Err(e) = mmu_update(requests) {
        let r = requests[0];
        panic!(
            "xen_pv: cannot set the page-table entry at machine address {:#x} to {:#x}: {e}",
            r.ptr, r.val
        );
    }
}

fn flush_queue() {
    let n = QUEUED.swap(0, Ordering::Relaxed);
    let mut requests = [MmuUpdate::default(); BATCH];
    for (r, (ptr, val)) in requests.iter_mut().zip(&QUEUE).take(n) {
        *r = MmuUpdate { ptr: ptr.load(Ordering::Relaxed), val: val.load(Ordering::Relaxed) };
    }
    if n > 0 {
        apply(&requests[..n]);
    }
}

pub(crate) extern "C" fn batch_begin() {
    BATCHING.store(true, Ordering::Relaxed);
}

pub(crate) extern "C" fn batch_end() {
    flush_queue();
    BATCHING.store(false, Ordering::Relaxed);
}

/// The pv-ops `set_pte`: `value` holds a machine address (from `make_pte`). Xen checks
/// every change; one it refuses ends the run.
pub(crate) unsafe extern "C" fn set_pte(pte: *mut u64, value: u64) {
    let request = MmuUpdate { ptr: phys_to_machine(pte as u64), val: value };
    if !BATCHING.load(Ordering::Relaxed) {
        return apply(&[request]);
    }
    let n = QUEUED.load(Ordering::Relaxed);
    QUEUE[n].0.store(request.ptr, Ordering::Relaxed);
    QUEUE[n].1.store(request.val, Ordering::Relaxed);
    QUEUED.store(n + 1, Ordering::Relaxed);
    if n + 1 == BATCH {
        flush_queue();
    }
}

/// A present entry's pseudo-physical frame becomes the machine frame behind it.
pub(crate) extern "C" fn make_pte(entry: u64) -> u64 {
    if entry & PRESENT == 0 {
        return entry;
    }
    (entry & !ADDR_MASK) | phys_to_machine(entry & ADDR_MASK)
}

/// A present entry's machine frame becomes the pseudo-physical frame it backs.
pub(crate) extern "C" fn pte_value(raw: u64) -> u64 {
    if raw & PRESENT == 0 {
        return raw;
    }
    (raw & !ADDR_MASK) | child(raw)
}

/// Maps a (zeroed) frame read-only before it is linked in as a page table: Xen takes no
/// frame that is writable anywhere as a table.
pub(crate) unsafe extern "C" fn alloc_pt(frame: u64) {
    let pte = phys_to_machine(frame) | PRESENT | ACCESSED | nx_bit();
    // SAFETY: the op's contract: nothing writes the frame through its own mapping again.
    if let Err(e) = unsafe { remap_page(frame, pte) } {
        panic!("xen_pv: cannot make the frame at {frame:#x} a page table: {e}");
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

/// For the bad-input self-test: the L1 entry that maps the root table (read-only, as Xen
/// requires) and that entry made writable, a change Xen must refuse.
pub(crate) fn root_mapping_made_writable() -> Option<(*mut u64, u64)> {
    let (e, old) = l1_entry(root())?;
    Some((e as *mut u64, old | WRITABLE))
}

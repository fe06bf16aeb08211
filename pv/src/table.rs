//! The live pv-ops table: [`PV_OPS`], which call sites read by symbol, starts as the
//! native backend's table and is replaced once, at boot, by the chosen backend's.

use core::cell::UnsafeCell;

use crate::ops::{OpId, PvOps};

/// The live table. Call sites read it by symbol, so it has a fixed name.
#[repr(transparent)]
#[allow(missing_debug_implementations)] // read it through `ops()`
pub struct OpsTable(UnsafeCell<PvOps>);

// SAFETY: the table is written only by `install`, whose contract is that nothing runs
// concurrently; afterwards it is only read.
unsafe impl Sync for OpsTable {}

#[unsafe(no_mangle)]
pub static PV_OPS: OpsTable = OpsTable(UnsafeCell::new(crate::native::OPS));

/// The table in use.
pub fn ops() -> &'static PvOps {
    // SAFETY: see `OpsTable`'s `Sync`: writes happen only in `install`, never
    // concurrently with this read.
    unsafe { &*PV_OPS.0.get() }
}

/// Installs a backend's table.
///
/// # Safety
/// Only one CPU may be running, with interrupts off, and no reference returned by
/// [`ops`] may be held across the call.
pub unsafe fn install(table: PvOps) {
    // SAFETY: the caller guarantees exclusive access.
    unsafe { *PV_OPS.0.get() = table };
}

/// Reads the function pointer stored at `op` in a table, as an address.
pub fn op_address(table: &PvOps, op: OpId) -> Option<usize> {
    let offset = usize::from(op);
    if offset % 8 != 0 || offset + 8 > core::mem::size_of::<PvOps>() {
        return None;
    }
    let base = table as *const PvOps as *const usize;
    // A `#[repr(C)]` struct of function pointers is an array of words: read word
    // `offset / 8` through a safe slice view.
    let words = core::mem::size_of::<PvOps>() / 8;
    // SAFETY: `PvOps` is `repr(C)` and made only of function pointers, each one word
    // wide and word-aligned, so it is `words` initialised `usize`s.
    let slice = unsafe { core::slice::from_raw_parts(base, words) };
    Some(slice[offset / 8])
}

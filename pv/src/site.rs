//! Patchable call sites for the hot ops.
//!
//! Each site is an indirect call through [`PV_OPS`](crate::table::PV_OPS)
//! (`call [rip + PV_OPS + offset]`, 6 bytes) plus a [`SiteRecord`] in the `.pv_sites`
//! section. At boot the patcher rewrites every site to the backend's inline
//! instructions or a direct `call rel32` (see [`crate::patch`]). Sites clobber what a C
//! call clobbers, so any replacement that behaves like a C function is valid.

use crate::op;

pub use crate::patch::SiteRecord;

/// Emits a call site for `$op` with extra operands.
macro_rules! pv_site {
    ($op:expr; $($operand:tt)*) => {
        core::arch::asm!(
            "2662:",
            "call qword ptr [rip + {table} + {offset}]",
            "2663:",
            ".pushsection .pv_sites, \"a\"",
            ".balign 8",
            ".quad 2662b",
            ".short {offset}",
            ".byte 2663b - 2662b",
            ".byte {clobbers}",
            ".long 0",
            ".popsection",
            table = sym $crate::table::PV_OPS,
            offset = const $op,
            clobbers = const $crate::patch::CLOBBERS_C_ABI,
            $($operand)*
            clobber_abi("C"),
        )
    };
}

// SAFETY (for every site below): the table holds, at `offset`, an `extern "C"` function
// of exactly the signature the operands describe (the offset comes from `op!` on that
// field), and the asm declares every register a C call may clobber.

/// Disables interrupts.
#[inline(always)]
pub fn irq_disable() {
    // SAFETY: see above.
    unsafe { pv_site!(op!(irq.disable);) }
}

/// Enables interrupts.
#[inline(always)]
pub fn irq_enable() {
    // SAFETY: see above.
    unsafe { pv_site!(op!(irq.enable);) }
}

/// The interrupt flag as [`irq_save`] found it: only `irq_save` makes one, so
/// [`irq_restore`] never loads flags that did not come from the CPU (or backend).
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct IrqFlags(u64);

impl IrqFlags {
    /// Whether interrupts were enabled.
    pub fn enabled(self) -> bool {
        self.0 & (1 << 9) != 0
    }
}

/// The interrupt flag state, for [`irq_restore`].
#[inline(always)]
pub fn irq_save() -> IrqFlags {
    let flags;
    // SAFETY: see above.
    unsafe { pv_site!(op!(irq.save_fl); out("rax") flags,) }
    IrqFlags(flags)
}

/// Restores the interrupt flag saved by [`irq_save`].
#[inline(always)]
pub fn irq_restore(flags: IrqFlags) {
    // SAFETY: see above; and `restore_fl`'s contract holds: the value came from
    // `save_fl` (only `irq_save` makes an `IrqFlags`).
    unsafe { pv_site!(op!(irq.restore_fl); in("rdi") flags.0,) }
}

/// Signals end of interrupt to the local APIC.
#[inline(always)]
pub fn apic_eoi() {
    // SAFETY: see above.
    unsafe { pv_site!(op!(apic.eoi);) }
}

/// The monotonic clock, in nanoseconds.
#[inline(always)]
pub fn monotonic_ns() -> u64 {
    let ns;
    // SAFETY: see above.
    unsafe { pv_site!(op!(time.monotonic_ns); out("rax") ns,) }
    ns
}

/// Flushes all non-global TLB entries.
#[inline(always)]
pub fn flush_tlb() {
    // SAFETY: see above.
    unsafe { pv_site!(op!(mmu.flush_tlb);) }
}

/// Flushes the TLB entry for `addr`.
#[inline(always)]
pub fn flush_tlb_one(addr: u64) {
    // SAFETY: see above.
    unsafe { pv_site!(op!(mmu.flush_tlb_one); in("rdi") addr,) }
}

// The section bounds exist only in kernel images (linker/kernel.ld).
#[cfg(target_os = "none")]
unsafe extern "C" {
    static __pv_sites_start: SiteRecord;
    static __pv_sites_end: SiteRecord;
}

/// Every recorded call site in the image.
#[cfg(target_os = "none")]
pub fn records() -> &'static [SiteRecord] {
    let start = &raw const __pv_sites_start;
    let end = &raw const __pv_sites_end;
    let count = (end as usize - start as usize) / core::mem::size_of::<SiteRecord>();
    // SAFETY: the linker script brackets `.pv_sites` with these symbols; the section is
    // an array of `SiteRecord`s (16 bytes each, 8-aligned) emitted by `pv_site!`, and it
    // is read-only.
    unsafe { core::slice::from_raw_parts(start, count) }
}

/// What patching did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchCount {
    pub patched: usize,
    pub total: usize,
}

/// Rewrites every recorded site for the installed table.
///
/// The bytes go in through the backend's `poke_text` (natively with CR0.WP cleared for
/// the write, so no page is ever writable and executable at once). A site whose bytes are not the expected indirect call is left
/// alone (and not counted).
///
/// # Safety
/// One CPU, interrupts off, and no other code may be running from the sites being
/// rewritten (boot, before anything else starts).
#[cfg(target_os = "none")]
pub unsafe fn apply() -> PatchCount {
    use crate::patch::{choose, indirect_call, plan};

    let table = crate::table::ops();
    let table_addr = &raw const crate::table::PV_OPS as u64;
    let mut count = PatchCount { patched: 0, total: 0 };
    for record in records() {
        count.total += 1;
        let Some(installed) = crate::table::op_address(table, record.op) else { continue };
        let Some(native) = crate::table::op_address(&crate::native::OPS, record.op) else { continue };
        let Some((expected, len)) = indirect_call(record, table_addr + u64::from(record.op)) else {
            continue;
        };
        let site = record.addr as *mut u8;
        // SAFETY: `record.addr` is a site emitted by `pv_site!` in this image's text
        // (mapped, `len` bytes long).
        let current = unsafe { core::slice::from_raw_parts(site, len) };
        if current != &expected[..len] {
            continue;
        }
        let replacement =
            choose(record, installed as u64, native as u64, crate::native::inline_bytes(record.op));
        let Ok((bytes, len)) = plan(record, replacement) else { continue };
        // SAFETY: as above; the caller guarantees nothing executes these bytes while
        // they change.
        unsafe { (table.cpu.poke_text)(site, bytes.as_ptr(), len) };
        count.patched += 1;
    }
    // CPUID serialises, so the CPU executes the new bytes from here on.
    let _ = (table.cpu.cpuid)(0, 0);
    count
}

//! The pv-ops table: every privileged operation the kernel performs, as plain data.
//!
//! The table starts as [`native::OPS`](crate::native::OPS); a backend replaces only the
//! groups or fields that differ (`PvOps { time: KVM_TIME, ..native::OPS }`). Every field
//! is set by construction, so there is no "missing op" case. Hot ops are called through
//! recorded call sites (see [`crate::site`]) that the patcher rewrites at boot; the rest
//! are ordinary calls through the table.
//!
//! All functions use the C ABI so patched call sites have one fixed convention.

use core::cell::UnsafeCell;

/// A pseudo-descriptor for LGDT/LIDT.
#[repr(C, packed(2))]
#[derive(Debug, Clone, Copy)]
pub struct DescriptorPointer {
    pub limit: u16,
    pub base: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CpuOps {
    pub cpuid: extern "C" fn(leaf: u32, subleaf: u32) -> CpuidResult,
    pub rdmsr: extern "C" fn(msr: u32) -> u64,
    /// Safety: the caller knows the MSR's effect.
    pub wrmsr: unsafe extern "C" fn(msr: u32, value: u64),
    pub read_cr0: extern "C" fn() -> u64,
    /// Safety: the caller keeps paging and protection consistent.
    pub write_cr0: unsafe extern "C" fn(u64),
    pub read_cr2: extern "C" fn() -> u64,
    pub read_cr3: extern "C" fn() -> u64,
    pub read_cr4: extern "C" fn() -> u64,
    /// Safety: as for `write_cr0`.
    pub write_cr4: unsafe extern "C" fn(u64),
    /// Safety: the table must stay valid and mapped for as long as it is loaded.
    pub load_gdt: unsafe extern "C" fn(&DescriptorPointer),
    /// Safety: as for `load_gdt`.
    pub load_idt: unsafe extern "C" fn(&DescriptorPointer),
    /// Safety: the selector must name an available TSS in the loaded GDT.
    pub load_tss: unsafe extern "C" fn(selector: u16),
    pub wbinvd: extern "C" fn(),
    /// Writes `len` bytes of code at `dst` (text is mapped read-only; the patcher uses
    /// this).
    /// Safety: nothing may execute those bytes while they change.
    pub poke_text: unsafe extern "C" fn(dst: *mut u8, src: *const u8, len: usize),
    /// The end of every trap handler: not called but jumped to, with all registers
    /// restored and the interrupt frame (RIP, CS, RFLAGS, RSP, SS) at RSP (native:
    /// IRETQ; Xen PV: the `iret` hypercall).
    /// Safety: only trap-exit code may jump here, with that frame.
    pub iret: unsafe extern "C" fn(),
}

/// CPUID's four result registers.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IrqOps {
    /// RFLAGS, or a value with the same IF bit (bit 9).
    pub save_fl: extern "C" fn() -> u64,
    pub restore_fl: extern "C" fn(flags: u64),
    pub disable: extern "C" fn(),
    pub enable: extern "C" fn(),
    /// Enables interrupts and halts until one arrives, with no window between the two.
    pub safe_halt: extern "C" fn(),
    /// Halts until the next interrupt, leaving the interrupt flag as it is.
    pub halt: extern "C" fn(),
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmuOps {
    /// Safety: `pte` must point into a page table of the live tree and the value must
    /// keep everything in use mapped.
    pub set_pte: unsafe extern "C" fn(pte: *mut u64, value: u64),
    pub flush_tlb: extern "C" fn(),
    pub flush_tlb_one: extern "C" fn(addr: u64),
    /// Safety: the new tree must map the running code, its stack and all live data.
    pub switch_address_space: unsafe extern "C" fn(root: u64),
    /// The address a device must use to reach guest-physical `phys`.
    pub phys_to_dma: extern "C" fn(phys: u64) -> u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TimeOps {
    /// Nanoseconds on a monotonic clock (its zero is the backend's).
    pub monotonic_ns: extern "C" fn() -> u64,
    pub tsc_khz: extern "C" fn() -> u64,
    /// Wall-clock time at `monotonic_ns() == 0`, in nanoseconds since the Unix epoch.
    pub wall_clock_base_ns: extern "C" fn() -> u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ApicOps {
    pub eoi: extern "C" fn(),
    pub send_ipi: extern "C" fn(apic_id: u32, vector: u8),
    /// Fires the timer interrupt once at monotonic time `deadline_ns`; a new call
    /// replaces the armed deadline.
    pub set_oneshot_timer: extern "C" fn(deadline_ns: u64),
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IoOps {
    pub inb: extern "C" fn(port: u16) -> u8,
    pub outb: extern "C" fn(port: u16, value: u8),
    pub inw: extern "C" fn(port: u16) -> u16,
    pub outw: extern "C" fn(port: u16, value: u16),
    pub inl: extern "C" fn(port: u16) -> u32,
    pub outl: extern "C" fn(port: u16, value: u32),
    /// The short pause old ISA devices need between accesses.
    pub io_delay: extern "C" fn(),
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ConsoleOps {
    /// Whether the hypervisor offers a console (native: no; the kernel uses COM1).
    pub available: extern "C" fn() -> bool,
    /// Writes bytes to the hypervisor's console.
    pub write: extern "C" fn(bytes: *const u8, len: usize),
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PowerOps {
    /// Whether the hypervisor can end the guest (native: no).
    pub available: extern "C" fn() -> bool,
    /// Asks the hypervisor to end this guest with `code` (0: success); returns if it
    /// cannot (native: always), so the kernel falls back to its own exits.
    pub shutdown: extern "C" fn(code: u32),
}

/// The whole table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PvOps {
    pub cpu: CpuOps,
    pub irq: IrqOps,
    pub mmu: MmuOps,
    pub time: TimeOps,
    pub apic: ApicOps,
    pub io: IoOps,
    pub console: ConsoleOps,
    pub power: PowerOps,
}

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

/// An op's identity: its byte offset in [`PvOps`] (the op index is this / 8).
pub type OpId = u16;

/// `op!(irq.disable)`: the [`OpId`] of a table field.
#[macro_export]
macro_rules! op {
    ($($field:ident).+) => {
        core::mem::offset_of!($crate::ops::PvOps, $($field).+) as $crate::ops::OpId
    };
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

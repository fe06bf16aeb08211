//! The pv-ops table's type: every privileged operation the kernel performs, as plain
//! data. The live table and its installation are in [`crate::table`].
//!
//! The table starts as the native backend's; a backend replaces only the groups or
//! fields that differ (`PvOps { time: KVM_TIME, ..native::OPS }`). Every field is set by
//! construction, so there is no "missing op" case. Hot ops are called through recorded
//! call sites (see [`crate::site`]) that the patcher rewrites at boot; the rest are
//! ordinary calls through the table.
//!
//! An op that can break memory safety or the CPU's state (port and MSR accesses, control
//! registers, descriptor loads, writing text, setting the interrupt flag from an
//! arbitrary value, page-table writes) is an `unsafe fn`; its contract is on the field.
//!
//! All functions use the C ABI so patched call sites have one fixed convention.
#![forbid(unsafe_code)]

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
    /// Safety: the MSR must exist (else #GP) and reading it must have no effect the
    /// caller does not want.
    pub rdmsr: unsafe extern "C" fn(msr: u32) -> u64,
    /// Safety: the caller knows the MSR's effect.
    pub wrmsr: unsafe extern "C" fn(msr: u32, value: u64),
    pub read_cr0: extern "C" fn() -> u64,
    /// Safety: the caller keeps paging and protection consistent.
    pub write_cr0: unsafe extern "C" fn(u64),
    pub read_cr2: extern "C" fn() -> u64,
    /// The root of the live page tables (a physical address).
    pub read_cr3: extern "C" fn() -> u64,
    pub read_cr4: extern "C" fn() -> u64,
    /// Safety: as for `write_cr0`.
    pub write_cr4: unsafe extern "C" fn(u64),
    /// Safety: the table must stay valid and mapped for as long as it is loaded.
    pub load_gdt: unsafe extern "C" fn(&DescriptorPointer),
    /// Loads the interrupt descriptor table. A backend whose CPU has no IDT of its own
    /// (Xen PV) hands the hypervisor the same handlers its own way, so every gate's
    /// handler must follow the entry convention of [`ENTRY_PROLOGUE`].
    /// Safety: as for `load_gdt`; every present gate must point at a handler that
    /// takes the CPU's interrupt frame.
    pub load_idt: unsafe extern "C" fn(&DescriptorPointer),
    /// Safety: the selector must name an available TSS in the loaded GDT.
    pub load_tss: unsafe extern "C" fn(selector: u16),
    pub wbinvd: extern "C" fn(),
    /// Writes `len` bytes of code at `dst` (text is mapped read-only; the patcher uses
    /// this).
    /// Safety: `dst..dst + len` must be kernel text and `src..src + len` readable, and
    /// nothing may execute those bytes while they change.
    pub poke_text: unsafe extern "C" fn(dst: *mut u8, src: *const u8, len: usize),
    /// The end of every trap handler: not called but jumped to, with all registers
    /// restored and the interrupt frame (RIP, CS, RFLAGS, RSP, SS) at RSP (native:
    /// IRETQ; Xen PV: the `iret` hypercall).
    /// Safety: only trap-exit code may jump here, with that frame.
    pub iret: unsafe extern "C" fn(),
}

/// The bytes every interrupt and exception handler starts with, which a CPU-style entry
/// skips: a hypervisor that delivers traps with RCX and R11 pushed above the CPU's frame
/// (Xen PV's callback frame) enters this many bytes earlier, where `pop rcx; pop r11`
/// drops them. The IDT's gates point past the prologue.
pub const ENTRY_PROLOGUE: [u8; 3] = [0x59, 0x41, 0x5b];

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
    /// Safety: `flags` must be a value `save_fl` returned (natively it is loaded into
    /// RFLAGS whole: direction, trap and alignment-check flags included).
    pub restore_fl: unsafe extern "C" fn(flags: u64),
    pub disable: extern "C" fn(),
    pub enable: extern "C" fn(),
    /// Enables interrupts and halts until one arrives, with no window between the two.
    pub safe_halt: extern "C" fn(),
    /// Halts until the next interrupt, leaving the interrupt flag as it is.
    pub halt: extern "C" fn(),
    /// Handles the hypervisor's event upcall (the vector given to [`crate::init`]);
    /// returns whether the one-shot timer's event was among those delivered. An event
    /// the backend cannot place ends the run with a report. Native: nothing to do.
    pub upcall: extern "C" fn() -> bool,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmuOps {
    /// Writes a page-table entry (a value from `make_pte`).
    /// Safety: `pte` must point into a page table of the live tree (or one being built
    /// for it) and the value must keep everything in use mapped.
    pub set_pte: unsafe extern "C" fn(pte: *mut u64, value: u64),
    /// An entry's hardware form from the kernel's, whose address bits are physical
    /// (Xen PV: machine frames). Lets the kernel's page-table code stay the same
    /// everywhere.
    pub make_pte: extern "C" fn(entry: u64) -> u64,
    /// The kernel's form of an entry read from a table (the inverse of `make_pte`).
    pub pte_value: extern "C" fn(raw: u64) -> u64,
    /// Announces that `frame` (zeroed) becomes a page table before it is linked in
    /// (Xen PV maps it read-only: Xen takes no writable frame as a table).
    /// Safety: nothing may write the frame through a mapping of its own afterwards.
    pub alloc_pt: unsafe extern "C" fn(frame: u64),
    /// From here to `batch_end`, `set_pte` may be deferred and applied in one go (Linux's
    /// lazy MMU mode); nothing may rely on the new entries until then.
    pub batch_begin: extern "C" fn(),
    /// Applies deferred `set_pte`s.
    pub batch_end: extern "C" fn(),
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
    /// Nanoseconds this vCPU was ready to run but did not (0 where the hypervisor does
    /// not say).
    pub steal_ns: extern "C" fn() -> u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ApicOps {
    pub eoi: extern "C" fn(),
    pub send_ipi: extern "C" fn(apic_id: u32, vector: u8),
    /// Fires the timer interrupt once, `after_ns` from now; a new call replaces the
    /// armed one.
    pub set_oneshot_timer: extern "C" fn(after_ns: u64),
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IoOps {
    /// Safety (all six): the port must belong to a device the caller drives, and the
    /// access must not make the device break memory safety (start DMA, say).
    pub inb: unsafe extern "C" fn(port: u16) -> u8,
    pub outb: unsafe extern "C" fn(port: u16, value: u8),
    pub inw: unsafe extern "C" fn(port: u16) -> u16,
    pub outw: unsafe extern "C" fn(port: u16, value: u16),
    pub inl: unsafe extern "C" fn(port: u16) -> u32,
    pub outl: unsafe extern "C" fn(port: u16, value: u32),
    /// The short pause old ISA devices need between accesses.
    pub io_delay: extern "C" fn(),
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ConsoleOps {
    /// Whether the hypervisor offers a console (native: no; the kernel uses COM1).
    pub available: extern "C" fn() -> bool,
    /// Writes bytes to the hypervisor's console.
    /// Safety: `bytes..bytes + len` must be readable.
    pub write: unsafe extern "C" fn(bytes: *const u8, len: usize),
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PowerOps {
    /// Whether the hypervisor can end the guest (native: no).
    pub available: extern "C" fn() -> bool,
    /// Asks the hypervisor to end this guest with `code` (0: success); returns if it
    /// cannot (native: always), so the kernel falls back to its own exits.
    pub shutdown: extern "C" fn(code: u32),
    /// Asks the hypervisor to restart this guest; returns if it cannot (native: always).
    pub reboot: extern "C" fn(),
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

/// An op's identity: its byte offset in [`PvOps`] (the op index is this / 8).
pub type OpId = u16;

/// `op!(irq.disable)`: the [`OpId`] of a table field.
#[macro_export]
macro_rules! op {
    ($($field:ident).+) => {
        core::mem::offset_of!($crate::ops::PvOps, $($field).+) as $crate::ops::OpId
    };
}

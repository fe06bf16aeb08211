//! The Xen PV backend: the kernel runs in ring 3 and cannot execute one privileged
//! instruction, so every op in the table becomes a memory write or a hypercall.
//!
//! - interrupt flag: vCPU 0's `evtchn_upcall_mask` in `shared_info` (a byte write; enable
//!   also checks `evtchn_upcall_pending` and forces the upcall with a hypercall);
//! - exceptions: `load_idt` hands Xen the IDT's handlers as its trap table (Xen's frames
//!   carry RCX and R11 too, which each handler's prologue drops), and the return goes
//!   through the `iret` hypercall ([`crate::ops::CpuOps::iret`]);
//! - events: the upcall through Xen's event callback (the upcall vector's handler),
//!   VIRQ_TIMER and the one-shot timer;
//! - page tables: read-only to the kernel, changed through `mmu_update` and
//!   `update_va_mapping`, with `mmuext_op` for flushes and base switches ([`mmu`]);
//! - the p2m list from the start info for machine addresses (DMA);
//! - idle with `SCHEDOP_block`, power-off with `SCHEDOP_shutdown`;
//! - CPUID through Xen's forced-emulation prefix, so Xen's leaves are seen;
//! - console through `console_io` for dom0, else the console ring.

mod mmu;

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, compiler_fence};

use crate::backend::{Backend, Claim, Probe, SelfTest, Started};
use crate::native;
use crate::ops::{
    ApicOps, ConsoleOps, CpuOps, CpuidResult, DescriptorPointer, ENTRY_PROLOGUE, IoOps, IrqOps, MmuOps, PvOps,
};
use crate::pvclock::HostShared;
use crate::xen::{
    self, HYPERVISOR_PHYSDEV_OP, HYPERVISOR_SET_CALLBACKS, HYPERVISOR_SET_TRAP_TABLE, HYPERVISOR_XEN_VERSION,
    Refused, SCHEDOP_BLOCK, SHARED_INFO, VCPU0_CR2, VCPU0_UPCALL_MASK, VCPU0_UPCALL_PENDING, check, events,
};

/// `FLAT_KERNEL_CS64`: the code segment Xen gives 64-bit PV kernels.
pub const KERNEL_CS: u16 = 0xe033;

const RFLAGS_IF: u64 = 1 << 9;

fn upcall_mask() -> &'static AtomicU8 {
    SHARED_INFO.atomic_u8(VCPU0_UPCALL_MASK)
}

/// Any hypercall makes Xen deliver a pending upcall on its way back.
fn force_upcall() {
    // SAFETY: XENVER_version (0) takes no argument.
    unsafe { xen::hypercall3(HYPERVISOR_XEN_VERSION, 0, 0, 0) };
}

extern "C" fn irq_disable() {
    upcall_mask().store(1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
}

extern "C" fn irq_enable() {
    compiler_fence(Ordering::SeqCst);
    upcall_mask().store(0, Ordering::Relaxed);
    // An event that came in while masked only set the pending byte: deliver it now.
    compiler_fence(Ordering::SeqCst);
    if SHARED_INFO.atomic_u8(VCPU0_UPCALL_PENDING).load(Ordering::Relaxed) != 0 {
        force_upcall();
    }
}

extern "C" fn save_fl() -> u64 {
    if upcall_mask().load(Ordering::Relaxed) == 0 { RFLAGS_IF } else { 0 }
}

unsafe extern "C" fn restore_fl(flags: u64) {
    if flags & RFLAGS_IF != 0 { irq_enable() } else { irq_disable() }
}

/// `SCHEDOP_block` unmasks events and blocks unless one is pending, atomically: the PV
/// `sti; hlt`. The event is delivered as the hypercall returns.
extern "C" fn safe_halt() {
    xen::sched_op(SCHEDOP_BLOCK);
}

/// `SCHEDOP_poll` on no channels and with no timeout blocks without touching the event
/// mask, until an event is signalled: `hlt` with the interrupt flag left as it is.
extern "C" fn halt() {
    #[repr(C)]
    struct Poll {
        ports: u64,
        nr_ports: u32,
        timeout: u64,
    }
    let poll = Poll { ports: 0, nr_ports: 0, timeout: 0 };
    // SAFETY: `poll` lives across the call and names no ports.
    unsafe { xen::hypercall3(xen::HYPERVISOR_SCHED_OP, SCHEDOP_POLL, &raw const poll as u64, 0) };
}

const SCHEDOP_POLL: u64 = 3;

/// CPUID behind `ud2; .ascii "xen"`, which Xen emulates with the guest's CPUID policy
/// (a bare CPUID in ring 3 may see the host's leaves).
extern "C" fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let (eax, ebx, ecx, edx);
    // SAFETY: Xen recognises the prefix and emulates the CPUID that follows; RBX, which
    // asm! may not name, is saved and restored around it.
    unsafe {
        asm!(
            "mov {saved:r}, rbx",
            "ud2",
            ".ascii \"xen\"",
            "cpuid",
            "xchg {saved:r}, rbx",
            saved = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nostack, preserves_flags),
        )
    };
    CpuidResult { eax, ebx, ecx, edx }
}

extern "C" fn read_cr2() -> u64 {
    SHARED_INFO.read_u64(VCPU0_CR2)
}

extern "C" fn read_cr3() -> u64 {
    mmu::root()
}

// A PV guest has no GDT or TSS of its own to load and may not flush caches: Xen keeps
// the GDT (its flat selectors serve) and there is no TSS. The kernel never asks under PV;
// if it did, it would say so.
unsafe extern "C" fn load_gdt(_: &DescriptorPointer) {
    panic!("xen_pv: a PV guest cannot load a GDT (Xen's flat segments are used)");
}

/// The vector the kernel takes events on, whose handler becomes Xen's event callback.
static UPCALL_VECTOR: AtomicU8 = AtomicU8::new(0);
/// The general-protection handler, where the failsafe callback goes.
#[unsafe(no_mangle)]
static XEN_PV_GP_HANDLER: AtomicU64 = AtomicU64::new(0);

/// The handler of `gate` in an IDT, if the gate is present.
fn gate_handler(idt: &[u8], vector: usize) -> Option<(u64, u8)> {
    let g = idt.get(vector * 16..vector * 16 + 16)?;
    let type_attr = g[5];
    if type_attr & 0x80 == 0 {
        return None;
    }
    let offset = u64::from(u16::from_le_bytes([g[0], g[1]]))
        | (u64::from(u16::from_le_bytes([g[6], g[7]])) << 16)
        | (u64::from(u32::from_le_bytes([g[8], g[9], g[10], g[11]])) << 32);
    Some((offset, type_attr))
}

/// Linux's `xen_load_idt`: the IDT's exception gates become Xen's trap table, and the
/// upcall vector's handler the event callback. Xen's frames carry RCX and R11 above the
/// CPU's, so each is entered at its handler's prologue, which drops them.
unsafe extern "C" fn load_idt(ptr: &DescriptorPointer) {
    let len = usize::from(ptr.limit) + 1;
    // SAFETY: the op's contract: the IDT at `base` is valid for `limit + 1` bytes.
    let idt = unsafe { core::slice::from_raw_parts(ptr.base as *const u8, len) };
    let prologue = ENTRY_PROLOGUE.len() as u64;
    let mut table = [TrapInfo::END; EXCEPTIONS + 1];
    let mut n = 0;
    for vector in 0..EXCEPTIONS {
        if let Some((handler, type_attr)) = gate_handler(idt, vector) {
            // Bits 0-1: the gate's DPL; bit 2: an interrupt gate masks events on entry.
            let mask = if type_attr & 0x0f == 0x0e { 1 << 2 } else { 0 };
            let flags = ((type_attr >> 5) & 3) | mask;
            table[n] = TrapInfo { vector: vector as u8, flags, cs: KERNEL_CS, address: handler - prologue };
            n += 1;
        }
    }
    if let Some((gp, _)) = gate_handler(idt, GENERAL_PROTECTION) {
        XEN_PV_GP_HANDLER.store(gp, Ordering::Relaxed);
    }
    // SAFETY: the table is terminated (Xen copies it during the call) and each entry is
    // a handler's prologue, which takes Xen's exception frame (the op's contract).
    let rc = unsafe { xen::hypercall3(HYPERVISOR_SET_TRAP_TABLE, table.as_ptr() as u64, 0, 0) };
    if let Err(e) = check("set_trap_table", rc) {
        panic!("xen_pv: {e}");
    }
    let upcall = usize::from(UPCALL_VECTOR.load(Ordering::Relaxed));
    let Some((event, _)) = gate_handler(idt, upcall) else {
        panic!("xen_pv: the IDT has no handler for the upcall vector {upcall:#x}");
    };
    // SAFETY: the upcall vector's prologue takes Xen's event frame (RCX, R11, then a
    // CPU-style frame without an error code); the failsafe stub below takes its own.
    let rc = unsafe {
        xen::hypercall3(HYPERVISOR_SET_CALLBACKS, event - prologue, xen_pv_failsafe as *const () as u64, 0)
    };
    if let Err(e) = check("set_callbacks", rc) {
        panic!("xen_pv: {e}");
    }
}

const EXCEPTIONS: usize = 32;
const GENERAL_PROTECTION: usize = 13;

// Xen could not load a segment register on a return to the guest: its failsafe frame
// holds RCX, R11, DS, ES, FS and GS above a CPU-style frame. Like Linux when it cannot
// retry, report it as a general-protection fault (error code 0).
core::arch::global_asm!(
    r#"
    .section .text.xen_pv_failsafe, "ax"
    .global xen_pv_failsafe
xen_pv_failsafe:
    pop %rcx
    pop %r11
    add $32, %rsp
    push $0
    jmp *XEN_PV_GP_HANDLER(%rip)
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn xen_pv_failsafe();
}

unsafe extern "C" fn load_tss(_: u16) {
    panic!("xen_pv: a PV guest has no TSS");
}

extern "C" fn wbinvd() {
    panic!("xen_pv: a PV guest cannot write back caches (WBINVD)");
}

/// Text is patched while Xen's boot mapping still has it writable (before
/// [`mmu::protect_image`]), so a plain copy does.
unsafe extern "C" fn poke_text(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller guarantees the bytes are text nobody executes meanwhile; the
    // boot sequence patches before the image is made read-only.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
}

// Return from a trap: the frame (RIP, CS, RFLAGS, RSP, SS) is at RSP. The `iret`
// hypercall takes it with a flags word (0: restore everything) and, pushed by its stub,
// RAX, R11 and RCX; it also restores the event mask from the frame's RFLAGS.IF.
core::arch::global_asm!(
    r#"
    .section .text.xen_pv_iret, "ax"
    .global xen_pv_iret
xen_pv_iret:
    push $0
    jmp xen_hypercall_page + {iret} * 32
    "#,
    iret = const xen::HYPERVISOR_IRET,
    options(att_syntax)
);

unsafe extern "C" {
    fn xen_pv_iret();
}

extern "C" fn no_eoi() {}

extern "C" fn no_ipi(_apic_id: u32, _vector: u8) {}

/// The page the console ring's frame is mapped at (domU).
static CONSOLE_PAGE: HostShared<4096> = HostShared::new();

/// The whole table.
pub const OPS: PvOps = PvOps {
    // MSRs and CR0/CR4 stay native: Xen emulates those instructions for PV guests
    // (reads, and the writes it allows).
    cpu: CpuOps {
        cpuid,
        read_cr2,
        read_cr3,
        load_gdt,
        load_idt,
        load_tss,
        wbinvd,
        poke_text,
        iret: xen_pv_iret,
        ..native::OPS.cpu
    },
    irq: IrqOps {
        save_fl,
        restore_fl,
        disable: irq_disable,
        enable: irq_enable,
        safe_halt,
        halt,
        upcall: events::upcall,
    },
    mmu: MmuOps {
        set_pte: mmu::set_pte,
        make_pte: mmu::make_pte,
        pte_value: mmu::pte_value,
        alloc_pt: mmu::alloc_pt,
        batch_begin: mmu::batch_begin,
        batch_end: mmu::batch_end,
        flush_tlb: mmu::flush_tlb,
        flush_tlb_one: mmu::flush_tlb_one,
        switch_address_space: mmu::switch_address_space,
        phys_to_dma: mmu::phys_to_machine,
    },
    time: xen::TIME,
    apic: ApicOps { eoi: no_eoi, send_ipi: no_ipi, set_oneshot_timer: events::set_timer },
    io: native::OPS.io,
    console: ConsoleOps { available: xen::always, write: xen::console::write },
    power: xen::POWER,
};

/// Installs the table as the first thing at the PV entry: until then not even the
/// interrupt flag can be touched. Events will arrive as `upcall_vector`'s handler in the
/// IDT the kernel loads next.
///
/// # Safety
/// Boot only: the PV entry, before anything else runs.
pub unsafe fn install_early(upcall_vector: u8) {
    UPCALL_VECTOR.store(upcall_vector, Ordering::Relaxed);
    // Events are masked at the PV entry; the stand-in page says so too until Xen's
    // `shared_info` replaces it.
    upcall_mask().store(1, Ordering::Relaxed);
    // SAFETY: the caller guarantees boot conditions.
    unsafe { crate::table::install(OPS) };
}

/// One `trap_info` entry: Xen's form of an IDT gate.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct TrapInfo {
    vector: u8,
    /// Bits 0-1: the lowest privilege that may raise it with INT; bit 2: mask events on
    /// entry (an interrupt gate).
    flags: u8,
    cs: u16,
    address: u64,
}

impl TrapInfo {
    /// The table's terminator.
    const END: TrapInfo = TrapInfo { vector: 0, flags: 0, cs: 0, address: 0 };
}

/// What [`start`] needs from the start info.
#[derive(Debug, Clone, Copy)]
pub struct Handover {
    pub shared_info: u64,
    pub pt_base: u64,
    pub mfn_list: u64,
    pub nr_pages: u64,
    pub dom0: bool,
    pub console_mfn: u64,
    pub console_evtchn: u32,
    /// The xenstore ring's frame and channel (domU), set up by the domain builder; 0 for
    /// none.
    pub store_mfn: u64,
    pub store_evtchn: u32,
}

/// Whether this is a PV guest (the PV entry ran [`start`]).
static RUNNING: AtomicBool = AtomicBool::new(false);

pub(crate) fn running() -> bool {
    RUNNING.load(Ordering::Relaxed)
}

/// Puts machine frame `mfn` behind our page at `va`, writable.
///
/// # Safety
/// Nothing may use the page at `va` as what it held before.
pub(crate) unsafe fn map_machine_frame(va: u64, mfn: u64) -> Result<(), Refused> {
    // SAFETY: the caller's contract.
    unsafe { mmu::remap_page(va, (mfn << 12) | mmu::PRESENT | mmu::WRITABLE | mmu::nx_bit()) }
}

/// The page the xenstore ring's frame is mapped at (domU).
static STORE_PAGE: HostShared<4096> = HostShared::new();

/// Whether port accesses are allowed (dom0, with `PHYSDEVOP_set_iopl`).
static IO_PRIVILEGE: AtomicBool = AtomicBool::new(true);

/// Port reads of a domU, which has no I/O privilege: nothing answers (all ones), as for
/// ports no device decodes; writes go nowhere.
unsafe extern "C" fn no_inb(_: u16) -> u8 {
    u8::MAX
}
unsafe extern "C" fn no_inw(_: u16) -> u16 {
    u16::MAX
}
unsafe extern "C" fn no_inl(_: u16) -> u32 {
    u32::MAX
}
unsafe extern "C" fn no_outb(_: u16, _: u8) {}
unsafe extern "C" fn no_outw(_: u16, _: u16) {}
unsafe extern "C" fn no_outl(_: u16, _: u32) {}

const NO_PORTS: IoOps = IoOps {
    inb: no_inb,
    inw: no_inw,
    inl: no_inl,
    outb: no_outb,
    outw: no_outw,
    outl: no_outl,
    ..native::OPS.io
};

const PHYSDEVOP_SET_IOPL: u64 = 6;

/// Maps `shared_info` (its vCPU 0 record holds the event mask, pvclock and CR2), takes
/// the p2m list and the boot page tables into use, picks the console, and for dom0 asks
/// for I/O-port access so port instructions are emulated, not faults.
///
/// # Safety
/// Boot only, after [`install_early`]; the handover's addresses are Xen's.
pub unsafe fn start(h: &Handover) -> Result<(), Refused> {
    // Asked once: each CPUID is a trap into Xen.
    let nx = cpuid(0x8000_0000, 0).eax >= 0x8000_0001 && cpuid(0x8000_0001, 0).edx & (1 << 20) != 0;
    // SAFETY: the caller vouches for the handover; `mfn_list` holds `nr_pages` entries.
    unsafe { mmu::init(h.pt_base, h.mfn_list, h.nr_pages, nx) };
    RUNNING.store(true, Ordering::Relaxed);
    let nx = mmu::nx_bit();
    // SAFETY: the stand-in page is only read through `SHARED_INFO`'s volatile and atomic
    // accessors, which from now on see Xen's page.
    unsafe { mmu::remap_page(SHARED_INFO.addr(), h.shared_info | mmu::PRESENT | mmu::WRITABLE | nx) }?;
    xen::start_clock();
    if h.dom0 {
        let iopl = 1u32;
        // SAFETY: `iopl` lives across the call.
        let rc =
            unsafe { xen::hypercall3(HYPERVISOR_PHYSDEV_OP, PHYSDEVOP_SET_IOPL, &raw const iopl as u64, 0) };
        check("PHYSDEVOP_set_iopl", rc)?;
    } else {
        // A domU has no I/O privilege: port accesses would fault, so they find nothing,
        // as on a machine without those devices.
        IO_PRIVILEGE.store(false, Ordering::Relaxed);
        if h.console_mfn != 0 {
            // SAFETY: the console page is ours alone and from now on used only by the
            // console module.
            unsafe {
                mmu::remap_page(
                    CONSOLE_PAGE.addr(),
                    (h.console_mfn << 12) | mmu::PRESENT | mmu::WRITABLE | nx,
                )?;
                xen::console::use_ring(CONSOLE_PAGE.addr(), h.console_evtchn);
            }
        }
    }
    if h.store_mfn != 0 {
        // SAFETY: as for the console page, for the xenstore ring.
        unsafe {
            mmu::remap_page(STORE_PAGE.addr(), (h.store_mfn << 12) | mmu::PRESENT | mmu::WRITABLE | nx)?;
            xen::store::set_ring(STORE_PAGE.addr(), h.store_evtchn);
        }
    }
    Ok(())
}

/// Claimed by the entry point: nothing but Xen enters a kernel in ring 3 (the generic
/// check in detection keeps this backend to such boots).
fn claim(_: &Probe<'_>) -> Claim {
    Ok(100)
}

/// The table went in at the entry ([`install_early`]); what is left is the timer, which a
/// PV guest cannot do without: there is nothing to fall back to.
fn start_backend(_: &Probe<'_>) -> Result<Started, &'static str> {
    if let Err(e) = events::bind_timer() {
        panic!("xen_pv: no timer: {e}");
    }
    let io = if IO_PRIVILEGE.load(Ordering::Relaxed) { OPS.io } else { NO_PORTS };
    Ok(Started { timer: Some("Xen VIRQ_TIMER (one-shot)"), ..Started::with(PvOps { io, ..OPS }) })
}

/// `selftest=xen-mmu-refused`: asks Xen, through `set_pte`, to make the root page table
/// writable; Xen must refuse, and the refusal must end the run with a clear message.
const MMU_REFUSED: SelfTest = SelfTest {
    name: "xen-mmu-refused",
    run: |env| {
        let Some((entry, value)) = mmu::root_mapping_made_writable() else {
            return "the root page table is not mapped";
        };
        (env.print)(format_args!("selftest xen-mmu-refused: asking for a writable root page table"));
        // SAFETY: `entry` is an entry of the live tree; Xen validates the change and
        // refuses it (a writable mapping of a page table), so nothing changes.
        unsafe { mmu::set_pte(entry, value) };
        "Xen accepted a writable mapping of the root page table"
    },
};

pub const BACKEND: Backend = Backend {
    hypervisor_name: Some("xen-pv"),
    privileged: false,
    local_apic: false,
    selftests: &[MMU_REFUSED, events::UNCLAIMED_EVENT],
    ..Backend::new("xen_pv", claim, start_backend)
};

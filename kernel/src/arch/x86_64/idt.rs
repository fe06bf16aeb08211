//! Exception entry: one assembly stub per vector builds a uniform [`TrapFrame`] and
//! calls [`crate::traps::handle`]. Own stubs (not `extern "x86-interrupt"`, which is
//! unstable) also serve Xen PV, whose frames differ: Xen puts RCX and R11 above the
//! CPU-style frame, so a PV trampoline pops those two and joins the native stub. Every
//! handler leaves through the pv-ops `iret` (IRETQ, or Xen's `iret` hypercall).

use core::arch::global_asm;
use spin::Once;

use super::gdt::{self, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};

/// Registers saved on exception entry, lowest address first.
#[repr(C)]
#[derive(Debug, Clone)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

global_asm!(
    r#"
    .macro TRAP vector, has_error
    .section .text.traps, "ax"
    .balign 16
trap_\vector:
    .if \has_error == 0
    push $0
    .endif
    push $\vector
    jmp trap_common
    .section .rodata.trap_vectors, "a"
    .quad trap_\vector
    .endm

    .section .rodata.trap_vectors, "a"
    .balign 8
    .global trap_vectors
trap_vectors:
    TRAP 0, 0
    TRAP 1, 0
    TRAP 2, 0
    TRAP 3, 0
    TRAP 4, 0
    TRAP 5, 0
    TRAP 6, 0
    TRAP 7, 0
    TRAP 8, 1
    TRAP 9, 0
    TRAP 10, 1
    TRAP 11, 1
    TRAP 12, 1
    TRAP 13, 1
    TRAP 14, 1
    TRAP 15, 0
    TRAP 16, 0
    TRAP 17, 1
    TRAP 18, 0
    TRAP 19, 0
    TRAP 20, 0
    TRAP 21, 1
    TRAP 22, 0
    TRAP 23, 0
    TRAP 24, 0
    TRAP 25, 0
    TRAP 26, 0
    TRAP 27, 0
    TRAP 28, 0
    TRAP 29, 1
    TRAP 30, 1
    TRAP 31, 0

    /* Vectors 32..=255 (interrupts): 16-byte stubs in a row, vector in the push. */
    .section .text.traps, "ax"
    .balign 16
    .global irq_stubs
irq_stubs:
    .set vector, 32
    .rept 224
    .balign 16
    push $0
    push $vector
    jmp trap_common
    .set vector, vector + 1
    .endr

trap_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call {handler}
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    jmp *{table}+{iret}(%rip)

    /* Xen PV: the same stubs behind trampolines that drop Xen's RCX and R11. */
    .macro XEN_PV_TRAP vector
    .section .text.traps, "ax"
    .balign 16
xen_pv_trap_\vector:
    pop %rcx
    pop %r11
    jmp trap_\vector
    .section .rodata.trap_vectors, "a"
    .quad xen_pv_trap_\vector
    .endm

    .section .rodata.trap_vectors, "a"
    .balign 8
    .global xen_pv_trap_vectors
xen_pv_trap_vectors:
    XEN_PV_TRAP 0
    XEN_PV_TRAP 1
    XEN_PV_TRAP 2
    XEN_PV_TRAP 3
    XEN_PV_TRAP 4
    XEN_PV_TRAP 5
    XEN_PV_TRAP 6
    XEN_PV_TRAP 7
    XEN_PV_TRAP 8
    XEN_PV_TRAP 9
    XEN_PV_TRAP 10
    XEN_PV_TRAP 11
    XEN_PV_TRAP 12
    XEN_PV_TRAP 13
    XEN_PV_TRAP 14
    XEN_PV_TRAP 15
    XEN_PV_TRAP 16
    XEN_PV_TRAP 17
    XEN_PV_TRAP 18
    XEN_PV_TRAP 19
    XEN_PV_TRAP 20
    XEN_PV_TRAP 21
    XEN_PV_TRAP 22
    XEN_PV_TRAP 23
    XEN_PV_TRAP 24
    XEN_PV_TRAP 25
    XEN_PV_TRAP 26
    XEN_PV_TRAP 27
    XEN_PV_TRAP 28
    XEN_PV_TRAP 29
    XEN_PV_TRAP 30
    XEN_PV_TRAP 31

    .section .text.traps, "ax"
    /* The event upcall: Xen's RCX, R11, then a CPU-style frame without error code. */
    .balign 16
    .global xen_pv_event_entry
xen_pv_event_entry:
    pop %rcx
    pop %r11
    push $0
    push ${upcall}
    jmp trap_common

    /* Xen could not load a segment register on the way back: RCX, R11, DS, ES, FS, GS
       above the frame. Reported as fatal. */
    .balign 16
    .global xen_pv_failsafe_entry
xen_pv_failsafe_entry:
    pop %rcx
    pop %r11
    add $32, %rsp
    push $0
    push ${failsafe}
    jmp trap_common
    "#,
    handler = sym trap_entry,
    table = sym pv::ops::PV_OPS,
    iret = const core::mem::offset_of!(pv::ops::PvOps, cpu.iret),
    upcall = const pv::xen::events::UPCALL_VECTOR,
    failsafe = const XEN_FAILSAFE_VECTOR,
    options(att_syntax)
);

/// The vector number Xen PV's failsafe callback reports itself as (no IDT vector).
pub const XEN_FAILSAFE_VECTOR: u64 = 0x100;

unsafe extern "C" {
    static trap_vectors: [u64; EXCEPTIONS];
    static xen_pv_trap_vectors: [u64; EXCEPTIONS];
    static irq_stubs: u8;
    static xen_pv_event_entry: u8;
    static xen_pv_failsafe_entry: u8;
}

const EXCEPTIONS: usize = 32;
const VECTORS: usize = 256;
const IRQ_STUB_SIZE: u64 = 16;

extern "C" fn trap_entry(frame: &mut TrapFrame) {
    crate::traps::handle(frame);
}

/// One 16-byte interrupt gate.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; VECTORS]);

static IDT: Once<Idt> = Once::new();

pub fn init() {
    let selector = gdt::kernel_code_selector();
    let idt = IDT.call_once(|| {
        // SAFETY: `trap_vectors` is the read-only table of stub addresses defined above.
        let exceptions = unsafe { &trap_vectors };
        let irq_base = &raw const irq_stubs as u64;
        let mut gates = [Gate::default(); VECTORS];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let addr = match exceptions.get(vector) {
                Some(&addr) => addr,
                None => irq_base + (vector - EXCEPTIONS) as u64 * IRQ_STUB_SIZE,
            };
            *gate = Gate {
                offset_low: addr as u16,
                selector,
                ist: match vector {
                    2 => IST_NMI,
                    8 => IST_DOUBLE_FAULT,
                    18 => IST_MACHINE_CHECK,
                    _ => 0,
                },
                type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
                offset_mid: (addr >> 16) as u16,
                offset_high: (addr >> 32) as u32,
                reserved: 0,
            };
        }
        Idt(gates)
    });
    let pointer = pv::ops::DescriptorPointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: idt as *const Idt as u64,
    };
    // SAFETY: the IDT is a static that lives for the whole run and every gate points at
    // a stub above.
    unsafe { (pv::ops::ops().cpu.load_idt)(&pointer) };
}

static XEN_PV_TRAPS: Once<[pv::xen_pv::TrapInfo; EXCEPTIONS + 1]> = Once::new();

/// Xen PV's IDT: the trap table (every exception, events masked on entry) and the event
/// and failsafe callbacks.
pub fn init_xen_pv() -> Result<(), pv::xen::Refused> {
    use pv::xen_pv::TrapInfo;
    let table = XEN_PV_TRAPS.call_once(|| {
        // SAFETY: `xen_pv_trap_vectors` is the read-only table of trampoline addresses
        // defined above.
        let entries = unsafe { &xen_pv_trap_vectors };
        let mut table = [TrapInfo::END; EXCEPTIONS + 1];
        for (vector, (slot, &addr)) in table.iter_mut().zip(entries).enumerate() {
            *slot = TrapInfo::exception(vector as u8, addr);
        }
        table
    });
    // SAFETY: every entry is a trampoline above that takes Xen's exception frame.
    unsafe { pv::xen_pv::set_trap_table(table) }?;
    // SAFETY: the two entries above take Xen's event and failsafe frames.
    unsafe {
        pv::xen_pv::set_callbacks(
            &raw const xen_pv_event_entry as u64,
            &raw const xen_pv_failsafe_entry as u64,
        )
    }
}

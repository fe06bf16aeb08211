//! Exception and interrupt entry: one assembly stub per vector builds a uniform
//! [`TrapFrame`] and calls [`crate::traps::handle`]. Own stubs (not
//! `extern "x86-interrupt"`, which is unstable) let every stub start with the pv-ops
//! entry prologue ([`pv::ops::ENTRY_PROLOGUE`]), which the IDT's gates skip and a
//! hypervisor that pushes RCX and R11 above the frame enters at. The IDT goes in through
//! the pv-ops `load_idt`, and every handler leaves through the pv-ops `iret`.

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
    pop %rcx
    pop %r11
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

    /* Vectors 32..=255 (interrupts): 16-byte stubs in a row (prologue, vector in the
       push; `push imm32` and `jmp rel32` keep each at 15 bytes), gates at +3. */
    .section .text.traps, "ax"
    .balign 16
    .global irq_stubs
irq_stubs:
    .set vector, 32
    .rept 224
    .balign 16
    pop %rcx
    pop %r11
    push $0
    .byte 0x68
    .long vector
    .byte 0xe9
    .long trap_common - . - 4
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

    "#,
    handler = sym trap_entry,
    table = sym pv::table::PV_OPS,
    iret = const core::mem::offset_of!(pv::ops::PvOps, cpu.iret),
    options(att_syntax)
);

unsafe extern "C" {
    static trap_vectors: [u64; EXCEPTIONS];
    static irq_stubs: u8;
}

const EXCEPTIONS: usize = 32;
const VECTORS: usize = 256;
const IRQ_STUB_SIZE: u64 = 16;
/// Where an interrupt stub's gate points: past the prologue.
const IRQ_STUB_GATE: u64 = pv::ops::ENTRY_PROLOGUE.len() as u64;

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
    check_layout();
    let selector = gdt::code_selector();
    let idt = IDT.call_once(|| {
        // SAFETY: `trap_vectors` is the read-only table of stub addresses defined above.
        let exceptions = unsafe { &trap_vectors };
        let irq_base = &raw const irq_stubs as u64;
        let mut gates = [Gate::default(); VECTORS];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let addr = match exceptions.get(vector) {
                Some(&addr) => addr,
                None => irq_base + (vector - EXCEPTIONS) as u64 * IRQ_STUB_SIZE + IRQ_STUB_GATE,
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
    // a stub above, just past its prologue.
    unsafe { (pv::table::ops().cpu.load_idt)(&pointer) };
}

/// Checks, once, that the assembler laid the stubs out as the gates assume: the prologue
/// right before every gate's target.
fn check_layout() {
    // SAFETY: `trap_vectors` is the read-only table of stub addresses defined above.
    let exceptions = unsafe { &trap_vectors };
    let irq_base = &raw const irq_stubs as u64;
    let targets = exceptions
        .iter()
        .copied()
        .chain((0..(VECTORS - EXCEPTIONS) as u64).map(|i| irq_base + i * IRQ_STUB_SIZE + IRQ_STUB_GATE));
    for target in targets {
        let at = target - IRQ_STUB_GATE;
        // SAFETY: every stub is in mapped text, and the prologue's bytes precede its gate
        // target within the same 16-byte-aligned stub.
        let bytes = unsafe { core::slice::from_raw_parts(at as *const u8, pv::ops::ENTRY_PROLOGUE.len()) };
        assert_eq!(bytes, pv::ops::ENTRY_PROLOGUE, "trap stub at {at:#x} lacks the entry prologue");
    }
}

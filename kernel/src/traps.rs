//! What the kernel does with CPU exceptions: report them in full and stop.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::backtrace;
use crate::arch::cpu;
use crate::arch::entry::stacks;
use crate::arch::idt::TrapFrame;
use crate::exit::{ExitCode, exit};
use crate::time;

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved (15)",
    "x87 floating-point error",
    "alignment check",
    "machine check",
    "SIMD floating-point error",
    "virtualization exception",
    "control protection",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "hypervisor injection",
    "VMM communication",
    "security exception",
    "reserved (31)",
];

const PAGE_FAULT: u64 = 14;
const DOUBLE_FAULT: u64 = 8;

static IN_FATAL: AtomicBool = AtomicBool::new(false);

pub(crate) fn handle(frame: &mut TrapFrame) {
    match frame.vector {
        0..=31 => fatal(frame),
        // The timer and the network card only end a halt; the executor does the work.
        v if v == u64::from(time::TIMER_VECTOR) => {
            time::on_timer_interrupt();
            pv::site::apic_eoi();
        }
        v if v == u64::from(crate::net::NET_VECTOR) => {
            crate::net::on_interrupt();
            pv::site::apic_eoi();
        }
        // The hypervisor's event upcall: the backend finds the events; the timer's only
        // ends a halt (and spends the timer).
        v if v == u64::from(crate::interrupts::UPCALL_VECTOR) => {
            if (pv::table::ops().irq.upcall)() {
                time::on_timer_interrupt();
            }
            pv::site::apic_eoi();
        }
        v if v == u64::from(crate::selftest::MSI_TEST_VECTOR) => {
            crate::selftest::on_msi_test_interrupt();
            pv::site::apic_eoi();
        }
        // Spurious interrupts need no EOI.
        v if v == u64::from(time::SPURIOUS_VECTOR) => {}
        v => {
            log::warn!("unexpected interrupt on vector {v:#x}");
            pv::site::apic_eoi();
        }
    }
}

bitflags::bitflags! {
    /// The page-fault error code.
    #[derive(Debug, Clone, Copy)]
    struct PageFaultError: u64 {
        const PROTECTION = 1 << 0;
        const WRITE = 1 << 1;
        const USER = 1 << 2;
        const RESERVED_BIT = 1 << 3;
        const FETCH = 1 << 4;
    }
}

fn page_fault_cause(error: u64) -> (&'static str, &'static str) {
    let error = PageFaultError::from_bits_truncate(error);
    let access = if error.contains(PageFaultError::FETCH) {
        "instruction fetch"
    } else if error.contains(PageFaultError::WRITE) {
        "write"
    } else {
        "read"
    };
    let why = if error.contains(PageFaultError::RESERVED_BIT) {
        "reserved bit set in a page-table entry"
    } else if error.contains(PageFaultError::PROTECTION) {
        "protection violation"
    } else {
        "page not mapped"
    };
    (access, why)
}

fn fatal(frame: &TrapFrame) -> ! {
    cpu::disable_interrupts();
    if IN_FATAL.swap(true, Ordering::SeqCst) {
        // A fault while reporting a fault: say the least possible and leave.
        crate::console::seize_for_crash();
        crate::println!("fatal: nested CPU exception {} at {:#x}", frame.vector, frame.rip);
        crate::exit::exit_with(ExitCode::CpuException as u32);
    }
    crate::console::seize_for_crash();
    let name = NAMES.get(frame.vector as usize).unwrap_or(&"interrupt");
    crate::println!(
        "fatal: CPU exception: {name} (vector {}), error code {:#x}, at rip {:#018x}",
        frame.vector,
        frame.error_code,
        frame.rip
    );
    if frame.vector == PAGE_FAULT || frame.vector == DOUBLE_FAULT {
        let cr2 = cpu::read_cr2();
        if frame.vector == PAGE_FAULT {
            let (access, why) = page_fault_cause(frame.error_code);
            crate::println!("page fault: {access} at address {cr2:#018x}: {why}");
        }
        if let Some(s) = stacks().iter().find(|s| (s.guard..s.guard + 4096).contains(&cr2)) {
            crate::println!("stack overflow: the {} stack ran into its guard page at {cr2:#x}", s.name);
        }
    }
    crate::println!(
        "rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n\
         rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}\n\
         r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}\n\
         r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}\n\
         rflags {:#x} cs {:#x} ss {:#x} cr3 {:#x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.rsp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rflags,
        frame.cs,
        frame.ss,
        cpu::read_cr3()
    );
    crate::println!("  #0  {:#018x} (faulting instruction)", frame.rip);
    backtrace::print_from(frame.rbp);
    exit(ExitCode::CpuException)
}

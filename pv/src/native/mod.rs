//! The native backend: the real instructions. It is the table's starting value and what
//! bare metal, TCG and unknown hypervisors run on; other backends override parts of it.
//!
//! The devices behind the native `apic` and `time` ops live here too: the local APIC
//! ([`apic`]) and the TSC clock with its PIT calibration and CMOS wall clock ([`tsc`]).
//! They are this backend's implementation of those ops, which the const table must name
//! and which the KVM, VMware and Xen HVM backends reuse or wrap (PV EOI, a hypervisor's
//! TSC rate); the kernel's device handles come later in boot than the table does.

pub mod apic;
pub(crate) mod insn;
pub mod tsc;

pub(crate) use insn::{cpuid, inb, outb, rdmsr, wrmsr};
use insn::{inl, inw, outl, outw};

/// The I/O ports the backends drive themselves, `(base, length)`, so the kernel hands
/// them to no driver: the PIT and channel 2's gate (TSC calibration), the CMOS RTC (the
/// wall clock), the POST port (`io_delay`), Xen's debug port (the early console) and
/// VMware's backdoor (detection).
pub const PORTS_IN_USE: [(u16, u16); 6] =
    [(0x40, 4), (0x61, 1), (0x70, 2), (0x80, 1), (0xe9, 1), (0x5658, 1)];

use core::arch::asm;

use crate::backend::{Backend, Probe, Started};
use crate::op;
use crate::ops::{
    ApicOps, ConsoleOps, CpuOps, DescriptorPointer, IoOps, IrqOps, MmuOps, OpId, PowerOps, PvOps, TimeOps,
};

macro_rules! control_register {
    ($read:ident, $write:ident, $cr:literal) => {
        extern "C" fn $read() -> u64 {
            let v;
            // SAFETY: reading a control register has no side effects.
            unsafe { asm!(concat!("mov {}, ", $cr), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        unsafe extern "C" fn $write(v: u64) {
            // SAFETY: the caller keeps paging and protection consistent (the op's contract).
            unsafe { asm!(concat!("mov ", $cr, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}
control_register!(read_cr0, write_cr0, "cr0");
control_register!(read_cr3, write_cr3, "cr3");
control_register!(read_cr4, write_cr4, "cr4");

extern "C" fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

unsafe extern "C" fn load_gdt(ptr: &DescriptorPointer) {
    // SAFETY: the caller keeps the table valid while loaded (the op's contract).
    unsafe { asm!("lgdt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

unsafe extern "C" fn load_idt(ptr: &DescriptorPointer) {
    // SAFETY: as for `load_gdt`.
    unsafe { asm!("lidt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

unsafe extern "C" fn load_tss(selector: u16) {
    // SAFETY: the caller names an available TSS descriptor (the op's contract).
    unsafe { asm!("ltr {:x}", in(reg) selector, options(nostack, preserves_flags)) };
}

extern "C" fn wbinvd() {
    // SAFETY: writing back and invalidating caches does not change memory contents.
    unsafe { asm!("wbinvd", options(nostack, preserves_flags)) };
}

unsafe extern "C" fn poke_text(dst: *mut u8, src: *const u8, len: usize) {
    const CR0_WP: u64 = 1 << 16;
    let cr0 = read_cr0();
    // SAFETY: clearing WP lets ring 0 write read-only pages; only the `len` bytes at
    // `dst` are written (the caller vouches nobody executes them meanwhile), and WP comes
    // back at once. Interrupts stay as they are: the callers run at boot, with them off.
    unsafe {
        write_cr0(cr0 & !CR0_WP);
        core::ptr::copy_nonoverlapping(src, dst, len);
        write_cr0(cr0);
    }
}

core::arch::global_asm!(
    r#"
    .section .text.native_iret, "ax"
    .global native_iret
native_iret:
    iretq
    "#
);

unsafe extern "C" {
    fn native_iret();
}

extern "C" fn save_fl() -> u64 {
    let flags;
    // SAFETY: reads RFLAGS through the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags
}

unsafe extern "C" fn restore_fl(flags: u64) {
    // SAFETY: the caller passes a value `save_fl` returned (the op's contract).
    unsafe { asm!("push {}", "popfq", in(reg) flags, options(nomem)) };
}

extern "C" fn irq_disable() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

extern "C" fn irq_enable() {
    // SAFETY: handlers are installed before interrupts are enabled (kernel boot order).
    unsafe { asm!("sti", options(nomem, nostack)) };
}

extern "C" fn safe_halt() {
    // SAFETY: `sti` takes effect after the next instruction, so no interrupt can slip in
    // between it and `hlt`.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

extern "C" fn halt() {
    // SAFETY: halting only waits for the next interrupt.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

unsafe extern "C" fn set_pte(pte: *mut u64, value: u64) {
    // SAFETY: the caller passes an entry of a page table (the op's contract).
    unsafe { pte.write_volatile(value) };
}

extern "C" fn same(value: u64) -> u64 {
    value
}

unsafe extern "C" fn alloc_pt(_frame: u64) {}

extern "C" fn nothing() {}

extern "C" fn upcall() -> bool {
    false
}

extern "C" fn no_steal() -> u64 {
    0
}

extern "C" fn flush_tlb() {
    // SAFETY: reloading CR3 with its own value only drops TLB entries.
    unsafe { write_cr3(read_cr3()) };
}

extern "C" fn flush_tlb_one(addr: u64) {
    // SAFETY: dropping a TLB entry only makes the CPU re-read the page tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

unsafe extern "C" fn switch_address_space(root: u64) {
    // SAFETY: the caller guarantees the new tree maps everything in use.
    unsafe { write_cr3(root) };
}

extern "C" fn io_delay() {
    // A write to the POST diagnostic port takes about a microsecond on ISA buses.
    // SAFETY: port 0x80 is the POST code latch: writing it has no other effect.
    unsafe { outb(0x80, 0) };
}

unsafe extern "C" fn console_write(_bytes: *const u8, _len: usize) {}

extern "C" fn shutdown(_code: u32) {}

extern "C" fn reboot() {}

extern "C" fn no() -> bool {
    false
}

pub const OPS: PvOps = PvOps {
    cpu: CpuOps {
        cpuid,
        rdmsr,
        wrmsr,
        read_cr0,
        write_cr0,
        read_cr2,
        read_cr3,
        read_cr4,
        write_cr4,
        load_gdt,
        load_idt,
        load_tss,
        wbinvd,
        poke_text,
        iret: native_iret,
    },
    irq: IrqOps { save_fl, restore_fl, disable: irq_disable, enable: irq_enable, safe_halt, halt, upcall },
    mmu: MmuOps {
        set_pte,
        make_pte: same,
        pte_value: same,
        alloc_pt,
        batch_begin: nothing,
        batch_end: nothing,
        flush_tlb,
        flush_tlb_one,
        switch_address_space,
        phys_to_dma: same,
    },
    time: TimeOps {
        monotonic_ns: tsc::monotonic_ns,
        tsc_khz: tsc::khz,
        wall_clock_base_ns: tsc::wall_clock_base_ns,
        steal_ns: no_steal,
    },
    apic: ApicOps { eoi: apic::eoi, send_ipi: apic::send_ipi, set_oneshot_timer: apic::set_oneshot_timer },
    io: IoOps { inb, outb, inw, outw, inl, outl, io_delay },
    console: ConsoleOps { available: no, write: console_write },
    power: PowerOps { available: no, shutdown, reboot },
};

/// The native instructions a patched site can hold instead of a call, for the ops that
/// have a short native form (at most the 6 bytes of a site).
pub fn inline_bytes(op: OpId) -> Option<&'static [u8]> {
    Some(match op {
        x if x == op!(irq.disable) => &[0xfa],                   // cli
        x if x == op!(irq.enable) => &[0xfb],                    // sti
        x if x == op!(irq.save_fl) => &[0x9c, 0x58],             // pushfq; pop rax
        x if x == op!(irq.restore_fl) => &[0x57, 0x9d],          // push rdi; popfq
        x if x == op!(mmu.flush_tlb_one) => &[0x0f, 0x01, 0x3f], // invlpg [rdi]
        x if x == op!(mmu.flush_tlb) => &[0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8], // mov rax, cr3; mov cr3, rax
        _ => return None,
    })
}

fn claim(_: &Probe<'_>) -> crate::backend::Claim {
    Ok(0)
}

fn start(probe: &Probe<'_>) -> Result<Started, &'static str> {
    tsc::calibrate(probe.hypervisor.map_or(0, |h| h.max_leaf));
    Ok(Started::with(OPS))
}

/// Always there, at the lowest priority.
pub const BACKEND: Backend = Backend::new("native", claim, start);

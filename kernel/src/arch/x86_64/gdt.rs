//! The kernel's GDT and TSS. The TSS exists for its interrupt stack table: double
//! faults, NMIs and machine checks get stacks of their own, so a blown stack can still
//! be reported.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use super::entry::stacks;

/// IST slots (1-based in the IDT, 0-based in the TSS).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

/// The code segment the kernel runs in (for IDT gates): ours after [`init`], or the one
/// a loader that keeps its own GDT gave us.
pub fn code_selector() -> u16 {
    CS::get_reg().0
}

pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let [_, double_fault, nmi, machine_check] = stacks();
        tss.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT - 1)] = VirtAddr::new(double_fault.top);
        tss.interrupt_stack_table[usize::from(IST_NMI - 1)] = VirtAddr::new(nmi.top);
        tss.interrupt_stack_table[usize::from(IST_MACHINE_CHECK - 1)] = VirtAddr::new(machine_check.top);
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    let entries = gdt.entries();
    let pointer = pv::ops::DescriptorPointer {
        limit: (core::mem::size_of_val(entries) - 1) as u16,
        base: entries.as_ptr() as u64,
    };
    let cpu = pv::table::ops().cpu;
    // SAFETY: the GDT is a static that lives for the whole run; the selectors index it,
    // and the TSS descriptor names the static TSS above.
    unsafe {
        (cpu.load_gdt)(&pointer);
        CS::set_reg(sel.code);
        SS::set_reg(sel.data);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        (cpu.load_tss)(sel.tss.0);
    }
}

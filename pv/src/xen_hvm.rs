//! The Xen HVM/PVH backend (first part): the hypercall page, the console through the
//! `console_io` hypercall (Xen owns the serial port), and shutdown through `sched_op`.
//! Clocks, event channels and timers are native for now.

use crate::clock::TscSource;
use crate::native;
use crate::ops::{ConsoleOps, PowerOps, PvOps, ops};

const HYPERVISOR_CONSOLE_IO: usize = 18;
const HYPERVISOR_SCHED_OP: usize = 29;
const CONSOLEIO_WRITE: u64 = 0;
const SCHEDOP_SHUTDOWN: u64 = 2;
const SHUTDOWN_POWEROFF: u32 = 0;
const SHUTDOWN_CRASH: u32 = 3;

// The page Xen fills with hypercall stubs (32 bytes each). It lives in text so it is
// executable; Xen writes it through its physical address.
core::arch::global_asm!(
    r#"
    .section .text.xen_hypercall_page, "ax"
    .balign 4096
    .global xen_hypercall_page
xen_hypercall_page:
    .fill 4096, 1, 0xcc
    "#
);

unsafe extern "C" {
    static xen_hypercall_page: u8;
}

fn stub(index: usize) -> u64 {
    &raw const xen_hypercall_page as u64 + 32 * index as u64
}

/// A two- or three-argument hypercall (64-bit ABI: rdi, rsi, rdx; result in rax).
///
/// # Safety
/// The hypercall page must be installed, and the arguments must be valid for `index`.
unsafe fn hypercall3(index: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: the stub is Xen's code for this hypercall; it follows the C ABI's
    // clobbers, and the caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub(index),
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            lateout("rax") ret,
            clobber_abi("C"),
        )
    };
    ret
}

extern "C" fn console_available() -> bool {
    true
}

extern "C" fn console_write(bytes: *const u8, len: usize) {
    // SAFETY: the page was installed by `init` before this op was; the buffer is the
    // caller's, `len` bytes long, and Xen only reads it.
    unsafe { hypercall3(HYPERVISOR_CONSOLE_IO, CONSOLEIO_WRITE, len as u64, bytes as u64) };
}

extern "C" fn shutdown(code: u32) {
    let reason: u32 = if code == 0 { SHUTDOWN_POWEROFF } else { SHUTDOWN_CRASH };
    // SAFETY: `reason` is a valid `sched_shutdown` for the duration of the call.
    unsafe { hypercall3(HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN, &raw const reason as u64, 0) };
}

const HYPERVISOR_MEMORY_OP: usize = 12;
const XENMEM_MEMORY_MAP: u64 = 9;

/// Installs the hypercall page through the MSR that Xen's leaf `base + 2` names.
fn install_hypercall_page(base: u32) -> Result<(), &'static str> {
    let leaf = (ops().cpu.cpuid)(base + 2, 0);
    if leaf.eax == 0 {
        return Err("Xen offers no hypercall page");
    }
    // SAFETY: Xen's CPUID names this MSR for exactly this write: the page-aligned
    // physical address (identity-mapped kernel) of a page reserved for the stubs.
    unsafe { (ops().cpu.wrmsr)(leaf.ebx, &raw const xen_hypercall_page as u64) };
    Ok(())
}

/// The memory map Xen keeps for this domain (`XENMEM_memory_map`), for boots whose
/// start info carries none (Xen 4.17 gives its PVH dom0 a version-0 start info). Hands
/// each `(start, length, type)` to `push`; returns how many there were.
pub fn memory_map(mut push: impl FnMut(u64, u64, u32)) -> Result<usize, &'static str> {
    let hv = crate::detect::hypervisor(&crate::Machine)
        .filter(|h| h.vendor == crate::detect::Vendor::Xen && h.max_leaf >= h.base + 2)
        .ok_or("no Xen hypervisor to ask for a memory map")?;
    install_hypercall_page(hv.base)?;
    const MAX: usize = 128;
    // e820 entries as Xen writes them: u64 address, u64 size, u32 type, packed.
    let mut entries = [0u8; MAX * 20];
    #[repr(C)]
    struct XenMemoryMap {
        nr_entries: u32,
        buffer: u64,
    }
    let mut map = XenMemoryMap { nr_entries: MAX as u32, buffer: entries.as_mut_ptr() as u64 };
    // SAFETY: the page is installed; `map` names a buffer of `MAX` e820 entries that Xen
    // fills, and both live across the call.
    let rc = unsafe { hypercall3(HYPERVISOR_MEMORY_OP, XENMEM_MEMORY_MAP, &raw mut map as u64, 0) };
    if rc != 0 {
        return Err("XENMEM_memory_map failed");
    }
    let n = (map.nr_entries as usize).min(MAX);
    for e in entries.chunks_exact(20).take(n) {
        let word = |i: usize| u64::from_le_bytes(e[i..i + 8].try_into().unwrap_or([0; 8]));
        push(word(0), word(8), u32::from_le_bytes([e[16], e[17], e[18], e[19]]));
    }
    Ok(n)
}

/// Installs the hypercall page, takes the TSC rate from Xen's timing leaf (base + 3:
/// ECX is the guest's TSC kHz) when the generic chain found nothing better, and returns
/// the backend's table.
pub fn init(base: u32, max_leaf: u32) -> Result<PvOps, &'static str> {
    install_hypercall_page(base)?;
    if max_leaf >= base + 3 && matches!(crate::tsc::source(), TscSource::Assumed | TscSource::Pit) {
        let khz = (ops().cpu.cpuid)(base + 3, 0).ecx;
        if khz != 0 {
            crate::tsc::set_khz(u64::from(khz), TscSource::HypervisorLeaf);
        }
    }
    Ok(PvOps {
        console: ConsoleOps { available: console_available, write: console_write },
        power: PowerOps { shutdown },
        ..native::OPS
    })
}

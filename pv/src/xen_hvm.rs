//! The Xen HVM/PVH backend (first part): the hypercall page, the console through the
//! `console_io` hypercall (Xen owns the serial port), shutdown through `sched_op`, and
//! the clock from `shared_info` (vCPU 0's pvclock record and the wall clock). Event
//! channels and Xen's timer are not used yet: the local APIC timer serves.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::clock::TscSource;
use crate::native;
use crate::ops::{ConsoleOps, PowerOps, PvOps, TimeOps, ops};
use crate::pvclock::{self, HostShared};

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

const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const DOMID_SELF: u16 = 0x7ff0;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// vCPU 0's `vcpu_time_info` inside `shared_info`.
const VCPU0_TIME: usize = 32;
const WC_VERSION: usize = 3072;

/// The frame Xen's `shared_info` page is placed at.
static SHARED_INFO: HostShared<4096> = HostShared::new();
static WALL_BASE_NS: AtomicU64 = AtomicU64::new(0);

extern "C" fn monotonic_ns() -> u64 {
    pvclock::read_ns(&SHARED_INFO, VCPU0_TIME)
}

extern "C" fn tsc_khz() -> u64 {
    pvclock::record(&SHARED_INFO, VCPU0_TIME).tsc_khz()
}

extern "C" fn wall_clock_base_ns() -> u64 {
    WALL_BASE_NS.load(Ordering::Relaxed)
}

/// Has Xen put `shared_info` at our page (`XENMEM_add_to_physmap`).
fn map_shared_info() -> Result<(), &'static str> {
    #[repr(C)]
    struct AddToPhysmap {
        domid: u16,
        size: u16,
        space: u32,
        idx: u64,
        gpfn: u64,
    }
    let args = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: SHARED_INFO.addr() >> 12,
    };
    // SAFETY: the page is installed; `args` lives across the call, and the frame it names
    // is a page of ours that nothing else uses.
    let rc = unsafe { hypercall3(HYPERVISOR_MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &raw const args as u64, 0) };
    if rc != 0 {
        return Err("XENMEM_add_to_physmap(shared_info) failed");
    }
    Ok(())
}

/// Wall time at system time 0, under `wc_version`.
fn wall_clock() -> u64 {
    SHARED_INFO.read_versioned(WC_VERSION, |s| {
        let sec = u64::from(s.read_u32(WC_VERSION + 4)) | (u64::from(s.read_u32(WC_VERSION + 12)) << 32);
        sec.saturating_mul(1_000_000_000).saturating_add(u64::from(s.read_u32(WC_VERSION + 8)))
    })
}

/// Installs the hypercall page and `shared_info`, and returns the backend's table: the
/// pvclock from `shared_info` when Xen maps it, else the TSC rated by Xen's timing leaf
/// (base + 3: ECX is the guest's TSC kHz).
pub fn init(base: u32, max_leaf: u32) -> Result<PvOps, &'static str> {
    install_hypercall_page(base)?;
    let time = match map_shared_info() {
        Ok(()) => {
            WALL_BASE_NS.store(wall_clock(), Ordering::Relaxed);
            crate::tsc::set_khz(tsc_khz(), TscSource::Pvclock);
            TimeOps { monotonic_ns, tsc_khz, wall_clock_base_ns }
        }
        Err(_) => {
            if max_leaf >= base + 3 && matches!(crate::tsc::source(), TscSource::Assumed | TscSource::Pit) {
                let khz = (ops().cpu.cpuid)(base + 3, 0).ecx;
                if khz != 0 {
                    crate::tsc::set_khz(u64::from(khz), TscSource::HypervisorLeaf);
                }
            }
            native::OPS.time
        }
    };
    Ok(PvOps {
        time,
        console: ConsoleOps { available: console_available, write: console_write },
        power: PowerOps { shutdown },
        ..native::OPS
    })
}

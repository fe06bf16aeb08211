//! Xen: what its two backends share (the hypercall page and calls, the console through
//! `console_io`, shutdown, `shared_info` with vCPU 0's pvclock and the wall clock, and
//! event channels with Xen's one-shot timer in [`events`]), then one module per guest
//! mode: [`hvm`] for HVM and PVH guests, [`pv`] for PV guests.
//!
//! PV and HVM/PVH guests differ in how the pieces get installed (the PV domain builder
//! fills the hypercall page and hands over `shared_info`'s machine address; an HVM guest
//! asks through an MSR and `XENMEM_add_to_physmap`), not in how they are used.

pub mod bus;
pub(crate) mod console;
pub mod events;
pub mod grant;
pub mod hvm;
pub mod pv;
pub mod store;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::pvclock::{self, HostShared};

pub(crate) const HYPERVISOR_MMU_UPDATE: usize = 1;
pub(crate) const HYPERVISOR_SET_TRAP_TABLE: usize = 0;
pub(crate) const HYPERVISOR_SET_CALLBACKS: usize = 4;
pub(crate) const HYPERVISOR_MEMORY_OP: usize = 12;
pub(crate) const HYPERVISOR_UPDATE_VA_MAPPING: usize = 14;
pub(crate) const HYPERVISOR_XEN_VERSION: usize = 17;
pub(crate) const HYPERVISOR_CONSOLE_IO: usize = 18;
pub(crate) const HYPERVISOR_IRET: usize = 23;
pub(crate) const HYPERVISOR_VCPU_OP: usize = 24;
pub(crate) const HYPERVISOR_MMUEXT_OP: usize = 26;
pub(crate) const HYPERVISOR_SCHED_OP: usize = 29;
pub(crate) const HYPERVISOR_EVENT_CHANNEL_OP: usize = 32;
pub(crate) const HYPERVISOR_PHYSDEV_OP: usize = 33;
pub(crate) const HYPERVISOR_HVM_OP: usize = 34;

pub(crate) const DOMID_SELF: u64 = 0x7ff0;

const CONSOLEIO_WRITE: u64 = 0;
pub(crate) const SCHEDOP_YIELD: u64 = 0;
pub(crate) const SCHEDOP_BLOCK: u64 = 1;
pub(crate) const SCHEDOP_SHUTDOWN: u64 = 2;
const SHUTDOWN_POWEROFF: u32 = 0;
const SHUTDOWN_REBOOT: u32 = 1;
const SHUTDOWN_CRASH: u32 = 3;

/// The `sched_shutdown` reason for exit code `code`: poweroff for 0, crash otherwise.
pub(crate) fn shutdown_reason(code: u32) -> u32 {
    if code == 0 { SHUTDOWN_POWEROFF } else { SHUTDOWN_CRASH }
}

// The page Xen fills with hypercall stubs (32 bytes each). It lives in text so it is
// executable. A PV domain builder fills it at load time (XEN_ELFNOTE_HYPERCALL_PAGE names
// it); an HVM guest has Xen write it through an MSR.
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

pub(crate) fn hypercall_page() -> u64 {
    &raw const xen_hypercall_page as u64
}

/// A hypercall through the page (64-bit ABI: rdi, rsi, rdx, r10, r8; result in rax,
/// negative errno on failure).
///
/// # Safety
/// The hypercall page must be filled, and the arguments valid for hypercall `index`
/// (pointers to memory that lives across the call).
pub(crate) unsafe fn hypercall(index: usize, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the stub is Xen's code for this hypercall; Xen may clobber every argument
    // register, which the operands say, and the caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) hypercall_page() + 32 * index as u64,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            clobber_abi("C"),
        )
    };
    ret
}

/// A hypercall with up to three arguments.
///
/// # Safety
/// As for [`hypercall`].
pub(crate) unsafe fn hypercall3(index: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: the caller's contract.
    unsafe { hypercall(index, a1, a2, a3, 0, 0) }
}

pub use crate::backend::Refused;

pub(crate) fn check(call: &'static str, rc: i64) -> Result<i64, Refused> {
    if rc < 0 { Err(Refused { by: "Xen", call, errno: rc }) } else { Ok(rc) }
}

pub(crate) unsafe extern "C" fn console_write(bytes: *const u8, len: usize) {
    // SAFETY: the caller's buffer is `len` readable bytes (the op's contract), and Xen
    // only reads it.
    unsafe { hypercall3(HYPERVISOR_CONSOLE_IO, CONSOLEIO_WRITE, len as u64, bytes as u64) };
}

pub(crate) extern "C" fn shutdown(code: u32) {
    let reason = shutdown_reason(code);
    // SAFETY: `reason` is a valid `sched_shutdown` for the duration of the call.
    unsafe { hypercall3(HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN, &raw const reason as u64, 0) };
}

pub(crate) extern "C" fn reboot() {
    let reason = SHUTDOWN_REBOOT;
    // SAFETY: `reason` is a valid `sched_shutdown` for the duration of the call.
    unsafe { hypercall3(HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN, &raw const reason as u64, 0) };
}

pub(crate) const POWER: crate::ops::PowerOps = crate::ops::PowerOps { available: always, shutdown, reboot };

pub(crate) extern "C" fn always() -> bool {
    true
}

/// `sched_op(cmd, NULL)`: yield or block.
pub(crate) fn sched_op(cmd: u64) {
    // SAFETY: yield and block take no argument.
    unsafe { hypercall3(HYPERVISOR_SCHED_OP, cmd, 0, 0) };
}

/// The `shared_info` page. A PV guest remaps this page's virtual address onto the
/// machine frame Xen names in its start info; an HVM guest has Xen place the page at this
/// frame. Until then it is a zeroed page of ours, so the interrupt-flag ops that use
/// vCPU 0's `vcpu_info` work (on a copy nobody reads) from the first instruction.
pub(crate) static SHARED_INFO: HostShared<4096> = HostShared::new();

/// Offsets in `shared_info`: vCPU 0's `vcpu_info` is at 0.
pub(crate) const VCPU0_UPCALL_PENDING: usize = 0;
pub(crate) const VCPU0_UPCALL_MASK: usize = 1;
pub(crate) const VCPU0_PENDING_SEL: usize = 8;
pub(crate) const VCPU0_CR2: usize = 16;
const VCPU0_TIME: usize = 32;
pub(crate) const EVTCHN_PENDING: usize = 2048;
pub(crate) const EVTCHN_MASK: usize = 2560;
const WC_VERSION: usize = 3072;

static WALL_BASE_NS: AtomicU64 = AtomicU64::new(0);

pub(crate) extern "C" fn monotonic_ns() -> u64 {
    pvclock::read_ns(&SHARED_INFO, VCPU0_TIME)
}

pub(crate) extern "C" fn tsc_khz() -> u64 {
    pvclock::record(&SHARED_INFO, VCPU0_TIME).tsc_khz()
}

pub(crate) extern "C" fn wall_clock_base_ns() -> u64 {
    WALL_BASE_NS.load(Ordering::Relaxed)
}

/// Reads the wall clock (time at Xen system time 0) once `shared_info` is in place, and
/// rates the TSC from vCPU 0's pvclock.
pub(crate) fn start_clock() {
    let wall = SHARED_INFO.read_versioned(WC_VERSION, |s| {
        let sec = u64::from(s.read_u32(WC_VERSION + 4)) | (u64::from(s.read_u32(WC_VERSION + 12)) << 32);
        sec.saturating_mul(1_000_000_000).saturating_add(u64::from(s.read_u32(WC_VERSION + 8)))
    });
    WALL_BASE_NS.store(wall, Ordering::Relaxed);
    crate::native::tsc::set_khz(tsc_khz(), crate::clock::TscSource::Pvclock);
}

pub(crate) const TIME: crate::ops::TimeOps =
    crate::ops::TimeOps { monotonic_ns, tsc_khz, wall_clock_base_ns, ..crate::native::OPS.time };

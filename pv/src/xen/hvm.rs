//! The Xen HVM/PVH backend: the hypercall page through Xen's MSR, the console through
//! `console_io` (Xen owns the serial port), shutdown through `sched_op`, the clock from
//! `shared_info` (placed with `XENMEM_add_to_physmap`), and Xen's one-shot timer raising
//! VIRQ_TIMER on an event channel whose upcall arrives on an IDT vector. The rest (the
//! interrupt flag, page tables, idle) is native: an HVM guest owns its CPU state.
//!
//! Idle stays `sti; hlt`, which Xen turns into a block of the vCPU itself. The hypercall
//! (`SCHEDOP_block`) cannot replace it safely: issued right after `sti` it runs in STI's
//! interrupt shadow, so Xen counts an interrupt already pending as not deliverable and
//! blocks anyway, and the event that should wake the vCPU has already been signalled
//! (tried: the unclaimed-event self-test then hangs). Issued with interrupts on, a wake-up
//! could be taken just before it and lost.

use crate::backend::{Backend, Claim, Early, Probe, Started};
use crate::clock::TscSource;
use crate::cpuid::Vendor;
use crate::native::{self, tsc};
use crate::ops::{ApicOps, ConsoleOps, IrqOps, PvOps};
use crate::xen::{self, HYPERVISOR_HVM_OP, HYPERVISOR_MEMORY_OP, Refused, SHARED_INFO, check, events};

const XENMEM_MEMORY_MAP: u64 = 9;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u64 = 23;
const HVMOP_GET_PARAM: u64 = 1;
const HVM_PARAM_STORE_PFN: u32 = 1;
const HVM_PARAM_STORE_EVTCHN: u32 = 2;
const HVM_PARAM_CONSOLE_PFN: u32 = 17;
const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// One of this domain's HVM params (`HVMOP_get_param`).
fn get_param(index: u32) -> Result<u64, Refused> {
    #[repr(C)]
    struct Param {
        domid: u16,
        index: u32,
        value: u64,
    }
    let mut arg = Param { domid: xen::DOMID_SELF as u16, index, value: 0 };
    // SAFETY: `arg` lives across the call; Xen writes `value`.
    let rc = unsafe { xen::hypercall3(HYPERVISOR_HVM_OP, HVMOP_GET_PARAM, &raw mut arg as u64, 0) };
    check("HVMOP_get_param", rc).map(|_| arg.value)
}

/// A domU's ring (console or xenstore): its frame and channel from the HVM params, the
/// frame mapped by the kernel. `None` for the initial domain, which has neither.
fn ring_param(probe: &Probe<'_>, pfn: u32, evtchn: u32) -> Option<(u64, u32)> {
    let page = get_param(pfn).ok().filter(|&pfn| pfn != 0)?.checked_mul(4096)?;
    let evtchn = u32::try_from(get_param(evtchn).ok()?).ok()?;
    (probe.map_frames)(page, 4096).then_some((page, evtchn))
}

/// Installs the hypercall page through the MSR that Xen's leaf `base + 2` names.
fn install_hypercall_page(base: u32) -> Result<(), &'static str> {
    let leaf = native::cpuid(base + 2, 0);
    if leaf.eax == 0 {
        return Err("Xen offers no hypercall page");
    }
    // SAFETY: Xen's CPUID names this MSR for exactly this write: the page-aligned
    // physical address (identity-mapped kernel) of a page reserved for the stubs.
    unsafe { native::wrmsr(leaf.ebx, xen::hypercall_page()) };
    Ok(())
}

/// The memory map Xen keeps for this domain (`XENMEM_memory_map`), for boots whose
/// start info carries none (Xen 4.17 gives its PVH dom0 a version-0 start info). Hands
/// each `(start, length, type)` to `push`; returns how many there were.
fn memory_map(push: &mut dyn FnMut(u64, u64, u32)) -> Result<usize, &'static str> {
    /// CPUID alone: the backdoor is VMware's business.
    struct Cpuid;
    impl crate::cpuid::Platform for Cpuid {
        fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
            let r = native::cpuid(leaf, subleaf);
            [r.eax, r.ebx, r.ecx, r.edx]
        }
        fn vmware_backdoor(&self, _cmd: u32) -> [u32; 4] {
            [u32::MAX; 4]
        }
    }
    let hv = crate::cpuid::hypervisor(&Cpuid)
        .filter(|h| h.vendor == crate::cpuid::Vendor::Xen && h.max_leaf >= h.base + 2)
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
    let rc = unsafe { xen::hypercall3(HYPERVISOR_MEMORY_OP, XENMEM_MEMORY_MAP, &raw mut map as u64, 0) };
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

/// Has Xen put `shared_info` at our page (`XENMEM_add_to_physmap`).
fn map_shared_info() -> Result<(), Refused> {
    #[repr(C)]
    struct AddToPhysmap {
        domid: u16,
        size: u16,
        space: u32,
        idx: u64,
        gpfn: u64,
    }
    let args = AddToPhysmap {
        domid: xen::DOMID_SELF as u16,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: SHARED_INFO.addr() >> 12,
    };
    // SAFETY: `args` lives across the call, and the frame it names is a page of ours that
    // nothing else uses.
    let rc =
        unsafe { xen::hypercall3(HYPERVISOR_MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &raw const args as u64, 0) };
    check("XENMEM_add_to_physmap(shared_info)", rc).map(|_| ())
}

/// Has vCPU 0's event upcalls delivered on `vector` and binds VIRQ_TIMER, so Xen's
/// one-shot timer can replace the local APIC's.
fn start_events(vector: u8) -> Result<(), Refused> {
    #[repr(C)]
    struct UpcallVector {
        vcpu: u32,
        vector: u8,
    }
    let arg = UpcallVector { vcpu: 0, vector };
    // SAFETY: `arg` lives across the call.
    let rc = unsafe {
        xen::hypercall3(HYPERVISOR_HVM_OP, HVMOP_SET_EVTCHN_UPCALL_VECTOR, &raw const arg as u64, 0)
    };
    check("HVMOP_set_evtchn_upcall_vector", rc)?;
    events::bind_timer().map(|_| ())
}

/// Shuts down through the hypercall instruction itself, for an HVM/PVH guest under Xen
/// whose xen_hvm backend is not in use (forced native, or Xen's leaves lack the
/// hypercall page): Xen takes a hypercall from any HVM guest's VMCALL (Intel) or VMMCALL
/// (AMD, Hygon), the page only holds those instructions. Returns if Xen refuses.
fn shutdown_direct(code: u32) {
    let leaf0 = native::cpuid(0, 0);
    let amd = matches!(
        (leaf0.ebx, leaf0.edx, leaf0.ecx),
        (0x6874_7541, 0x6974_6e65, 0x444d_4163) | (0x6f67_7948, 0x6e65_476e, 0x656e_6975)
    );
    let reason = xen::shutdown_reason(code);
    let arg = &raw const reason as u64;
    // SAFETY: sched_op(SCHEDOP_shutdown, &reason): `reason` lives across the call, and
    // every register Xen may clobber is declared.
    unsafe {
        if amd {
            core::arch::asm!(
                "vmmcall",
                inlateout("rax") xen::HYPERVISOR_SCHED_OP as u64 => _,
                inlateout("rdi") xen::SCHEDOP_SHUTDOWN => _,
                inlateout("rsi") arg => _,
                lateout("rdx") _, lateout("r10") _, lateout("r8") _,
            )
        } else {
            core::arch::asm!(
                "vmcall",
                inlateout("rax") xen::HYPERVISOR_SCHED_OP as u64 => _,
                inlateout("rdi") xen::SCHEDOP_SHUTDOWN => _,
                inlateout("rsi") arg => _,
                lateout("rdx") _, lateout("r10") _, lateout("r8") _,
            )
        }
    }
}

/// Xen's HVM debug console: one byte per OUT to port 0xE9 (Xen prints it as `(dN) ...`
/// lines, with `guest_loglvl=all` on release builds). Under Xen the serial port is Xen's
/// own, so a boot that fails before the backend starts is not silent.
fn debug_port_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: Xen emulates port 0xE9 as its debug console in every HVM domain; a
        // write only prints.
        unsafe { native::outb(0xe9, b) };
    }
}

/// Xen's signature, with its range reaching the hypercall-page leaf.
fn claim(probe: &Probe<'_>) -> Claim {
    let hv = probe.hypervisor.filter(|h| h.vendor == Vendor::Xen).ok_or("no Xen signature in CPUID")?;
    if hv.max_leaf < hv.base + 2 {
        return Err("Xen's CPUID range ends before its hypercall-page leaf");
    }
    Ok(20)
}

const XEN_TIMER: &str = "Xen VIRQ_TIMER (one-shot)";

/// Installs the hypercall page and `shared_info`, finds a domU's console and xenstore
/// rings, and returns the backend's table: the pvclock from `shared_info` when Xen maps
/// it (which also rates the TSC), else the TSC rated by Xen's timing leaf; Xen's timer
/// when events can be delivered.
fn start(probe: &Probe<'_>) -> Result<Started, &'static str> {
    let (base, max_leaf) = probe.hypervisor.map_or((0x4000_0000, 0), |h| (h.base, h.max_leaf));
    install_hypercall_page(base)?;
    // A domU writes its console to the ring xenconsoled reads: Xen's release builds drop
    // `console_io` from any domain but the first.
    if let Some((page, evtchn)) = ring_param(probe, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN) {
        // SAFETY: the kernel just mapped the console ring's frame, which nothing else uses.
        unsafe { xen::console::use_ring(page, evtchn) };
    }
    if let Some((page, evtchn)) = ring_param(probe, HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN) {
        // SAFETY: as for the console, for the xenstore ring.
        unsafe { xen::store::set_ring(page, evtchn) };
    }
    let mut started = Started::with(PvOps {
        console: ConsoleOps { available: xen::always, write: xen::console::write },
        power: xen::POWER,
        ..native::OPS
    });
    match map_shared_info() {
        Ok(()) => {
            xen::start_clock();
            started.ops.time = xen::TIME;
            match start_events(probe.upcall_vector) {
                Ok(()) => {
                    started.ops.apic = ApicOps { set_oneshot_timer: events::set_timer, ..native::OPS.apic };
                    started.ops.irq = IrqOps { upcall: events::upcall, ..native::OPS.irq };
                    started.timer = Some(XEN_TIMER);
                }
                Err(e) => started.warning = Some(e),
            }
        }
        Err(e) => {
            started.warning = Some(e);
            // Xen's timing leaf (base + 3: ECX is the guest's TSC kHz) before the generic
            // chain, whose PIT count a domU without a PIT would poll to its bound.
            let khz = if max_leaf >= base + 3 { native::cpuid(base + 3, 0).ecx } else { 0 };
            if khz != 0 {
                tsc::set_khz(u64::from(khz), TscSource::HypervisorLeaf);
            } else {
                tsc::calibrate(max_leaf);
            }
        }
    }
    Ok(started)
}

pub const BACKEND: Backend = Backend {
    vendor: Some(Vendor::Xen),
    early: Early {
        console: Some(debug_port_write),
        shutdown: Some(shutdown_direct),
        memory_map: Some(memory_map),
    },
    selftests: &[events::UNCLAIMED_EVENT],
    ..Backend::new("xen_hvm", claim, start)
};

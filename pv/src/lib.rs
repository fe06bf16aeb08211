//! Paravirtualization: Linux's paravirt-ops idea for one unikernel image.
//!
//! One table of privileged operations ([`ops::PvOps`]) starts out native; at boot
//! [`detect`] decides which hypervisor this is, a backend ([`native`], [`kvm`],
//! [`vmware`], [`xen_hvm`], [`xen_pv`]) fills the table, and the patcher rewrites the recorded hot call sites
//! ([`site`]) into inline native instructions or direct calls.
//!
//! The decision logic ([`detect`], [`patch`], [`clock`]) is `unsafe`-free and tested on
//! the host; the backends hold the privileged instructions.
#![no_std]

pub mod apic;
pub mod bench;
pub mod clock;
pub mod detect;
pub mod haltpoll;
pub mod kvm;
pub mod native;
pub mod ops;
pub mod patch;
mod pvclock;
pub mod site;
pub mod tsc;
pub mod vmware;
pub mod xen;
pub mod xen_hvm;
pub mod xen_pv;

pub use detect::{Backend, Choice, Entry};

/// What detection needs from the machine: CPUID, and the VMware backdoor port. The
/// kernel answers with the real instructions; tests replay recordings.
pub trait Platform {
    /// `[eax, ebx, ecx, edx]` for `leaf`/`subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// The backdoor's answer to `cmd` (all ones when nothing is there).
    fn vmware_backdoor(&self, cmd: u32) -> [u32; 4];
}

/// This machine.
#[derive(Debug)]
pub struct Machine;

impl Platform for Machine {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = (ops::ops().cpu.cpuid)(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }
    fn vmware_backdoor(&self, cmd: u32) -> [u32; 4] {
        vmware::backdoor(cmd)
    }
}

/// What [`init`] did, for the boot line.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub detection: detect::Detection,
    pub patch: site::PatchCount,
    pub tsc_source: clock::TscSource,
    /// Why the chosen backend could not start and native runs instead.
    pub backend_error: Option<&'static str>,
    /// What the backend does without, and why (Xen refused a hypercall).
    pub backend_warning: Option<xen::Refused>,
    /// The one-shot timer, when the backend brings its own (else the local APIC's).
    pub timer: Option<&'static str>,
}

/// Detects the hypervisor, installs the chosen (or forced) backend, sets up the clock
/// and patches the call sites (unless `patch` is false).
///
/// # Safety
/// Boot only: one CPU, interrupts off, nothing else running.
#[cfg(target_os = "none")]
pub unsafe fn init(choice: Choice, patch: bool, entry: Entry) -> Result<Report, detect::NotPresent> {
    let mut detection = detect::detect(&Machine, choice, entry)?;
    let hv_max_leaf = detection.cpuid.map_or(0, |h| h.max_leaf);
    let mut backend_error = None;
    let mut backend_warning = None;
    let mut timer = None;
    const XEN_TIMER: &str = "Xen VIRQ_TIMER (one-shot)";
    let table = match detection.backend {
        Backend::Native => {
            tsc::calibrate(hv_max_leaf);
            native::OPS
        }
        Backend::Kvm => match kvm::init(detection.kvm_features) {
            Ok(table) => table,
            Err(why) => {
                backend_error = Some(why);
                detection.backend = Backend::Native;
                tsc::calibrate(hv_max_leaf);
                native::OPS
            }
        },
        Backend::VMware => vmware::init(hv_max_leaf),
        Backend::XenHvm => {
            tsc::calibrate(hv_max_leaf);
            let (base, max_leaf) = detection.cpuid.map_or((0x4000_0000, 0), |h| (h.base, h.max_leaf));
            match xen_hvm::init(base, max_leaf) {
                Ok((table, started)) => {
                    backend_warning = started.clock_error.or(started.timer_error);
                    if started.timer_error.is_none() {
                        timer = Some(XEN_TIMER);
                    }
                    table
                }
                Err(why) => {
                    backend_error = Some(why);
                    detection.backend = Backend::Native;
                    native::OPS
                }
            }
        }
        Backend::XenPv => {
            // A PV guest cannot run without its timer: there is nothing to fall back to.
            if let Err(e) = xen::events::bind_timer() {
                panic!("xen_pv: no timer: {e}");
            }
            timer = Some(XEN_TIMER);
            xen_pv::OPS
        }
    };
    // SAFETY: the caller guarantees boot conditions.
    unsafe { ops::install(table) };
    let patch = if patch {
        // SAFETY: as above.
        unsafe { site::apply() }
    } else {
        site::PatchCount { patched: 0, total: site::records().len() }
    };
    Ok(Report { detection, patch, tsc_source: tsc::source(), backend_error, backend_warning, timer })
}

//! Paravirtualization: Linux's paravirt-ops idea for one unikernel image.
//!
//! One table of privileged operations ([`ops::PvOps`], live in [`table`]) starts out
//! native; at boot [`detect`] walks the backend descriptors ([`detect::BACKENDS`]:
//! [`native`], [`kvm`], [`vmware`], [`xen::hvm`], [`xen::pv`]), the winner fills the table,
//! and the patcher rewrites the recorded hot call sites ([`site`]) into inline native
//! instructions or direct calls. The kernel calls the table and never names a backend.
//!
//! The decision logic ([`backend`], [`detect`], [`patch`], [`clock`], [`ops`]) is
//! `unsafe`-free and tested on the host; the backends hold the privileged instructions.
#![no_std]

extern crate alloc;

pub mod backend;
pub mod bench;
pub mod bus;
pub mod clock;
pub mod cpuid;
pub mod detect;
pub mod haltpoll;
pub mod kvm;
pub mod native;
pub mod ops;
pub mod patch;
mod pvclock;
pub mod site;
pub mod table;
pub mod vmware;
pub mod xen;

pub use backend::{Backend, Entry, Refused};
pub use cpuid::Platform;
pub use detect::Choice;

/// This machine, through the live table (so a Xen PV guest sees Xen's CPUID policy).
#[derive(Debug)]
pub struct Machine;

impl Platform for Machine {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = (table::ops().cpu.cpuid)(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }
    fn vmware_backdoor(&self, cmd: u32) -> [u32; 4] {
        vmware::backdoor(cmd)
    }
}

/// What [`init`] did, for the boot line, and what the chosen backend says about the
/// platform.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub detection: detect::Detection,
    pub patch: site::PatchCount,
    pub tsc_source: clock::TscSource,
    /// Why the chosen backend could not start and native runs instead.
    pub backend_error: Option<&'static str>,
    /// What the backend does without, and why (a hypervisor refused a call).
    pub backend_warning: Option<Refused>,
    /// The one-shot timer, when the backend brings its own (else the local APIC's).
    pub timer: Option<&'static str>,
    /// The wall clock's source, when the backend names one.
    pub wall_clock: Option<&'static str>,
    /// See [`backend::Started::dedicated_cpu`].
    pub dedicated_cpu: bool,
}

impl Report {
    /// The backend running.
    pub fn backend(&self) -> &'static Backend {
        self.detection.backend
    }
}

/// Detects the hypervisor, starts the chosen (or forced) backend, installs its table and
/// patches the call sites (unless `patch` is false). The hypervisor's event upcall, if
/// it has one, will arrive on `upcall_vector`; `map_frames` maps pages the hypervisor
/// shares (see [`backend::Probe::map_frames`]).
///
/// # Safety
/// Boot only: one CPU, interrupts off, nothing else running.
#[cfg(target_os = "none")]
pub unsafe fn init(
    choice: Choice,
    patch: bool,
    entry: Entry,
    upcall_vector: u8,
    map_frames: &dyn Fn(u64, u64) -> bool,
) -> Result<Report, detect::NotPresent> {
    let mut detection = detect::detect(&Machine, choice, entry)?;
    let probe = backend::Probe {
        entry,
        hypervisor: detection.cpuid,
        platform: &Machine,
        forced: choice != Choice::Auto,
        upcall_vector,
        map_frames,
    };
    let mut backend_error = None;
    let started = match (detection.backend.start)(&probe) {
        Ok(started) => started,
        Err(why) => {
            backend_error = Some(why);
            detection.backend = &native::BACKEND;
            match (native::BACKEND.start)(&probe) {
                Ok(started) => started,
                Err(why) => panic!("pv: the native backend cannot start: {why}"),
            }
        }
    };
    // SAFETY: the caller guarantees boot conditions.
    unsafe { table::install(started.ops) };
    let patch = if patch {
        // SAFETY: as above.
        unsafe { site::apply() }
    } else {
        site::PatchCount { patched: 0, total: site::records().len() }
    };
    Ok(Report {
        detection,
        patch,
        tsc_source: native::tsc::source(),
        backend_error,
        backend_warning: started.warning,
        timer: started.timer,
        wall_clock: started.wall_clock,
        dedicated_cpu: started.dedicated_cpu,
    })
}

//! Backend descriptors: each backend module ends with one [`Backend`] value that says
//! what it is called, how it claims the machine, how it starts and what it offers before
//! and beside its table. [`crate::detect::BACKENDS`] lists them; detection walks the
//! list.
#![forbid(unsafe_code)]

use crate::cpuid::{Hypervisor, Platform, Vendor};
use crate::ops::PvOps;

/// How the kernel was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// PVH (QEMU, Firecracker, Cloud Hypervisor, Xen PVH): ring 0, detect by CPUID.
    Pvh,
    /// Xen's PV entry: ring 3. Only an unprivileged backend can run such a guest, and
    /// the entry point itself says which hypervisor this is.
    XenPv,
}

impl Entry {
    /// Whether the kernel runs with the CPU's privilege after this entry.
    pub fn privileged(self) -> bool {
        self == Entry::Pvh
    }
}

/// What a backend may look at to claim the machine.
#[derive(Clone, Copy)]
pub struct Probe<'a> {
    pub entry: Entry,
    /// CPUID's hypervisor block, if any.
    pub hypervisor: Option<Hypervisor>,
    pub platform: &'a dyn Platform,
    /// The backend was asked for by name (`pv=`): it need only be usable, not the best.
    pub forced: bool,
    /// The vector the kernel takes the hypervisor's event upcall on ([`crate::ops::IrqOps::upcall`]).
    pub upcall_vector: u8,
    /// Maps `[addr, addr + len)` of guest-physical memory that is not RAM (a page the
    /// hypervisor shares) at the same address, write-back; whether it could. Only
    /// `start` may use it.
    pub map_frames: &'a dyn Fn(u64, u64) -> bool,
}

impl core::fmt::Debug for Probe<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Probe").field("entry", &self.entry).field("hypervisor", &self.hypervisor).finish()
    }
}

/// How well a backend fits: a priority (higher wins; native's is 0), or why it does not.
pub type Claim = Result<u32, &'static str>;

/// A hypervisor call that was refused: by whom, which one and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub by: &'static str,
    pub call: &'static str,
    pub errno: i64,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match -self.errno {
            1 => "EPERM",
            2 => "ENOENT",
            12 => "ENOMEM",
            14 => "EFAULT",
            16 => "EBUSY",
            22 => "EINVAL",
            38 => "ENOSYS",
            _ => "",
        };
        write!(f, "{} refused {}: error {} {name}", self.by, self.call, self.errno)
    }
}

/// What a backend's start-up gives.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub ops: PvOps,
    /// What it does without, and why (the native clock or timer serves instead).
    pub warning: Option<Refused>,
    /// Its own one-shot timer, when it brings one (else the local APIC's serves).
    pub timer: Option<&'static str>,
    /// Where its wall clock comes from, when not from the clock source's own (the
    /// pvclock's, Xen's shared info) or the CMOS clock.
    pub wall_clock: Option<&'static str>,
    /// The hypervisor promises this vCPU a physical CPU of its own (KVM's REALTIME
    /// hint), so spinning while idle takes time from nobody.
    pub dedicated_cpu: bool,
}

impl Started {
    /// A start that gave this table and nothing else to say.
    pub const fn with(ops: PvOps) -> Self {
        Started { ops, warning: None, timer: None, wall_clock: None, dedicated_cpu: false }
    }
}

/// Services a hypervisor offers without its backend: before detection (a boot that
/// fails early), or when another backend was forced or had to stand in. Found by the
/// CPUID signature ([`Backend::vendor`]).
#[derive(Debug, Clone, Copy)]
pub struct Early {
    /// A console that needs no set-up, for machines without a serial port.
    pub console: Option<fn(&[u8])>,
    /// Ends the guest with an exit code; returns if the hypervisor refuses.
    pub shutdown: Option<fn(u32)>,
    /// The hypervisor's memory map, for start infos that carry none.
    pub memory_map: Option<MemoryMapFn>,
}

/// Hands each memory-map entry `(start, length, e820 type)` to the callback; returns how
/// many there were.
pub type MemoryMapFn = fn(&mut dyn FnMut(u64, u64, u32)) -> Result<usize, &'static str>;

impl Early {
    pub const NONE: Early = Early { console: None, shutdown: None, memory_map: None };
}

/// A check of the backend's own error paths, run with `selftest=NAME`.
#[derive(Debug, Clone, Copy)]
pub struct SelfTest {
    pub name: &'static str,
    /// Returns only if the check failed, with why; the expected outcome ends the run.
    pub run: fn(&mut SelfTestEnv<'_>) -> &'static str,
}

/// What a backend's self-test may use from the kernel.
pub struct SelfTestEnv<'a> {
    pub print: &'a mut dyn FnMut(core::fmt::Arguments<'_>),
    /// Waits with interrupts enabled.
    pub sleep_ms: &'a dyn Fn(u64),
}

impl core::fmt::Debug for SelfTestEnv<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SelfTestEnv")
    }
}

/// One backend.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    /// Its `pv=` name and the boot line's.
    pub name: &'static str,
    /// The CPUID signature of the hypervisor it serves, if it is found by one.
    pub vendor: Option<Vendor>,
    /// What the boot line calls the hypervisor when this backend claims it by other means
    /// than its CPUID signature (a backdoor port, an entry point).
    pub hypervisor_name: Option<&'static str>,
    /// Whether it runs the kernel with the CPU's privilege (ring 0), so the bare
    /// privileged instructions work.
    pub privileged: bool,
    /// Whether a local APIC (and legacy PICs) is there for the kernel to bring up.
    pub local_apic: bool,
    pub claim: fn(&Probe<'_>) -> Claim,
    /// Sets the backend up (shared pages, the clock's rate) and returns its table. On an
    /// error the native backend starts instead and the boot line says why.
    pub start: fn(&Probe<'_>) -> Result<Started, &'static str>,
    pub early: Early,
    pub selftests: &'static [SelfTest],
}

impl Backend {
    /// A backend for privileged guests with a local APIC, no early services and no
    /// self-tests; override the fields that differ (`Backend { vendor: ..,
    /// ..Backend::new(..) }`).
    pub const fn new(
        name: &'static str,
        claim: fn(&Probe<'_>) -> Claim,
        start: fn(&Probe<'_>) -> Result<Started, &'static str>,
    ) -> Backend {
        Backend {
            name,
            vendor: None,
            hypervisor_name: None,
            privileged: true,
            local_apic: true,
            claim,
            start,
            early: Early::NONE,
            selftests: &[],
        }
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Backend {}

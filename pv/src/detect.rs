//! Detection: every backend descriptor in [`BACKENDS`] states its claim on the machine
//! (from CPUID's hypervisor leaves, see [`crate::cpuid`], a backdoor, or the entry
//! point), the strongest wins, and native is the floor.
#![forbid(unsafe_code)]

use crate::backend::{Backend, Claim, Early, Entry, Probe, SelfTest};
use crate::cpuid::{Hypervisor, Platform, hypervisor};

/// Every backend, native first.
pub const BACKENDS: [&Backend; 5] = [
    &crate::native::BACKEND,
    &crate::kvm::BACKEND,
    &crate::vmware::BACKEND,
    &crate::xen::hvm::BACKEND,
    &crate::xen::pv::BACKEND,
];

/// Their names, for the command line's `pv=` and its warning.
pub const NAMES: [&str; BACKENDS.len()] = {
    let mut names = [""; BACKENDS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = BACKENDS[i].name;
        i += 1;
    }
    names
};

/// The backend called `name`.
pub fn by_name(name: &str) -> Option<&'static Backend> {
    BACKENDS.into_iter().find(|b| b.name == name)
}

/// The early services of the hypervisor whose CPUID signature this machine shows.
pub fn early(p: &impl Platform) -> Early {
    let Some(hv) = hypervisor(p) else { return Early::NONE };
    BACKENDS.into_iter().find(|b| b.vendor == Some(hv.vendor)).map_or(Early::NONE, |b| b.early)
}

/// The self-test called `name` and the backends that have it.
pub fn selftest(name: &str) -> impl Iterator<Item = (&'static Backend, &'static SelfTest)> {
    BACKENDS
        .into_iter()
        .flat_map(move |b| b.selftests.iter().filter(move |t| t.name == name).map(move |t| (b, t)))
}

/// What `pv=` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Force(&'static Backend),
}

impl Choice {
    /// `auto`, or a backend's name.
    pub fn parse(name: &str) -> Option<Self> {
        if name == "auto" { Some(Choice::Auto) } else { by_name(name).map(Choice::Force) }
    }
}

/// What detection found and chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// The hypervisor as identified ("none" on bare metal).
    pub hypervisor: &'static str,
    pub backend: &'static Backend,
    /// CPUID's hypervisor block, if any.
    pub cpuid: Option<Hypervisor>,
    /// Why the hypervisor's own backend was passed over, for the log.
    pub fallback: Option<&'static str>,
}

/// A forced backend that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPresent {
    pub backend: &'static Backend,
    pub why: &'static str,
}

impl core::fmt::Display for NotPresent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "pv={} forced, but {}", self.backend.name, self.why)
    }
}

/// A backend's claim on this boot: an unprivileged entry rules out every backend that
/// needs the CPU's privilege, whatever it would say.
fn claim(backend: &Backend, probe: &Probe<'_>) -> Claim {
    if backend.privileged && !probe.entry.privileged() {
        return Err(
            "this guest was entered without the CPU's privilege (Xen's PV entry), which this backend needs",
        );
    }
    if !backend.privileged && probe.entry.privileged() {
        return Err("this backend runs only guests entered without the CPU's privilege (Xen's PV entry)");
    }
    (backend.claim)(probe)
}

/// Detection as a priority table: every backend states its claim, the strongest wins,
/// and native (which always applies to a privileged entry) is the floor.
pub fn detect(p: &impl Platform, choice: Choice, entry: Entry) -> Result<Detection, NotPresent> {
    detect_among(&BACKENDS, p, choice, entry)
}

/// [`detect`] over a given list of backends (host tests add their own).
pub fn detect_among(
    backends: &[&'static Backend],
    p: &impl Platform,
    choice: Choice,
    entry: Entry,
) -> Result<Detection, NotPresent> {
    let hv = hypervisor(p);
    // Claims only look; nothing is mapped for them.
    let probe = |forced| Probe {
        entry,
        hypervisor: hv,
        platform: p,
        forced,
        upcall_vector: 0,
        map_frames: &|_, _| false,
    };
    let mut best: Option<(&'static Backend, u32)> = None;
    let mut fallback = None;
    for &backend in backends {
        match claim(backend, &probe(false)) {
            Ok(priority) if best.is_none_or(|(_, p)| priority > p) => best = Some((backend, priority)),
            Ok(_) => {}
            // The hypervisor's own backend, whose interface is unusable: say why.
            Err(why) if backend.vendor.is_some() && backend.vendor == hv.map(|h| h.vendor) => {
                fallback = Some(why)
            }
            Err(_) => {}
        }
    }
    let hypervisor = match (best, hv) {
        (Some((b, _)), _) if b.hypervisor_name.is_some() => b.hypervisor_name.unwrap_or_default(),
        (_, Some(h)) => h.vendor.name(),
        (_, None) => "none",
    };
    let chosen = match choice {
        Choice::Auto => best
            .map(|(b, _)| b)
            .ok_or(NotPresent { backend: backends[0], why: "no backend can run this guest" })?,
        Choice::Force(want) => {
            claim(want, &probe(true)).map_err(|why| NotPresent { backend: want, why })?;
            want
        }
    };
    // Only the floor (native) stands in for a hypervisor's own backend.
    let fallback = match (choice, best) {
        (Choice::Auto, Some((_, 0))) => fallback,
        _ => None,
    };
    Ok(Detection { hypervisor, backend: chosen, cpuid: hv, fallback })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpuid::{BASE, Vendor};
    use crate::kvm::BACKEND as KVM_BACKEND;
    use crate::native::BACKEND as NATIVE;
    use crate::vmware::{BACKEND as VMWARE, MAGIC as VMWARE_MAGIC};
    use crate::xen::hvm::BACKEND as XEN_HVM;
    use crate::xen::pv::BACKEND as XEN_PV;
    extern crate std;
    use std::collections::BTreeMap;

    /// Recorded leaves; anything else reads as zeros (as CPUs answer out-of-range
    /// hypervisor leaves on KVM and TCG). `backdoor` is what port 0x5658 answers.
    struct Recorded(BTreeMap<u32, [u32; 4]>, [u32; 4]);

    impl Platform for Recorded {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
            self.0.get(&leaf).copied().unwrap_or([0; 4])
        }
        fn vmware_backdoor(&self, _cmd: u32) -> [u32; 4] {
            self.1
        }
    }

    /// QEMU's vmport answer to GETVERSION.
    const BACKDOOR_ON: [u32; 4] = [6, VMWARE_MAGIC, 2, 0];
    /// Nothing behind the port: all ones.
    const BACKDOOR_OFF: [u32; 4] = [u32::MAX; 4];

    fn with_backdoor(mut m: Recorded, answer: [u32; 4]) -> Recorded {
        m.1 = answer;
        m
    }

    fn sig(s: &[u8; 12]) -> [u32; 3] {
        let w = |i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap());
        [w(0), w(4), w(8)]
    }

    fn machine(hv_bit: bool, leaves: &[(u32, u32, &[u8; 12])]) -> Recorded {
        let mut m = BTreeMap::new();
        m.insert(1, [0x663, 0, if hv_bit { 0x8000_0000 | 0x209 } else { 0x209 }, 0]);
        for (leaf, max, s) in leaves {
            let [b, c, d] = sig(s);
            m.insert(*leaf, [*max, b, c, d]);
        }
        Recorded(m, BACKDOOR_OFF)
    }

    #[test]
    fn bare_metal_has_none() {
        assert_eq!(hypervisor(&machine(false, &[(BASE, 0x4000_0001, b"KVMKVMKVM\0\0\0")])), None);
    }

    #[test]
    fn qemu_tcg() {
        // QEMU 7.2 TCG, `-cpu qemu64`: leaf 0x40000000 = TCGTCGTCGTCG, max 0x40000001.
        let hv = hypervisor(&machine(true, &[(BASE, 0x4000_0001, b"TCGTCGTCGTCG")])).unwrap();
        assert_eq!(
            hv,
            Hypervisor { vendor: Vendor::Tcg, base: BASE, max_leaf: 0x4000_0001, features: [0; 4] }
        );
        assert_eq!(hv.vendor.name(), "tcg");
    }

    #[test]
    fn kvm() {
        let hv = hypervisor(&machine(true, &[(BASE, 0x4000_0001, b"KVMKVMKVM\0\0\0")])).unwrap();
        assert_eq!(hv.vendor, Vendor::Kvm);
    }

    #[test]
    fn xen_behind_viridian() {
        // Xen HVM with Viridian: Hyper-V's signature first, Xen's at +0x100: Xen wins.
        let m = machine(
            true,
            &[(BASE, 0x4000_0006, b"Microsoft Hv"), (BASE + 0x100, 0x4000_0105, b"XenVMMXenVMM")],
        );
        let hv = hypervisor(&m).unwrap();
        assert_eq!((hv.vendor, hv.base), (Vendor::Xen, BASE + 0x100));
        let d = detect(&m, Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("xen", &XEN_HVM));
        // Hyper-V alone stays Hyper-V (and native).
        let alone = machine(true, &[(BASE, 0x4000_0006, b"Microsoft Hv")]);
        assert_eq!(detect(&alone, Choice::Auto, Entry::Pvh).unwrap().backend, &NATIVE);
    }

    #[test]
    fn xen_needs_its_hypercall_leaf() {
        let ok = detect(&machine(true, &[(BASE, 0x4000_0005, b"XenVMMXenVMM")]), Choice::Auto, Entry::Pvh)
            .unwrap();
        assert_eq!(ok.backend, &XEN_HVM);
        let short = detect(&machine(true, &[(BASE, 0x4000_0001, b"XenVMMXenVMM")]), Choice::Auto, Entry::Pvh)
            .unwrap();
        assert_eq!(short.backend, &NATIVE);
        assert_eq!(short.fallback, Some("Xen's CPUID range ends before its hypercall-page leaf"));
    }

    #[test]
    fn unknown_then_known() {
        let hv = hypervisor(&machine(
            true,
            &[(BASE, 0x4000_0001, b"SomethingNew"), (BASE + 0x200, 0x4000_0201, b"VMwareVMware")],
        ))
        .unwrap();
        assert_eq!(
            hv,
            Hypervisor {
                vendor: Vendor::VMware,
                base: BASE + 0x200,
                max_leaf: 0x4000_0201,
                features: [0; 4]
            }
        );
    }

    #[test]
    fn bit_without_signature() {
        let hv = hypervisor(&machine(true, &[])).unwrap();
        assert_eq!(hv.vendor, Vendor::Unknown([0; 12]));
        let hv = hypervisor(&machine(true, &[(BASE, 7, b"SomethingNew")])).unwrap();
        assert_eq!(hv.vendor, Vendor::Unknown(*b"SomethingNew"));
    }

    const KVM: &[u8; 12] = b"KVMKVMKVM\0\0\0";

    #[test]
    fn tcg_runs_native() {
        let m = machine(true, &[(BASE, 0x4000_0001, b"TCGTCGTCGTCG")]);
        let d = detect(&m, Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend, d.fallback), ("tcg", &NATIVE, None));
        // QEMU's pc machine answers the backdoor under TCG too: the TCG signature wins.
        let d = detect(&with_backdoor(m, BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("tcg", &NATIVE));
    }

    #[test]
    fn kvm_is_chosen_with_its_features() {
        let mut m = machine(true, &[(BASE, 0x4000_0001, KVM)]);
        m.0.insert(BASE + 1, [0x0100_7afb, 0, 0, 0]);
        let d = detect(&with_backdoor(m, BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!(
            (d.hypervisor, d.backend, d.cpuid.unwrap().features[0]),
            ("kvm", &KVM_BACKEND, 0x0100_7afb)
        );
    }

    #[test]
    fn kvm_with_a_lying_max_leaf_falls_back() {
        let d = detect(&machine(true, &[(BASE, 0x4000_0000, KVM)]), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!(d.backend, &NATIVE);
        assert_eq!(d.fallback, Some("KVM's CPUID range ends before its feature leaf"));
    }

    #[test]
    fn vmware_by_signature_or_hidden_behind_the_backdoor() {
        let d = detect(&machine(true, &[(BASE, 0x4000_0010, b"VMwareVMware")]), Choice::Auto, Entry::Pvh)
            .unwrap();
        assert_eq!((d.hypervisor, d.backend), ("vmware", &VMWARE));
        // KVM with `kvm=off`: hypervisor bit, no signature, backdoor answers.
        let d = detect(&with_backdoor(machine(true, &[]), BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("vmware", &VMWARE));
        // The same without the backdoor, or with a wrong magic: native.
        let d = detect(&machine(true, &[]), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("unknown", &NATIVE));
        let wrong =
            detect(&with_backdoor(machine(true, &[]), [6, 0x1234_5678, 2, 0]), Choice::Auto, Entry::Pvh)
                .unwrap();
        assert_eq!(wrong.backend, &NATIVE);
        // Bare metal never trusts the port.
        let d = detect(&with_backdoor(machine(false, &[]), BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("none", &NATIVE));
    }

    #[test]
    fn forcing() {
        let tcg = || machine(true, &[(BASE, 0x4000_0001, b"TCGTCGTCGTCG")]);
        assert_eq!(detect(&tcg(), Choice::Force(&NATIVE), Entry::Pvh).unwrap().backend, &NATIVE);
        assert_eq!(
            detect(&tcg(), Choice::Force(&KVM_BACKEND), Entry::Pvh),
            Err(NotPresent { backend: &KVM_BACKEND, why: "no KVM signature in CPUID" })
        );
        // pv=vmware on TCG with vmport=on, and refused with vmport=off.
        assert_eq!(
            detect(&with_backdoor(tcg(), BACKDOOR_ON), Choice::Force(&VMWARE), Entry::Pvh).unwrap().backend,
            &VMWARE
        );
        assert_eq!(
            detect(&tcg(), Choice::Force(&VMWARE), Entry::Pvh).unwrap_err().why,
            "the VMware backdoor (I/O port 0x5658) does not answer"
        );
        // Native is always available, even on KVM.
        let mut kvm = machine(true, &[(BASE, 0x4000_0001, KVM)]);
        kvm.0.insert(BASE + 1, [0x7afb, 0, 0, 0]);
        assert_eq!(detect(&kvm, Choice::Force(&NATIVE), Entry::Pvh).unwrap().backend, &NATIVE);
    }

    #[test]
    fn the_pv_entry_decides() {
        let xen = machine(true, &[(BASE, 0x4000_0005, b"XenVMMXenVMM")]);
        let d = detect(&xen, Choice::Auto, Entry::XenPv).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("xen-pv", &XEN_PV));
        assert_eq!(detect(&xen, Choice::Force(&XEN_PV), Entry::XenPv).unwrap().backend, &XEN_PV);
        // Nothing else can run a ring-3 kernel, and xen_pv needs the PV entry.
        assert_eq!(detect(&xen, Choice::Force(&NATIVE), Entry::XenPv).unwrap_err().backend, &NATIVE);
        assert_eq!(detect(&xen, Choice::Force(&XEN_PV), Entry::Pvh).unwrap_err().backend, &XEN_PV);
        assert_eq!(detect(&xen, Choice::Auto, Entry::Pvh).unwrap().backend, &XEN_HVM);
    }

    #[test]
    fn choices_parse() {
        assert_eq!(Choice::parse("auto"), Some(Choice::Auto));
        assert_eq!(Choice::parse("kvm"), Some(Choice::Force(&KVM_BACKEND)));
        assert_eq!(Choice::parse("xen"), None);
    }

    #[test]
    fn every_backend_has_its_own_name() {
        let mut names = NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BACKENDS.len());
        assert!(!names.contains(&"auto"));
    }

    /// README's "How to add a backend", followed for a stub: a module with its ops, its
    /// claim and start, and its descriptor; detection then picks it on its hypervisor.
    mod stub {
        use crate::backend::{Backend, Claim, Probe, Started};
        use crate::cpuid::Vendor;
        use crate::native;
        use crate::ops::{IoOps, PvOps};

        pub(super) extern "C" fn no_io_delay() {}

        const OPS: PvOps = PvOps { io: IoOps { io_delay: no_io_delay, ..native::OPS.io }, ..native::OPS };

        fn claim(probe: &Probe<'_>) -> Claim {
            match probe.hypervisor {
                Some(h) if h.vendor == Vendor::Bhyve => Ok(20),
                _ => Err("no bhyve signature in CPUID"),
            }
        }

        fn start(_: &Probe<'_>) -> Result<Started, &'static str> {
            Ok(Started::with(OPS))
        }

        pub const BACKEND: Backend =
            Backend { vendor: Some(Vendor::Bhyve), ..Backend::new("stub", claim, start) };
    }

    #[test]
    fn a_stub_backend_added_as_readme_says() {
        let with_stub = [&NATIVE, &KVM_BACKEND, &stub::BACKEND];
        let bhyve = machine(true, &[(BASE, 0x4000_0001, b"bhyve bhyve ")]);
        let d = detect_among(&with_stub, &bhyve, Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend.name), ("bhyve", "stub"));
        let probe = Probe {
            map_frames: &|_, _| false,
            entry: Entry::Pvh,
            hypervisor: d.cpuid,
            platform: &bhyve,
            forced: false,
            upcall_vector: 0,
        };
        let started = (d.backend.start)(&probe).unwrap();
        assert_eq!(
            started.ops.io.io_delay as usize,
            stub::no_io_delay as *const () as usize,
            "its op is in its table"
        );
        assert_eq!(started.ops.cpu.cpuid as usize, crate::native::OPS.cpu.cpuid as usize, "native elsewhere");
        // Elsewhere it stands aside; forced where it cannot run, it says why.
        let kvm = machine(true, &[(BASE, 0x4000_0001, KVM)]);
        assert_eq!(detect_among(&with_stub, &kvm, Choice::Auto, Entry::Pvh).unwrap().backend.name, "kvm");
        let forced = detect_among(&with_stub, &kvm, Choice::Force(&stub::BACKEND), Entry::Pvh);
        assert_eq!(forced.unwrap_err().why, "no bhyve signature in CPUID");
        // Without it, bhyve runs native.
        assert_eq!(detect(&bhyve, Choice::Auto, Entry::Pvh).unwrap().backend, &NATIVE);
    }
}

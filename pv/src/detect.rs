//! Hypervisor detection from CPUID.
//!
//! CPUID.1:ECX bit 31 says "running under a hypervisor"; the hypervisor then answers
//! leaves from 0x40000000 with its signature in EBX:ECX:EDX and its highest leaf in
//! EAX. Some hypervisors (Xen with Viridian, KVM with Hyper-V enlightenments) show a
//! second signature 0x100 leaves further up, so the whole range is scanned in 0x100
//! steps and the first known signature wins.

#![forbid(unsafe_code)]

use crate::Platform;

const HYPERVISOR_BIT: u32 = 1 << 31;
const BASE: u32 = 0x4000_0000;
const END: u32 = 0x4001_0000;
const STEP: u32 = 0x100;

/// Hypervisors recognised by their CPUID signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Kvm,
    Xen,
    VMware,
    HyperV,
    /// QEMU's TCG (software emulation).
    Tcg,
    Bhyve,
    /// A signature this kernel does not know.
    Unknown([u8; 12]),
}

impl Vendor {
    fn from_signature(sig: &[u8; 12]) -> Self {
        match sig {
            b"KVMKVMKVM\0\0\0" => Vendor::Kvm,
            b"XenVMMXenVMM" => Vendor::Xen,
            b"VMwareVMware" => Vendor::VMware,
            b"Microsoft Hv" => Vendor::HyperV,
            b"TCGTCGTCGTCG" => Vendor::Tcg,
            b"bhyve bhyve " => Vendor::Bhyve,
            other => Vendor::Unknown(*other),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Vendor::Kvm => "kvm",
            Vendor::Xen => "xen",
            Vendor::VMware => "vmware",
            Vendor::HyperV => "hyper-v",
            Vendor::Tcg => "tcg",
            Vendor::Bhyve => "bhyve",
            Vendor::Unknown(_) => "unknown",
        }
    }
}

/// A hypervisor's CPUID leaf block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hypervisor {
    pub vendor: Vendor,
    /// Its base leaf (0x40000000 + n·0x100).
    pub base: u32,
    /// The highest leaf it claims, as reported (it may lie; users check before reading).
    pub max_leaf: u32,
    /// Its feature leaf (base+1), or zeros when its range does not reach that far.
    pub features: [u32; 4],
}

/// What CPUID says about the hypervisor, if any.
pub fn hypervisor(cpu: &impl Platform) -> Option<Hypervisor> {
    if cpu.cpuid(1, 0)[2] & HYPERVISOR_BIT == 0 {
        return None;
    }
    let mut first_unknown = None;
    let mut hyperv = None;
    for base in (BASE..END).step_by(STEP as usize) {
        let [max_leaf, b, c, d] = cpu.cpuid(base, 0);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&b.to_le_bytes());
        sig[4..8].copy_from_slice(&c.to_le_bytes());
        sig[8..].copy_from_slice(&d.to_le_bytes());
        if sig == [0; 12] {
            continue;
        }
        let features = if max_leaf > base { cpu.cpuid(base + 1, 0) } else { [0; 4] };
        let found = Hypervisor { vendor: Vendor::from_signature(&sig), base, max_leaf, features };
        match found.vendor {
            Vendor::Unknown(_) => {
                first_unknown.get_or_insert(found);
            }
            // Xen and KVM put Hyper-V's leaves first when they offer its
            // enlightenments; their own signature further up is the real one.
            Vendor::HyperV => {
                hyperv.get_or_insert(found);
            }
            _ => return Some(found),
        }
    }
    if hyperv.is_some() {
        return hyperv;
    }
    // The bit is set but nothing known answered: report what did, or a blank.
    Some(first_unknown.unwrap_or(Hypervisor {
        vendor: Vendor::Unknown([0; 12]),
        base: BASE,
        max_leaf: 0,
        features: [0; 4],
    }))
}

/// The pv-ops backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Kvm,
    VMware,
    /// Xen HVM and PVH guests (found by CPUID).
    XenHvm,
    /// Xen PV guests (found by their own entry point).
    XenPv,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Kvm => "kvm",
            Backend::VMware => "vmware",
            Backend::XenHvm => "xen_hvm",
            Backend::XenPv => "xen_pv",
        }
    }
}

/// The `pv=` setting: detect, or force one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Force(Backend),
}

impl Choice {
    pub fn parse(value: &str) -> Option<Choice> {
        Some(match value {
            "auto" => Choice::Auto,
            "native" => Choice::Force(Backend::Native),
            "kvm" => Choice::Force(Backend::Kvm),
            "vmware" => Choice::Force(Backend::VMware),
            "xen_hvm" => Choice::Force(Backend::XenHvm),
            "xen_pv" => Choice::Force(Backend::XenPv),
            _ => return None,
        })
    }

    fn forced(self) -> Option<Backend> {
        match self {
            Choice::Auto => None,
            Choice::Force(b) => Some(b),
        }
    }
}

/// The VMware backdoor's magic ("VMXh") and GETVERSION command.
pub const VMWARE_MAGIC: u32 = 0x564d_5868;
pub const VMWARE_CMD_GETVERSION: u32 = 10;

/// What detection found and chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// The hypervisor as identified ("none" on bare metal).
    pub hypervisor: &'static str,
    pub backend: Backend,
    /// CPUID's hypervisor block, if any.
    pub cpuid: Option<Hypervisor>,
    /// The KVM feature bits (leaf base+1 EAX) when the KVM backend is chosen.
    pub kvm_features: u32,
    /// Why a backend was passed over, for the log.
    pub fallback: Option<&'static str>,
}

/// A forced backend that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPresent {
    pub backend: Backend,
    pub why: &'static str,
}

impl core::fmt::Display for NotPresent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "pv={} forced, but {}", self.backend.name(), self.why)
    }
}

/// One backend's claim: how strongly it matches (higher wins), or why it does not.
type Claim = Result<(u32, u32), &'static str>;

fn kvm_claim(hv: Option<Hypervisor>) -> Claim {
    let hv = hv.filter(|h| h.vendor == Vendor::Kvm).ok_or("no KVM signature in CPUID")?;
    if hv.max_leaf < hv.base + 1 {
        return Err("KVM's CPUID range ends before its feature leaf");
    }
    Ok((20, hv.features[0]))
}

fn xen_hvm_claim(hv: Option<Hypervisor>) -> Claim {
    let hv = hv.filter(|h| h.vendor == Vendor::Xen).ok_or("no Xen signature in CPUID")?;
    if hv.max_leaf < hv.base + 2 {
        return Err("Xen's CPUID range ends before its hypercall-page leaf");
    }
    Ok((20, 0))
}

fn vmware_backdoor(p: &impl Platform) -> bool {
    let [version, magic, _, _] = p.vmware_backdoor(VMWARE_CMD_GETVERSION);
    magic == VMWARE_MAGIC && version != u32::MAX
}

fn vmware_claim(hv: Option<Hypervisor>, p: &impl Platform) -> Claim {
    match hv {
        Some(h) if h.vendor == Vendor::VMware => Ok((20, 0)),
        // VMware can hide its CPUID leaves; then only the backdoor tells. A known
        // signature (KVM, TCG, ...) wins over the backdoor, which QEMU also emulates.
        Some(h) if matches!(h.vendor, Vendor::Unknown(_)) && vmware_backdoor(p) => Ok((10, 0)),
        Some(_) => Err("no VMware signature, and another hypervisor's signature is present"),
        None => Err("no hypervisor present"),
    }
}

/// How the kernel was entered. Xen's PV entry point is itself the detection: nothing
/// but Xen enters there, and nothing but the xen_pv backend can run such a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// PVH (QEMU, Firecracker, Cloud Hypervisor, Xen PVH): detect by CPUID.
    Pvh,
    XenPv,
}

/// Detection as a priority table: every backend states its claim, the strongest wins,
/// and native (which always applies) is the floor.
pub fn detect(p: &impl Platform, choice: Choice, entry: Entry) -> Result<Detection, NotPresent> {
    let forced = choice.forced();
    let hv = hypervisor(p);
    match (entry, forced) {
        (Entry::XenPv, None | Some(Backend::XenPv)) => {
            return Ok(Detection {
                hypervisor: "xen-pv",
                backend: Backend::XenPv,
                cpuid: hv,
                kvm_features: 0,
                fallback: None,
            });
        }
        (Entry::XenPv, Some(backend)) => {
            let why = "this is a Xen PV guest (it came in through the PV entry), which only xen_pv can run";
            return Err(NotPresent { backend, why });
        }
        (Entry::Pvh, Some(Backend::XenPv)) => {
            let why = "xen_pv needs Xen's PV entry, and this boot came through PVH";
            return Err(NotPresent { backend: Backend::XenPv, why });
        }
        (Entry::Pvh, _) => {}
    }
    let kvm = kvm_claim(hv);
    let vmware = vmware_claim(hv, p);
    let hypervisor = match (hv, &vmware) {
        (None, _) => "none",
        (Some(_), Ok(_)) => "vmware",
        (Some(h), _) => h.vendor.name(),
    };
    let claims = [
        (Backend::Kvm, kvm),
        (Backend::VMware, vmware),
        (Backend::XenHvm, xen_hvm_claim(hv)),
        (Backend::Native, Ok((0, 0))),
    ];
    let pick = |backend: Backend, features: u32, fallback| Detection {
        hypervisor,
        backend,
        cpuid: hv,
        kvm_features: features,
        fallback,
    };
    if let Some(want) = forced {
        let (_, claim) =
            claims.iter().find(|(b, _)| *b == want).copied().unwrap_or((want, Err("unknown backend")));
        // Forcing a backend skips the ranking but not the presence test: a VMware backdoor
        // behind a TCG signature is enough when asked for.
        let claim = match (want, claim) {
            (Backend::VMware, Err(_)) if hv.is_some() && vmware_backdoor(p) => Ok((10, 0)),
            (Backend::VMware, Err(_)) => Err("the VMware backdoor (I/O port 0x5658) does not answer"),
            (_, c) => c,
        };
        return match claim {
            Ok((_, features)) => Ok(pick(want, features, None)),
            Err(why) => Err(NotPresent { backend: want, why }),
        };
    }
    let mut best = (Backend::Native, 0u32, 0u32);
    let mut fallback = None;
    for (backend, claim) in claims {
        match claim {
            Ok((priority, features)) if priority > best.1 => best = (backend, priority, features),
            Ok(_) => {}
            // A hypervisor we know, whose interface is unusable: say why native runs.
            Err(why) if hv.is_some_and(|h| backend.name().starts_with(h.vendor.name())) => {
                fallback = Some(why)
            }
            Err(_) => {}
        }
    }
    Ok(pick(best.0, best.2, if best.0 == Backend::Native { fallback } else { None }))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!((d.hypervisor, d.backend), ("xen", Backend::XenHvm));
        // Hyper-V alone stays Hyper-V (and native).
        let alone = machine(true, &[(BASE, 0x4000_0006, b"Microsoft Hv")]);
        assert_eq!(detect(&alone, Choice::Auto, Entry::Pvh).unwrap().backend, Backend::Native);
    }

    #[test]
    fn xen_needs_its_hypercall_leaf() {
        let ok = detect(&machine(true, &[(BASE, 0x4000_0005, b"XenVMMXenVMM")]), Choice::Auto, Entry::Pvh)
            .unwrap();
        assert_eq!(ok.backend, Backend::XenHvm);
        let short = detect(&machine(true, &[(BASE, 0x4000_0001, b"XenVMMXenVMM")]), Choice::Auto, Entry::Pvh)
            .unwrap();
        assert_eq!(short.backend, Backend::Native);
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
        assert_eq!((d.hypervisor, d.backend, d.fallback), ("tcg", Backend::Native, None));
        // QEMU's pc machine answers the backdoor under TCG too: the TCG signature wins.
        let d = detect(&with_backdoor(m, BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("tcg", Backend::Native));
    }

    #[test]
    fn kvm_is_chosen_with_its_features() {
        let mut m = machine(true, &[(BASE, 0x4000_0001, KVM)]);
        m.0.insert(BASE + 1, [0x0100_7afb, 0, 0, 0]);
        let d = detect(&with_backdoor(m, BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend, d.kvm_features), ("kvm", Backend::Kvm, 0x0100_7afb));
    }

    #[test]
    fn kvm_with_a_lying_max_leaf_falls_back() {
        let d = detect(&machine(true, &[(BASE, 0x4000_0000, KVM)]), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!(d.backend, Backend::Native);
        assert_eq!(d.fallback, Some("KVM's CPUID range ends before its feature leaf"));
    }

    #[test]
    fn vmware_by_signature_or_hidden_behind_the_backdoor() {
        let d = detect(&machine(true, &[(BASE, 0x4000_0010, b"VMwareVMware")]), Choice::Auto, Entry::Pvh)
            .unwrap();
        assert_eq!((d.hypervisor, d.backend), ("vmware", Backend::VMware));
        // KVM with `kvm=off`: hypervisor bit, no signature, backdoor answers.
        let d = detect(&with_backdoor(machine(true, &[]), BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("vmware", Backend::VMware));
        // The same without the backdoor, or with a wrong magic: native.
        let d = detect(&machine(true, &[]), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("unknown", Backend::Native));
        let wrong =
            detect(&with_backdoor(machine(true, &[]), [6, 0x1234_5678, 2, 0]), Choice::Auto, Entry::Pvh)
                .unwrap();
        assert_eq!(wrong.backend, Backend::Native);
        // Bare metal never trusts the port.
        let d = detect(&with_backdoor(machine(false, &[]), BACKDOOR_ON), Choice::Auto, Entry::Pvh).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("none", Backend::Native));
    }

    #[test]
    fn forcing() {
        let tcg = || machine(true, &[(BASE, 0x4000_0001, b"TCGTCGTCGTCG")]);
        assert_eq!(
            detect(&tcg(), Choice::Force(Backend::Native), Entry::Pvh).unwrap().backend,
            Backend::Native
        );
        assert_eq!(
            detect(&tcg(), Choice::Force(Backend::Kvm), Entry::Pvh),
            Err(NotPresent { backend: Backend::Kvm, why: "no KVM signature in CPUID" })
        );
        // pv=vmware on TCG with vmport=on, and refused with vmport=off.
        assert_eq!(
            detect(&with_backdoor(tcg(), BACKDOOR_ON), Choice::Force(Backend::VMware), Entry::Pvh)
                .unwrap()
                .backend,
            Backend::VMware
        );
        assert_eq!(
            detect(&tcg(), Choice::Force(Backend::VMware), Entry::Pvh).unwrap_err().why,
            "the VMware backdoor (I/O port 0x5658) does not answer"
        );
        // Native is always available, even on KVM.
        let mut kvm = machine(true, &[(BASE, 0x4000_0001, KVM)]);
        kvm.0.insert(BASE + 1, [0x7afb, 0, 0, 0]);
        assert_eq!(
            detect(&kvm, Choice::Force(Backend::Native), Entry::Pvh).unwrap().backend,
            Backend::Native
        );
    }

    #[test]
    fn the_pv_entry_decides() {
        let xen = machine(true, &[(BASE, 0x4000_0005, b"XenVMMXenVMM")]);
        let d = detect(&xen, Choice::Auto, Entry::XenPv).unwrap();
        assert_eq!((d.hypervisor, d.backend), ("xen-pv", Backend::XenPv));
        assert_eq!(
            detect(&xen, Choice::Force(Backend::XenPv), Entry::XenPv).unwrap().backend,
            Backend::XenPv
        );
        // Nothing else can run a ring-3 kernel, and xen_pv needs the PV entry.
        assert_eq!(
            detect(&xen, Choice::Force(Backend::Native), Entry::XenPv).unwrap_err().backend,
            Backend::Native
        );
        assert_eq!(
            detect(&xen, Choice::Force(Backend::XenPv), Entry::Pvh).unwrap_err().backend,
            Backend::XenPv
        );
        assert_eq!(detect(&xen, Choice::Auto, Entry::Pvh).unwrap().backend, Backend::XenHvm);
    }

    #[test]
    fn choices_parse() {
        assert_eq!(Choice::parse("auto"), Some(Choice::Auto));
        assert_eq!(Choice::parse("kvm"), Some(Choice::Force(Backend::Kvm)));
        assert_eq!(Choice::parse("xen"), None);
    }
}

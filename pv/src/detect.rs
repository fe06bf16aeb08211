//! Hypervisor detection from CPUID.
//!
//! CPUID.1:ECX bit 31 says "running under a hypervisor"; the hypervisor then answers
//! leaves from 0x40000000 with its signature in EBX:ECX:EDX and its highest leaf in
//! EAX. Some hypervisors (Xen with Viridian, KVM with Hyper-V enlightenments) show a
//! second signature 0x100 leaves further up, so the whole range is scanned in 0x100
//! steps and the first known signature wins.

use crate::Cpuid;

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
}

/// What CPUID says about the hypervisor, if any.
pub fn hypervisor(cpu: &impl Cpuid) -> Option<Hypervisor> {
    if cpu.cpuid(1, 0)[2] & HYPERVISOR_BIT == 0 {
        return None;
    }
    let mut first_unknown = None;
    for base in (BASE..END).step_by(STEP as usize) {
        let [max_leaf, b, c, d] = cpu.cpuid(base, 0);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&b.to_le_bytes());
        sig[4..8].copy_from_slice(&c.to_le_bytes());
        sig[8..].copy_from_slice(&d.to_le_bytes());
        if sig == [0; 12] {
            continue;
        }
        let found = Hypervisor { vendor: Vendor::from_signature(&sig), base, max_leaf };
        match found.vendor {
            Vendor::Unknown(_) => {
                first_unknown.get_or_insert(found);
            }
            _ => return Some(found),
        }
    }
    // The bit is set but nothing known answered: report what did, or a blank.
    Some(first_unknown.unwrap_or(Hypervisor { vendor: Vendor::Unknown([0; 12]), base: BASE, max_leaf: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeMap;

    /// Recorded leaves; anything else reads as zeros (as CPUs answer out-of-range
    /// hypervisor leaves on KVM and TCG).
    struct Recorded(BTreeMap<u32, [u32; 4]>);

    impl Cpuid for Recorded {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
            self.0.get(&leaf).copied().unwrap_or([0; 4])
        }
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
        Recorded(m)
    }

    #[test]
    fn bare_metal_has_none() {
        assert_eq!(hypervisor(&machine(false, &[(BASE, 0x4000_0001, b"KVMKVMKVM\0\0\0")])), None);
    }

    #[test]
    fn qemu_tcg() {
        // QEMU 7.2 TCG, `-cpu qemu64`: leaf 0x40000000 = TCGTCGTCGTCG, max 0x40000001.
        let hv = hypervisor(&machine(true, &[(BASE, 0x4000_0001, b"TCGTCGTCGTCG")])).unwrap();
        assert_eq!(hv, Hypervisor { vendor: Vendor::Tcg, base: BASE, max_leaf: 0x4000_0001 });
        assert_eq!(hv.vendor.name(), "tcg");
    }

    #[test]
    fn kvm() {
        let hv = hypervisor(&machine(true, &[(BASE, 0x4000_0001, b"KVMKVMKVM\0\0\0")])).unwrap();
        assert_eq!(hv.vendor, Vendor::Kvm);
    }

    #[test]
    fn xen_behind_viridian() {
        // Xen HVM with Viridian: Hyper-V's signature first, Xen's at +0x100. Both are
        // known; the first one wins (the pv-ops issue ranks them).
        let hv = hypervisor(&machine(
            true,
            &[(BASE, 0x4000_0006, b"Microsoft Hv"), (BASE + 0x100, 0x4000_0105, b"XenVMMXenVMM")],
        ))
        .unwrap();
        assert_eq!(hv.vendor, Vendor::HyperV);
    }

    #[test]
    fn unknown_then_known() {
        let hv = hypervisor(&machine(
            true,
            &[(BASE, 0x4000_0001, b"SomethingNew"), (BASE + 0x200, 0x4000_0201, b"VMwareVMware")],
        ))
        .unwrap();
        assert_eq!(hv, Hypervisor { vendor: Vendor::VMware, base: BASE + 0x200, max_leaf: 0x4000_0201 });
    }

    #[test]
    fn bit_without_signature() {
        let hv = hypervisor(&machine(true, &[])).unwrap();
        assert_eq!(hv.vendor, Vendor::Unknown([0; 12]));
        let hv = hypervisor(&machine(true, &[(BASE, 7, b"SomethingNew")])).unwrap();
        assert_eq!(hv.vendor, Vendor::Unknown(*b"SomethingNew"));
    }
}

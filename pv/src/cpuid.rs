//! Hypervisor detection from CPUID.
//!
//! CPUID.1:ECX bit 31 says "running under a hypervisor"; the hypervisor then answers
//! leaves from 0x40000000 with its signature in EBX:ECX:EDX and its highest leaf in
//! EAX. Some hypervisors (Xen with Viridian, KVM with Hyper-V enlightenments) show a
//! second signature 0x100 leaves further up, so the whole range is scanned in 0x100
//! steps and the first known signature wins.

#![forbid(unsafe_code)]

/// What detection needs from the machine: CPUID, and the VMware backdoor port. The
/// kernel answers with the real instructions; tests replay recordings.
pub trait Platform {
    /// `[eax, ebx, ecx, edx]` for `leaf`/`subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// The backdoor's answer to `cmd` (all ones when nothing is there).
    fn vmware_backdoor(&self, cmd: u32) -> [u32; 4];
}

const HYPERVISOR_BIT: u32 = 1 << 31;
pub(crate) const BASE: u32 = 0x4000_0000;
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

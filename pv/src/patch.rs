//! Planning the rewrite of one call site: pure byte arithmetic, tested on the host.
//! The one unsafe step, writing the planned bytes over kernel text, is
//! [`crate::site::apply`].
#![forbid(unsafe_code)]

use crate::ops::OpId;

/// One `.pv_sites` record (16 bytes, as [`crate::site`]'s macro emits it).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteRecord {
    /// Address of the site's first byte.
    pub addr: u64,
    /// Which op the site calls.
    pub op: OpId,
    /// Bytes available at the site.
    pub len: u8,
    /// What the site may clobber: [`CLOBBERS_C_ABI`].
    pub clobbers: u8,
    pub reserved: u32,
}

/// The site may clobber every register a C call may (rax, rcx, rdx, rsi, rdi, r8-r11,
/// flags).
pub const CLOBBERS_C_ABI: u8 = 1;

/// The most bytes a site holds.
pub const MAX_SITE: usize = 16;

/// What a site becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement<'a> {
    /// These instructions, inline.
    Inline(&'a [u8]),
    /// A direct `call rel32` to this address.
    Call(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// The site is shorter than the replacement.
    TooShort { need: usize, have: usize },
    /// The target is more than ±2 GiB from the site.
    OutOfReach,
}

/// The recommended multi-byte NOPs (Intel SDM, "Recommended Multi-Byte Sequence of NOP
/// Instruction"), so the padding decodes as one instruction.
const NOPS: [&[u8]; 6] = [
    &[],
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
];

fn pad(out: &mut [u8]) {
    let mut at = 0;
    while at < out.len() {
        let n = (out.len() - at).min(NOPS.len() - 1);
        out[at..at + n].copy_from_slice(NOPS[n]);
        at += n;
    }
}

/// The bytes an unpatched site holds: `call [rip + disp32]` to the table slot at
/// `slot_addr`, padded to the site length.
pub fn indirect_call(site: &SiteRecord, slot_addr: u64) -> Option<([u8; MAX_SITE], usize)> {
    let len = usize::from(site.len);
    if !(6..=MAX_SITE).contains(&len) {
        return None;
    }
    let disp = i32::try_from(slot_addr as i64 - (site.addr as i64 + 6)).ok()?;
    let mut out = [0u8; MAX_SITE];
    out[..2].copy_from_slice(&[0xff, 0x15]);
    out[2..6].copy_from_slice(&disp.to_le_bytes());
    pad(&mut out[6..len]);
    Some((out, len))
}

/// The new bytes for `site`.
pub fn plan(site: &SiteRecord, replacement: Replacement<'_>) -> Result<([u8; MAX_SITE], usize), PlanError> {
    let len = usize::from(site.len).min(MAX_SITE);
    let mut out = [0u8; MAX_SITE];
    let used = match replacement {
        Replacement::Inline(bytes) => {
            if bytes.len() > len {
                return Err(PlanError::TooShort { need: bytes.len(), have: len });
            }
            out[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        }
        Replacement::Call(target) => {
            if len < 5 {
                return Err(PlanError::TooShort { need: 5, have: len });
            }
            let rel =
                i32::try_from(target as i64 - (site.addr as i64 + 5)).map_err(|_| PlanError::OutOfReach)?;
            out[0] = 0xe8;
            out[1..5].copy_from_slice(&rel.to_le_bytes());
            5
        }
    };
    pad(&mut out[used..len]);
    Ok((out, len))
}

/// Which replacement a site gets: the native instruction inline when the table still
/// holds the native op and that op has an inline form that fits; otherwise a direct
/// call to whatever the table holds.
pub fn choose<'a>(
    site: &SiteRecord,
    installed: u64,
    native: u64,
    native_inline: Option<&'a [u8]>,
) -> Replacement<'a> {
    match native_inline {
        Some(bytes) if installed == native && bytes.len() <= usize::from(site.len) => {
            Replacement::Inline(bytes)
        }
        _ => Replacement::Call(installed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(addr: u64, len: u8) -> SiteRecord {
        SiteRecord { addr, op: 0, len, clobbers: CLOBBERS_C_ABI, reserved: 0 }
    }

    #[test]
    fn inline_cli_is_padded_with_one_nop() {
        let (bytes, len) = plan(&site(0x10_0000, 6), Replacement::Inline(&[0xfa])).unwrap();
        assert_eq!(&bytes[..len], &[0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x00]);
    }

    #[test]
    fn inline_pushf_pop() {
        let (bytes, len) = plan(&site(0x10_0000, 6), Replacement::Inline(&[0x9c, 0x58])).unwrap();
        assert_eq!(&bytes[..len], &[0x9c, 0x58, 0x0f, 0x1f, 0x40, 0x00]);
    }

    #[test]
    fn exact_fit_and_too_long() {
        let six = [0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8];
        let (bytes, len) = plan(&site(0x10_0000, 6), Replacement::Inline(&six)).unwrap();
        assert_eq!(&bytes[..len], &six);
        assert_eq!(
            plan(&site(0x10_0000, 6), Replacement::Inline(&[0x90; 7])),
            Err(PlanError::TooShort { need: 7, have: 6 })
        );
    }

    #[test]
    fn direct_call_forward_and_backward() {
        // call from 0x101000 to 0x102000: rel = 0x2000 - 0x1000 - 5.
        let (bytes, len) = plan(&site(0x10_1000, 6), Replacement::Call(0x10_2000)).unwrap();
        assert_eq!(&bytes[..len], &[0xe8, 0xfb, 0x0f, 0x00, 0x00, 0x90]);
        let (bytes, _) = plan(&site(0x10_2000, 6), Replacement::Call(0x10_1000)).unwrap();
        assert_eq!(&bytes[..5], &[0xe8, 0xfb, 0xef, 0xff, 0xff]);
        assert_eq!(
            plan(&site(0x10_0000, 6), Replacement::Call(0x1_0000_0000_0000)),
            Err(PlanError::OutOfReach)
        );
        assert_eq!(
            plan(&site(0x10_0000, 4), Replacement::Call(0x10_2000)),
            Err(PlanError::TooShort { need: 5, have: 4 })
        );
    }

    #[test]
    fn the_original_indirect_call() {
        // call [rip + disp]: disp is from the end of the 6-byte instruction.
        let (bytes, len) = indirect_call(&site(0x10_0000, 6), 0x11_0008).unwrap();
        assert_eq!(&bytes[..len], &[0xff, 0x15, 0x02, 0x00, 0x01, 0x00]);
        let (bytes, len) = indirect_call(&site(0x10_0000, 9), 0x10_0006).unwrap();
        assert_eq!(&bytes[..len], &[0xff, 0x15, 0, 0, 0, 0, 0x0f, 0x1f, 0x00]);
        assert!(indirect_call(&site(0x10_0000, 5), 0x10_0006).is_none());
    }

    #[test]
    fn padding_is_whole_nops_for_every_length() {
        for n in 0..=MAX_SITE {
            let mut buf = [0u8; MAX_SITE];
            pad(&mut buf[..n]);
            // Walk the padding instruction by instruction.
            let mut at = 0;
            while at < n {
                let len = NOPS.iter().position(|nop| !nop.is_empty() && buf[at..].starts_with(nop)).unwrap();
                at += len;
            }
            assert_eq!(at, n);
        }
    }

    #[test]
    fn choice_inlines_only_the_native_op() {
        let s = site(0x10_0000, 6);
        assert_eq!(choose(&s, 0x200, 0x200, Some(&[0xfa])), Replacement::Inline(&[0xfa]));
        assert_eq!(choose(&s, 0x300, 0x200, Some(&[0xfa])), Replacement::Call(0x300));
        assert_eq!(choose(&s, 0x200, 0x200, None), Replacement::Call(0x200));
        assert_eq!(choose(&s, 0x200, 0x200, Some(&[0x90; 7])), Replacement::Call(0x200));
    }
}

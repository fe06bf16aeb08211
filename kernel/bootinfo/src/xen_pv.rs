//! `struct start_info`, the hand-over of a 64-bit Xen PV guest (Xen `xen.h`). RSI holds
//! its virtual address at the PV entry; with `XEN_ELFNOTE_VIRT_BASE` 0 that is also its
//! pseudo-physical address.

use crate::memmap::{MemoryMap, Region, RegionKind};
use crate::{PhysMemory, Unreadable, le_u32, le_u64};

/// The magic a 64-bit PV guest's start info begins with (NUL-padded to 32 bytes). Xen
/// appends "p" when the image declares PAE mode, as ours does.
pub const MAGIC: &[u8] = b"xen-3.0-x86_64";
/// The command line is an inline, NUL-terminated array of this many bytes.
pub const CMDLINE_LEN: usize = 1024;
const PAGE: u64 = 4096;
/// More pages than this (4 PiB) is not a real domain.
const MAX_PAGES: u64 = 1 << 40;

/// `SIF_INITDOMAIN`: this is dom0 (and may use Xen's console).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MOD_START_PFN`: `mod_start` is a page frame number, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

/// The parsed start info.
#[derive(Debug, Clone)]
pub struct StartInfo {
    pub addr: u64,
    /// Pages given to the domain; pseudo-physical memory is `[0, nr_pages * 4096)`.
    pub nr_pages: u64,
    /// Machine address of the `shared_info` page.
    pub shared_info: u64,
    pub flags: u32,
    /// Machine frame and event channel of the console ring (domU only; 0 for dom0, whose
    /// start info holds VGA facts there instead).
    pub console_mfn: u64,
    pub console_evtchn: u32,
    /// The xenstore ring's machine frame and event channel (domU; 0 for none).
    pub store_mfn: u64,
    pub store_evtchn: u32,
    /// Virtual address of the boot L4 and how many page-table frames Xen built.
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    /// Virtual address of the p2m list (`nr_pages` machine frame numbers).
    pub mfn_list: u64,
    /// The boot module (initrd), as a virtual address, or none.
    pub module: Option<(u64, u64)>,
    cmdline: [u8; CMDLINE_LEN],
}

/// Why a start info cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartInfoError {
    Unreadable(Unreadable),
    /// The first bytes, as found (printable ASCII kept, the rest shown as `?`).
    BadMagic([u8; 16]),
    /// A field that does not fit the domain's memory.
    Inconsistent(&'static str),
    /// A range whose end is past the end of the address space (the values as given).
    Wraps {
        what: &'static str,
        start: u64,
        len: u64,
    },
}

impl From<Unreadable> for StartInfoError {
    fn from(e: Unreadable) -> Self {
        Self::Unreadable(e)
    }
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "start info unreadable: {e}"),
            Self::BadMagic(found) => {
                let found = core::str::from_utf8(found).unwrap_or("?").trim_end_matches('\0');
                write!(
                    f,
                    "start info magic is {found:?}, expected \"xen-3.0-x86_64\": not a 64-bit Xen PV boot?"
                )
            }
            Self::Inconsistent(why) => write!(f, "start info is inconsistent: {why}"),
            Self::Wraps { what, start, len } => write!(
                f,
                "start info is inconsistent: {what} ({start:#x}, {len:#x}) runs past the end of the address space"
            ),
        }
    }
}

/// The start info's bytes up to the end of its command line.
const PARSED_LEN: usize = 128 + CMDLINE_LEN;

impl StartInfo {
    /// Parses the start info at `addr` (RSI at the PV entry).
    ///
    /// Ranges are checked before use: one that runs past the end of the address space
    /// or outside the domain's memory is an error, never a wrapped value.
    pub fn parse(mem: &impl PhysMemory, addr: u64) -> Result<Self, StartInfoError> {
        let mut magic = [0u8; 32];
        mem.read(addr, &mut magic)?;
        let len = magic.iter().position(|&b| b == 0).unwrap_or(magic.len());
        let found = &magic[..len];
        if found != MAGIC && found.strip_suffix(b"p") != Some(MAGIC) {
            let mut shown = [0u8; 16];
            for (s, &b) in shown.iter_mut().zip(&magic) {
                *s = if b == 0 || b.is_ascii_graphic() || b == b' ' { b } else { b'?' };
            }
            return Err(StartInfoError::BadMagic(shown));
        }
        let mut raw = [0u8; PARSED_LEN];
        mem.read(addr, &mut raw)?;
        let mut cmdline = [0u8; CMDLINE_LEN];
        cmdline.copy_from_slice(&raw[128..]);
        let flags = le_u32(&raw, 48);
        let dom0 = flags & SIF_INITDOMAIN != 0;
        let (mod_start, mod_len) = (le_u64(&raw, 112), le_u64(&raw, 120));
        let module = match (mod_start, mod_len) {
            (_, 0) | (0, _) => None,
            (pfn, len) if flags & SIF_MOD_START_PFN != 0 => {
                let start = pfn.checked_mul(PAGE).ok_or(StartInfoError::Wraps {
                    what: "the boot module's first page (mod_start, a frame number)",
                    start: pfn,
                    len: PAGE,
                })?;
                Some((start, len))
            }
            (start, len) => Some((start, len)),
        };
        let info = StartInfo {
            addr,
            nr_pages: le_u64(&raw, 32),
            shared_info: le_u64(&raw, 40),
            flags,
            console_mfn: if dom0 { 0 } else { le_u64(&raw, 72) },
            console_evtchn: if dom0 { 0 } else { le_u32(&raw, 80) },
            store_mfn: le_u64(&raw, 56),
            store_evtchn: le_u32(&raw, 64),
            pt_base: le_u64(&raw, 88),
            nr_pt_frames: le_u64(&raw, 96),
            mfn_list: le_u64(&raw, 104),
            module,
            cmdline,
        };
        if info.nr_pages == 0 || info.nr_pages > MAX_PAGES {
            return Err(StartInfoError::Inconsistent("nr_pages is 0 or absurd"));
        }
        let ram_end = info.ram_end();
        // The page tables are followed by one page of boot stack.
        let bootstrap_len = info.nr_pt_frames.checked_add(1).and_then(|frames| frames.checked_mul(PAGE));
        let bootstrap_end =
            bootstrap_len.and_then(|len| info.pt_base.checked_add(len)).ok_or(StartInfoError::Wraps {
                what: "the boot page tables and stack (pt_base, nr_pt_frames + 1 pages)",
                start: info.pt_base,
                len: info.nr_pt_frames,
            })?;
        if info.nr_pt_frames == 0 || bootstrap_end > ram_end {
            return Err(StartInfoError::Inconsistent("the boot page tables lie outside the domain's memory"));
        }
        let p2m_len = info.nr_pages * 8; // nr_pages is at most 2^40
        let p2m_end = info.mfn_list.checked_add(p2m_len).ok_or(StartInfoError::Wraps {
            what: "the p2m list (mfn_list, nr_pages * 8 bytes)",
            start: info.mfn_list,
            len: p2m_len,
        })?;
        if info.mfn_list == 0 || p2m_end > ram_end {
            return Err(StartInfoError::Inconsistent("the p2m list lies outside the domain's memory"));
        }
        if let Some((start, len)) = info.module {
            let end = start.checked_add(len).ok_or(StartInfoError::Wraps {
                what: "the boot module (mod_start, mod_len)",
                start,
                len,
            })?;
            if end > ram_end {
                return Err(StartInfoError::Inconsistent("the boot module lies outside the domain's memory"));
            }
        }
        Ok(info)
    }

    /// The end of pseudo-physical memory.
    pub fn ram_end(&self) -> u64 {
        // Saturating only for a hand-edited value: `parse` bounds nr_pages.
        self.nr_pages.saturating_mul(PAGE)
    }

    /// The end of what Xen's domain builder placed (image, module, p2m list, start info,
    /// boot page tables, and last the one-page boot stack): RAM from here on is free.
    /// [`parse`](Self::parse) checked that this lies inside the domain's memory.
    pub fn bootstrap_end(&self) -> u64 {
        self.pt_base.saturating_add(self.nr_pt_frames.saturating_add(1).saturating_mul(PAGE))
    }

    /// The memory map: all pseudo-physical memory is RAM.
    pub fn memmap(&self) -> MemoryMap {
        let mut map = MemoryMap::new();
        // One entry always fits.
        let _ = map.push(Region { start: 0, len: self.ram_end(), kind: RegionKind::Ram });
        map
    }

    /// The command line, up to its NUL.
    pub fn cmdline(&self) -> Result<&str, crate::pvh::CmdlineError> {
        let len = self.cmdline.iter().position(|&b| b == 0).ok_or(crate::pvh::CmdlineError::TooLong)?;
        core::str::from_utf8(&self.cmdline[..len])
            .map_err(|e| crate::pvh::CmdlineError::NotUtf8 { valid_up_to: e.valid_up_to() })
    }

    pub fn is_dom0(&self) -> bool {
        self.flags & SIF_INITDOMAIN != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testmem::TestMemory;
    extern crate std;
    use std::vec::Vec;

    const AT: u64 = 0x40_0000;

    /// A start info as Xen 4.17 builds it for a 64 MiB dom0 whose image ends at 4 MiB.
    fn xen_like(magic: &[u8], cmdline: &[u8]) -> Vec<u8> {
        let mut s = std::vec![0u8; 1168];
        s[..magic.len()].copy_from_slice(magic);
        let mut put = |off: usize, v: u64| s[off..off + 8].copy_from_slice(&v.to_le_bytes());
        put(32, 16384); // nr_pages: 64 MiB
        put(40, 0x7ff_f000); // shared_info (machine address)
        put(48, u64::from(SIF_INITDOMAIN | 1));
        put(88, AT + 0x1000); // pt_base
        put(96, 6); // nr_pt_frames
        put(104, 0x3e_0000); // mfn_list
        s[128..128 + cmdline.len()].copy_from_slice(cmdline);
        s
    }

    fn mem(bytes: Vec<u8>) -> TestMemory {
        let mut m = TestMemory::new();
        m.put(AT, &bytes);
        m
    }

    #[test]
    fn parses_a_dom0_start_info() {
        let info =
            StartInfo::parse(&mem(xen_like(b"xen-3.0-x86_64p", b"selftest=sleep log=debug")), AT).unwrap();
        assert_eq!(info.nr_pages, 16384);
        assert_eq!(info.ram_end(), 64 << 20);
        assert_eq!(info.shared_info, 0x7ff_f000);
        assert!(info.is_dom0());
        assert_eq!(info.module, None);
        assert_eq!((info.console_mfn, info.console_evtchn), (0, 0), "dom0 has no console ring");
        assert_eq!(info.cmdline(), Ok("selftest=sleep log=debug"));
        // Start info page, six table frames, then the stack page.
        assert_eq!(info.bootstrap_end(), AT + 0x8000);
        assert_eq!(info.memmap().ram_bytes(), 64 << 20);
        // Without PAE mode declared, the magic has no "p".
        assert!(StartInfo::parse(&mem(xen_like(MAGIC, b"")), AT).is_ok());
    }

    #[test]
    fn a_domu_has_console_and_xenstore_channels() {
        let mut s = xen_like(MAGIC, b"");
        s[48..52].copy_from_slice(&0u32.to_le_bytes());
        s[56..64].copy_from_slice(&0x12346u64.to_le_bytes()); // store mfn
        s[64..68].copy_from_slice(&1u32.to_le_bytes()); // store_evtchn
        s[72..80].copy_from_slice(&0x12345u64.to_le_bytes()); // console mfn
        s[80..84].copy_from_slice(&2u32.to_le_bytes()); // console evtchn
        let info = StartInfo::parse(&mem(s), AT).unwrap();
        assert!(!info.is_dom0());
        assert_eq!((info.console_mfn, info.console_evtchn, info.store_evtchn), (0x12345, 2, 1));
        assert_eq!(info.store_mfn, 0x12346);
    }

    #[test]
    fn refuses_a_wrong_magic() {
        assert!(StartInfo::parse(&mem(xen_like(b"xen-3.0-x86_64pp", b"")), AT).is_err());
        let err = StartInfo::parse(&mem(xen_like(b"xen-3.0-x86_32p", b"")), AT).unwrap_err();
        assert!(matches!(err, StartInfoError::BadMagic(_)));
        let text = std::format!("{err}");
        assert!(text.contains("\"xen-3.0-x86_32p\""), "{text}");
        // An HVM start info (PVH) is not a PV one either.
        let err = StartInfo::parse(&mem(xen_like(&0x336e_c578u32.to_le_bytes(), b"")), AT).unwrap_err();
        assert!(std::format!("{err}").contains("expected \"xen-3.0-x86_64\""));
    }

    #[test]
    fn refuses_fields_outside_memory() {
        let mut s = xen_like(MAGIC, b"");
        s[104..112].copy_from_slice(&((64u64 << 20) - 4096).to_le_bytes()); // p2m list past the end
        let err = StartInfo::parse(&mem(s), AT).unwrap_err();
        assert_eq!(err, StartInfoError::Inconsistent("the p2m list lies outside the domain's memory"));
        let mut s = xen_like(MAGIC, b"");
        s[32..40].copy_from_slice(&0u64.to_le_bytes());
        assert!(StartInfo::parse(&mem(s), AT).is_err());
    }

    #[test]
    fn a_module_frame_number_that_wraps_is_refused() {
        let mut s = xen_like(MAGIC, b"");
        s[48..52].copy_from_slice(&(SIF_MOD_START_PFN | SIF_INITDOMAIN).to_le_bytes());
        // 0x10_0000_0000_0001 pages * 4096 = 2^64 + 4096: without a check, the module
        // would be taken to start at 0x1000.
        s[112..120].copy_from_slice(&0x10_0000_0000_0001u64.to_le_bytes());
        s[120..128].copy_from_slice(&0x1000u64.to_le_bytes());
        let err = StartInfo::parse(&mem(s), AT).unwrap_err();
        assert!(matches!(err, StartInfoError::Wraps { start: 0x10_0000_0000_0001, .. }), "{err:?}");
        let text = std::format!("{err}");
        assert!(text.contains("mod_start") && text.contains("past the end of the address space"), "{text}");
    }

    #[test]
    fn a_module_range_that_wraps_is_refused() {
        let mut s = xen_like(MAGIC, b"");
        s[112..120].copy_from_slice(&0x50_0000u64.to_le_bytes());
        s[120..128].copy_from_slice(&(u64::MAX - 0x1000).to_le_bytes());
        let err = StartInfo::parse(&mem(s), AT).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::Wraps {
                what: "the boot module (mod_start, mod_len)",
                start: 0x50_0000,
                len: u64::MAX - 0x1000
            }
        );
    }

    #[test]
    fn a_page_table_frame_count_that_wraps_is_refused() {
        for frames in [u64::MAX, u64::MAX / 4096, u64::MAX / 4096 - 0x400] {
            let mut s = xen_like(MAGIC, b"");
            s[96..104].copy_from_slice(&frames.to_le_bytes());
            let err = StartInfo::parse(&mem(s), AT).unwrap_err();
            assert!(
                matches!(err, StartInfoError::Wraps { len, .. } if len == frames),
                "{frames:#x}: {err:?}"
            );
            assert!(std::format!("{err}").contains("boot page tables"), "{err}");
        }
    }

    #[test]
    fn a_start_info_at_the_top_of_the_address_space_is_unreadable() {
        let at = u64::MAX - 1151;
        let mut m = TestMemory::new();
        m.put(at, &xen_like(MAGIC, b"")[..1152]);
        m.put(0, &[0; 64]);
        // Its last byte is the address space's last byte: read like any other.
        assert_eq!(StartInfo::parse(&m, at).unwrap().nr_pages, 16384);
        let mut m = TestMemory::new();
        m.put(at + 8, &xen_like(MAGIC, b"")[..1144]);
        assert!(matches!(StartInfo::parse(&m, at + 8), Err(StartInfoError::Unreadable(_))));
    }

    #[test]
    fn module_as_address_or_frame_number() {
        let mut s = xen_like(MAGIC, b"");
        s[112..120].copy_from_slice(&0x50_0000u64.to_le_bytes());
        s[120..128].copy_from_slice(&0x1234u64.to_le_bytes());
        assert_eq!(StartInfo::parse(&mem(s.clone()), AT).unwrap().module, Some((0x50_0000, 0x1234)));
        s[112..120].copy_from_slice(&0x500u64.to_le_bytes());
        s[48..52].copy_from_slice(&(SIF_MOD_START_PFN | SIF_INITDOMAIN).to_le_bytes());
        assert_eq!(StartInfo::parse(&mem(s), AT).unwrap().module, Some((0x50_0000, 0x1234)));
    }

    #[test]
    fn command_line_must_end_and_be_utf8() {
        let info = StartInfo::parse(&mem(xen_like(MAGIC, &[b'a'; CMDLINE_LEN])), AT).unwrap();
        assert_eq!(info.cmdline(), Err(crate::pvh::CmdlineError::TooLong));
        let info = StartInfo::parse(&mem(xen_like(MAGIC, b"ip=\xff")), AT).unwrap();
        assert_eq!(info.cmdline(), Err(crate::pvh::CmdlineError::NotUtf8 { valid_up_to: 3 }));
    }
}

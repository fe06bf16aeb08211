//! `struct hvm_start_info`, the PVH boot ABI's hand-over (Xen `start_info.h`).

use crate::memmap::{MemoryMap, Region, RegionKind};
use crate::{PhysMemory, Unreadable, le_u32, le_u64, offset};

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const MAGIC: u32 = 0x336e_c578;
/// The longest command line the kernel accepts, NUL excluded.
pub const CMDLINE_MAX: usize = 4096;
/// Modules beyond this many are refused, not ignored.
pub const MODULES_MAX: usize = 8;

/// A module (e.g. an initrd) the loader placed in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Module {
    pub start: u64,
    pub len: u64,
    pub cmdline_addr: u64,
}

/// The parsed start info.
#[derive(Debug, Clone)]
pub struct StartInfo {
    pub addr: u64,
    pub version: u32,
    pub flags: u32,
    /// Guest-physical address of the NUL-terminated command line, if any.
    pub cmdline_addr: Option<u64>,
    pub rsdp_addr: Option<u64>,
    pub memmap: MemoryMap,
    /// Where the memory-map array itself lies, so it can be kept out of the allocator.
    pub memmap_addr: u64,
    modules: [Module; MODULES_MAX],
    nr_modules: usize,
}

/// Why a start info cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartInfoError {
    Unreadable(Unreadable),
    BadMagic(u32),
    TooManyMemmapEntries(u32),
    TooManyModules(u32),
    /// A memory-map entry whose end (`start + len`) is past the end of the address space.
    MemmapEntryWraps {
        index: u32,
        start: u64,
        len: u64,
    },
    /// A boot module whose end (`start + len`) is past the end of the address space.
    ModuleWraps {
        index: usize,
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
            Self::BadMagic(m) => {
                write!(f, "start info magic is {m:#010x}, expected {MAGIC:#010x}: not booted through PVH?")
            }
            Self::TooManyMemmapEntries(n) => {
                write!(f, "memory map has {n} entries, at most {} are supported", MemoryMap::CAPACITY)
            }
            Self::TooManyModules(n) => {
                write!(f, "{n} boot modules, at most {MODULES_MAX} are supported")
            }
            Self::MemmapEntryWraps { index, start, len } => write!(
                f,
                "memory map entry {index} (start {start:#x}, length {len:#x}) runs past the end of the address space"
            ),
            Self::ModuleWraps { index, start, len } => write!(
                f,
                "boot module {index} (start {start:#x}, length {len:#x}) runs past the end of the address space"
            ),
        }
    }
}

const ENTRY_SIZE: u64 = 24;
const MODULE_SIZE: u64 = 32;
/// The version 0 structure; version 1 adds the memory map's address and entry count.
const V0_LEN: usize = 40;
const V1_LEN: usize = 56;

impl StartInfo {
    /// Parses the start info at guest-physical `addr` (the value of EBX at the PVH entry).
    ///
    /// Every address and range is built with checked arithmetic: an entry, module or
    /// structure that would run past the end of the address space is an error.
    pub fn parse(mem: &impl PhysMemory, addr: u64) -> Result<Self, StartInfoError> {
        let magic = mem.read_u32(addr)?;
        if magic != MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        let mut fields = [0u8; V1_LEN];
        mem.read(addr, &mut fields[..V0_LEN])?;
        let version = le_u32(&fields, 4);
        if version >= 1 {
            mem.read(addr, &mut fields)?;
        }
        let flags = le_u32(&fields, 8);
        let nr_modules = le_u32(&fields, 12);
        let modlist_addr = le_u64(&fields, 16);
        let cmdline_addr = le_u64(&fields, 24);
        let rsdp_addr = le_u64(&fields, 32);
        // Version 0 has no memory map, and a v1 map may be empty (Xen 4.17's PVH dom0
        // gets version 0): then `memmap` stays empty and the kernel asks the hypervisor.
        let (memmap_addr, entries) =
            if version >= 1 { (le_u64(&fields, 40), le_u32(&fields, 48)) } else { (0, 0) };
        if entries as usize > MemoryMap::CAPACITY {
            return Err(StartInfoError::TooManyMemmapEntries(entries));
        }
        if nr_modules as usize > MODULES_MAX {
            return Err(StartInfoError::TooManyModules(nr_modules));
        }
        let info_len = if version >= 1 { V1_LEN } else { V0_LEN };
        // The kernel reserves these ranges by their ends, which must exist.
        offset(addr, info_len as u64)?;
        offset(memmap_addr, u64::from(entries) * ENTRY_SIZE)?;
        let mut memmap = MemoryMap::new();
        for index in 0..entries {
            let mut entry = [0u8; ENTRY_SIZE as usize];
            mem.read(offset(memmap_addr, u64::from(index) * ENTRY_SIZE)?, &mut entry)?;
            let (start, len) = (le_u64(&entry, 0), le_u64(&entry, 8));
            if start.checked_add(len).is_none() {
                return Err(StartInfoError::MemmapEntryWraps { index, start, len });
            }
            // Capacity was checked above.
            let _ = memmap.push(Region { start, len, kind: RegionKind::from_raw(le_u32(&entry, 16)) });
        }
        let mut modules = [Module::default(); MODULES_MAX];
        for (index, m) in modules.iter_mut().enumerate().take(nr_modules as usize) {
            // start, len, cmdline_addr; the entry's last 8 bytes are reserved.
            let mut entry = [0u8; 24];
            mem.read(offset(modlist_addr, index as u64 * MODULE_SIZE)?, &mut entry)?;
            let (start, len) = (le_u64(&entry, 0), le_u64(&entry, 8));
            if start.checked_add(len).is_none() {
                return Err(StartInfoError::ModuleWraps { index, start, len });
            }
            *m = Module { start, len, cmdline_addr: le_u64(&entry, 16) };
        }
        Ok(StartInfo {
            addr,
            version,
            flags,
            cmdline_addr: (cmdline_addr != 0).then_some(cmdline_addr),
            rsdp_addr: (rsdp_addr != 0).then_some(rsdp_addr),
            memmap,
            memmap_addr,
            modules,
            nr_modules: nr_modules as usize,
        })
    }

    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.nr_modules]
    }

    /// The size of the start-info structure this version defines.
    pub fn struct_len(&self) -> u64 {
        if self.version >= 1 { V1_LEN as u64 } else { V0_LEN as u64 }
    }

    pub fn memmap_len(&self) -> u64 {
        self.memmap.regions().len() as u64 * ENTRY_SIZE
    }
}

/// Why the command line cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError {
    Unreadable(Unreadable),
    /// No NUL within [`CMDLINE_MAX`] bytes.
    TooLong,
    /// Not UTF-8; `valid_up_to` bytes were fine.
    NotUtf8 {
        valid_up_to: usize,
    },
}

impl core::fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "command line unreadable: {e}"),
            Self::TooLong => write!(f, "command line is longer than {CMDLINE_MAX} bytes"),
            Self::NotUtf8 { valid_up_to } => {
                write!(f, "command line is not UTF-8 (invalid byte at offset {valid_up_to})")
            }
        }
    }
}

/// Copies the NUL-terminated command line at `addr` into `buf` and checks it is UTF-8.
pub fn read_cmdline<'b>(
    mem: &impl PhysMemory,
    addr: u64,
    buf: &'b mut [u8; CMDLINE_MAX],
) -> Result<&'b str, CmdlineError> {
    let mut len = 0;
    loop {
        let byte =
            offset(addr, len as u64).and_then(|at| mem.read_u8(at)).map_err(CmdlineError::Unreadable)?;
        if byte == 0 {
            break;
        }
        if len == CMDLINE_MAX {
            return Err(CmdlineError::TooLong);
        }
        buf[len] = byte;
        len += 1;
    }
    core::str::from_utf8(&buf[..len]).map_err(|e| CmdlineError::NotUtf8 { valid_up_to: e.valid_up_to() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testmem::TestMemory;
    extern crate std;
    use std::vec::Vec;

    fn start_info(version: u32, memmap_addr: u64, entries: u32) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&MAGIC.to_le_bytes());
        s.extend_from_slice(&version.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes()); // flags
        s.extend_from_slice(&1u32.to_le_bytes()); // nr_modules
        s.extend_from_slice(&0x7000u64.to_le_bytes()); // modlist
        s.extend_from_slice(&0x6000u64.to_le_bytes()); // cmdline
        s.extend_from_slice(&0xf5a00u64.to_le_bytes()); // rsdp
        s.extend_from_slice(&memmap_addr.to_le_bytes());
        s.extend_from_slice(&entries.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
        s
    }

    fn entry(start: u64, len: u64, kind: u32) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&start.to_le_bytes());
        e.extend_from_slice(&len.to_le_bytes());
        e.extend_from_slice(&kind.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e
    }

    fn qemu_like() -> TestMemory {
        let mut mem = TestMemory::new();
        mem.put(0x5000, &start_info(1, 0x5100, 3));
        let mut map = entry(0, 0x9fc00, 1);
        map.extend(entry(0xf0000, 0x10000, 2));
        map.extend(entry(0x100000, 0x7f00000, 1));
        mem.put(0x5100, &map);
        let mut module = Vec::new();
        for v in [0x200_0000u64, 0x1234, 0, 0] {
            module.extend_from_slice(&v.to_le_bytes());
        }
        mem.put(0x7000, &module);
        mem
    }

    #[test]
    fn parses_qemu_like_start_info() {
        let info = StartInfo::parse(&qemu_like(), 0x5000).unwrap();
        assert_eq!(info.version, 1);
        assert_eq!(info.cmdline_addr, Some(0x6000));
        assert_eq!(info.rsdp_addr, Some(0xf5a00));
        assert_eq!(info.memmap.regions().len(), 3);
        assert_eq!(info.memmap.ram_bytes(), 0x9fc00 + 0x7f00000);
        assert_eq!(info.modules(), &[Module { start: 0x200_0000, len: 0x1234, cmdline_addr: 0 }]);
        assert_eq!(info.struct_len(), 56);
        assert_eq!(info.memmap_len(), 72);
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut mem = qemu_like();
        mem.put(0x8000, &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(StartInfo::parse(&mem, 0x8000).unwrap_err(), StartInfoError::BadMagic(0x1234_5678));
    }

    #[test]
    fn missing_start_info_is_unreadable() {
        let err = StartInfo::parse(&TestMemory::new(), 0).unwrap_err();
        assert!(matches!(err, StartInfoError::Unreadable(_)));
    }

    #[test]
    fn empty_memory_map_is_left_empty() {
        let mut mem = TestMemory::new();
        mem.put(0x5000, &start_info(1, 0x5100, 0));
        mem.put(0x7000, &[0u8; 32]);
        let info = StartInfo::parse(&mem, 0x5000).unwrap();
        assert!(info.memmap.is_empty());
        assert_eq!(info.memmap_len(), 0);
    }

    #[test]
    fn version_zero_has_no_memory_map() {
        let mut mem = TestMemory::new();
        mem.put(0x5000, &start_info(0, 0x5100, 3));
        mem.put(0x7000, &[0u8; 32]);
        let info = StartInfo::parse(&mem, 0x5000).unwrap();
        assert!(info.memmap.is_empty());
        assert_eq!(info.struct_len(), 40);
    }

    #[test]
    fn oversized_memory_map_is_refused() {
        let mut mem = TestMemory::new();
        mem.put(0x5000, &start_info(1, 0x5100, 100_000));
        assert_eq!(
            StartInfo::parse(&mem, 0x5000).unwrap_err(),
            StartInfoError::TooManyMemmapEntries(100_000)
        );
    }

    #[test]
    fn truncated_memory_map_is_unreadable() {
        let mut mem = TestMemory::new();
        mem.put(0x5000, &start_info(1, 0x5100, 2));
        mem.put(0x5100, &entry(0, 0x9fc00, 1));
        assert!(matches!(StartInfo::parse(&mem, 0x5000), Err(StartInfoError::Unreadable(_))));
    }

    #[test]
    fn a_memory_map_entry_that_wraps_is_refused() {
        let mut mem = TestMemory::new();
        mem.put(0x5000, &start_info(1, 0x5100, 2));
        let mut map = entry(0, 0x9fc00, 1);
        map.extend(entry(0xffff_ffff_ffff_f000, 0x2000, 1));
        mem.put(0x5100, &map);
        mem.put(0x7000, &[0u8; 32]);
        let err = StartInfo::parse(&mem, 0x5000).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::MemmapEntryWraps { index: 1, start: 0xffff_ffff_ffff_f000, len: 0x2000 }
        );
        let text = std::format!("{err}");
        assert!(
            text.contains("memory map entry 1") && text.contains("past the end of the address space"),
            "{text}"
        );
    }

    #[test]
    fn an_entry_ending_exactly_at_the_top_is_refused_too() {
        // Its end, 2^64, has no u64 representation for the allocator to work with.
        let mut mem = TestMemory::new();
        mem.put(0x5000, &start_info(1, 0x5100, 1));
        mem.put(0x5100, &entry(0xffff_ffff_0000_0000, 0x1_0000_0000, 2));
        mem.put(0x7000, &[0u8; 32]);
        assert!(matches!(
            StartInfo::parse(&mem, 0x5000),
            Err(StartInfoError::MemmapEntryWraps { index: 0, .. })
        ));
    }

    #[test]
    fn a_module_that_wraps_is_refused() {
        let mut mem = qemu_like();
        let mut module = Vec::new();
        for v in [u64::MAX - 0xff, 0x200, 0, 0] {
            module.extend_from_slice(&v.to_le_bytes());
        }
        mem.0.retain(|(a, _)| *a != 0x7000);
        mem.put(0x7000, &module);
        let err = StartInfo::parse(&mem, 0x5000).unwrap_err();
        assert_eq!(err, StartInfoError::ModuleWraps { index: 0, start: u64::MAX - 0xff, len: 0x200 });
        assert!(std::format!("{err}").contains("boot module 0"));
    }

    #[test]
    fn a_memory_map_array_that_wraps_is_unreadable() {
        // The array's second entry would lie at 2^64 + 8: without checked arithmetic it
        // would be read from address 8.
        let top = u64::MAX - 23 - 0xf;
        let mut mem = TestMemory::new();
        mem.put(0, &[0xaa; 64]);
        mem.put(0x5000, &start_info(1, top, 2));
        mem.put(top, &entry(0, 0x1000, 1)[..24]);
        let err = StartInfo::parse(&mem, 0x5000).unwrap_err();
        match err {
            StartInfoError::Unreadable(u) => assert_eq!(u.addr, top),
            other => panic!("expected unreadable, got {other:?}"),
        }
        assert!(std::format!("{err}").contains("past the end of the address space"), "{err}");
    }

    #[test]
    fn a_start_info_at_the_top_of_the_address_space_is_unreadable() {
        let mut mem = TestMemory::new();
        let at = u64::MAX - 39;
        mem.put(at, &start_info(1, 0x5100, 0)[..40]);
        assert!(matches!(StartInfo::parse(&mem, at), Err(StartInfoError::Unreadable(_))));
    }

    #[test]
    fn a_cmdline_running_off_the_top_is_unreadable() {
        let mut buf = [0; CMDLINE_MAX];
        let mut mem = TestMemory::new();
        // A wrapped address would find this NUL and return "abcd".
        mem.put(0, b"\0");
        mem.put(u64::MAX - 3, b"abcd");
        assert!(matches!(read_cmdline(&mem, u64::MAX - 3, &mut buf), Err(CmdlineError::Unreadable(_))));
    }

    #[test]
    fn cmdline_is_copied_and_checked() {
        let mut buf = [0; CMDLINE_MAX];
        let mut mem = TestMemory::new();
        mem.put(0x6000, b"log=debug -- a b\0");
        assert_eq!(read_cmdline(&mem, 0x6000, &mut buf), Ok("log=debug -- a b"));

        mem.put(0x9000, b"log=\xffdebug\0");
        assert_eq!(read_cmdline(&mem, 0x9000, &mut buf), Err(CmdlineError::NotUtf8 { valid_up_to: 4 }));

        let mut long = std::vec![b'a'; 64 * 1024];
        long.push(0);
        mem.put(0x10000, &long);
        assert_eq!(read_cmdline(&mem, 0x10000, &mut buf), Err(CmdlineError::TooLong));

        let mut exact = std::vec![b'x'; CMDLINE_MAX];
        exact.push(0);
        mem.put(0x30000, &exact);
        assert_eq!(read_cmdline(&mem, 0x30000, &mut buf).unwrap().len(), CMDLINE_MAX);
    }
}

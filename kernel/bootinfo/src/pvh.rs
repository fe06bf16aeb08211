//! `struct hvm_start_info`, the PVH boot ABI's hand-over (Xen `start_info.h`).

use crate::memmap::{MemoryMap, Region, RegionKind};
use crate::{PhysMemory, Unreadable};

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
        }
    }
}

const ENTRY_SIZE: u64 = 24;
const MODULE_SIZE: u64 = 32;

impl StartInfo {
    /// Parses the start info at guest-physical `addr` (the value of EBX at the PVH entry).
    pub fn parse(mem: &impl PhysMemory, addr: u64) -> Result<Self, StartInfoError> {
        let magic = mem.read_u32(addr)?;
        if magic != MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        let version = mem.read_u32(addr + 4)?;
        let flags = mem.read_u32(addr + 8)?;
        let nr_modules = mem.read_u32(addr + 12)?;
        let modlist_addr = mem.read_u64(addr + 16)?;
        let cmdline_addr = mem.read_u64(addr + 24)?;
        let rsdp_addr = mem.read_u64(addr + 32)?;
        let (memmap_addr, entries) =
            if version >= 1 { (mem.read_u64(addr + 40)?, mem.read_u32(addr + 48)?) } else { (0, 0) };
        // Version 0 has no memory map, and a v1 map may be empty (Xen 4.17's PVH dom0
        // gets version 0): then `memmap` stays empty and the kernel asks the hypervisor.
        if entries as usize > MemoryMap::CAPACITY {
            return Err(StartInfoError::TooManyMemmapEntries(entries));
        }
        if nr_modules as usize > MODULES_MAX {
            return Err(StartInfoError::TooManyModules(nr_modules));
        }
        let mut memmap = MemoryMap::new();
        for i in 0..u64::from(entries) {
            let e = memmap_addr + i * ENTRY_SIZE;
            let region = Region {
                start: mem.read_u64(e)?,
                len: mem.read_u64(e + 8)?,
                kind: RegionKind::from_raw(mem.read_u32(e + 16)?),
            };
            // Capacity was checked above.
            let _ = memmap.push(region);
        }
        let mut modules = [Module::default(); MODULES_MAX];
        for (i, m) in modules.iter_mut().enumerate().take(nr_modules as usize) {
            let e = modlist_addr + i as u64 * MODULE_SIZE;
            *m = Module {
                start: mem.read_u64(e)?,
                len: mem.read_u64(e + 8)?,
                cmdline_addr: mem.read_u64(e + 16)?,
            };
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
        if self.version >= 1 { 56 } else { 40 }
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
        let byte = mem.read_u8(addr + len as u64).map_err(CmdlineError::Unreadable)?;
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

//! The multiboot2 boot information block (GNU Multiboot2 specification, "Boot
//! information format"): what GRUB's `multiboot2` command hands the kernel in EBX.
//!
//! The block is `u32 total_size; u32 reserved` and then tags, each `u32 type; u32 size`
//! plus payload, every tag starting 8-byte aligned, the last one of type 0. Every tag
//! must lie inside `total_size`, and every field read from a tag inside that tag's
//! `size`, so a tag cannot borrow bytes from the next one.

use crate::memmap::{MemoryMap, Region, RegionKind};
use crate::pvh::{CMDLINE_MAX, MODULES_MAX, Module};
use crate::{PhysMemory, Unreadable, le_u32, le_u64, offset};

/// What the entry finds in EAX when a multiboot2 loader started it.
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
/// The multiboot2 header's magic, in the image for the loader to find.
pub const HEADER_MAGIC: u32 = 0xe852_50d6;

/// A block larger than this is refused: GRUB's are a few KiB (the EFI memory map
/// being the largest tag).
pub const TOTAL_SIZE_MAX: u32 = 1 << 20;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_LOADER_NAME: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_MMAP: u32 = 6;
const TAG_EFI64_SYSTEM_TABLE: u32 = 12;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;
const TAG_EFI_MMAP: u32 = 17;
const TAG_EFI_BOOT_SERVICES: u32 = 18;

const HEADER_LEN: u32 = 8;
/// An RSDP of revision 0 (ACPI 1.0) and the extended one of revision 2.
const RSDP_V1_LEN: u32 = 20;
const RSDP_V2_LEN: u32 = 36;

/// Where the memory map came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemmapSource {
    /// Tag 6: BIOS e820 types (GRUB converts the EFI map into it under UEFI too).
    E820,
    /// Tag 17: the EFI memory map, used when tag 6 is missing.
    Efi,
}

/// The firmware GRUB ran on, as the tags tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    /// UEFI; `boot_services_exited` is false when tag 18 says they still run.
    Uefi {
        boot_services_exited: bool,
    },
}

/// The parsed boot information.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub addr: u64,
    pub total_size: u32,
    /// Address of the NUL-terminated command line (the NUL is inside its tag).
    pub cmdline_addr: Option<u64>,
    /// Address of the NUL-terminated boot loader name (the NUL is inside its tag).
    pub loader_name_addr: Option<u64>,
    /// Address of the RSDP copy inside tag 15 or, failing that, tag 14; its checksum
    /// was verified.
    pub rsdp_addr: Option<u64>,
    pub memmap: MemoryMap,
    pub memmap_source: MemmapSource,
    pub firmware: Firmware,
    modules: [Module; MODULES_MAX],
    nr_modules: usize,
}

/// Why a boot information block cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    Unreadable(Unreadable),
    /// EAX at the entry was not [`BOOTLOADER_MAGIC`].
    BadMagic(u32),
    /// `total_size` smaller than the header and an end tag, or above [`TOTAL_SIZE_MAX`].
    BadTotalSize(u32),
    /// A tag at `offset` whose size is below 8 or that ends past `total_size`.
    TagOutOfBounds {
        offset: u32,
        tag: u32,
        size: u32,
        total_size: u32,
    },
    /// A tag too short for the fields its type has.
    TagTooShort {
        offset: u32,
        tag: u32,
        size: u32,
        needed: u32,
    },
    /// A string tag (command line, loader name, module) with no NUL inside the tag.
    UnterminatedString {
        offset: u32,
        tag: u32,
    },
    /// The tags reach `total_size` without an end tag.
    NoEndTag,
    /// Neither tag 6 nor tag 17.
    NoMemoryMap,
    /// A memory-map tag whose `entry_size` cannot hold an entry.
    BadEntrySize {
        tag: u32,
        entry_size: u32,
    },
    TooManyMemmapEntries,
    MemmapEntryWraps {
        start: u64,
        len: u64,
    },
    TooManyModules,
    /// A module whose end is before its start.
    BadModule {
        index: usize,
        start: u32,
        end: u32,
    },
    /// An RSDP copy whose signature or checksum is wrong.
    BadRsdp {
        tag: u32,
    },
    /// A command line longer than [`CMDLINE_MAX`] bytes.
    CmdlineTooLong(u32),
}

impl From<Unreadable> for BootInfoError {
    fn from(e: Unreadable) -> Self {
        Self::Unreadable(e)
    }
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "boot information unreadable: {e}"),
            Self::BadMagic(m) => write!(
                f,
                "EAX is {m:#010x}, expected the multiboot2 magic {BOOTLOADER_MAGIC:#010x}: not started by a multiboot2 loader?"
            ),
            Self::BadTotalSize(n) => {
                write!(f, "boot information claims {n} bytes; a block has 16 to {TOTAL_SIZE_MAX}")
            }
            Self::TagOutOfBounds { offset, tag, size, total_size } => write!(
                f,
                "tag of type {tag} at offset {offset} has size {size}: it runs past the block's end ({total_size} bytes) or is shorter than its own header"
            ),
            Self::TagTooShort { offset, tag, size, needed } => {
                write!(f, "tag of type {tag} at offset {offset} has {size} bytes; its fields need {needed}")
            }
            Self::UnterminatedString { offset, tag } => {
                write!(f, "the string of tag type {tag} at offset {offset} has no NUL inside the tag")
            }
            Self::NoEndTag => write!(f, "the tags reach the block's end without an end tag"),
            Self::NoMemoryMap => write!(f, "no memory map (neither the e820 tag 6 nor the EFI tag 17)"),
            Self::BadEntrySize { tag, entry_size } => {
                write!(f, "memory map tag {tag} has entries of {entry_size} bytes, too small for an entry")
            }
            Self::TooManyMemmapEntries => {
                write!(f, "memory map has more than {} entries", MemoryMap::CAPACITY)
            }
            Self::MemmapEntryWraps { start, len } => write!(
                f,
                "memory map entry (start {start:#x}, length {len:#x}) runs past the end of the address space"
            ),
            Self::TooManyModules => write!(f, "more than {MODULES_MAX} boot modules"),
            Self::BadModule { index, start, end } => {
                write!(f, "boot module {index} ends ({end:#x}) before it starts ({start:#x})")
            }
            Self::BadRsdp { tag } => {
                write!(f, "the ACPI RSDP copy in tag {tag} has a bad signature or checksum")
            }
            Self::CmdlineTooLong(n) => {
                write!(f, "command line is {n} bytes, longer than {CMDLINE_MAX}")
            }
        }
    }
}

/// One tag: its offset in the block, type and size (header included).
#[derive(Clone, Copy)]
struct Tag {
    offset: u32,
    kind: u32,
    size: u32,
    addr: u64,
}

impl Tag {
    fn need(&self, needed: u32) -> Result<(), BootInfoError> {
        if self.size < needed {
            return Err(BootInfoError::TagTooShort {
                offset: self.offset,
                tag: self.kind,
                size: self.size,
                needed,
            });
        }
        Ok(())
    }

    /// Length of the NUL-terminated string at `at` in the tag, NUL excluded; the NUL
    /// must lie inside the tag.
    fn string_len(&self, mem: &impl PhysMemory, at: u32) -> Result<u32, BootInfoError> {
        self.need(at)?;
        for i in at..self.size {
            if mem.read_u8(offset(self.addr, u64::from(i))?)? == 0 {
                return Ok(i - at);
            }
        }
        Err(BootInfoError::UnterminatedString { offset: self.offset, tag: self.kind })
    }
}

impl BootInfo {
    /// Parses the block at `addr` after checking `eax` for the loader's magic.
    pub fn parse(mem: &impl PhysMemory, eax: u32, addr: u64) -> Result<Self, BootInfoError> {
        if eax != BOOTLOADER_MAGIC {
            return Err(BootInfoError::BadMagic(eax));
        }
        let total_size = mem.read_u32(addr)?;
        if !(HEADER_LEN + 8..=TOTAL_SIZE_MAX).contains(&total_size) {
            return Err(BootInfoError::BadTotalSize(total_size));
        }
        // The kernel reserves the block by its end.
        offset(addr, u64::from(total_size))?;
        let mut info = BootInfo {
            addr,
            total_size,
            cmdline_addr: None,
            loader_name_addr: None,
            rsdp_addr: None,
            memmap: MemoryMap::new(),
            memmap_source: MemmapSource::E820,
            firmware: Firmware::Bios,
            modules: [Module::default(); MODULES_MAX],
            nr_modules: 0,
        };
        let (mut e820, mut efi_map, mut rsdp_old) = (None, None, None);
        let mut at = HEADER_LEN;
        loop {
            if total_size.saturating_sub(at) < HEADER_LEN {
                return Err(BootInfoError::NoEndTag);
            }
            let tag_addr = offset(addr, u64::from(at))?;
            let mut header = [0u8; 8];
            mem.read(tag_addr, &mut header)?;
            let tag = Tag { offset: at, kind: le_u32(&header, 0), size: le_u32(&header, 4), addr: tag_addr };
            if tag.size < HEADER_LEN || tag.size > total_size - at {
                return Err(BootInfoError::TagOutOfBounds {
                    offset: at,
                    tag: tag.kind,
                    size: tag.size,
                    total_size,
                });
            }
            match tag.kind {
                TAG_END => break,
                TAG_CMDLINE => {
                    let len = tag.string_len(mem, HEADER_LEN)?;
                    if len as usize > CMDLINE_MAX {
                        return Err(BootInfoError::CmdlineTooLong(len));
                    }
                    info.cmdline_addr = Some(tag_addr + u64::from(HEADER_LEN));
                }
                TAG_LOADER_NAME => {
                    tag.string_len(mem, HEADER_LEN)?;
                    info.loader_name_addr = Some(tag_addr + u64::from(HEADER_LEN));
                }
                TAG_MODULE => {
                    tag.need(16)?;
                    let (start, end) = (mem.read_u32(tag_addr + 8)?, mem.read_u32(tag_addr + 12)?);
                    tag.string_len(mem, 16)?;
                    let index = info.nr_modules;
                    if end < start {
                        return Err(BootInfoError::BadModule { index, start, end });
                    }
                    let slot = info.modules.get_mut(index).ok_or(BootInfoError::TooManyModules)?;
                    *slot = Module {
                        start: u64::from(start),
                        len: u64::from(end - start),
                        cmdline_addr: tag_addr + 16,
                    };
                    info.nr_modules += 1;
                }
                TAG_MMAP => {
                    tag.need(16)?;
                    e820.get_or_insert(tag);
                }
                TAG_EFI_MMAP => {
                    tag.need(16)?;
                    efi_map.get_or_insert(tag);
                }
                TAG_ACPI_OLD | TAG_ACPI_NEW => {
                    let len = if tag.kind == TAG_ACPI_NEW { RSDP_V2_LEN } else { RSDP_V1_LEN };
                    tag.need(HEADER_LEN + len)?;
                    let rsdp = tag_addr + u64::from(HEADER_LEN);
                    if !rsdp_ok(mem, rsdp, tag.kind == TAG_ACPI_NEW)? {
                        return Err(BootInfoError::BadRsdp { tag: tag.kind });
                    }
                    if tag.kind == TAG_ACPI_NEW {
                        info.rsdp_addr = Some(rsdp);
                    } else {
                        rsdp_old.get_or_insert(rsdp);
                    }
                }
                // Tag 18 may come before or after it, and wins.
                TAG_EFI64_SYSTEM_TABLE if info.firmware == Firmware::Bios => {
                    info.firmware = Firmware::Uefi { boot_services_exited: true };
                }
                TAG_EFI_BOOT_SERVICES => info.firmware = Firmware::Uefi { boot_services_exited: false },
                // Basic meminfo, boot device, framebuffer, and the rest: nothing we use.
                _ => {}
            }
            continue_after(&mut at, tag.size);
        }
        info.rsdp_addr = info.rsdp_addr.or(rsdp_old);
        if let Some(tag) = e820 {
            read_e820(mem, &tag, &mut info.memmap)?;
        } else if let Some(tag) = efi_map {
            read_efi_map(mem, &tag, &mut info.memmap)?;
            info.memmap_source = MemmapSource::Efi;
        } else {
            return Err(BootInfoError::NoMemoryMap);
        }
        Ok(info)
    }

    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.nr_modules]
    }
}

/// Moves `at` past a tag of `size` bytes, to the next 8-byte boundary. Cannot overflow:
/// the tag ends inside a block of at most [`TOTAL_SIZE_MAX`] bytes.
fn continue_after(at: &mut u32, size: u32) {
    *at = (*at + size).next_multiple_of(8);
}

/// Checks an RSDP copy: its signature, the checksum of its first 20 bytes and, for the
/// extended one, of the whole structure.
fn rsdp_ok(mem: &impl PhysMemory, rsdp: u64, extended: bool) -> Result<bool, Unreadable> {
    let mut bytes = [0u8; RSDP_V2_LEN as usize];
    let len = if extended { RSDP_V2_LEN } else { RSDP_V1_LEN } as usize;
    mem.read(rsdp, &mut bytes[..len])?;
    let sum = |b: &[u8]| b.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    Ok(&bytes[..8] == b"RSD PTR " && sum(&bytes[..20]) == 0 && (!extended || sum(&bytes[..len]) == 0))
}

/// The entries of a memory-map tag: `u32 entry_size; u32 entry_version` after the
/// header, then entries of `entry_size` bytes up to the tag's end.
fn entries(
    mem: &impl PhysMemory,
    tag: &Tag,
    min_entry: u32,
    mut each: impl FnMut(&[u8]) -> Result<(), BootInfoError>,
) -> Result<(), BootInfoError> {
    let entry_size = mem.read_u32(tag.addr + 8)?;
    if entry_size < min_entry || entry_size % 8 != 0 {
        return Err(BootInfoError::BadEntrySize { tag: tag.kind, entry_size });
    }
    let mut entry = [0u8; 48];
    let mut at = 16;
    // A partial entry at the tag's end is not read: it would reach into the next tag.
    while tag.size - at >= entry_size {
        mem.read(tag.addr + u64::from(at), &mut entry[..min_entry as usize])?;
        each(&entry[..min_entry as usize])?;
        at += entry_size;
    }
    Ok(())
}

fn push(map: &mut MemoryMap, start: u64, len: u64, kind: RegionKind) -> Result<(), BootInfoError> {
    if start.checked_add(len).is_none() {
        return Err(BootInfoError::MemmapEntryWraps { start, len });
    }
    map.push(Region { start, len, kind }).map_err(|_| BootInfoError::TooManyMemmapEntries)
}

/// Tag 6: `u64 base; u64 length; u32 type; u32 reserved` per entry, e820 types.
fn read_e820(mem: &impl PhysMemory, tag: &Tag, map: &mut MemoryMap) -> Result<(), BootInfoError> {
    entries(mem, tag, 24, |e| push(map, le_u64(e, 0), le_u64(e, 8), RegionKind::from_raw(le_u32(e, 16))))
}

/// Tag 17: EFI memory descriptors (`u32 type; u32 pad; u64 physical_start; u64
/// virtual_start; u64 pages; u64 attribute`), their types mapped to e820's. Boot
/// services memory counts as RAM: GRUB has exited them when it hands this map over.
fn read_efi_map(mem: &impl PhysMemory, tag: &Tag, map: &mut MemoryMap) -> Result<(), BootInfoError> {
    entries(mem, tag, 40, |e| {
        let pages = le_u64(e, 24);
        let len = pages
            .checked_mul(4096)
            .ok_or(BootInfoError::MemmapEntryWraps { start: le_u64(e, 8), len: pages })?;
        let kind = match le_u32(e, 0) {
            // Loader code/data, boot services code/data, conventional memory.
            1..=4 | 7 => RegionKind::Ram,
            8 => RegionKind::Unusable,
            9 => RegionKind::AcpiReclaimable,
            10 => RegionKind::AcpiNvs,
            14 => RegionKind::Persistent,
            _ => RegionKind::Reserved,
        };
        push(map, le_u64(e, 8), len, kind)
    })
}

#[cfg(test)]
mod tests;

use super::*;
use crate::testmem::TestMemory;
extern crate std;
use std::vec::Vec;

const AT: u64 = 0x10000;

/// A tag: header, payload, padding to 8 bytes (not counted in its size).
fn tag(kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&kind.to_le_bytes());
    t.extend_from_slice(&(8 + payload.len() as u32).to_le_bytes());
    t.extend_from_slice(payload);
    while t.len() % 8 != 0 {
        t.push(0);
    }
    t
}

/// A block of `tags` with the end tag appended.
fn block(tags: &[Vec<u8>]) -> Vec<u8> {
    let mut body: Vec<u8> = tags.concat();
    body.extend(tag(0, &[]));
    let mut b = Vec::new();
    b.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend(body);
    b
}

fn e820(entries: &[(u64, u64, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&24u32.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    for (start, len, kind) in entries {
        p.extend_from_slice(&start.to_le_bytes());
        p.extend_from_slice(&len.to_le_bytes());
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
    }
    tag(6, &p)
}

fn efi_map(entries: &[(u32, u64, u64)]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&48u32.to_le_bytes()); // OVMF's descriptor size: 40 + 8 spare
    p.extend_from_slice(&1u32.to_le_bytes());
    for (kind, start, pages) in entries {
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&start.to_le_bytes());
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&pages.to_le_bytes());
        p.extend_from_slice(&0xfu64.to_le_bytes());
        p.extend_from_slice(&[0xee; 8]);
    }
    tag(17, &p)
}

fn rsdp(revision: u8) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0); // checksum
    r.extend_from_slice(b"BOCHS ");
    r.push(revision);
    r.extend_from_slice(&0x7fe_0000u32.to_le_bytes());
    if revision >= 2 {
        r.extend_from_slice(&36u32.to_le_bytes());
        r.extend_from_slice(&0x7fe_1000u64.to_le_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]); // extended checksum at 32
    }
    let sum = |b: &[u8]| b.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    r[8] = 0u8.wrapping_sub(sum(&r[..20]));
    if revision >= 2 {
        r[32] = 0u8.wrapping_sub(sum(&r));
    }
    r
}

fn module(start: u32, end: u32, name: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&start.to_le_bytes());
    p.extend_from_slice(&end.to_le_bytes());
    p.extend_from_slice(name);
    p.push(0);
    tag(3, &p)
}

fn grub_bios_like() -> Vec<u8> {
    block(&[
        tag(1, b"log=debug -- port=81\0"),
        tag(2, b"GRUB 2.06\0"),
        module(0x20_0000, 0x20_1234, b"site.cpio"),
        tag(4, &[0u8; 8]), // basic meminfo: read by nobody
        e820(&[
            (0, 0x9fc00, 1),
            (0xf0000, 0x10000, 2),
            (0x10_0000, 0x7ee_0000, 1),
            (0x7fe_0000, 0x2_0000, 3),
        ]),
        tag(14, &rsdp(0)),
    ])
}

fn parse(bytes: &[u8]) -> Result<BootInfo, BootInfoError> {
    let mut mem = TestMemory::new();
    mem.put(AT, bytes);
    BootInfo::parse(&mem, BOOTLOADER_MAGIC, AT)
}

#[test]
fn reads_every_tag_of_a_bios_boot() {
    let bytes = grub_bios_like();
    let info = parse(&bytes).unwrap();
    assert_eq!(info.total_size as usize, bytes.len());
    let cmdline = info.cmdline_addr.unwrap();
    assert_eq!(cmdline, AT + 16);
    let mut buf = [0; CMDLINE_MAX];
    let mut mem = TestMemory::new();
    mem.put(AT, &bytes);
    assert_eq!(crate::pvh::read_cmdline(&mem, cmdline, &mut buf), Ok("log=debug -- port=81"));
    assert!(info.loader_name_addr.is_some());
    assert_eq!(info.modules().len(), 1);
    assert_eq!((info.modules()[0].start, info.modules()[0].len), (0x20_0000, 0x1234));
    assert_eq!(info.memmap_source, MemmapSource::E820);
    assert_eq!(info.memmap.regions().len(), 4);
    assert_eq!(info.memmap.ram_bytes(), 0x9fc00 + 0x7ee_0000);
    assert_eq!(info.memmap.regions()[3].kind, RegionKind::AcpiReclaimable);
    assert_eq!(info.firmware, Firmware::Bios);
    // The old RSDP's copy, inside its tag.
    let rsdp_at = info.rsdp_addr.unwrap();
    assert!(rsdp_at > AT && rsdp_at + 20 <= AT + bytes.len() as u64);
    let mut sig = [0; 8];
    mem.read(rsdp_at, &mut sig).unwrap();
    assert_eq!(&sig, b"RSD PTR ");
}

#[test]
fn uefi_boot_prefers_the_new_rsdp_and_reads_the_efi_map_without_an_e820_one() {
    let bytes = block(&[
        tag(12, &0x7f9e_e018u64.to_le_bytes()),
        tag(14, &rsdp(0)),
        tag(15, &rsdp(2)),
        efi_map(&[
            (7, 0x10_0000, 0x700),
            (3, 0x80_0000, 0x10),
            (9, 0x7fe_0000, 0x20),
            (0, 0, 1),
            (11, 0xffc0_0000, 0x400),
        ]),
    ]);
    let info = parse(&bytes).unwrap();
    assert_eq!(info.firmware, Firmware::Uefi { boot_services_exited: true });
    assert_eq!(info.memmap_source, MemmapSource::Efi);
    let kinds: Vec<_> = info.memmap.regions().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RegionKind::Ram,
            RegionKind::Ram,
            RegionKind::AcpiReclaimable,
            RegionKind::Reserved,
            RegionKind::Reserved
        ]
    );
    assert_eq!(info.memmap.ram_bytes(), (0x700 + 0x10) * 4096);
    let mut mem = TestMemory::new();
    mem.put(AT, &bytes);
    // Tag 15's copy: revision 2 at byte 15.
    assert_eq!(mem.read_u8(info.rsdp_addr.unwrap() + 15), Ok(2));
    assert!(info.cmdline_addr.is_none() && info.modules().is_empty());
}

#[test]
fn the_e820_map_wins_over_the_efi_one() {
    let info = parse(&block(&[efi_map(&[(7, 0, 1)]), e820(&[(0x10_0000, 0x100_0000, 1)])])).unwrap();
    assert_eq!(info.memmap_source, MemmapSource::E820);
    assert_eq!(info.memmap.ram_bytes(), 0x100_0000);
}

#[test]
fn boot_services_left_running_are_reported() {
    let info = parse(&block(&[tag(12, &[0; 8]), tag(18, &[]), e820(&[(0, 0x1000, 1)])])).unwrap();
    assert_eq!(info.firmware, Firmware::Uefi { boot_services_exited: false });
}

#[test]
fn wrong_magic_is_refused() {
    let mut mem = TestMemory::new();
    mem.put(AT, &grub_bios_like());
    assert_eq!(BootInfo::parse(&mem, 0x2bad_b002, AT).unwrap_err(), BootInfoError::BadMagic(0x2bad_b002));
}

#[test]
fn a_truncated_block_is_unreadable() {
    let bytes = grub_bios_like();
    let err = parse(&bytes[..bytes.len() - 16]).unwrap_err();
    assert!(matches!(err, BootInfoError::Unreadable(_)), "{err:?}");
    assert!(std::format!("{err}").contains("unreadable"));
}

#[test]
fn absurd_total_sizes_are_refused() {
    for size in [0u32, 8, 15, TOTAL_SIZE_MAX + 8] {
        let mut bytes = grub_bios_like();
        bytes[..4].copy_from_slice(&size.to_le_bytes());
        assert_eq!(parse(&bytes).unwrap_err(), BootInfoError::BadTotalSize(size));
    }
}

#[test]
fn a_tag_running_past_the_end_is_refused() {
    let mut bytes = grub_bios_like();
    // The command line tag (offset 8) claims 4 KiB.
    bytes[12..16].copy_from_slice(&4096u32.to_le_bytes());
    let err = parse(&bytes).unwrap_err();
    assert!(matches!(err, BootInfoError::TagOutOfBounds { offset: 8, tag: 1, size: 4096, .. }), "{err:?}");
    assert!(std::format!("{err}").contains("runs past the block's end"));
}

#[test]
fn a_tag_shorter_than_its_header_is_refused_not_looped_on() {
    let mut bytes = grub_bios_like();
    bytes[12..16].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(parse(&bytes), Err(BootInfoError::TagOutOfBounds { offset: 8, size: 0, .. })));
}

#[test]
fn a_block_without_an_end_tag_is_refused() {
    let mut bytes = grub_bios_like();
    let end = bytes.len() - 8;
    bytes[end..end + 4].copy_from_slice(&4u32.to_le_bytes()); // the end tag becomes type 4
    assert_eq!(parse(&bytes).unwrap_err(), BootInfoError::NoEndTag);
}

#[test]
fn no_memory_map_is_refused() {
    let err = parse(&block(&[tag(1, b"x\0"), tag(14, &rsdp(0))])).unwrap_err();
    assert_eq!(err, BootInfoError::NoMemoryMap);
    assert!(std::format!("{err}").contains("no memory map"));
}

#[test]
fn a_bad_rsdp_checksum_is_refused() {
    for revision in [0, 2] {
        let mut r = rsdp(revision);
        r[10] ^= 1;
        let kind = if revision == 0 { 14 } else { 15 };
        let err = parse(&block(&[e820(&[(0, 0x1000, 1)]), tag(kind, &r)])).unwrap_err();
        assert_eq!(err, BootInfoError::BadRsdp { tag: kind });
        assert!(std::format!("{err}").contains("checksum"));
    }
    // The extended checksum alone.
    let mut r = rsdp(2);
    r[30] ^= 1;
    assert!(matches!(parse(&block(&[tag(15, &r)])), Err(BootInfoError::BadRsdp { tag: 15 })));
    // A new-RSDP tag too short for the extended structure.
    assert!(matches!(parse(&block(&[tag(15, &rsdp(0))])), Err(BootInfoError::TagTooShort { tag: 15, .. })));
}

#[test]
fn a_string_that_overlaps_the_next_tag_is_refused() {
    // No NUL inside the command line tag: the next tag's zero bytes must not end it.
    let err = parse(&block(&[tag(1, b"log=debug"), e820(&[(0, 0x1000, 1)])])).unwrap_err();
    assert_eq!(err, BootInfoError::UnterminatedString { offset: 8, tag: 1 });
    let err = parse(&block(&[module(0x1000, 0x2000, b"")[..16].to_vec(), e820(&[(0, 0x1000, 1)])]));
    assert!(matches!(
        err,
        Err(BootInfoError::TagTooShort { tag: 3, .. })
            | Err(BootInfoError::UnterminatedString { tag: 3, .. })
    ));
}

#[test]
fn a_memory_map_entry_is_read_only_inside_its_tag() {
    // The tag claims one entry and half of a second; the half is not read from the
    // bytes that follow (the next tag).
    let mut map = e820(&[(0x10_0000, 0x10_0000, 1), (0x20_0000, 0x10_0000, 1)]);
    let size: usize = 8 + 8 + 24 + 12;
    map[4..8].copy_from_slice(&(size as u32).to_le_bytes());
    map.truncate(size.next_multiple_of(8));
    let info = parse(&block(&[map, tag(1, b"\0")])).unwrap();
    assert_eq!(info.memmap.regions().len(), 1);
    assert!(info.cmdline_addr.is_some());
}

#[test]
fn bad_memory_map_entries_are_refused() {
    let mut small = e820(&[(0, 0x1000, 1)]);
    small[8..12].copy_from_slice(&16u32.to_le_bytes()); // entry_size 16
    assert_eq!(parse(&block(&[small])).unwrap_err(), BootInfoError::BadEntrySize { tag: 6, entry_size: 16 });
    let err = parse(&block(&[e820(&[(u64::MAX - 0xfff, 0x2000, 1)])])).unwrap_err();
    assert!(matches!(err, BootInfoError::MemmapEntryWraps { .. }));
    let err = parse(&block(&[efi_map(&[(7, 0x1000, u64::MAX / 4096 + 1)])])).unwrap_err();
    assert!(matches!(err, BootInfoError::MemmapEntryWraps { .. }));
    let many: Vec<_> = (0..=MemoryMap::CAPACITY as u64).map(|i| (i << 20, 0x1000, 1)).collect();
    assert_eq!(parse(&block(&[e820(&many)])).unwrap_err(), BootInfoError::TooManyMemmapEntries);
}

#[test]
fn bad_modules_are_refused() {
    let map = e820(&[(0, 0x1000, 1)]);
    let err = parse(&block(&[map.clone(), module(0x3000, 0x2000, b"m")])).unwrap_err();
    assert_eq!(err, BootInfoError::BadModule { index: 0, start: 0x3000, end: 0x2000 });
    let mut tags = std::vec![map];
    tags.extend((0..=MODULES_MAX as u32).map(|i| module(i << 20, (i << 20) + 1, b"")));
    assert_eq!(parse(&block(&tags)).unwrap_err(), BootInfoError::TooManyModules);
}

#[test]
fn a_command_line_over_the_limit_is_refused() {
    let mut long = std::vec![b'a'; CMDLINE_MAX + 1];
    long.push(0);
    let err = parse(&block(&[e820(&[(0, 0x1000, 1)]), tag(1, &long)])).unwrap_err();
    assert_eq!(err, BootInfoError::CmdlineTooLong(CMDLINE_MAX as u32 + 1));
}

#[test]
fn a_block_at_the_top_of_the_address_space_is_unreadable_not_wrapped() {
    let bytes = grub_bios_like();
    let at = u64::MAX - 15;
    let mut mem = TestMemory::new();
    mem.put(0, &bytes);
    mem.put(at, &bytes[..16]);
    assert!(matches!(BootInfo::parse(&mem, BOOTLOADER_MAGIC, at), Err(BootInfoError::Unreadable(_))));
}

//! Every app image carries what lets one file boot four ways: in PT_NOTE the PVH entry
//! (PHYS32_ENTRY, which Xen PVH uses too) and the Xen PV set (guest OS, Xen version,
//! loader, virtual base, physical offset, entry, hypercall page, features, PAE mode);
//! and a multiboot2 header for GRUB in the first 32 KiB of the file.

use std::collections::BTreeMap;

use tests::build_app;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

struct Segment {
    kind: u32,
    flags: u32,
    offset: usize,
    vaddr: u64,
    paddr: u64,
    filesz: usize,
    memsz: u64,
}

fn segments(elf: &[u8]) -> Vec<Segment> {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not ELF64");
    let (phoff, phentsize, phnum) = (u64_at(elf, 32) as usize, u16_at(elf, 54) as usize, u16_at(elf, 56));
    (0..phnum as usize)
        .map(|i| {
            let p = phoff + i * phentsize;
            Segment {
                kind: u32_at(elf, p),
                flags: u32_at(elf, p + 4),
                offset: u64_at(elf, p + 8) as usize,
                vaddr: u64_at(elf, p + 16),
                paddr: u64_at(elf, p + 24),
                filesz: u64_at(elf, p + 32) as usize,
                memsz: u64_at(elf, p + 40),
            }
        })
        .collect()
}

/// The "Xen" notes of every PT_NOTE segment, by type.
fn xen_notes(elf: &[u8]) -> BTreeMap<u32, Vec<u8>> {
    let mut notes = BTreeMap::new();
    for seg in segments(elf).iter().filter(|s| s.kind == PT_NOTE) {
        let data = &elf[seg.offset..seg.offset + seg.filesz];
        let mut at = 0;
        while at + 12 <= data.len() {
            let (namesz, descsz, kind) =
                (u32_at(data, at) as usize, u32_at(data, at + 4) as usize, u32_at(data, at + 8));
            let name = &data[at + 12..at + 12 + namesz];
            let desc_at = at + 12 + namesz.next_multiple_of(4);
            let desc = data[desc_at..desc_at + descsz].to_vec();
            if name == b"Xen\0" {
                assert!(notes.insert(kind, desc).is_none(), "note {kind} appears twice");
            }
            at = desc_at + descsz.next_multiple_of(4);
        }
    }
    notes
}

fn text(desc: &[u8]) -> &str {
    std::str::from_utf8(desc).unwrap().trim_end_matches('\0')
}

fn address(desc: &[u8]) -> u64 {
    u64::from_le_bytes(desc.try_into().expect("an 8-byte address"))
}

#[test]
fn every_app_has_the_pvh_and_xen_pv_notes_and_a_multiboot2_header() {
    for app in ["hello", "httpd", "udp-echo"] {
        let elf = std::fs::read(build_app(app)).unwrap();
        let notes = xen_notes(&elf);
        let segs = segments(&elf);
        let exec = segs.iter().find(|s| s.kind == PT_LOAD && s.flags & 1 != 0).expect("a text segment");
        let in_text = |a: u64| (exec.vaddr..exec.vaddr + exec.memsz).contains(&a);
        // Virtual == physical, so the PV mapping (VIRT_BASE + paddr) matches PVH's.
        for s in segs.iter().filter(|s| s.kind == PT_LOAD) {
            assert_eq!(s.vaddr, s.paddr, "{app}: a segment linked away from its load address");
        }

        let pvh_entry = address(&notes[&18]);
        assert!(in_text(pvh_entry) && pvh_entry < 1 << 32, "{app}: PVH entry {pvh_entry:#x}");
        assert_eq!(text(&notes[&6]), "Chameleon", "{app}: GUEST_OS");
        assert_eq!(text(&notes[&5]), "xen-3.0", "{app}: XEN_VERSION");
        assert_eq!(text(&notes[&8]), "generic", "{app}: LOADER");
        assert_eq!(address(&notes[&3]), 0, "{app}: VIRT_BASE");
        assert_eq!(address(&notes[&4]), 0, "{app}: PADDR_OFFSET");
        let pv_entry = address(&notes[&1]);
        assert!(in_text(pv_entry), "{app}: PV entry {pv_entry:#x} is not in text");
        assert_ne!(pv_entry, pvh_entry, "{app}: the two entries are different code");
        let hypercall_page = address(&notes[&2]);
        assert!(
            in_text(hypercall_page) && hypercall_page.is_multiple_of(4096),
            "{app}: hypercall page {hypercall_page:#x} must be a page of text"
        );
        let features = text(&notes[&10]);
        assert!(!features.contains('!'), "{app}: requires Xen features: {features}");
        assert_eq!(text(&notes[&9]), "yes", "{app}: PAE_MODE");

        let mb2_entry = multiboot2_entry(&elf).unwrap_or_else(|e| panic!("{app}: {e}"));
        assert!(in_text(mb2_entry) && mb2_entry < 1 << 32, "{app}: multiboot2 entry {mb2_entry:#x}");
        assert!(![pvh_entry, pv_entry].contains(&mb2_entry), "{app}: multiboot2 has its own entry stub");
    }
}

/// Finds the multiboot2 header as GRUB does (magic at an 8-byte boundary in the first
/// 32 KiB, checksum, architecture i386), walks its tags, and returns the entry address
/// tag's value; an ELF image needs no address tag, and must request no tag GRUB might
/// refuse (only entry address, module alignment and end are expected).
fn multiboot2_entry(elf: &[u8]) -> Result<u64, String> {
    const MAGIC: u32 = 0xe852_50d6;
    let at = (0..32768.min(elf.len()) - 16)
        .step_by(8)
        .find(|&at| u32_at(elf, at) == MAGIC)
        .ok_or("no multiboot2 header in the first 32 KiB")?;
    let (arch, len) = (u32_at(elf, at + 4), u32_at(elf, at + 8) as usize);
    let sum = [MAGIC, arch, len as u32, u32_at(elf, at + 12)].iter().fold(0u32, |s, v| s.wrapping_add(*v));
    if arch != 0 || sum != 0 || at + len > 32768 {
        return Err(format!(
            "bad multiboot2 header: architecture {arch}, checksum sum {sum:#x}, length {len}"
        ));
    }
    let mut entry = None;
    let mut tag = at + 16;
    loop {
        let (kind, size) = (u16_at(elf, tag), u32_at(elf, tag + 4) as usize);
        match kind {
            0 => break,
            3 => entry = Some(u64::from(u32_at(elf, tag + 8))),
            6 => {}
            other => return Err(format!("unexpected multiboot2 header tag {other}")),
        }
        tag += size.next_multiple_of(8);
        if tag >= at + len {
            return Err("the header's tags run past its length".into());
        }
    }
    entry.ok_or_else(|| "no entry address tag".into())
}

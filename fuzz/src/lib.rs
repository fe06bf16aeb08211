//! What the fuzz targets share: fuzz bytes turned into guest memory (for the parsers
//! of loader memory) and into device-owned ring memory (for the virtqueue).

use std::cell::RefCell;
use std::rc::Rc;

use bootinfo::{PhysMemory, Unreadable};

/// Where a low image lies: above the real-mode area, like a loader's start info.
pub const LOW_BASE: u64 = 0x8000;

/// Guest-physical memory holding one image of fuzz bytes; nothing else is readable.
#[derive(Debug)]
pub struct GuestImage<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
}

impl<'a> GuestImage<'a> {
    /// The image at [`LOW_BASE`] when `at_top` is false, else ending at the last byte of
    /// the address space, where every `address + offset` in a parser can wrap.
    pub fn new(bytes: &'a [u8], at_top: bool) -> Self {
        let base = if at_top { 0u64.wrapping_sub(bytes.len() as u64) } else { LOW_BASE };
        GuestImage { base, bytes }
    }

    /// The start-info targets' input: a flag byte (bit 0: at the top of the address
    /// space), then the image.
    pub fn from_flagged(data: &'a [u8]) -> Self {
        let mut input = Input::new(data);
        let at_top = input.u8() & 1 == 1;
        GuestImage::new(input.rest(), at_top)
    }
}

impl PhysMemory for GuestImage<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let unreadable = Unreadable { addr, len: buf.len() };
        let start = addr.checked_sub(self.base).and_then(|o| usize::try_from(o).ok()).ok_or(unreadable)?;
        let end = start.checked_add(buf.len()).ok_or(unreadable)?;
        buf.copy_from_slice(self.bytes.get(start..end).ok_or(unreadable)?);
        Ok(())
    }
}

/// Reads fuzz input front to back; past its end every value is 0, so any input is a
/// complete program.
#[derive(Debug)]
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        let (&first, rest) = self.bytes.split_first().unwrap_or((&0, &[]));
        self.bytes = rest;
        first
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// Ring memory shared between the queue under test and the fake device; an access
/// outside it panics, since the driver must never make one.
#[derive(Debug, Clone)]
pub struct SharedRing {
    pub bytes: Rc<RefCell<Vec<u8>>>,
}

impl SharedRing {
    pub fn new(len: usize) -> Self {
        SharedRing { bytes: Rc::new(RefCell::new(vec![0; len])) }
    }
    fn read<const N: usize>(&self, offset: usize) -> [u8; N] {
        self.bytes.borrow()[offset..offset + N].try_into().expect("N bytes")
    }
    fn write(&self, offset: usize, value: &[u8]) {
        self.bytes.borrow_mut()[offset..offset + value.len()].copy_from_slice(value);
    }
}

impl drivers::dma::DmaRing for SharedRing {
    fn device_addr(&self) -> u64 {
        0x10_0000
    }
    fn read_u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes(self.read(offset))
    }
    fn write_u16(&self, offset: usize, value: u16) {
        self.write(offset, &value.to_le_bytes());
    }
    fn read_u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.read(offset))
    }
    fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }
    fn write_u64(&self, offset: usize, value: u64) {
        self.write(offset, &value.to_le_bytes());
    }
}

/// ACPI signatures whose checksums [`repair_acpi_checksums`] fixes.
const ACPI_TABLES: [&[u8; 4]; 6] = [b"RSDT", b"XSDT", b"FACP", b"DSDT", b"APIC", b"MCFG"];

/// Makes every RSDP and known table found in `image` pass its checksum, so mutations
/// of table contents reach the code behind the check instead of stopping at it.
/// Tables are fixed from the last to the first, so a table holding another one is
/// summed after the inner one changed.
pub fn repair_acpi_checksums(image: &mut [u8]) {
    for at in (0..image.len()).rev() {
        let rest = &image[at..];
        if rest.starts_with(b"RSD PTR ") && rest.len() >= 20 {
            fix_sum(&mut image[at..at + 20], 8);
        } else if rest.len() >= 36 && ACPI_TABLES.iter().any(|sig| rest.starts_with(&sig[..])) {
            let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
            if (36..=rest.len()).contains(&len) {
                fix_sum(&mut image[at..at + len], 9);
            }
        }
    }
}

fn fix_sum(bytes: &mut [u8], checksum_at: usize) {
    bytes[checksum_at] = 0;
    let sum = bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    bytes[checksum_at] = 0u8.wrapping_sub(sum);
}

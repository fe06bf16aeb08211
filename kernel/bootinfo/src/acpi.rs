//! The few ACPI facts the kernel needs to power off (S5).
//!
//! Written here rather than with the `acpi` crate: that crate's `Handler` trait asks for
//! some twenty hooks (AML, PCI, sleeping, mutexes) and its table walk needs the heap,
//! while power-off needs three values that must be read at boot, before the allocator
//! may reuse the RAM the tables sit in.

use crate::{PhysMemory, Unreadable, offset};

/// How to enter S5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOff {
    /// Fixed hardware: write `SLP_TYPx << 10 | SLP_EN` to PM1a (and PM1b) control ports.
    Pm1 { pm1a_cnt: u16, pm1b_cnt: Option<u16>, slp_typ_a: u8, slp_typ_b: u8 },
    /// Hardware-reduced ACPI (e.g. QEMU microvm): write `SLP_TYP << 2 | SLP_EN` to the
    /// FADT's sleep control register.
    SleepControl { reg: GenericAddress, slp_typ: u8 },
}

/// An ACPI generic address (only system I/O and memory spaces are used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenericAddress {
    Io(u16),
    Memory(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    Unreadable(Unreadable),
    BadRsdp,
    BadChecksum([u8; 4]),
    NoFadt,
    NoPm1Control,
    UnsupportedSleepRegister,
    /// An I/O-space sleep control register beyond port 0xffff.
    SleepPortTooHigh(u64),
    /// A window whose end is past the end of the address space (start, length).
    Wraps {
        what: &'static str,
        start: u64,
        len: u64,
    },
}

impl From<Unreadable> for AcpiError {
    fn from(e: Unreadable) -> Self {
        Self::Unreadable(e)
    }
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "ACPI table unreadable: {e}"),
            Self::BadRsdp => write!(f, "no valid RSDP"),
            Self::BadChecksum(sig) => {
                write!(f, "ACPI table {} has a bad checksum", sig.escape_ascii())
            }
            Self::NoFadt => write!(f, "no FADT"),
            Self::NoPm1Control => write!(f, "FADT names no PM1a control block"),
            Self::UnsupportedSleepRegister => write!(f, "sleep control register is not I/O or memory"),
            Self::SleepPortTooHigh(port) => {
                write!(f, "sleep control register is I/O port {port:#x}, past 0xffff")
            }
            Self::Wraps { what, start, len } => {
                write!(f, "{what} ({start:#x}, length {len:#x}) runs past the end of the address space")
            }
        }
    }
}

const HEADER_LEN: u64 = 36;
/// A table larger than this is not believed (real DSDTs are tens of KiB).
const TABLE_MAX: u32 = 1 << 20;

/// Reads at offsets from a structure's address. Addresses come from the tables
/// themselves, so one that an offset would carry past the end of the address space is
/// unreadable rather than wrapped around to low memory.
struct Fields<'m, M> {
    mem: &'m M,
    base: u64,
}

impl<'m, M: PhysMemory> Fields<'m, M> {
    fn new(mem: &'m M, base: u64) -> Self {
        Fields { mem, base }
    }
    fn bytes(&self, at: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        self.mem.read(offset(self.base, at)?, buf)
    }
    fn u8(&self, at: u64) -> Result<u8, Unreadable> {
        self.mem.read_u8(offset(self.base, at)?)
    }
    fn u16(&self, at: u64) -> Result<u16, Unreadable> {
        self.mem.read_u16(offset(self.base, at)?)
    }
    fn u32(&self, at: u64) -> Result<u32, Unreadable> {
        self.mem.read_u32(offset(self.base, at)?)
    }
    fn u64(&self, at: u64) -> Result<u64, Unreadable> {
        self.mem.read_u64(offset(self.base, at)?)
    }
}

fn checksum_ok(mem: &impl PhysMemory, addr: u64, len: u32) -> Result<bool, Unreadable> {
    let bytes = Fields::new(mem, addr);
    let mut sum = 0u8;
    let mut chunk = [0u8; 64];
    let mut done = 0u64;
    while done < u64::from(len) {
        let n = (u64::from(len) - done).min(64) as usize;
        bytes.bytes(done, &mut chunk[..n])?;
        sum = chunk[..n].iter().fold(sum, |s, b| s.wrapping_add(*b));
        done += n as u64;
    }
    Ok(sum == 0)
}

/// Reads a table header at `addr`: signature and length, after checking the checksum.
fn table(mem: &impl PhysMemory, addr: u64) -> Result<([u8; 4], u32), AcpiError> {
    let mut sig = [0; 4];
    mem.read(addr, &mut sig)?;
    let len = Fields::new(mem, addr).u32(4)?;
    if !(HEADER_LEN as u32..=TABLE_MAX).contains(&len) || !checksum_ok(mem, addr, len)? {
        return Err(AcpiError::BadChecksum(sig));
    }
    Ok((sig, len))
}

/// Finds the table with signature `want` through the RSDT or XSDT of the RSDP at `rsdp`.
pub fn find_table(mem: &impl PhysMemory, rsdp: u64, want: &[u8; 4]) -> Result<Option<(u64, u32)>, AcpiError> {
    let mut sig = [0; 8];
    mem.read(rsdp, &mut sig)?;
    if &sig != b"RSD PTR " || !checksum_ok(mem, rsdp, 20)? {
        return Err(AcpiError::BadRsdp);
    }
    let rsdp_fields = Fields::new(mem, rsdp);
    let revision = rsdp_fields.u8(15)?;
    let (root, entry_size) = if revision >= 2 && rsdp_fields.u64(24)? != 0 {
        (rsdp_fields.u64(24)?, 8)
    } else {
        (u64::from(rsdp_fields.u32(16)?), 4)
    };
    let (_, root_len) = table(mem, root)?;
    let root_entries = Fields::new(mem, root);
    let entries = (u64::from(root_len) - HEADER_LEN) / entry_size;
    for i in 0..entries {
        let at = HEADER_LEN + i * entry_size;
        let addr = if entry_size == 8 { root_entries.u64(at)? } else { u64::from(root_entries.u32(at)?) };
        let mut sig = [0; 4];
        mem.read(addr, &mut sig)?;
        if &sig == want {
            let (_, len) = table(mem, addr)?;
            return Ok(Some((addr, len)));
        }
    }
    Ok(None)
}

const FADT_DSDT: u64 = 40;
const FADT_PM1A_CNT: u64 = 64;
const FADT_PM1B_CNT: u64 = 68;
const FADT_PM_TMR_BLK: u64 = 76;
const FADT_PM_TMR_LEN: u64 = 91;
const FADT_FLAGS: u64 = 112;
const FADT_X_PM_TMR_BLK: u64 = 208;
/// FADT flag: the PM timer counts 32 bits, not 24.
const TMR_VAL_EXT: u32 = 1 << 8;
const FADT_X_DSDT: u64 = 140;
const FADT_SLEEP_CONTROL: u64 = 244;
const HW_REDUCED_ACPI: u32 = 1 << 20;
/// What QEMU's hardware-reduced platforms (microvm's GED) take for S5 when the DSDT
/// has no `_S5` object.
const HW_REDUCED_DEFAULT_S5: u8 = 5;

/// The DSDT's address from the FADT at `fadt` (`X_DSDT` when present and set).
fn dsdt_addr(mem: &impl PhysMemory, fadt: u64, fadt_len: u32) -> Result<u64, Unreadable> {
    let fields = Fields::new(mem, fadt);
    let dsdt = u64::from(fields.u32(FADT_DSDT)?);
    if u64::from(fadt_len) >= FADT_X_DSDT + 8 {
        let x_dsdt = fields.u64(FADT_X_DSDT)?;
        if x_dsdt != 0 {
            return Ok(x_dsdt);
        }
    }
    Ok(dsdt)
}

/// Works out how to power off from the ACPI tables under the RSDP at `rsdp`.
pub fn find_power_off(mem: &impl PhysMemory, rsdp: u64) -> Result<PowerOff, AcpiError> {
    let (fadt, fadt_len) = find_table(mem, rsdp, b"FACP")?.ok_or(AcpiError::NoFadt)?;
    let field_present = |off: u64, size: u64| u64::from(fadt_len) >= off + size;
    let fields = Fields::new(mem, fadt);
    let dsdt = dsdt_addr(mem, fadt, fadt_len)?;
    let s5 = match table(mem, dsdt) {
        Ok((_, len)) => find_s5(mem, dsdt, len)?,
        Err(_) => None,
    };
    let flags = if field_present(FADT_FLAGS, 4) { fields.u32(FADT_FLAGS)? } else { 0 };
    if flags & HW_REDUCED_ACPI != 0 && field_present(FADT_SLEEP_CONTROL, 12) {
        let space = fields.u8(FADT_SLEEP_CONTROL)?;
        let addr = fields.u64(FADT_SLEEP_CONTROL + 4)?;
        let reg = match space {
            0 => GenericAddress::Memory(addr),
            1 => GenericAddress::Io(u16::try_from(addr).map_err(|_| AcpiError::SleepPortTooHigh(addr))?),
            _ => return Err(AcpiError::UnsupportedSleepRegister),
        };
        let slp_typ = s5.map_or(HW_REDUCED_DEFAULT_S5, |(a, _)| a);
        return Ok(PowerOff::SleepControl { reg, slp_typ });
    }
    let pm1a = fields.u32(FADT_PM1A_CNT)?;
    let pm1b = fields.u32(FADT_PM1B_CNT)?;
    if pm1a == 0 || pm1a > 0xffff {
        return Err(AcpiError::NoPm1Control);
    }
    // Without `_S5` in the DSDT, SLP_TYP 0 is what PIIX4 and ICH9 (QEMU pc, q35) use.
    let (slp_typ_a, slp_typ_b) = s5.unwrap_or((0, 0));
    Ok(PowerOff::Pm1 {
        pm1a_cnt: pm1a as u16,
        pm1b_cnt: (pm1b != 0 && pm1b <= 0xffff).then_some(pm1b as u16),
        slp_typ_a,
        slp_typ_b,
    })
}

/// The ACPI power-management timer: a free-running 3.579545 MHz counter at an I/O port,
/// there on every ACPI platform that is not hardware-reduced, whatever the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmTimer {
    pub port: u16,
    /// 32-bit counter (else 24-bit).
    pub wide: bool,
}

/// Finds the PM timer in the FADT under the RSDP at `rsdp`: X_PM_TMR_BLK when it names
/// an I/O port, else PM_TMR_BLK (with PM_TMR_LEN 4). `None` on a hardware-reduced
/// platform or one that names no timer.
pub fn find_pm_timer(mem: &impl PhysMemory, rsdp: u64) -> Result<Option<PmTimer>, AcpiError> {
    let (fadt, fadt_len) = find_table(mem, rsdp, b"FACP")?.ok_or(AcpiError::NoFadt)?;
    let field_present = |off: u64, size: u64| u64::from(fadt_len) >= off + size;
    let fields = Fields::new(mem, fadt);
    let flags = if field_present(FADT_FLAGS, 4) { fields.u32(FADT_FLAGS)? } else { 0 };
    if flags & HW_REDUCED_ACPI != 0 {
        return Ok(None);
    }
    let wide = flags & TMR_VAL_EXT != 0;
    if field_present(FADT_X_PM_TMR_BLK, 12) && fields.u8(FADT_X_PM_TMR_BLK)? == 1 {
        let addr = fields.u64(FADT_X_PM_TMR_BLK + 4)?;
        if let Ok(port @ 1..) = u16::try_from(addr) {
            return Ok(Some(PmTimer { port, wide }));
        }
    }
    if !field_present(FADT_PM_TMR_LEN, 1) || fields.u8(FADT_PM_TMR_LEN)? != 4 {
        return Ok(None);
    }
    Ok(u16::try_from(fields.u32(FADT_PM_TMR_BLK)?)
        .ok()
        .filter(|&p| p != 0)
        .map(|port| PmTimer { port, wide }))
}

/// Scans the AML of the DSDT at `dsdt` (`len` bytes, header included) for
/// `Name(_S5, Package(){a, b, ...})` and returns `(a, b)`.
///
/// A byte scan, not an AML interpreter: `_S5` is a plain named package in every DSDT
/// this kernel targets.
fn find_s5(mem: &impl PhysMemory, dsdt: u64, len: u32) -> Result<Option<(u8, u8)>, Unreadable> {
    const NAME_OP: u8 = 0x08;
    const PACKAGE_OP: u8 = 0x12;
    let aml = Fields::new(mem, offset(dsdt, HEADER_LEN)?);
    let len = u64::from(len) - HEADER_LEN;
    let mut window = [0u8; 4];
    for i in 0..len.saturating_sub(4) {
        if i == 0 {
            aml.bytes(0, &mut window)?;
        } else {
            window.rotate_left(1);
            window[3] = aml.u8(i + 3)?;
        }
        if &window != b"_S5_" || i == 0 {
            continue;
        }
        let before = aml.u8(i - 1)?;
        let named = before == NAME_OP || (before == b'\\' && i >= 2 && aml.u8(i - 2)? == NAME_OP);
        if !named || i + 5 >= len || aml.u8(i + 4)? != PACKAGE_OP {
            continue;
        }
        // PkgLength: bits 7..6 of the lead byte count the bytes that follow it.
        let lead = aml.u8(i + 5)?;
        let mut at = i + 5 + 1 + u64::from(lead >> 6);
        at += 1; // NumElements
        let mut values = [0u8; 2];
        for v in &mut values {
            let op = aml.u8(at)?;
            (*v, at) = match op {
                0x00 => (0, at + 1),                      // ZeroOp
                0x01 => (1, at + 1),                      // OneOp
                0x0a => (aml.u8(at + 1)?, at + 2),        // BytePrefix
                0x0b => (aml.u16(at + 1)? as u8, at + 3), // WordPrefix
                0x0c => (aml.u32(at + 1)? as u8, at + 5), // DWordPrefix
                _ => return Ok(None),
            };
        }
        return Ok(Some((values[0], values[1])));
    }
    Ok(None)
}

/// A virtio-mmio device the DSDT describes (`_HID "LNRO0005"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmioDevice {
    pub base: u64,
    pub size: u64,
    pub gsi: u32,
}

/// The most virtio-mmio devices reported.
pub const MMIO_DEVICES_MAX: usize = 8;

/// Finds virtio-mmio devices in the DSDT: after each `"LNRO0005"` string, the first
/// Memory32Fixed descriptor gives the window and the first Extended Interrupt
/// descriptor the GSI. A byte scan, like `find_s5`, not an AML interpreter.
pub fn find_virtio_mmio(
    mem: &impl PhysMemory,
    rsdp: u64,
) -> Result<([MmioDevice; MMIO_DEVICES_MAX], usize), AcpiError> {
    let (fadt, fadt_len) = find_table(mem, rsdp, b"FACP")?.ok_or(AcpiError::NoFadt)?;
    let dsdt = dsdt_addr(mem, fadt, fadt_len)?;
    let (_, len) = table(mem, dsdt)?;
    let aml = Fields::new(mem, dsdt);
    // Offsets from the DSDT's start, all below its length (at most TABLE_MAX).
    let end = u64::from(len);
    let mut found = [MmioDevice::default(); MMIO_DEVICES_MAX];
    let mut count = 0;
    let mut at = HEADER_LEN;
    let mut window = [0u8; 8];
    while at + 8 <= end && count < MMIO_DEVICES_MAX {
        aml.bytes(at, &mut window)?;
        if &window != b"LNRO0005" {
            at += 1;
            continue;
        }
        let mut dev = MmioDevice::default();
        let (mut have_mem, mut have_irq) = (false, false);
        let mut p = at + 8;
        while p + 9 <= end && p < at + 256 && !(have_mem && have_irq) {
            match aml.u8(p)? {
                0x86 if !have_mem && p + 12 <= end && aml.u16(p + 1)? == 9 => {
                    dev.base = u64::from(aml.u32(p + 4)?);
                    dev.size = u64::from(aml.u32(p + 8)?);
                    have_mem = true;
                    p += 12;
                }
                0x89 if !have_irq && aml.u8(p + 4)? >= 1 => {
                    dev.gsi = aml.u32(p + 5)?;
                    have_irq = true;
                    p += 9;
                }
                _ => p += 1,
            }
        }
        if have_mem && have_irq {
            found[count] = dev;
            count += 1;
        }
        at += 8;
    }
    Ok((found, count))
}

/// The PCI Express enhanced configuration window of segment 0 (from the MCFG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecam {
    pub base: u64,
    pub first_bus: u8,
    pub last_bus: u8,
}

impl Ecam {
    /// Bytes of configuration space: 1 MiB per bus.
    pub fn window_len(&self) -> u64 {
        (u64::from(self.last_bus) - u64::from(self.first_bus) + 1) << 20
    }
}

/// The MCFG's window for PCI segment 0, if the platform has one.
pub fn find_ecam(mem: &impl PhysMemory, rsdp: u64) -> Result<Option<Ecam>, AcpiError> {
    let Some((mcfg, len)) = find_table(mem, rsdp, b"MCFG")? else { return Ok(None) };
    let entries = Fields::new(mem, mcfg);
    let mut at = HEADER_LEN + 8;
    while at + 16 <= u64::from(len) {
        let base = entries.u64(at)?;
        let segment = entries.u16(at + 8)?;
        let (first_bus, last_bus) = (entries.u8(at + 10)?, entries.u8(at + 11)?);
        if segment == 0 && base != 0 && first_bus <= last_bus {
            let ecam = Ecam { base, first_bus, last_bus };
            // The kernel addresses a function's page as base + offset.
            if base.checked_add(ecam.window_len()).is_none() {
                return Err(AcpiError::Wraps {
                    what: "the MCFG's configuration window",
                    start: base,
                    len: ecam.window_len(),
                });
            }
            return Ok(Some(ecam));
        }
        at += 16;
    }
    Ok(None)
}

/// How an ISA interrupt reaches the I/O APIC (a MADT interrupt source override).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IrqOverride {
    pub irq: u8,
    pub gsi: u32,
    pub level: bool,
    pub active_low: bool,
}

/// What the MADT says about I/O APICs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Madt {
    /// The I/O APICs, in table order (at most four): MMIO address and first GSI.
    /// microvm has two, the second for its virtio-mmio lines from GSI 24.
    pub ioapics: [Option<(u64, u32)>; 4],
    pub overrides: [Option<IrqOverride>; 16],
}

impl Madt {
    /// Where ISA/PCI-routed IRQ `irq` arrives, and how; `None` when no override names
    /// it (then the GSI is the IRQ number).
    pub fn irq_override(&self, irq: u8) -> Option<IrqOverride> {
        self.overrides.iter().flatten().find(|o| o.irq == irq).copied()
    }
}

/// Reads the MADT: the I/O APICs and the interrupt source overrides.
pub fn find_madt(mem: &impl PhysMemory, rsdp: u64) -> Result<Option<Madt>, AcpiError> {
    let Some((madt, len)) = find_table(mem, rsdp, b"APIC")? else { return Ok(None) };
    let entries = Fields::new(mem, madt);
    let mut out = Madt::default();
    let mut slots = 0;
    // Offsets from the table's start, below its length (at most TABLE_MAX).
    let mut at = HEADER_LEN + 8;
    let end = u64::from(len);
    while at + 2 <= end {
        let (kind, entry_len) = (entries.u8(at)?, u64::from(entries.u8(at + 1)?));
        if entry_len < 2 {
            break;
        }
        match kind {
            1 if entry_len >= 12 => {
                if let Some(slot) = out.ioapics.iter_mut().find(|s| s.is_none()) {
                    *slot = Some((u64::from(entries.u32(at + 4)?), entries.u32(at + 8)?));
                }
            }
            2 if entry_len >= 10 && slots < out.overrides.len() => {
                let flags = entries.u16(at + 8)?;
                out.overrides[slots] = Some(IrqOverride {
                    irq: entries.u8(at + 3)?,
                    gsi: entries.u32(at + 4)?,
                    active_low: flags & 3 == 3,
                    level: (flags >> 2) & 3 == 3,
                });
                slots += 1;
            }
            _ => {}
        }
        at += entry_len;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testmem::TestMemory;
    extern crate std;
    use std::vec::Vec;

    fn with_checksum(mut t: Vec<u8>, at: usize) -> Vec<u8> {
        t[at] = 0;
        let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        t[at] = 0u8.wrapping_sub(sum);
        t
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[1, 0]);
        t.extend_from_slice(b"CHMLN CHAMELEON");
        t.resize(36, 0);
        t.extend_from_slice(body);
        with_checksum(t, 9)
    }

    fn rsdp_v0(rsdt: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(b"RSD PTR ");
        r.push(0);
        r.extend_from_slice(b"CHMLN ");
        r.push(0);
        r.extend_from_slice(&rsdt.to_le_bytes());
        with_checksum(r, 8)
    }

    fn fadt(dsdt: u32, pm1a: u32, flags: u32, sleep_ctl: Option<(u8, u64)>) -> Vec<u8> {
        let mut body = std::vec![0u8; 276 - 36];
        body[(FADT_DSDT - 36) as usize..][..4].copy_from_slice(&dsdt.to_le_bytes());
        body[(FADT_PM1A_CNT - 36) as usize..][..4].copy_from_slice(&pm1a.to_le_bytes());
        body[(FADT_FLAGS - 36) as usize..][..4].copy_from_slice(&flags.to_le_bytes());
        if let Some((space, addr)) = sleep_ctl {
            let at = (FADT_SLEEP_CONTROL - 36) as usize;
            body[at] = space;
            body[at + 1] = 8;
            body[at + 4..at + 12].copy_from_slice(&addr.to_le_bytes());
        }
        sdt(b"FACP", &body)
    }

    fn platform(dsdt_body: &[u8], pm1a: u32, flags: u32, sleep_ctl: Option<(u8, u64)>) -> TestMemory {
        let mut mem = TestMemory::new();
        mem.put(0xf5a00, &rsdp_v0(0x10000));
        let mut rsdt_body = Vec::new();
        rsdt_body.extend_from_slice(&0x11000u32.to_le_bytes()); // some other table
        rsdt_body.extend_from_slice(&0x12000u32.to_le_bytes()); // FADT
        mem.put(0x10000, &sdt(b"RSDT", &rsdt_body));
        mem.put(0x11000, &sdt(b"APIC", &[0; 8]));
        mem.put(0x12000, &fadt(0x13000, pm1a, flags, sleep_ctl));
        mem.put(0x13000, &sdt(b"DSDT", dsdt_body));
        mem
    }

    /// `Name (\_S5, Package (0x04) { 0x05, Zero, Zero, Zero })` with junk around it.
    const S5_AML: &[u8] = &[
        0x10, 0x20, b'_', b'S', b'5', b'_', 0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x0a,
        0x05, 0x00, 0x00, 0x00, 0xa4,
    ];

    /// A revision 2 RSDP naming an XSDT (64-bit table pointers).
    fn rsdp_v2(xsdt: u64) -> Vec<u8> {
        let mut r = rsdp_v0(0);
        r[15] = 2;
        // The first 20 bytes keep their own checksum (the only one read).
        let mut r = with_checksum(r, 8);
        r.extend_from_slice(&36u32.to_le_bytes());
        r.extend_from_slice(&xsdt.to_le_bytes());
        r.extend_from_slice(&[0; 4]);
        r
    }

    /// `platform`, with its FADT naming a DSDT at `dsdt` through X_DSDT.
    fn platform_with_dsdt_at(dsdt: u64, dsdt_body: &[u8]) -> TestMemory {
        let mut mem = platform(&[], 0, HW_REDUCED_ACPI, Some((0, 0xfeb0_0204)));
        let mut facp = fadt(0, 0, HW_REDUCED_ACPI, Some((0, 0xfeb0_0204)));
        facp[FADT_X_DSDT as usize..][..8].copy_from_slice(&dsdt.to_le_bytes());
        mem.0.retain(|(a, _)| *a != 0x12000);
        mem.put(0x12000, &with_checksum(facp, 9));
        mem.put(dsdt, &sdt(b"DSDT", dsdt_body));
        mem
    }

    #[test]
    fn the_pm_timer_is_found_by_its_legacy_or_extended_block() {
        let with_timer = |flags: u32, legacy: Option<u32>, extended: Option<(u8, u64)>| {
            let mut facp = fadt(0x13000, 0x604, flags, None);
            if let Some(port) = legacy {
                facp[FADT_PM_TMR_BLK as usize..][..4].copy_from_slice(&port.to_le_bytes());
                facp[FADT_PM_TMR_LEN as usize] = 4;
            }
            if let Some((space, addr)) = extended {
                facp[FADT_X_PM_TMR_BLK as usize] = space;
                facp[FADT_X_PM_TMR_BLK as usize + 4..][..8].copy_from_slice(&addr.to_le_bytes());
            }
            let mut mem = platform(&[], 0x604, flags, None);
            mem.0.retain(|(a, _)| *a != 0x12000);
            mem.put(0x12000, &with_checksum(facp, 9));
            find_pm_timer(&mem, 0xf5a00)
        };
        // QEMU pc (PIIX4): 0x608, 24 bits; q35 (ICH9): 0x608, 32 bits, both blocks.
        assert_eq!(with_timer(0, Some(0x608), None), Ok(Some(PmTimer { port: 0x608, wide: false })));
        assert_eq!(
            with_timer(TMR_VAL_EXT, Some(0x608), Some((1, 0x608))),
            Ok(Some(PmTimer { port: 0x608, wide: true }))
        );
        // A memory-mapped extended block falls back to the legacy port.
        assert_eq!(
            with_timer(0, Some(0xb008), Some((0, 0xfed0_0000))),
            Ok(Some(PmTimer { port: 0xb008, wide: false }))
        );
        assert_eq!(with_timer(0, None, None), Ok(None));
        assert_eq!(with_timer(HW_REDUCED_ACPI, Some(0x608), None), Ok(None));
    }

    #[test]
    fn a_table_running_past_the_top_of_memory_is_unreadable() {
        // The XSDT's first 64 bytes are the address space's last; its length says 100.
        let xsdt = u64::MAX - 63;
        let mut table = sdt(b"XSDT", &[0; 28]);
        table[4..8].copy_from_slice(&100u32.to_le_bytes());
        let mut mem = TestMemory::new();
        mem.put(0, &[0; 128]);
        mem.put(0xf5a00, &rsdp_v2(xsdt));
        mem.put(xsdt, &table);
        let err = find_power_off(&mem, 0xf5a00).unwrap_err();
        assert!(matches!(err, AcpiError::Unreadable(u) if u.addr == xsdt), "{err:?}");
        assert!(std::format!("{err}").contains("past the end of the address space"), "{err}");
    }

    #[test]
    fn a_dsdt_ending_at_the_top_of_memory_is_scanned() {
        let mut aml = std::vec::Vec::new();
        aml.extend_from_slice(b"\x08_HID\x0dLNRO0005\x00");
        aml.extend_from_slice(&[0x86, 0x09, 0x00, 0x01]);
        aml.extend_from_slice(&0xfeb0_0000u32.to_le_bytes());
        aml.extend_from_slice(&0x200u32.to_le_bytes());
        aml.extend_from_slice(&[0x89, 0x06, 0x00, 0x01, 0x01]);
        aml.extend_from_slice(&16u32.to_le_bytes());
        aml.extend_from_slice(S5_AML);
        let dsdt = u64::MAX - (36 + aml.len() as u64) + 1;
        let mem = platform_with_dsdt_at(dsdt, &aml);
        let (devices, n) = find_virtio_mmio(&mem, 0xf5a00).unwrap();
        assert_eq!((n, devices[0]), (1, MmioDevice { base: 0xfeb0_0000, size: 0x200, gsi: 16 }));
        assert_eq!(
            find_power_off(&mem, 0xf5a00),
            Ok(PowerOff::SleepControl { reg: GenericAddress::Memory(0xfeb0_0204), slp_typ: 5 })
        );
    }

    #[test]
    fn an_ecam_window_that_wraps_is_refused() {
        let mut mem = platform(&[], 0x604, 0, None);
        let mut body = std::vec![0u8; 8];
        body.extend_from_slice(&(u64::MAX - 0xf_ffff).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&[0, 1, 0, 0, 0, 0]); // buses 0-1: 2 MiB
        mem.0.retain(|(a, _)| *a != 0x11000);
        mem.put(0x11000, &sdt(b"MCFG", &body));
        let err = find_ecam(&mem, 0xf5a00).unwrap_err();
        assert_eq!(
            err,
            AcpiError::Wraps {
                what: "the MCFG's configuration window",
                start: u64::MAX - 0xf_ffff,
                len: 2 << 20
            }
        );
        assert!(std::format!("{err}").contains("past the end of the address space"));
    }

    #[test]
    fn a_sleep_port_past_0xffff_is_refused() {
        let mem = platform(&[], 0, HW_REDUCED_ACPI, Some((1, 0x1_0604)));
        assert_eq!(find_power_off(&mem, 0xf5a00), Err(AcpiError::SleepPortTooHigh(0x1_0604)));
        let mem = platform(&[], 0, HW_REDUCED_ACPI, Some((1, 0x604)));
        assert_eq!(
            find_power_off(&mem, 0xf5a00),
            Ok(PowerOff::SleepControl { reg: GenericAddress::Io(0x604), slp_typ: 5 })
        );
    }

    #[test]
    fn pm1_power_off_with_s5() {
        let mem = platform(S5_AML, 0x604, 0, None);
        assert_eq!(
            find_power_off(&mem, 0xf5a00),
            Ok(PowerOff::Pm1 { pm1a_cnt: 0x604, pm1b_cnt: None, slp_typ_a: 5, slp_typ_b: 0 })
        );
    }

    #[test]
    fn pm1_without_s5_uses_zero() {
        let mem = platform(&[0xa4, 0x00], 0xb004, 0, None);
        assert_eq!(
            find_power_off(&mem, 0xf5a00),
            Ok(PowerOff::Pm1 { pm1a_cnt: 0xb004, pm1b_cnt: None, slp_typ_a: 0, slp_typ_b: 0 })
        );
    }

    #[test]
    fn hardware_reduced_uses_sleep_control() {
        let mem = platform(&[], 0, HW_REDUCED_ACPI, Some((0, 0xfeb0_0204)));
        assert_eq!(
            find_power_off(&mem, 0xf5a00),
            Ok(PowerOff::SleepControl { reg: GenericAddress::Memory(0xfeb0_0204), slp_typ: 5 })
        );
    }

    #[test]
    fn bad_rsdp_and_bad_checksums_are_refused() {
        let mut mem = platform(S5_AML, 0x604, 0, None);
        assert_eq!(find_power_off(&mem, 0x12000), Err(AcpiError::BadRsdp));
        let mut broken = fadt(0x13000, 0x604, 0, None);
        broken[50] ^= 0xff;
        mem.0.retain(|(a, _)| *a != 0x12000);
        mem.put(0x12000, &broken);
        assert_eq!(find_power_off(&mem, 0xf5a00), Err(AcpiError::BadChecksum(*b"FACP")));
    }

    #[test]
    fn no_fadt() {
        let mut mem = TestMemory::new();
        mem.put(0xf5a00, &rsdp_v0(0x10000));
        mem.put(0x10000, &sdt(b"RSDT", &[]));
        assert_eq!(find_power_off(&mem, 0xf5a00), Err(AcpiError::NoFadt));
    }

    #[test]
    fn unreadable_root_table() {
        let mut mem = TestMemory::new();
        mem.put(0xf5a00, &rsdp_v0(0xdead_0000));
        assert!(matches!(find_power_off(&mem, 0xf5a00), Err(AcpiError::Unreadable(_))));
    }

    #[test]
    fn virtio_mmio_devices_from_the_dsdt() {
        // Two devices as QEMU microvm describes them: _HID, then _CRS with
        // Memory32Fixed (0x86) and an Extended Interrupt (0x89).
        let mut aml = std::vec::Vec::new();
        for (base, gsi) in [(0xfeb0_0000u32, 16u32), (0xfeb0_0200, 17)] {
            aml.extend_from_slice(b"\x5b\x82\x30VR00\x08_HID\x0dLNRO0005\x00\x08_CRS\x11\x1a\x0a\x17");
            aml.extend_from_slice(&[0x86, 0x09, 0x00, 0x01]);
            aml.extend_from_slice(&base.to_le_bytes());
            aml.extend_from_slice(&0x200u32.to_le_bytes());
            aml.extend_from_slice(&[0x89, 0x06, 0x00, 0x01, 0x01]);
            aml.extend_from_slice(&gsi.to_le_bytes());
            aml.extend_from_slice(&[0x79, 0x00]);
        }
        let mem = platform(&aml, 0, HW_REDUCED_ACPI, Some((0, 0xfeb0_0204)));
        let (devs, n) = find_virtio_mmio(&mem, 0xf5a00).unwrap();
        assert_eq!(n, 2);
        assert_eq!(devs[0], MmioDevice { base: 0xfeb0_0000, size: 0x200, gsi: 16 });
        assert_eq!(devs[1], MmioDevice { base: 0xfeb0_0200, size: 0x200, gsi: 17 });
        // A DSDT without them.
        let (_, n) = find_virtio_mmio(&platform(S5_AML, 0x604, 0, None), 0xf5a00).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn ioapic_and_overrides_from_the_madt() {
        let mut mem = platform(&[], 0x604, 0, None);
        let mut body = std::vec::Vec::new();
        body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // local APIC
        body.extend_from_slice(&[1, 12, 0, 0]); // I/O APIC id 0
        body.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&[1, 12, 1, 0]); // I/O APIC id 1, as microvm's second
        body.extend_from_slice(&0xfec1_0000u32.to_le_bytes());
        body.extend_from_slice(&24u32.to_le_bytes());
        body.extend_from_slice(&[2, 10, 0, 0]); // IRQ 0 -> GSI 2, bus default
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&[2, 10, 0, 11]); // IRQ 11 -> GSI 11, level, active high
        body.extend_from_slice(&11u32.to_le_bytes());
        body.extend_from_slice(&0x000du16.to_le_bytes());
        mem.0.retain(|(a, _)| *a != 0x11000);
        mem.put(0x11000, &sdt(b"APIC", &body));
        let madt = find_madt(&mem, 0xf5a00).unwrap().unwrap();
        assert_eq!(madt.ioapics, [Some((0xfec0_0000, 0)), Some((0xfec1_0000, 24)), None, None]);
        assert_eq!(
            madt.irq_override(0),
            Some(IrqOverride { irq: 0, gsi: 2, level: false, active_low: false })
        );
        assert_eq!(
            madt.irq_override(11),
            Some(IrqOverride { irq: 11, gsi: 11, level: true, active_low: false })
        );
        assert_eq!(madt.irq_override(10), None);
    }

    #[test]
    fn ecam_from_the_mcfg() {
        let mut mem = platform(&[], 0x604, 0, None);
        let mut body = std::vec![0u8; 8];
        body.extend_from_slice(&0xb000_0000u64.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&[0, 0xff, 0, 0, 0, 0]);
        mem.0.retain(|(a, _)| *a != 0x11000);
        mem.put(0x11000, &sdt(b"MCFG", &body));
        assert_eq!(
            find_ecam(&mem, 0xf5a00),
            Ok(Some(Ecam { base: 0xb000_0000, first_bus: 0, last_bus: 0xff }))
        );
        assert_eq!(find_ecam(&platform(&[], 0x604, 0, None), 0xf5a00), Ok(None));
    }
}

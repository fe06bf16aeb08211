//! PCI: configuration space, bus enumeration, BARs, capabilities and MSI-X, over a
//! [`ConfigSpace`] that the kernel implements (port 0xCF8/0xCFC, or ECAM) and tests fake.

use alloc::vec::Vec;

/// Bus, device, function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// 32-bit accesses to a function's configuration space (offsets 4-byte aligned).
pub trait ConfigSpace {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);

    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        (self.read32(bdf, offset & !3) >> ((offset & 2) * 8)) as u16
    }
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        (self.read32(bdf, offset & !3) >> ((offset & 3) * 8)) as u8
    }
    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(bdf, offset & !3);
        self.write32(bdf, offset & !3, (old & !(0xffff << shift)) | (u32::from(value) << shift));
    }
}

const VENDOR_ID: u16 = 0x00;
const COMMAND: u16 = 0x04;
const STATUS: u16 = 0x06;
const CLASS: u16 = 0x08;
const HEADER_TYPE: u16 = 0x0e;
const BAR0: u16 = 0x10;
const SECONDARY_BUS: u16 = 0x19;
const CAPABILITIES: u16 = 0x34;
const INTERRUPT_LINE: u16 = 0x3c;

const COMMAND_IO: u16 = 1 << 0;
const COMMAND_MEMORY: u16 = 1 << 1;
const COMMAND_BUS_MASTER: u16 = 1 << 2;
const COMMAND_INTX_DISABLE: u16 = 1 << 10;
const STATUS_CAPABILITIES: u16 = 1 << 4;

/// The configuration space capabilities live in; a capability whose registers would
/// run past it is refused (port-based access wraps such offsets back to the header).
pub const CONFIG_LEN: u16 = 256;

/// Whether a capability at `cap` with `len` bytes of registers fits the space.
pub fn capability_fits(cap: u16, len: u16) -> bool {
    cap + len <= CONFIG_LEN
}

pub const CAP_MSI: u8 = 0x05;
pub const CAP_VENDOR: u8 = 0x09;
pub const CAP_MSIX: u8 = 0x11;

/// One function found on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// Class, subclass, prog-if, revision (the dword at 0x08).
    pub class: u32,
    pub interrupt_line: u8,
}

/// Every function reachable from bus 0, following PCI-to-PCI bridges.
pub fn enumerate(cfg: &impl ConfigSpace) -> Vec<Function> {
    let mut found = Vec::new();
    let mut buses = Vec::from([0u8]);
    let mut seen = [false; 256];
    while let Some(bus) = buses.pop() {
        if core::mem::replace(&mut seen[usize::from(bus)], true) {
            continue;
        }
        for device in 0..32 {
            for function in 0..8 {
                let bdf = Bdf { bus, device, function };
                let id = cfg.read32(bdf, VENDOR_ID);
                if id & 0xffff == 0xffff {
                    if function == 0 {
                        break;
                    }
                    continue;
                }
                let class = cfg.read32(bdf, CLASS);
                let header = cfg.read8(bdf, HEADER_TYPE);
                found.push(Function {
                    bdf,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class,
                    interrupt_line: cfg.read8(bdf, INTERRUPT_LINE),
                });
                if header & 0x7f == 0x01 {
                    buses.push(cfg.read8(bdf, SECONDARY_BUS));
                }
                if function == 0 && header & 0x80 == 0 {
                    break;
                }
            }
        }
    }
    found.sort_by_key(|f| f.bdf);
    found
}

/// A decoded base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    Memory { addr: u64, size: u64, prefetchable: bool },
    Io { port: u16, size: u16 },
}

/// A BAR whose window, as decoded, runs past the end of its address space (memory:
/// 2^64, I/O: port 0xffff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarWraps {
    pub index: u8,
    pub base: u64,
    pub size: u64,
}

impl core::fmt::Display for BarWraps {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "BAR{} ({:#x}, size {:#x}) runs past the end of its address space",
            self.index, self.base, self.size
        )
    }
}

/// Decodes BAR `index` (0..6) by the usual write-ones-and-read-back probe, with decoding
/// turned off meanwhile. `Ok(None)` for an unimplemented BAR or the upper half of a
/// 64-bit one. The size is the lowest address bit the device lets software write (so a
/// mask with holes, or a 64-bit BAR whose upper half reads back 0, still gives the size
/// the device decodes), and a window that would wrap is an error.
pub fn bar(cfg: &impl ConfigSpace, bdf: Bdf, index: u8) -> Result<Option<Bar>, BarWraps> {
    if index >= 6 {
        return Ok(None);
    }
    let off = BAR0 + u16::from(index) * 4;
    let command = cfg.read16(bdf, COMMAND);
    cfg.write16(bdf, COMMAND, command & !(COMMAND_IO | COMMAND_MEMORY));
    let low = cfg.read32(bdf, off);
    cfg.write32(bdf, off, u32::MAX);
    let low_mask = cfg.read32(bdf, off);
    cfg.write32(bdf, off, low);
    let result = if low & 1 == 1 {
        let port = low & 0xfffc;
        let mask = low_mask & 0xfffc;
        if mask == 0 {
            Ok(None)
        } else {
            let size = 1u32 << mask.trailing_zeros();
            if port + size > 0x1_0000 {
                Err(BarWraps { index, base: port.into(), size: size.into() })
            } else {
                Ok(Some(Bar::Io { port: port as u16, size: size as u16 }))
            }
        }
    } else {
        let is64 = (low >> 1) & 0x3 == 0x2;
        let (addr, mask) = if is64 && index < 5 {
            let high = cfg.read32(bdf, off + 4);
            cfg.write32(bdf, off + 4, u32::MAX);
            let high_mask = cfg.read32(bdf, off + 4);
            cfg.write32(bdf, off + 4, high);
            (
                (u64::from(high) << 32) | u64::from(low & !0xf),
                (u64::from(high_mask) << 32) | u64::from(low_mask & !0xf),
            )
        } else {
            (u64::from(low & !0xf), u64::from(low_mask & !0xf))
        };
        if mask == 0 || addr == 0 {
            Ok(None)
        } else {
            let size = 1u64 << mask.trailing_zeros();
            match addr.checked_add(size) {
                Some(_) => Ok(Some(Bar::Memory { addr, size, prefetchable: low & 0x8 != 0 })),
                None => Err(BarWraps { index, base: addr, size }),
            }
        }
    };
    cfg.write16(bdf, COMMAND, command);
    result
}

/// Turns on memory and I/O decoding and bus mastering (DMA), and masks INTx when the
/// device will use MSI-X.
pub fn enable(cfg: &impl ConfigSpace, bdf: Bdf, disable_intx: bool) {
    let mut command = cfg.read16(bdf, COMMAND) | COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER;
    if disable_intx {
        command |= COMMAND_INTX_DISABLE;
    }
    cfg.write16(bdf, COMMAND, command);
}

/// Turns off the function's decoding and bus mastering, and masks its INTx line: a
/// card the kernel does not use can neither reach memory nor interrupt (MSI and MSI-X
/// messages are bus-master writes too).
pub fn disable(cfg: &impl ConfigSpace, bdf: Bdf) {
    let command = cfg.read16(bdf, COMMAND) & !(COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    cfg.write16(bdf, COMMAND, command | COMMAND_INTX_DISABLE);
}

/// The capability list: `(id, offset)` pairs, at most 48 (a loop guard).
pub fn capabilities(cfg: &impl ConfigSpace, bdf: Bdf) -> Vec<(u8, u16)> {
    let mut caps = Vec::new();
    if cfg.read16(bdf, STATUS) & STATUS_CAPABILITIES == 0 {
        return caps;
    }
    let mut ptr = u16::from(cfg.read8(bdf, CAPABILITIES) & 0xfc);
    while ptr >= 0x40 && caps.len() < 48 {
        caps.push((cfg.read8(bdf, ptr), ptr));
        ptr = u16::from(cfg.read8(bdf, ptr + 1) & 0xfc);
    }
    caps
}

/// Where a function's MSI-X table lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixInfo {
    pub cap: u16,
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
}

pub fn msix(cfg: &impl ConfigSpace, bdf: Bdf) -> Option<MsixInfo> {
    let (_, cap) = capabilities(cfg, bdf).into_iter().find(|(id, _)| *id == CAP_MSIX)?;
    if !capability_fits(cap, 12) {
        return None;
    }
    let control = cfg.read16(bdf, cap + 2);
    let table = cfg.read32(bdf, cap + 4);
    Some(MsixInfo {
        cap,
        table_size: (control & 0x7ff) + 1,
        table_bar: (table & 7) as u8,
        table_offset: table & !7,
    })
}

/// Enables MSI-X (function unmasked); entries must be programmed through the table.
pub fn msix_enable(cfg: &impl ConfigSpace, bdf: Bdf, info: &MsixInfo) {
    let control = cfg.read16(bdf, info.cap + 2);
    cfg.write16(bdf, info.cap + 2, (control | 0x8000) & !0x4000);
}

/// Programs MSI-X table entry `index` to deliver `vector` to the local APIC `apic_id`,
/// through the table's register window.
pub fn msix_set_entry(table: &impl crate::Registers, index: u16, apic_id: u8, vector: u8) {
    let base = index * 16;
    table.write32(base, 0xfee0_0000 | (u32::from(apic_id) << 12));
    table.write32(base + 4, 0);
    table.write32(base + 8, u32::from(vector));
    table.write32(base + 12, 0); // unmasked
}

/// Programs MSI, the fallback for functions without MSI-X: one message delivering
/// `vector` (fixed, edge) to the local APIC `apic_id`, unmasked, then enabled. `false`
/// when the function has no MSI capability.
pub fn msi_enable(cfg: &impl ConfigSpace, bdf: Bdf, apic_id: u8, vector: u8) -> bool {
    let Some((_, cap)) = capabilities(cfg, bdf).into_iter().find(|(id, _)| *id == CAP_MSI) else {
        return false;
    };
    const ENABLE: u16 = 1 << 0;
    const MULTIPLE_ENABLE: u16 = 0b111 << 4;
    const ADDRESS_64: u16 = 1 << 7;
    const PER_VECTOR_MASK: u16 = 1 << 8;
    let control = cfg.read16(bdf, cap + 2);
    // Address, data and (with per-vector masking) mask and pending bits.
    let len = 10
        + if control & ADDRESS_64 != 0 { 4 } else { 0 }
        + if control & PER_VECTOR_MASK != 0 { 10 } else { 0 };
    if !capability_fits(cap, len) {
        return false;
    }
    cfg.write32(bdf, cap + 4, 0xfee0_0000 | (u32::from(apic_id) << 12));
    // The layout after the address depends on its width: data, then (optionally) the
    // mask bits two registers on.
    let data = if control & ADDRESS_64 != 0 {
        cfg.write32(bdf, cap + 8, 0);
        cap + 12
    } else {
        cap + 8
    };
    cfg.write16(bdf, data, u16::from(vector));
    if control & PER_VECTOR_MASK != 0 {
        cfg.write32(bdf, data + 4, 0);
    }
    cfg.write16(bdf, cap + 2, (control & !MULTIPLE_ENABLE) | ENABLE);
    true
}

#[cfg(test)]
pub(crate) mod fake {
    //! A configuration space made of per-function register arrays, with BAR sizing.
    extern crate std;
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Default)]
    pub struct FakeConfig {
        pub regs: RefCell<BTreeMap<Bdf, [u32; 64]>>,
        /// BAR size masks by (function, BAR index).
        pub bar_masks: BTreeMap<(Bdf, u16), u32>,
    }

    impl FakeConfig {
        pub fn add(&mut self, bdf: Bdf, vendor: u16, device: u16, class: u32, header: u8) -> &mut Self {
            let mut regs = [0u32; 64];
            regs[0] = u32::from(vendor) | (u32::from(device) << 16);
            regs[2] = class;
            regs[3] = u32::from(header) << 16;
            self.regs.borrow_mut().insert(bdf, regs);
            self
        }
        pub fn set(&self, bdf: Bdf, offset: u16, value: u32) {
            self.regs.borrow_mut().get_mut(&bdf).unwrap()[usize::from(offset / 4)] = value;
        }
    }

    impl ConfigSpace for FakeConfig {
        fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
            self.regs.borrow().get(&bdf).map_or(u32::MAX, |r| r[usize::from(offset / 4)])
        }
        fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
            let mut regs = self.regs.borrow_mut();
            let Some(r) = regs.get_mut(&bdf) else { return };
            let slot = &mut r[usize::from(offset / 4)];
            *slot = match self.bar_masks.get(&(bdf, offset)) {
                // Sizing: only the writable address bits keep what is written.
                Some(mask) if value == u32::MAX => (*slot & !mask) | mask,
                _ => value,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeConfig;
    use super::*;

    fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
        Bdf { bus, device, function }
    }

    #[test]
    fn enumerates_through_bridges_and_multifunction() {
        let mut cfg = FakeConfig::default();
        cfg.add(bdf(0, 0, 0), 0x8086, 0x1237, 0x0600_0002, 0);
        cfg.add(bdf(0, 1, 0), 0x8086, 0x7000, 0x0601_0000, 0x80); // multifunction
        cfg.add(bdf(0, 1, 1), 0x8086, 0x7010, 0x0101_8000, 0);
        cfg.add(bdf(0, 3, 0), 0x1b36, 0x0001, 0x0604_0000, 0x01); // bridge to bus 1
        cfg.set(bdf(0, 3, 0), 0x18, 0x0001_0100);
        cfg.add(bdf(1, 0, 0), 0x1af4, 0x1041, 0x0200_0001, 0);
        let found: Vec<_> = enumerate(&cfg).iter().map(|f| (f.bdf, f.vendor, f.device)).collect();
        assert_eq!(
            found,
            [
                (bdf(0, 0, 0), 0x8086, 0x1237),
                (bdf(0, 1, 0), 0x8086, 0x7000),
                (bdf(0, 1, 1), 0x8086, 0x7010),
                (bdf(0, 3, 0), 0x1b36, 0x0001),
                (bdf(1, 0, 0), 0x1af4, 0x1041),
            ]
        );
    }

    #[test]
    fn msi_programs_address_data_and_enable() {
        let mut cfg = FakeConfig::default();
        let f = bdf(0, 4, 0);
        cfg.add(f, 0x1234, 0x11e8, 0x00ff_0000, 0);
        cfg.set(f, 0x04, 0x0010_0000); // status: capability list
        cfg.set(f, 0x34, 0x40);
        // MSI at 0x40: 64-bit, per-vector masking, 4 messages capable, masked.
        cfg.set(f, 0x40, ((1 << 8 | 1 << 7 | 0b010 << 1) << 16) | CAP_MSI as u32);
        cfg.set(f, 0x50, 1);
        assert!(msi_enable(&cfg, f, 3, 0x41));
        assert_eq!(cfg.read32(f, 0x44), 0xfee0_3000, "address: local APIC 3");
        assert_eq!(cfg.read32(f, 0x48), 0, "upper address");
        assert_eq!(cfg.read16(f, 0x4c), 0x41, "data: the vector, fixed, edge");
        assert_eq!(cfg.read32(f, 0x50), 0, "unmasked");
        assert_eq!(cfg.read16(f, 0x42) & 0x71, 1, "enabled, one message");

        // A 32-bit capability puts the data right after the address; no capability, no MSI.
        let g = bdf(0, 5, 0);
        cfg.add(g, 0x1234, 0x11e8, 0x00ff_0000, 0);
        cfg.set(g, 0x04, 0x0010_0000);
        cfg.set(g, 0x34, 0x40);
        cfg.set(g, 0x40, CAP_MSI as u32);
        assert!(msi_enable(&cfg, g, 0, 0x42));
        assert_eq!(cfg.read16(g, 0x48), 0x42);
        let h = bdf(0, 6, 0);
        cfg.add(h, 0x1234, 0x11e8, 0x00ff_0000, 0);
        assert!(!msi_enable(&cfg, h, 0, 0x42));
    }

    #[test]
    fn a_bridge_loop_does_not_hang() {
        let mut cfg = FakeConfig::default();
        cfg.add(bdf(0, 3, 0), 0x1b36, 0x0001, 0x0604_0000, 0x01);
        cfg.set(bdf(0, 3, 0), 0x18, 0x0000_0000); // secondary bus 0: itself
        assert_eq!(enumerate(&cfg).len(), 1);
    }

    #[test]
    fn bars_are_sized() {
        let mut cfg = FakeConfig::default();
        let f = bdf(0, 4, 0);
        cfg.add(f, 0x1af4, 0x1000, 0x0200_0000, 0);
        cfg.set(f, 0x10, 0xc041); // I/O BAR at 0xc040, 32 ports
        cfg.bar_masks.insert((f, 0x10), 0xffff_ffe0);
        cfg.set(f, 0x14, 0xfebd_1000); // 4 KiB memory BAR
        cfg.bar_masks.insert((f, 0x14), 0xffff_f000);
        cfg.set(f, 0x20, 0xfe00_000c); // 64-bit prefetchable, 16 KiB
        cfg.bar_masks.insert((f, 0x20), 0xffff_c000);
        cfg.set(f, 0x24, 0x0000_0001);
        cfg.bar_masks.insert((f, 0x24), 0xffff_ffff);
        assert_eq!(bar(&cfg, f, 0), Ok(Some(Bar::Io { port: 0xc040, size: 32 })));
        assert_eq!(
            bar(&cfg, f, 1),
            Ok(Some(Bar::Memory { addr: 0xfebd_1000, size: 4096, prefetchable: false }))
        );
        assert_eq!(
            bar(&cfg, f, 4),
            Ok(Some(Bar::Memory { addr: 0x1_fe00_0000, size: 16384, prefetchable: true }))
        );
        assert_eq!(bar(&cfg, f, 2), Ok(None));
        // Probing leaves the BARs as they were.
        assert_eq!(cfg.read32(f, 0x14), 0xfebd_1000);
    }

    #[test]
    fn a_bar_ending_at_the_top_of_its_space() {
        let mut cfg = FakeConfig::default();
        let f = bdf(0, 4, 0);
        cfg.add(f, 0x1af4, 0x1000, 0x0200_0000, 0);
        cfg.set(f, 0x10, 0xffe1); // I/O BAR at 0xffe0, 32 ports: the last ones, fine
        cfg.bar_masks.insert((f, 0x10), 0xffff_ffe0);
        cfg.set(f, 0x14, 0xffff_e00c); // 64-bit at 2^64 - 8 KiB, 8 KiB long: ends at 2^64
        cfg.bar_masks.insert((f, 0x14), 0xffff_e000);
        cfg.set(f, 0x18, 0xffff_ffff);
        cfg.bar_masks.insert((f, 0x18), 0xffff_ffff);
        assert_eq!(bar(&cfg, f, 0), Ok(Some(Bar::Io { port: 0xffe0, size: 32 })));
        // Its end has no u64 value: a caller adding an offset to the base would wrap.
        let err = bar(&cfg, f, 1).unwrap_err();
        assert_eq!(err, BarWraps { index: 1, base: 0xffff_ffff_ffff_e000, size: 0x2000 });
        assert!(alloc::format!("{err}").contains("BAR1"));
    }

    #[test]
    fn bar_size_is_the_lowest_writable_bit() {
        // A 64-bit BAR whose upper half reads back 0 after the probe: the size must
        // not become 2^64 - 4 GiB + 4 KiB, as `!mask + 1` over both halves gives.
        let mut cfg = FakeConfig::default();
        let f = bdf(0, 4, 0);
        cfg.add(f, 0x1af4, 0x1000, 0x0200_0000, 0);
        cfg.set(f, 0x10, 0xfebd_0004);
        cfg.bar_masks.insert((f, 0x10), 0xffff_f000);
        cfg.bar_masks.insert((f, 0x14), 0);
        assert_eq!(
            bar(&cfg, f, 0),
            Ok(Some(Bar::Memory { addr: 0xfebd_0000, size: 4096, prefetchable: false }))
        );
        // A mask with a hole decodes as its lowest bit.
        cfg.set(f, 0x18, 0xfe00_0000);
        cfg.bar_masks.insert((f, 0x18), 0xff0f_f000);
        assert_eq!(
            bar(&cfg, f, 2),
            Ok(Some(Bar::Memory { addr: 0xfe00_0000, size: 4096, prefetchable: false }))
        );
    }

    #[test]
    fn capability_walk_and_msix() {
        let mut cfg = FakeConfig::default();
        let f = bdf(0, 4, 0);
        cfg.add(f, 0x1af4, 0x1041, 0x0200_0000, 0);
        cfg.set(f, 0x04, u32::from(STATUS_CAPABILITIES) << 16);
        cfg.set(f, 0x34, 0x98);
        cfg.set(f, 0x98, 0x0002_8411); // MSI-X, next 0x84, 3 entries
        cfg.set(f, 0x9c, 0x0000_0001); // table in BAR1 at 0
        cfg.set(f, 0x84, 0x0000_7009); // vendor cap, next 0x70
        cfg.set(f, 0x70, 0x0000_0009); // vendor cap, end
        assert_eq!(capabilities(&cfg, f), [(CAP_MSIX, 0x98), (CAP_VENDOR, 0x84), (CAP_VENDOR, 0x70)]);
        let info = msix(&cfg, f).unwrap();
        assert_eq!(info, MsixInfo { cap: 0x98, table_size: 3, table_bar: 1, table_offset: 0 });
        msix_enable(&cfg, f, &info);
        assert_eq!(cfg.read16(f, 0x9a) & 0xc000, 0x8000);
    }

    #[test]
    fn capabilities_running_past_the_config_space_are_refused() {
        let mut cfg = FakeConfig::default();
        let f = bdf(0, 4, 0);
        cfg.add(f, 0x1af4, 0x1041, 0, 0);
        cfg.set(f, 0x04, u32::from(STATUS_CAPABILITIES) << 16);
        cfg.set(f, 0x34, 0xfc);
        // MSI-X at 0xfc: its table register would be at 0x100.
        cfg.set(f, 0xfc, u32::from(CAP_MSIX));
        assert_eq!(capabilities(&cfg, f), [(CAP_MSIX, 0xfc)]);
        assert_eq!(msix(&cfg, f), None);
        // 64-bit MSI with masking at 0xf0 needs 24 bytes: 0x108.
        cfg.set(f, 0x34, 0xf0);
        cfg.set(f, 0xf0, ((1 << 8 | 1 << 7) << 16) | u32::from(CAP_MSI));
        assert!(!msi_enable(&cfg, f, 0, 0x41));
        assert_eq!(cfg.read32(f, 0xf4), 0, "nothing written");
        // 32-bit MSI without masking at 0xf0 needs 10 bytes: fits.
        cfg.set(f, 0xf0, u32::from(CAP_MSI));
        assert!(msi_enable(&cfg, f, 0, 0x41));
    }

    #[test]
    fn capability_loops_are_cut() {
        let mut cfg = FakeConfig::default();
        let f = bdf(0, 4, 0);
        cfg.add(f, 0x1af4, 0x1041, 0, 0);
        cfg.set(f, 0x04, u32::from(STATUS_CAPABILITIES) << 16);
        cfg.set(f, 0x34, 0x40);
        cfg.set(f, 0x40, 0x0000_4009); // points at itself
        assert_eq!(capabilities(&cfg, f).len(), 48);
    }
}

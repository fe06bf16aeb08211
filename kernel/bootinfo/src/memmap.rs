//! The physical memory map, as the loader reports it.

/// What a memory-map entry holds (ACPI address-range types, as PVH and E820 use them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Ram,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Disabled,
    Persistent,
    Other(u32),
}

impl RegionKind {
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            6 => Self::Disabled,
            7 => Self::Persistent,
            other => Self::Other(other),
        }
    }
}

/// One entry of the memory map: `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub kind: RegionKind,
}

impl Region {
    /// The exclusive end, saturating so a lying entry cannot wrap around.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// The memory map with a fixed capacity: it is read before the heap exists.
#[derive(Debug, Clone)]
pub struct MemoryMap {
    entries: [Region; MemoryMap::CAPACITY],
    len: usize,
}

impl MemoryMap {
    /// Firmware maps hold a few dozen entries at most; extra entries are an error, not
    /// silently dropped, so no RAM is lost without a word.
    pub const CAPACITY: usize = 128;

    pub const fn new() -> Self {
        const EMPTY: Region = Region { start: 0, len: 0, kind: RegionKind::Reserved };
        MemoryMap { entries: [EMPTY; Self::CAPACITY], len: 0 }
    }

    /// Appends an entry; `Err` when the map is full.
    pub fn push(&mut self, region: Region) -> Result<(), Region> {
        if self.len == Self::CAPACITY {
            return Err(region);
        }
        self.entries[self.len] = region;
        self.len += 1;
        Ok(())
    }

    pub fn regions(&self) -> &[Region] {
        &self.entries[..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// RAM regions, in map order.
    pub fn ram(&self) -> impl Iterator<Item = &Region> {
        self.regions().iter().filter(|r| r.kind == RegionKind::Ram && r.len > 0)
    }

    /// Total bytes of RAM the map reports (saturating: overlapping entries from a
    /// lying loader may add up past 2^64).
    pub fn ram_bytes(&self) -> u64 {
        self.ram().fold(0, |total, r| total.saturating_add(r.len))
    }
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_filters_and_sums() {
        let mut map = MemoryMap::new();
        map.push(Region { start: 0, len: 0x9fc00, kind: RegionKind::Ram }).unwrap();
        map.push(Region { start: 0x9fc00, len: 0x400, kind: RegionKind::Reserved }).unwrap();
        map.push(Region { start: 0x100000, len: 0x700000, kind: RegionKind::Ram }).unwrap();
        map.push(Region { start: 0x800000, len: 0, kind: RegionKind::Ram }).unwrap();
        assert_eq!(map.ram().count(), 2);
        assert_eq!(map.ram_bytes(), 0x9fc00 + 0x700000);
    }

    #[test]
    fn full_map_refuses_more() {
        let mut map = MemoryMap::new();
        let r = Region { start: 0, len: 1, kind: RegionKind::Ram };
        for _ in 0..MemoryMap::CAPACITY {
            map.push(r).unwrap();
        }
        assert_eq!(map.push(r), Err(r));
    }

    #[test]
    fn ram_total_saturates() {
        let mut map = MemoryMap::new();
        let half = Region { start: 0, len: 1 << 63, kind: RegionKind::Ram };
        map.push(half).unwrap();
        map.push(Region { start: 1 << 63, ..half }).unwrap();
        map.push(Region { start: 0x1000, len: 0x1000, kind: RegionKind::Ram }).unwrap();
        assert_eq!(map.ram_bytes(), u64::MAX);
    }

    #[test]
    fn end_saturates() {
        let r = Region { start: u64::MAX - 1, len: 10, kind: RegionKind::Ram };
        assert_eq!(r.end(), u64::MAX);
    }

    #[test]
    fn kinds_decode() {
        assert_eq!(RegionKind::from_raw(1), RegionKind::Ram);
        assert_eq!(RegionKind::from_raw(3), RegionKind::AcpiReclaimable);
        assert_eq!(RegionKind::from_raw(99), RegionKind::Other(99));
    }
}

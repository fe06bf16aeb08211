//! Physical memory bookkeeping, free of `unsafe` and testable on the host.
//!
//! The frame allocator keeps free physical memory as a sorted list of page-aligned
//! ranges in a fixed array: it starts before the heap exists, and it hands out
//! physically contiguous runs (heap growth, page tables, DMA rings and buffers) as easily as
//! single frames.
//!
//! [`budget`] sizes the network's connection limits to the memory there is.
#![no_std]
#![forbid(unsafe_code)]

pub mod budget;

pub const PAGE_SIZE: u64 = 4096;

pub const fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

pub const fn align_down(x: u64, align: u64) -> u64 {
    x / align * align
}

/// A half-open physical range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The free list is full: the range could not be recorded as free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full(pub Range);

/// Free physical memory as sorted, disjoint, non-adjacent page-aligned ranges.
#[derive(Debug, Clone)]
pub struct FrameAllocator {
    ranges: [Range; FrameAllocator::CAPACITY],
    len: usize,
}

impl FrameAllocator {
    /// Enough for a fragmented firmware map plus the holes boot carves into it.
    pub const CAPACITY: usize = 256;

    pub const fn new() -> Self {
        FrameAllocator { ranges: [Range { start: 0, end: 0 }; Self::CAPACITY], len: 0 }
    }

    pub fn ranges(&self) -> &[Range] {
        &self.ranges[..self.len]
    }

    pub fn free_bytes(&self) -> u64 {
        self.ranges().iter().map(Range::len).sum()
    }

    pub fn largest_free(&self) -> u64 {
        self.ranges().iter().map(Range::len).max().unwrap_or(0)
    }

    /// Marks `[start, end)` free, shrunk to whole pages; overlaps with memory that is
    /// already free are merged.
    pub fn add(&mut self, start: u64, end: u64) -> Result<(), Full> {
        let r = Range { start: align_up(start, PAGE_SIZE), end: align_down(end, PAGE_SIZE) };
        if r.is_empty() {
            return Ok(());
        }
        // Ranges that touch or overlap `r` fold into it.
        let first = self.ranges().partition_point(|x| x.end < r.start);
        let mut last = first;
        let mut merged = r;
        while last < self.len && self.ranges[last].start <= r.end {
            merged.start = merged.start.min(self.ranges[last].start);
            merged.end = merged.end.max(self.ranges[last].end);
            last += 1;
        }
        if first == last && self.len == Self::CAPACITY {
            return Err(Full(r));
        }
        self.splice(first, last, &[merged]);
        Ok(())
    }

    /// Takes `[start, end)`, grown to whole pages, out of the free memory.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<(), Full> {
        let cut = Range { start: align_down(start, PAGE_SIZE), end: align_up(end, PAGE_SIZE) };
        if cut.is_empty() {
            return Ok(());
        }
        let first = self.ranges().partition_point(|x| x.end <= cut.start);
        let mut last = first;
        while last < self.len && self.ranges[last].start < cut.end {
            last += 1;
        }
        if first == last {
            return Ok(());
        }
        let head = Range { start: self.ranges[first].start, end: cut.start };
        let tail = Range { start: cut.end, end: self.ranges[last - 1].end };
        let mut keep = [Range::default(); 2];
        let mut n = 0;
        for piece in [head, tail] {
            if !piece.is_empty() {
                keep[n] = piece;
                n += 1;
            }
        }
        if self.len - (last - first) + n > Self::CAPACITY {
            return Err(Full(cut));
        }
        self.splice(first, last, &keep[..n]);
        Ok(())
    }

    /// Allocates `pages` contiguous pages aligned to `align` bytes (a power of two of at
    /// least a page), lowest address first.
    pub fn alloc(&mut self, pages: u64, align: u64) -> Option<u64> {
        let size = pages.checked_mul(PAGE_SIZE)?;
        let align = align.max(PAGE_SIZE);
        let start = self.ranges().iter().find_map(|r| {
            let start = align_up(r.start, align);
            (start.checked_add(size)? <= r.end).then_some(start)
        })?;
        self.reserve(start, start + size).ok()?;
        Some(start)
    }

    /// Allocates as much as possible of `[min_pages, max_pages]` contiguous pages from
    /// the largest free range; returns the address and the page count.
    pub fn alloc_run(&mut self, min_pages: u64, max_pages: u64) -> Option<(u64, u64)> {
        let largest = *self.ranges().iter().max_by_key(|r| r.len())?;
        let pages = (largest.len() / PAGE_SIZE).min(max_pages);
        if pages < min_pages || pages == 0 {
            return None;
        }
        self.reserve(largest.start, largest.start + pages * PAGE_SIZE).ok()?;
        Some((largest.start, pages))
    }

    /// Returns `pages` pages at `addr` to the free memory.
    pub fn free(&mut self, addr: u64, pages: u64) -> Result<(), Full> {
        self.add(addr, addr + pages * PAGE_SIZE)
    }

    /// Replaces `ranges[first..last]` with `with`.
    fn splice(&mut self, first: usize, last: usize, with: &[Range]) {
        let removed = last - first;
        let new_len = self.len - removed + with.len();
        debug_assert!(new_len <= Self::CAPACITY);
        self.ranges.copy_within(last..self.len, first + with.len());
        self.ranges[first..first + with.len()].copy_from_slice(with);
        self.len = new_len;
    }
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn ranges(a: &FrameAllocator) -> Vec<(u64, u64)> {
        a.ranges().iter().map(|r| (r.start, r.end)).collect()
    }

    /// Checks the invariants: sorted, disjoint, non-adjacent, page-aligned, non-empty.
    fn check(a: &FrameAllocator) {
        for r in a.ranges() {
            assert!(!r.is_empty());
            assert_eq!(r.start % PAGE_SIZE, 0);
            assert_eq!(r.end % PAGE_SIZE, 0);
        }
        for w in a.ranges().windows(2) {
            assert!(w[0].end < w[1].start, "{:?}", a.ranges());
        }
    }

    #[test]
    fn add_aligns_inward_and_merges() {
        let mut a = FrameAllocator::new();
        a.add(0x1001, 0x5fff).unwrap();
        assert_eq!(ranges(&a), [(0x2000, 0x5000)]);
        a.add(0x8000, 0x9000).unwrap();
        a.add(0x5000, 0x8000).unwrap(); // fills the gap exactly
        assert_eq!(ranges(&a), [(0x2000, 0x9000)]);
        a.add(0x100, 0x200).unwrap(); // less than a page: nothing
        a.add(0x3000, 0x4000).unwrap(); // already free
        assert_eq!(ranges(&a), [(0x2000, 0x9000)]);
        check(&a);
    }

    #[test]
    fn reserve_cuts_holes_rounding_outward() {
        let mut a = FrameAllocator::new();
        a.add(0, 8 * MIB).unwrap();
        a.reserve(MIB + 10, 2 * MIB - 10).unwrap(); // kernel image
        a.reserve(0, 0x1000).unwrap(); // page 0
        a.reserve(0x7000, 0x7001).unwrap(); // start info
        assert_eq!(ranges(&a), [(0x1000, 0x7000), (0x8000, MIB), (2 * MIB, 8 * MIB)]);
        a.reserve(0x2000, 3 * MIB).unwrap(); // spans several
        assert_eq!(ranges(&a), [(0x1000, 0x2000), (3 * MIB, 8 * MIB)]);
        a.reserve(100 * MIB, 200 * MIB).unwrap(); // nothing there
        assert_eq!(a.free_bytes(), 0x1000 + 5 * MIB);
        check(&a);
    }

    #[test]
    fn alloc_is_aligned_and_exhausts() {
        let mut a = FrameAllocator::new();
        a.add(0x3000, 0x3000 + 4 * MIB).unwrap();
        let p = a.alloc(1, PAGE_SIZE).unwrap();
        assert_eq!(p, 0x3000);
        let big = a.alloc(16, 2 * MIB).unwrap();
        assert_eq!(big % (2 * MIB), 0);
        check(&a);
        let mut n = 0;
        while a.alloc(1, PAGE_SIZE).is_some() {
            n += 1;
        }
        assert_eq!(n, (4 * MIB) / PAGE_SIZE - 17);
        assert_eq!(a.free_bytes(), 0);
        assert_eq!(a.alloc(1, PAGE_SIZE), None);
    }

    #[test]
    fn free_restores_everything() {
        let mut a = FrameAllocator::new();
        a.add(MIB, 9 * MIB).unwrap();
        let before = ranges(&a);
        let mut got = Vec::new();
        for i in 0..50 {
            got.push((a.alloc(1 + i % 7, PAGE_SIZE).unwrap(), 1 + i % 7));
        }
        // Free in an interleaved order to exercise merging on both sides.
        for (addr, pages) in got.iter().step_by(2).chain(got.iter().skip(1).step_by(2)) {
            a.free(*addr, *pages).unwrap();
            check(&a);
        }
        assert_eq!(ranges(&a), before);
    }

    #[test]
    fn alloc_run_takes_from_largest() {
        let mut a = FrameAllocator::new();
        a.add(0x1000, 0x9000).unwrap();
        a.add(MIB, 3 * MIB).unwrap();
        assert_eq!(a.alloc_run(1, 256), Some((MIB, 256)));
        assert_eq!(a.alloc_run(1, 1024), Some((2 * MIB, 256)));
        assert_eq!(a.alloc_run(9, 1024), None);
        assert_eq!(a.alloc_run(1, 1024), Some((0x1000, 8)));
        assert_eq!(a.alloc_run(1, 1), None);
    }

    #[test]
    fn capacity_is_reported_not_exceeded() {
        let mut a = FrameAllocator::new();
        for i in 0..FrameAllocator::CAPACITY as u64 {
            a.add(i * 2 * PAGE_SIZE, i * 2 * PAGE_SIZE + PAGE_SIZE).unwrap();
        }
        let next = FrameAllocator::CAPACITY as u64 * 2 * PAGE_SIZE;
        assert!(a.add(next, next + PAGE_SIZE).is_err());
        // Splitting a range when full also fails cleanly.
        let mut b = FrameAllocator::new();
        b.add(0, 4 * MIB).unwrap();
        for i in 1..FrameAllocator::CAPACITY as u64 {
            b.reserve(i * 2 * PAGE_SIZE, i * 2 * PAGE_SIZE + PAGE_SIZE).unwrap();
        }
        let snapshot = ranges(&b);
        assert!(b.reserve(0x1000_0000 - PAGE_SIZE, 0x1000_0000).is_ok()); // outside: fine
        assert!(b.reserve(3 * MIB, 3 * MIB + PAGE_SIZE).is_err()); // would split the last range
        assert_eq!(ranges(&b), snapshot);
        check(&b);
    }

    #[test]
    fn overflowing_requests_fail() {
        let mut a = FrameAllocator::new();
        a.add(0, 4 * MIB).unwrap();
        assert_eq!(a.alloc(u64::MAX / 2, PAGE_SIZE), None);
        a.add(u64::MAX - 3 * PAGE_SIZE, u64::MAX).unwrap();
        assert_eq!(a.alloc(4, PAGE_SIZE), Some(0));
    }
}

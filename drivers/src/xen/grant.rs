//! The grant table (`grant_table.h`, version 1 entries): how this domain lets another map
//! or copy one of its frames. An entry is 8 bytes: `flags` (u16), `domid` (u16), `frame`
//! (u32). A reference is an entry's index; the kernel maps the table's frames and this
//! module hands entries out and takes them back.

use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use super::{DomId, SharedPage};

/// An index into the grant table, as back ends are told it (`grant_ref_t`).
pub type GrantRef = u32;

const ENTRY_SIZE: usize = 8;
/// The first entries belong to the toolstack (the console and xenstore pages;
/// `GNTTAB_NR_RESERVED_ENTRIES`).
pub const RESERVED: GrantRef = 8;

const GTF_PERMIT_ACCESS: u16 = 1;
const GTF_READONLY: u16 = 1 << 2;
/// Set by Xen while the grantee has the frame mapped (or is copying) for reading...
const GTF_READING: u16 = 1 << 3;
/// ...or for writing.
const GTF_WRITING: u16 = 1 << 4;

/// How often `end_access` retries when Xen changes the flags under it.
const END_TRIES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// Every entry is in use.
    Exhausted,
    /// A version-1 entry holds a 32-bit frame number.
    FrameTooLarge(u64),
    /// The grantee still has the frame mapped: the entry stays until it lets go.
    InUse(GrantRef),
    /// The reference is not one this table handed out (or it was already ended).
    NotGranted(GrantRef),
}

impl core::fmt::Display for GrantError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GrantError::Exhausted => write!(f, "grant table full"),
            GrantError::FrameTooLarge(frame) => write!(f, "frame {frame:#x} does not fit a v1 grant entry"),
            GrantError::InUse(r) => write!(f, "grant {r} is still mapped by the other domain"),
            GrantError::NotGranted(r) => write!(f, "grant {r} was not granted"),
        }
    }
}

/// Hands out grant references over the table's frames.
#[derive(Debug)]
pub struct GrantTable<P: SharedPage> {
    frames: P,
    /// Free references; the lowest is taken first.
    free: Vec<GrantRef>,
    /// Whether each reference is granted (so ending one twice, or one never granted, is
    /// an error instead of a corrupted free list).
    granted: Vec<bool>,
}

impl<P: SharedPage> GrantTable<P> {
    /// A table over the mapped grant frames (`frames.len() / 8` entries). Every entry
    /// past the reserved ones is taken to be unused, and is cleared.
    pub fn new(frames: P) -> Self {
        let entries = u32::try_from(frames.len() / ENTRY_SIZE).unwrap_or(u32::MAX);
        for r in RESERVED..entries {
            frames.write_u16(r as usize * ENTRY_SIZE, 0);
        }
        let free = (RESERVED..entries).rev().collect();
        GrantTable { frames, free, granted: (0..entries).map(|_| false).collect() }
    }

    /// References this table can hand out at most.
    pub fn capacity(&self) -> usize {
        self.granted.len().saturating_sub(RESERVED as usize)
    }

    /// References free now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    pub fn is_granted(&self, r: GrantRef) -> bool {
        self.granted.get(r as usize).copied().unwrap_or(false)
    }

    /// Lets domain `to` access `frame` (read-only, or also write), and returns the
    /// reference to tell it.
    pub fn grant_access(&mut self, to: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge(frame))?;
        let r = self.free.pop().ok_or(GrantError::Exhausted)?;
        let at = r as usize * ENTRY_SIZE;
        self.frames.write_u16(at + 2, to);
        self.frames.write_u32(at + 4, frame32);
        // Xen must see domid and frame before the flags that make the entry valid.
        fence(Ordering::Release);
        self.frames.write_u16(at, GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 });
        self.granted[r as usize] = true;
        Ok(r)
    }

    /// Revokes reference `r` and frees it, unless the grantee still has the frame mapped
    /// ([`GrantError::InUse`]: the entry stays granted; try again later). The clear is a
    /// compare-exchange, so Xen cannot mark the entry in use between our check and it.
    pub fn end_access(&mut self, r: GrantRef) -> Result<(), GrantError> {
        if !self.is_granted(r) {
            return Err(GrantError::NotGranted(r));
        }
        let at = r as usize * ENTRY_SIZE;
        let mut flags = self.frames.read_u16(at);
        for _ in 0..END_TRIES {
            if flags & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantError::InUse(r));
            }
            match self.frames.compare_exchange_u16(at, flags, 0) {
                Ok(_) => {
                    self.granted[r as usize] = false;
                    self.free.push(r);
                    return Ok(());
                }
                Err(now) => flags = now,
            }
        }
        Err(GrantError::InUse(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::fake::FakePage;

    fn table(entries: usize) -> (GrantTable<FakePage>, FakePage) {
        let page = FakePage::new(entries * ENTRY_SIZE);
        (GrantTable::new(page.clone()), page)
    }

    fn entry(page: &FakePage, r: GrantRef) -> (u16, u16, u32) {
        let at = r as usize * ENTRY_SIZE;
        (page.read_u16(at), page.read_u16(at + 2), page.read_u32(at + 4))
    }

    #[test]
    fn grants_skip_the_reserved_entries_and_write_the_entry() {
        let (mut t, page) = table(512);
        assert_eq!(t.capacity(), 504);
        let r = t.grant_access(7, 0x1234, false).unwrap();
        assert_eq!(r, RESERVED);
        assert_eq!(entry(&page, r), (GTF_PERMIT_ACCESS, 7, 0x1234));
        let ro = t.grant_access(0, 0x99, true).unwrap();
        assert_eq!(ro, RESERVED + 1);
        assert_eq!(entry(&page, ro), (GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x99));
        t.end_access(r).unwrap();
        assert_eq!(entry(&page, r).0, 0, "revoked");
        assert!(!t.is_granted(r));
    }

    #[test]
    fn the_reserved_entries_are_left_alone() {
        let page = FakePage::new(16 * ENTRY_SIZE);
        // The toolstack's xenstore grant, say.
        page.write_u16(ENTRY_SIZE, GTF_PERMIT_ACCESS);
        page.write_u16(9 * ENTRY_SIZE, 0xffff);
        let _t = GrantTable::new(page.clone());
        assert_eq!(page.read_u16(ENTRY_SIZE), GTF_PERMIT_ACCESS);
        assert_eq!(page.read_u16(9 * ENTRY_SIZE), 0, "ours are cleared");
    }

    #[test]
    fn exhaustion_is_an_error_and_ending_frees() {
        let (mut t, _) = table(12);
        let refs: Vec<_> = (0..4).map(|i| t.grant_access(1, i, false).unwrap()).collect();
        assert_eq!(t.grant_access(1, 9, false), Err(GrantError::Exhausted));
        t.end_access(refs[2]).unwrap();
        assert_eq!(t.grant_access(1, 9, false), Ok(refs[2]));
        assert_eq!(t.grant_access(1, 9, false), Err(GrantError::Exhausted));
    }

    #[test]
    fn a_mapped_grant_is_not_revoked() {
        let (mut t, page) = table(16);
        let r = t.grant_access(1, 5, false).unwrap();
        let at = r as usize * ENTRY_SIZE;
        for busy in [GTF_READING, GTF_WRITING, GTF_READING | GTF_WRITING] {
            page.write_u16(at, GTF_PERMIT_ACCESS | busy);
            assert_eq!(t.end_access(r), Err(GrantError::InUse(r)));
            assert!(t.is_granted(r));
            assert_eq!(page.read_u16(at), GTF_PERMIT_ACCESS | busy, "left as it was");
        }
        // The back end unmaps: now it goes.
        page.write_u16(at, GTF_PERMIT_ACCESS);
        t.end_access(r).unwrap();
        assert_eq!(t.available(), 8);
    }

    /// Xen marks the entry in use between our read and the exchange: the exchange fails,
    /// we see the new flags, and refuse.
    #[test]
    fn a_mapping_racing_the_revoke_wins() {
        let (mut t, page) = table(16);
        let r = t.grant_access(1, 5, false).unwrap();
        let at = r as usize * ENTRY_SIZE;
        page.before_exchange(move |p| p.write_u16(at, GTF_PERMIT_ACCESS | GTF_WRITING));
        assert_eq!(t.end_access(r), Err(GrantError::InUse(r)));
        assert!(t.is_granted(r));
    }

    #[test]
    fn bad_references_and_frames_are_errors() {
        let (mut t, _) = table(16);
        assert_eq!(t.end_access(3), Err(GrantError::NotGranted(3)), "reserved");
        assert_eq!(t.end_access(10), Err(GrantError::NotGranted(10)), "never granted");
        assert_eq!(t.end_access(1 << 20), Err(GrantError::NotGranted(1 << 20)), "outside the table");
        let r = t.grant_access(1, 5, true).unwrap();
        t.end_access(r).unwrap();
        assert_eq!(t.end_access(r), Err(GrantError::NotGranted(r)), "twice");
        assert_eq!(t.grant_access(1, 1 << 32, true), Err(GrantError::FrameTooLarge(1 << 32)));
        assert_eq!(t.available(), 8, "nothing lost on the way");
    }

    #[test]
    fn granting_and_ending_many_times_leaks_nothing() {
        let (mut t, page) = table(64);
        let mut live = Vec::new();
        for i in 0..10_000u64 {
            if live.len() == t.capacity() || (i % 3 == 2 && !live.is_empty()) {
                let r = live.remove((i as usize * 7) % live.len());
                t.end_access(r).unwrap();
            } else {
                live.push(t.grant_access((i % 5) as u16, i, i % 2 == 0).unwrap());
            }
        }
        for r in live.drain(..) {
            t.end_access(r).unwrap();
        }
        assert_eq!(t.available(), t.capacity());
        for r in RESERVED..64 {
            assert_eq!(entry(&page, r).0, 0, "entry {r} revoked");
        }
    }
}

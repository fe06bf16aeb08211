//! The split virtqueue (virtio 1.x §2.7): descriptor table, available ring, used ring,
//! with free-descriptor bookkeeping and notification suppression (`VIRTIO_F_EVENT_IDX`).

use alloc::vec::Vec;

use crate::dma::DmaRing;

const DESC_SIZE: usize = 16;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;

/// Where the three parts lie in one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub size: u16,
    pub avail: usize,
    pub used: usize,
    pub total: usize,
}

impl Layout {
    /// `legacy`: the used ring starts on the next 4096 boundary (legacy PCI's fixed
    /// queue alignment); modern devices take the three addresses separately.
    pub fn new(size: u16, legacy: bool) -> Self {
        let q = usize::from(size);
        let avail = DESC_SIZE * q;
        let avail_end = avail + 6 + 2 * q;
        let used = if legacy { avail_end.next_multiple_of(4096) } else { avail_end.next_multiple_of(4) };
        let total = used + 6 + 8 * q;
        Layout { size, avail, used, total }
    }
}

/// One buffer of a chain: device address, length, and whether the device writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub len: u32,
    pub device_writes: bool,
}

#[derive(Debug)]
pub struct SplitQueue<R: DmaRing> {
    mem: R,
    layout: Layout,
    /// Next descriptor in the free list, per descriptor.
    next: Vec<u16>,
    /// Per head descriptor, while the device holds its chain: the chain's last
    /// descriptor and length. Kept here rather than read back from the descriptor table,
    /// so a used ring naming a free or repeated head cannot corrupt the free list.
    in_flight: Vec<Option<(u16, u16)>>,
    free_head: u16,
    num_free: u16,
    /// Our copy of avail.idx (the device never writes it).
    avail_idx: u16,
    /// How far we have consumed the used ring.
    last_used: u16,
    event_idx: bool,
    /// avail.idx when the device was last notified.
    notified_idx: u16,
    /// Whether the driver wants used-buffer interrupts ([`set_interrupts`](Self::set_interrupts)).
    interrupts: bool,
}

impl<R: DmaRing> SplitQueue<R> {
    /// A queue over `mem`, which must be zeroed and at least `layout.total` bytes.
    pub fn new(mem: R, layout: Layout, event_idx: bool) -> Self {
        let size = layout.size;
        let next = (1..=size).collect();
        SplitQueue {
            mem,
            layout,
            next,
            in_flight: (0..size).map(|_| None).collect(),
            free_head: 0,
            num_free: size,
            avail_idx: 0,
            last_used: 0,
            event_idx,
            notified_idx: 0,
            interrupts: true,
        }
    }

    pub fn size(&self) -> u16 {
        self.layout.size
    }

    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// Device addresses of the descriptor table, available and used rings.
    pub fn addresses(&self) -> (u64, u64, u64) {
        let base = self.mem.device_addr();
        (base, base + self.layout.avail as u64, base + self.layout.used as u64)
    }

    /// Publishes a chain of segments; returns its head descriptor (the token that
    /// [`pop_used`](Self::pop_used) gives back), or `None` if there is no room.
    pub fn push(&mut self, chain: &[Segment]) -> Option<u16> {
        let n = u16::try_from(chain.len()).ok()?;
        if n == 0 || n > self.num_free {
            return None;
        }
        let head = self.free_head;
        let mut d = head;
        for (i, seg) in chain.iter().enumerate() {
            let off = usize::from(d) * DESC_SIZE;
            let last = i + 1 == chain.len();
            let mut flags = if seg.device_writes { DESC_F_WRITE } else { 0 };
            if !last {
                flags |= DESC_F_NEXT;
            }
            self.mem.write_u64(off, seg.addr);
            self.mem.write_u32(off + 8, seg.len);
            self.mem.write_u16(off + 12, flags);
            let following = self.next[usize::from(d)];
            self.mem.write_u16(off + 14, if last { 0 } else { following });
            if last {
                self.free_head = following;
                self.in_flight[usize::from(head)] = Some((d, n));
            }
            d = following;
        }
        self.num_free -= n;
        let slot = self.layout.avail + 4 + 2 * usize::from(self.avail_idx % self.layout.size);
        self.mem.write_u16(slot, head);
        // The ring entry must be visible before the index that publishes it.
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem.write_u16(self.layout.avail + 2, self.avail_idx);
        Some(head)
    }

    /// Whether the device wants a notification for what was pushed since the last one.
    pub fn should_notify(&mut self) -> bool {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let old = self.notified_idx;
        let new = self.avail_idx;
        self.notified_idx = new;
        if self.event_idx {
            let avail_event = self.mem.read_u16(self.layout.used + 4 + 8 * usize::from(self.layout.size));
            // vring_need_event: did we cross the index the device asked to hear about?
            new.wrapping_sub(avail_event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            old != new && self.mem.read_u16(self.layout.used) & USED_F_NO_NOTIFY == 0
        }
    }

    /// The next completed chain: its head token and the bytes the device wrote (as the
    /// device says: callers bound it by the buffer's length). A used entry naming no
    /// chain the device holds (out of range, free, or already returned) is consumed and
    /// `None` is returned for it; the entries after it come with the next calls.
    pub fn pop_used(&mut self) -> Option<(u16, u32)> {
        let used_idx = self.mem.read_u16(self.layout.used + 2);
        if used_idx == self.last_used {
            return None;
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        let elem = self.layout.used + 4 + 8 * usize::from(self.last_used % self.layout.size);
        let id = self.mem.read_u32(elem);
        let len = self.mem.read_u32(elem + 4);
        self.last_used = self.last_used.wrapping_add(1);
        let head = u16::try_from(id).ok()?;
        let (tail, count) = self.in_flight.get_mut(usize::from(head))?.take()?;
        // Return the chain to the free list.
        self.next[usize::from(tail)] = self.free_head;
        self.free_head = head;
        self.num_free += count;
        if self.event_idx && self.interrupts {
            // Ask for an interrupt at the next completion.
            self.mem.write_u16(self.layout.avail + 4 + 2 * usize::from(self.layout.size), self.last_used);
        }
        Some((head, len))
    }

    /// Whether completed chains are waiting.
    pub fn has_used(&self) -> bool {
        self.mem.read_u16(self.layout.used + 2) != self.last_used
    }

    /// Turns used-buffer interrupts on or off for this queue (a hint the device may
    /// ignore). With interrupts back on, callers check [`has_used`](Self::has_used) once
    /// more to close the race with a completion that came in between.
    pub fn set_interrupts(&mut self, on: bool) {
        self.interrupts = on;
        if self.event_idx {
            let at = if on { self.last_used } else { self.last_used.wrapping_sub(1) };
            self.mem.write_u16(self.layout.avail + 4 + 2 * usize::from(self.layout.size), at);
        } else {
            self.mem.write_u16(self.layout.avail, if on { 0 } else { AVAIL_F_NO_INTERRUPT });
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::fake::FakeRing;
    use alloc::vec;

    /// Plays the device: takes available chains and completes them.
    struct Device {
        mem: FakeRing,
        layout: Layout,
        seen_avail: u16,
        used_idx: u16,
    }

    impl Device {
        fn take(&mut self) -> Vec<(u16, Vec<Segment>)> {
            let avail_idx = self.mem.read_u16(self.layout.avail + 2);
            let mut chains = Vec::new();
            while self.seen_avail != avail_idx {
                let slot = self.layout.avail + 4 + 2 * usize::from(self.seen_avail % self.layout.size);
                let head = self.mem.read_u16(slot);
                let mut segs = Vec::new();
                let mut d = head;
                loop {
                    let off = usize::from(d) * DESC_SIZE;
                    let flags = self.mem.read_u16(off + 12);
                    let addr =
                        u64::from(self.mem.read_u32(off)) | (u64::from(self.mem.read_u32(off + 4)) << 32);
                    segs.push(Segment {
                        addr,
                        len: self.mem.read_u32(off + 8),
                        device_writes: flags & DESC_F_WRITE != 0,
                    });
                    if flags & DESC_F_NEXT == 0 {
                        break;
                    }
                    d = self.mem.read_u16(off + 14);
                }
                chains.push((head, segs));
                self.seen_avail = self.seen_avail.wrapping_add(1);
            }
            chains
        }
        fn complete(&mut self, head: u16, len: u32) {
            let elem = self.layout.used + 4 + 8 * usize::from(self.used_idx % self.layout.size);
            self.mem.write_u32(elem, u32::from(head));
            self.mem.write_u32(elem + 4, len);
            self.used_idx = self.used_idx.wrapping_add(1);
            self.mem.write_u16(self.layout.used + 2, self.used_idx);
        }
        fn set_avail_event(&self, idx: u16) {
            self.mem.write_u16(self.layout.used + 4 + 8 * usize::from(self.layout.size), idx);
        }
    }

    fn queue(size: u16, event_idx: bool) -> (SplitQueue<FakeRing>, Device) {
        let layout = Layout::new(size, false);
        let mem = FakeRing::new(0x20_0000, layout.total);
        let dev = Device { mem: mem.clone(), layout, seen_avail: 0, used_idx: 0 };
        (SplitQueue::new(mem, layout, event_idx), dev)
    }

    fn seg(addr: u64, len: u32, w: bool) -> Segment {
        Segment { addr, len, device_writes: w }
    }

    #[test]
    fn layouts() {
        assert_eq!(
            Layout::new(256, false),
            Layout { size: 256, avail: 4096, used: 4616, total: 4616 + 6 + 2048 }
        );
        assert_eq!(Layout::new(256, true).used, 8192);
        assert_eq!(Layout::new(8, false).used, 128 + 24);
    }

    #[test]
    fn chains_round_trip_through_the_device() {
        let (mut q, mut dev) = queue(8, false);
        let a = q.push(&[seg(0x1000, 12, false), seg(0x2000, 100, false)]).unwrap();
        let b = q.push(&[seg(0x3000, 1526, true)]).unwrap();
        assert_eq!(q.num_free(), 5);
        let chains = dev.take();
        assert_eq!(
            chains,
            [(a, vec![seg(0x1000, 12, false), seg(0x2000, 100, false)]), (b, vec![seg(0x3000, 1526, true)])]
        );
        dev.complete(b, 60);
        dev.complete(a, 0);
        assert_eq!(q.pop_used(), Some((b, 60)));
        assert_eq!(q.pop_used(), Some((a, 0)));
        assert_eq!(q.pop_used(), None);
        assert_eq!(q.num_free(), 8);
    }

    #[test]
    fn fills_up_and_wraps_many_times() {
        let (mut q, mut dev) = queue(4, false);
        for round in 0..1000u64 {
            let mut heads = Vec::new();
            while let Some(h) = q.push(&[seg(round, 1, true)]) {
                heads.push(h);
            }
            assert_eq!(heads.len(), 4);
            assert_eq!(q.push(&[seg(0, 1, true)]), None);
            for (h, segs) in dev.take() {
                assert_eq!(segs[0].addr, round);
                dev.complete(h, 7);
            }
            let mut done = 0;
            while let Some((_, len)) = q.pop_used() {
                assert_eq!(len, 7);
                done += 1;
            }
            assert_eq!(done, 4);
        }
    }

    #[test]
    fn too_long_or_empty_chains_are_refused() {
        let (mut q, _) = queue(2, false);
        assert_eq!(q.push(&[]), None);
        assert_eq!(q.push(&[seg(0, 1, false); 3]), None);
    }

    #[test]
    fn a_bogus_used_id_is_skipped() {
        let (mut q, mut dev) = queue(4, false);
        let h = q.push(&[seg(0, 1, true)]).unwrap();
        let _ = dev.take();
        dev.complete(99, 1);
        dev.complete(h, 1);
        assert_eq!(q.pop_used(), None);
        assert_eq!(q.pop_used(), Some((h, 1)));
    }

    #[test]
    fn a_repeated_or_free_used_id_is_skipped() {
        let (mut q, mut dev) = queue(4, false);
        let a = q.push(&[seg(0x1000, 1, true), seg(0x2000, 1, true)]).unwrap();
        let _ = dev.take();
        dev.complete(a, 1);
        assert_eq!(q.pop_used(), Some((a, 1)));
        assert_eq!(q.num_free(), 4);
        // The device names the same chain again, and then a head that was never used:
        // before in-flight tracking, each added the chain to the free list once more,
        // counting past the queue size (an overflow after enough repeats).
        for _ in 0..3 {
            dev.complete(a, 1);
            dev.complete(3, 1);
        }
        while q.has_used() {
            assert_eq!(q.pop_used(), None);
        }
        assert_eq!(q.num_free(), 4);
        // The free list is intact: four single chains fit, each on its own descriptor.
        let mut heads: Vec<u16> = (0..4).map(|_| q.push(&[seg(0, 1, true)]).unwrap()).collect();
        heads.sort();
        assert_eq!(heads, [0, 1, 2, 3]);
        assert_eq!(q.push(&[seg(0, 1, true)]), None);
    }

    #[test]
    fn a_device_rewriting_descriptors_cannot_corrupt_the_free_list() {
        let (mut q, mut dev) = queue(4, false);
        let a = q.push(&[seg(0x1000, 1, true), seg(0x2000, 1, true)]).unwrap();
        let _ = dev.take();
        // The device turns the chain into a loop through every descriptor.
        for d in 0..4usize {
            dev.mem.write_u16(d * DESC_SIZE + 12, DESC_F_NEXT);
            dev.mem.write_u16(d * DESC_SIZE + 14, ((d + 1) % 4) as u16);
        }
        dev.complete(a, 1);
        assert_eq!(q.pop_used(), Some((a, 1)));
        assert_eq!(q.num_free(), 4);
        let mut heads: Vec<u16> = (0..4).map(|_| q.push(&[seg(0, 1, true)]).unwrap()).collect();
        heads.sort();
        assert_eq!(heads, [0, 1, 2, 3]);
    }

    #[test]
    fn notification_without_event_idx_follows_the_flag() {
        let (mut q, dev) = queue(8, false);
        assert!(!q.should_notify(), "nothing pushed");
        q.push(&[seg(0, 1, false)]).unwrap();
        assert!(q.should_notify());
        dev.mem.write_u16(dev.layout.used, USED_F_NO_NOTIFY);
        q.push(&[seg(0, 1, false)]).unwrap();
        assert!(!q.should_notify());
    }

    #[test]
    fn notification_with_event_idx() {
        let (mut q, dev) = queue(8, true);
        // The device wants to hear when avail.idx passes 0 (i.e. the first push).
        dev.set_avail_event(0);
        q.push(&[seg(0, 1, false)]).unwrap();
        assert!(q.should_notify());
        // Now it asks for index 3: pushes 2 and 3 (idx 1->2, 2->3) need no kick...
        dev.set_avail_event(3);
        q.push(&[seg(0, 1, false)]).unwrap();
        assert!(!q.should_notify());
        q.push(&[seg(0, 1, false)]).unwrap();
        assert!(!q.should_notify());
        // ...the one that moves avail.idx past 3 does.
        q.push(&[seg(0, 1, false)]).unwrap();
        assert!(q.should_notify());
    }

    #[test]
    fn interrupt_suppression_writes_the_hint() {
        let (mut q, dev) = queue(8, false);
        q.set_interrupts(false);
        assert_eq!(dev.mem.read_u16(dev.layout.avail), AVAIL_F_NO_INTERRUPT);
        q.set_interrupts(true);
        assert_eq!(dev.mem.read_u16(dev.layout.avail), 0);
    }

    /// With event indices, taking a completion asks for an interrupt at the next one only
    /// while interrupts are on; while off, the hint stays behind what was taken.
    #[test]
    fn used_event_follows_completions_only_with_interrupts_on() {
        let (mut q, mut dev) = queue(8, true);
        let used_event = |dev: &Device| dev.mem.read_u16(dev.layout.avail + 4 + 2 * 8);
        for _ in 0..3 {
            q.push(&[seg(0x1000, 64, true)]).unwrap();
        }
        let heads: Vec<u16> = dev.take().into_iter().map(|(h, _)| h).collect();
        q.set_interrupts(false);
        assert_eq!(used_event(&dev), 0xffff);
        dev.complete(heads[0], 10);
        q.pop_used().unwrap();
        assert_eq!(used_event(&dev), 0xffff, "interrupts stay off while polling");
        q.set_interrupts(true);
        assert_eq!(used_event(&dev), 1);
        dev.complete(heads[1], 10);
        q.pop_used().unwrap();
        assert_eq!(used_event(&dev), 2, "on: interrupt at the next completion");
    }
}

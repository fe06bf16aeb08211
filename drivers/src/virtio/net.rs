//! virtio-net: one receive and one transmit queue, `VIRTIO_NET_F_MAC`, `_STATUS`,
//! `_MRG_RXBUF` and `VIRTIO_F_EVENT_IDX`. Buffers are handed out by value so the
//! network stack reads received frames and writes frames to send in place, without a
//! copy.

use alloc::vec::Vec;

use super::queue::{Layout, Segment, SplitQueue};
use super::{Error, F_ACCESS_PLATFORM, F_EVENT_IDX, F_VERSION_1, Transport, negotiate, status};
use crate::dma::{DmaAllocator, DmaBuffer};
pub use crate::net::RxFrame;
use crate::net::{MAX_FRAME, NetDevice};

pub const F_MAC: u64 = 1 << 5;
pub const F_MRG_RXBUF: u64 = 1 << 15;
pub const F_STATUS: u64 = 1 << 16;

const RX: u16 = 0;
const TX: u16 = 1;
/// A queue never gets longer than this: 256 slots of 2 KiB is plenty for one core.
pub const MAX_QUEUE: u16 = 256;
/// Header (at most 12 bytes) plus an Ethernet frame of 1514 bytes, rounded up.
pub const BUFFER_LEN: usize = 2048;

/// Which MSI-X table entries the two queues signal on.
#[derive(Debug, Clone, Copy)]
pub struct MsixEntries {
    pub rx: u16,
    pub tx: u16,
}

pub struct VirtioNet<T: Transport, A: DmaAllocator> {
    transport: T,
    rx: SplitQueue<A::Ring>,
    tx: SplitQueue<A::Ring>,
    /// Buffers the device holds, by head descriptor.
    rx_posted: Vec<Option<A::Buffer>>,
    tx_posted: Vec<Option<A::Buffer>>,
    tx_pool: Vec<A::Buffer>,
    header_len: usize,
    mac: [u8; 6],
    features: u64,
    /// Frames dropped because they spanned several buffers (never expected: no GSO).
    pub dropped: u64,
}

impl<T: Transport, A: DmaAllocator> core::fmt::Debug for VirtioNet<T, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioNet").field("mac", &self.mac).field("features", &self.features).finish()
    }
}

fn make_queue<T: Transport, A: DmaAllocator>(
    t: &T,
    alloc: &A,
    index: u16,
    limit: u16,
    event_idx: bool,
    msix: Option<u16>,
) -> Result<SplitQueue<A::Ring>, Error> {
    let max = t.max_queue_size(index);
    if max == 0 {
        return Err(Error::NoQueue(index));
    }
    // Legacy devices fix the size; modern ones take any power of two up to the max.
    let size = if t.legacy_layout() { max } else { max.min(limit) };
    let layout = Layout::new(size, t.legacy_layout());
    let mem = alloc.alloc_ring(layout.total).ok_or(Error::OutOfMemory)?;
    let q = SplitQueue::new(mem, layout, event_idx);
    let (desc, avail, used) = q.addresses();
    t.setup_queue(index, size, desc, avail, used, msix)?;
    Ok(q)
}

impl<T: Transport, A: DmaAllocator> VirtioNet<T, A> {
    /// Brings the device up and fills the receive queue. Queues are at most
    /// `queue_limit` slots long (a power of two, at most [`MAX_QUEUE`]), each slot with a
    /// buffer of `BUFFER_LEN`, so a small guest can spend less on them; legacy devices
    /// fix their own size.
    pub fn new(transport: T, alloc: &A, msix: Option<MsixEntries>, queue_limit: u16) -> Result<Self, Error> {
        let limit = queue_limit.clamp(1, MAX_QUEUE);
        let wanted = F_VERSION_1 | F_MAC | F_STATUS | F_MRG_RXBUF | F_EVENT_IDX | F_ACCESS_PLATFORM;
        let features = negotiate(&transport, wanted)?;
        let event_idx = features & F_EVENT_IDX != 0;
        let fail = |e| {
            transport.set_status(status::FAILED);
            e
        };
        let rx = make_queue(&transport, alloc, RX, limit, event_idx, msix.map(|m| m.rx)).map_err(fail)?;
        let tx = make_queue(&transport, alloc, TX, limit, event_idx, msix.map(|m| m.tx)).map_err(fail)?;
        let mut mac = [0u8; 6];
        if features & F_MAC != 0 {
            for (i, b) in mac.iter_mut().enumerate() {
                *b = transport.config_read8(i as u16);
            }
        }
        let header_len = if features & (F_VERSION_1 | F_MRG_RXBUF) != 0 { 12 } else { 10 };
        let rx_size = usize::from(rx.size());
        let tx_size = usize::from(tx.size());
        let mut tx_pool = Vec::with_capacity(tx_size);
        for _ in 0..tx_size {
            tx_pool.push(alloc.alloc_buffer(BUFFER_LEN).ok_or(Error::OutOfMemory).map_err(fail)?);
        }
        let mut net = VirtioNet {
            transport,
            rx,
            tx,
            rx_posted: (0..rx_size).map(|_| None).collect(),
            tx_posted: (0..tx_size).map(|_| None).collect(),
            tx_pool,
            header_len,
            mac,
            features,
            dropped: 0,
        };
        net.tx.set_interrupts(false);
        for _ in 0..rx_size {
            let Some(buffer) = alloc.alloc_buffer(BUFFER_LEN) else {
                // Giving up on the device: FAILED, as virtio 1.2 §3.1.1 asks. Before
                // DRIVER_OK a device must not use buffers (§2.1.2), so dropping the
                // ones posted so far is safe.
                net.transport.set_status(status::FAILED);
                return Err(Error::OutOfMemory);
            };
            net.post_rx(buffer);
        }
        let s = net.transport.status();
        net.transport.set_status(s | status::DRIVER_OK);
        net.transport.notify(RX);
        Ok(net)
    }

    pub fn features(&self) -> u64 {
        self.features
    }

    /// Resets the device, so it no longer touches the queues or the buffers, and drops
    /// them (a card the stack does not use).
    pub fn stop(self) {
        self.transport.set_status(0);
        // A modern device may finish its reset later: it has when status reads 0
        // (virtio 1.2 §4.1.4.3.2). Bounded, for a device that never does.
        let _ = (0..1000).any(|_| self.transport.status() == 0);
    }

    fn post_rx(&mut self, buffer: A::Buffer) {
        let seg = Segment { addr: buffer.device_addr(), len: BUFFER_LEN as u32, device_writes: true };
        match self.rx.push(&[seg]) {
            Some(head) => self.rx_posted[usize::from(head)] = Some(buffer),
            // Cannot happen: one buffer per slot, and every slot's buffer comes back here.
            None => drop(buffer),
        }
    }

    fn reclaim_tx(&mut self) {
        while let Some((head, _)) = self.tx.pop_used() {
            if let Some(b) = self.tx_posted.get_mut(usize::from(head)).and_then(Option::take) {
                self.tx_pool.push(b);
            }
        }
    }

    /// Reads and clears the interrupt status (bit 0: a queue, bit 1: configuration).
    pub fn interrupt_status(&self) -> u8 {
        self.transport.interrupt_status()
    }
}

impl<T: Transport, A: DmaAllocator> NetDevice for VirtioNet<T, A> {
    type Buffer = A::Buffer;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The link state (always up without `VIRTIO_NET_F_STATUS`).
    fn link_up(&self) -> bool {
        self.features & F_STATUS == 0 || self.transport.config_read16(6) & 1 != 0
    }

    fn recycle(&mut self, frame: RxFrame<A::Buffer>) {
        self.post_rx(frame.buffer);
        if self.rx.should_notify() {
            self.transport.notify(RX);
        }
    }

    fn receive(&mut self) -> Option<RxFrame<A::Buffer>> {
        loop {
            let (head, written) = self.rx.pop_used()?;
            let buffer = self.rx_posted.get_mut(usize::from(head))?.take()?;
            let written = (written as usize).min(BUFFER_LEN);
            let num_buffers = if self.header_len == 12 {
                u16::from_le_bytes([buffer.bytes()[10], buffer.bytes()[11]])
            } else {
                1
            };
            if written < self.header_len + 14 || num_buffers > 1 {
                // Runt, or a frame spread over several buffers: drop it (and the rest of
                // its buffers), keep the buffer.
                self.dropped += 1;
                for _ in 1..num_buffers {
                    if let Some((h, _)) = self.rx.pop_used()
                        && let Some(b) = self.rx_posted.get_mut(usize::from(h)).and_then(Option::take)
                    {
                        self.post_rx(b);
                    }
                }
                self.post_rx(buffer);
                continue;
            }
            return Some(RxFrame { buffer, offset: self.header_len, len: written - self.header_len });
        }
    }

    fn can_send(&mut self) -> bool {
        self.reclaim_tx();
        !self.tx_pool.is_empty()
    }

    fn send<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.reclaim_tx();
        let len = len.min(MAX_FRAME);
        // A descriptor for it, checked before `fill` runs: after that we must send.
        if self.tx.num_free() == 0 {
            return None;
        }
        let mut buffer = self.tx_pool.pop()?;
        let bytes = buffer.bytes_mut();
        bytes[..self.header_len].fill(0);
        let result = fill(&mut bytes[self.header_len..self.header_len + len]);
        let seg =
            Segment { addr: buffer.device_addr(), len: (self.header_len + len) as u32, device_writes: false };
        match self.tx.push(&[seg]) {
            Some(head) => self.tx_posted[usize::from(head)] = Some(buffer),
            // Cannot happen (a free descriptor was checked); the frame is lost, as on a
            // lossy link.
            None => self.tx_pool.push(buffer),
        }
        if self.tx.should_notify() {
            self.transport.notify(TX);
        }
        Some(result)
    }

    fn has_work(&self) -> bool {
        self.rx.has_used() || (self.tx_pool.is_empty() && self.tx.has_used())
    }

    /// Notifies the device of both queues (see the kernel's `net::Stack::poll` for why).
    fn kick(&mut self) {
        self.transport.notify(RX);
        self.transport.notify(TX);
    }

    /// Needed with INTx and on MMIO, where the line stays raised until the ISR is read.
    fn ack_interrupt(&self) {
        self.transport.interrupt_status();
    }

    /// Turns interrupts on or off: for received frames, and for sent ones only while
    /// every transmit buffer is in flight. Completed sends are otherwise reclaimed on the
    /// next send, so an interrupt per packet sent would be wasted.
    fn set_interrupts(&mut self, on: bool) {
        self.rx.set_interrupts(on);
        self.tx.set_interrupts(on && self.tx_pool.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::fake::FakeDma;
    use crate::mock::MockRegisters;
    use crate::virtio::mmio::{DEVICE_NET, Mmio};

    /// virtio-mmio's status register (virtio 1.x §4.2.2).
    const STATUS: u16 = 0x070;
    const QUEUE: u16 = 16;

    /// A modern virtio-mmio net device with 16-slot queues that offers `VERSION_1` and
    /// accepts it.
    fn device() -> MockRegisters {
        let regs = MockRegisters::new(0);
        for (offset, value) in [
            (0x000, 0x7472_6976), // magic
            (0x004, 2),           // version
            (0x008, DEVICE_NET),
            (0x010, 1), // device features: bit 0 of each half, so VERSION_1 (bit 32)
            (0x034, u32::from(QUEUE)),
            (STATUS, u32::from(status::FEATURES_OK)),
        ] {
            regs.reads.borrow_mut().insert(offset, value);
        }
        regs
    }

    /// Brings the device up with DMA memory for `buffers` packet buffers; the status
    /// values the driver wrote.
    fn bring_up(buffers: usize) -> (Result<(), Error>, Vec<u8>) {
        let regs = device();
        let (transport, _) = Mmio::probe(&regs).unwrap();
        let result = VirtioNet::new(transport, &FakeDma::new(buffers), None, QUEUE).map(drop);
        let statuses =
            regs.writes.borrow().iter().filter(|w| w.0 == STATUS).map(|&(_, value, _)| value as u8).collect();
        (result, statuses)
    }

    #[test]
    fn a_device_with_all_its_buffers_is_driver_ok() {
        let (result, statuses) = bring_up(2 * usize::from(QUEUE));
        assert_eq!(result, Ok(()));
        assert_eq!(statuses.last(), Some(&(status::FEATURES_OK | status::DRIVER_OK)));
        assert!(statuses.iter().all(|s| s & status::FAILED == 0), "{statuses:?}");
    }

    /// The stack relies on it: a send that returns `None` never ran `fill`.
    #[test]
    fn a_full_transmit_queue_refuses_before_filling() {
        let regs = device();
        let (transport, _) = Mmio::probe(&regs).unwrap();
        let mut net = VirtioNet::new(transport, &FakeDma::new(2 * usize::from(QUEUE)), None, QUEUE).unwrap();
        for _ in 0..QUEUE {
            assert_eq!(net.send(60, |b| b.len()), Some(60));
        }
        assert!(!net.can_send());
        let mut called = false;
        assert_eq!(net.send(60, |_| called = true), None);
        assert!(!called);
    }

    #[test]
    fn a_stopped_device_is_reset() {
        let regs = device();
        let (transport, _) = Mmio::probe(&regs).unwrap();
        let net = VirtioNet::new(transport, &FakeDma::new(2 * usize::from(QUEUE)), None, QUEUE).unwrap();
        net.stop();
        let last = regs.writes.borrow().iter().filter(|w| w.0 == STATUS).map(|w| w.1).next_back();
        assert_eq!(last, Some(0));
    }

    #[test]
    fn running_out_of_buffers_marks_the_device_failed() {
        // Short of transmit buffers, and (the transmit pool filled) of receive buffers.
        for buffers in [usize::from(QUEUE) - 1, 2 * usize::from(QUEUE) - 1] {
            let (result, statuses) = bring_up(buffers);
            assert_eq!(result, Err(Error::OutOfMemory), "{buffers} buffers");
            assert_eq!(statuses.last(), Some(&status::FAILED), "{buffers} buffers: {statuses:?}");
            assert!(statuses.iter().all(|s| s & status::DRIVER_OK == 0), "{buffers} buffers: {statuses:?}");
        }
    }
}

//! vmxnet3, VMware's paravirtual NIC (PCI 15ad:07b0; QEMU's `-device vmxnet3`): one
//! transmit and one receive queue, revision 1 of the device and of UPT, no offloads.
//!
//! The device has two register windows: BAR0 ("PT") holds the doorbells (producer
//! indices) and the interrupt masks, BAR1 ("VD") the revision handshake, the command
//! register, the MAC and the interrupt and event causes. Everything else lives in memory
//! the driver allocates: the driver-shared area (configuration, and the event cause the
//! device sets), the queue descriptors (ring addresses and sizes, queue status), and
//! the rings. Rings are owned by whoever's generation bit matches: the producer writes
//! a descriptor with its current generation, which flips each time its index wraps.
//!
//! Receive queues have two rings; this driver posts buffers only on ring 0 (2 KiB each,
//! enough for any frame with an MTU of 1500) and gives ring 1 its minimum, all
//! descriptors owned by the driver. Buffers are handed out by value, as with virtio-net,
//! so the stack reads and writes frames in place.

use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use crate::Registers;
use crate::dma::{DmaAllocator, DmaBuffer, DmaRing};
use crate::net::{MAX_FRAME, NetDevice, RxFrame};

pub const VENDOR: u16 = 0x15ad;
pub const DEVICE: u16 = 0x07b0;

mod abi;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
#[cfg(test)]
mod tests;

use abi::*;
pub use abi::{BUFFER_LEN, MAX_RING, MTU, RING_ALIGN, event};

/// Why the card did not start, or stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// BAR 0 or BAR 1 (the registers) is absent, not memory, or too small to map.
    MissingBar,
    /// The device offers no revision this driver speaks (bit 0 of VRRS: revision 1).
    BadRevision(u32),
    /// The device offers no UPT version this driver speaks (bit 0 of UVRS).
    BadUptVersion(u32),
    OutOfMemory,
    /// ACTIVATE_DEV answered nonzero: the device refused the configuration.
    ActivationFailed(u32),
    /// The device stopped a queue (an event, then GET_QUEUE_STATUS).
    QueueStopped {
        tx_error: u32,
        rx_error: u32,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::MissingBar => write!(f, "vmxnet3: no memory BARs 0 and 1 for its registers"),
            Error::BadRevision(r) => write!(f, "vmxnet3: device revisions {r:#x} do not include 1"),
            Error::BadUptVersion(r) => write!(f, "vmxnet3: UPT versions {r:#x} do not include 1"),
            Error::OutOfMemory => write!(f, "vmxnet3: out of DMA memory"),
            Error::ActivationFailed(s) => write!(f, "vmxnet3: ACTIVATE_DEV failed with {s:#x}"),
            Error::QueueStopped { tx_error, rx_error } => {
                write!(
                    f,
                    "vmxnet3: queue stopped by the device (TX error {tx_error:#x}, RX error {rx_error:#x})"
                )
            }
        }
    }
}

/// Counters of what the device did wrong or the driver dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Received frames dropped: the device's error bit, a length beyond the buffer or
    /// under an Ethernet header, a frame over several buffers, or on ring 1.
    pub rx_dropped: u64,
    /// Completions naming a descriptor the device does not hold (ignored).
    pub bad_completions: u64,
    /// Transmit completions that skipped over earlier descriptors (taken as completing
    /// them too).
    pub tx_out_of_order: u64,
}

/// A ring index and its generation, advancing together.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    next: u16,
    /// The generation bit that marks a descriptor as the producer's, now.
    phase: bool,
    size: u16,
}

impl Cursor {
    fn new(size: u16) -> Self {
        Cursor { next: 0, phase: true, size }
    }
    fn advance(&mut self) {
        self.next += 1;
        if self.next == self.size {
            self.next = 0;
            self.phase = !self.phase;
        }
    }
    fn offset(&self) -> usize {
        usize::from(self.next) * DESC
    }
}

pub struct Vmxnet3<R: Registers, A: DmaAllocator> {
    pt: R,
    vd: R,
    /// Driver-shared area and queue descriptors.
    shared: A::Ring,
    tx_ring: A::Ring,
    tx_comp: A::Ring,
    rx_ring: A::Ring,
    rx_comp: A::Ring,
    /// Ring 1 of the receive queue: the device must have it; nothing is posted there.
    _rx_ring1: A::Ring,
    tx_fill: Cursor,
    tx_comp_at: Cursor,
    /// The oldest descriptor the device holds, and how many it holds.
    tx_oldest: u16,
    tx_in_flight: u16,
    tx_posted: Vec<Option<A::Buffer>>,
    tx_pool: Vec<A::Buffer>,
    rx_fill: Cursor,
    rx_comp_at: Cursor,
    rx_posted: Vec<Option<A::Buffer>>,
    /// Buffers given back while their slot was still held (only after a device
    /// completed out of order); posted when slots free up.
    rx_spare: Vec<A::Buffer>,
    mac: [u8; 6],
    /// Set when the device reported a stopped queue: the card is dead from then on.
    failed: Option<Error>,
    pub stats: Stats,
}

impl<R: Registers, A: DmaAllocator> core::fmt::Debug for Vmxnet3<R, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vmxnet3").field("mac", &self.mac).field("stats", &self.stats).finish()
    }
}

fn ring_size(limit: u16) -> u16 {
    limit.clamp(RING_ALIGN, MAX_RING) / RING_ALIGN * RING_ALIGN
}

impl<R: Registers, A: DmaAllocator> Vmxnet3<R, A> {
    /// Negotiates revision 1, configures one queue each way with `queue_limit`
    /// descriptors (rounded to a multiple of 32, at most [`MAX_RING`]) and activates the
    /// device. `pt` is BAR0, `vd` BAR1. Interrupts are left masked (see
    /// [`NetDevice::set_interrupts`]); they come on interrupt 0, the only one with INTx.
    pub fn new(pt: R, vd: R, alloc: &A, queue_limit: u16) -> Result<Self, Error> {
        let revisions = vd.read32(vd::VRRS);
        if revisions & 1 == 0 || revisions == u32::MAX {
            return Err(Error::BadRevision(revisions));
        }
        vd.write32(vd::VRRS, 1);
        let upt = vd.read32(vd::UVRS);
        if upt & 1 == 0 || upt == u32::MAX {
            return Err(Error::BadUptVersion(upt));
        }
        vd.write32(vd::UVRS, 1);
        vd.write32(vd::CMD, cmd::RESET_DEV);
        let (low, high) = (vd.read32(vd::MACL).to_le_bytes(), vd.read32(vd::MACH).to_le_bytes());
        let mac = [low[0], low[1], low[2], low[3], high[0], high[1]];

        let size = ring_size(queue_limit);
        let ring = |descs: u16| alloc.alloc_ring(usize::from(descs) * DESC).ok_or(Error::OutOfMemory);
        let shared = alloc.alloc_ring(qdesc::TX + qdesc::LEN).ok_or(Error::OutOfMemory)?;
        let (tx_ring, tx_comp) = (ring(size)?, ring(size)?);
        let (rx_ring, rx_ring1, rx_comp) = (ring(size)?, ring(RING1)?, ring(size + RING1)?);
        let mut tx_pool = Vec::with_capacity(usize::from(size));
        for _ in 0..size {
            tx_pool.push(alloc.alloc_buffer(BUFFER_LEN).ok_or(Error::OutOfMemory)?);
        }

        write_shared(&shared);
        let tx = qdesc::TX;
        shared.write_u64(tx + qdesc::RING, tx_ring.device_addr());
        shared.write_u64(tx + qdesc::COMP_RING, tx_comp.device_addr());
        shared.write_u32(tx + qdesc::RING_SIZE, size.into());
        shared.write_u32(tx + qdesc::COMP_RING_SIZE, size.into());
        shared.write_u32(tx + qdesc::INTR_IDX, 0);
        let rx = qdesc::RX;
        shared.write_u64(rx + qdesc::RING, rx_ring.device_addr());
        shared.write_u64(rx + qdesc::RING2, rx_ring1.device_addr());
        shared.write_u64(rx + qdesc::COMP_RING, rx_comp.device_addr());
        shared.write_u32(rx + qdesc::RING_SIZE, size.into());
        shared.write_u32(rx + qdesc::RING2_SIZE, RING1.into());
        shared.write_u32(rx + qdesc::COMP_RING_SIZE, (size + RING1).into());
        shared.write_u32(rx + qdesc::INTR_IDX, 0);

        let mut net = Vmxnet3 {
            pt,
            vd,
            shared,
            tx_ring,
            tx_comp,
            rx_ring,
            rx_comp,
            _rx_ring1: rx_ring1,
            tx_fill: Cursor::new(size),
            tx_comp_at: Cursor::new(size),
            tx_oldest: 0,
            tx_in_flight: 0,
            tx_posted: (0..size).map(|_| None).collect(),
            tx_pool,
            rx_fill: Cursor::new(size),
            rx_comp_at: Cursor::new(size + RING1),
            rx_posted: (0..size).map(|_| None).collect(),
            rx_spare: Vec::new(),
            mac,
            failed: None,
            stats: Stats::default(),
        };
        for _ in 0..size {
            // Nothing is active yet: dropping what was posted is safe.
            let buffer = alloc.alloc_buffer(BUFFER_LEN).ok_or(Error::OutOfMemory)?;
            net.post_rx(buffer);
        }
        fence(Ordering::SeqCst);
        let addr = DmaRing::device_addr(&net.shared);
        net.vd.write32(vd::DSAL, addr as u32);
        net.vd.write32(vd::DSAH, (addr >> 32) as u32);
        net.pt.write32(pt::IMR, 1);
        net.vd.write32(vd::CMD, cmd::ACTIVATE_DEV);
        let status = net.vd.read32(vd::CMD);
        if status != 0 {
            net.vd.write32(vd::CMD, cmd::RESET_DEV);
            return Err(Error::ActivationFailed(status));
        }
        net.pt.write32(pt::RXPROD, net.rx_fill.next.into());
        net.pt.write32(pt::RXPROD2, 0);
        Ok(net)
    }

    /// Transmit and receive buffers the driver still owns, lent to the stack or not
    /// (for the fuzz target's check that none leaks: with the frames the stack holds,
    /// always twice the ring size).
    #[cfg(any(test, feature = "fakes"))]
    pub fn buffers_owned(&self) -> (usize, usize) {
        let tx = self.tx_pool.len() + self.tx_posted.iter().flatten().count();
        let rx = self.rx_posted.iter().flatten().count() + self.rx_spare.len();
        (tx, rx)
    }

    /// Masks its interrupt and resets the device, which forgets the driver-shared area
    /// and the rings, then drops them (a card the stack does not use).
    pub fn stop(self) {
        self.pt.write32(pt::IMR, 1);
        self.vd.write32(vd::CMD, cmd::RESET_DEV);
    }

    /// Why the device stopped, once it has.
    pub fn error(&self) -> Option<&Error> {
        self.failed.as_ref()
    }

    fn command(&self, command: u32) -> u32 {
        self.vd.write32(vd::CMD, command);
        self.vd.read32(vd::CMD)
    }

    /// Puts a buffer in the next slot of receive ring 0, handing it to the device.
    fn post_rx(&mut self, buffer: A::Buffer) {
        let slot = usize::from(self.rx_fill.next);
        if self.rx_posted[slot].is_some() {
            // The device completed out of order and this slot is still out: keep the
            // buffer for later.
            self.rx_spare.push(buffer);
            return;
        }
        let off = self.rx_fill.offset();
        self.rx_ring.write_u64(off, buffer.device_addr());
        self.rx_ring.write_u32(off + 12, 0);
        // The address must be visible before the generation that hands it over.
        fence(Ordering::Release);
        let phase = if self.rx_fill.phase { RXD_GEN } else { 0 };
        self.rx_ring.write_u32(off + 8, BUFFER_LEN as u32 | phase);
        self.rx_posted[slot] = Some(buffer);
        self.rx_fill.advance();
    }

    /// Takes completed transmit descriptors back. A completion names the last
    /// descriptor of a packet; one that skips descriptors completes them too (each
    /// packet here is one descriptor, so that means the device reordered), and one
    /// naming a descriptor the device does not hold is ignored.
    fn reclaim_tx(&mut self) {
        loop {
            let off = self.tx_comp_at.offset();
            let word3 = self.tx_comp.read_u32(off + 12);
            if (word3 & COMP_GEN != 0) != self.tx_comp_at.phase {
                return;
            }
            fence(Ordering::Acquire);
            let index = (self.tx_comp.read_u32(off) & 0xfff) as u16;
            self.tx_comp_at.advance();
            let size = self.tx_fill.size;
            let distance = (index + size - self.tx_oldest % size) % size;
            if index >= size || distance >= self.tx_in_flight {
                self.stats.bad_completions += 1;
                continue;
            }
            if distance > 0 {
                self.stats.tx_out_of_order += 1;
            }
            for _ in 0..=distance {
                if let Some(b) = self.tx_posted[usize::from(self.tx_oldest)].take() {
                    self.tx_pool.push(b);
                }
                self.tx_oldest = (self.tx_oldest + 1) % size;
                self.tx_in_flight -= 1;
            }
        }
    }

    fn comp_ready(ring: &A::Ring, at: &Cursor) -> bool {
        (ring.read_u32(at.offset() + 12) & COMP_GEN != 0) == at.phase
    }

    /// Acknowledges the events the device posted: a link change (nothing to do: the
    /// stack asks [`link_up`](NetDevice::link_up)) or a stopped queue, which ends the
    /// card.
    fn service_events(&mut self) {
        let events = self.shared.read_u32(shared::ECR);
        if events == 0 {
            return;
        }
        self.vd.write32(vd::ECR, events);
        if events & (event::TQERR | event::RQERR) != 0 && self.failed.is_none() {
            self.command(cmd::GET_QUEUE_STATUS);
            self.failed = Some(Error::QueueStopped {
                tx_error: self.shared.read_u32(qdesc::TX + qdesc::ERROR),
                rx_error: self.shared.read_u32(qdesc::RX + qdesc::ERROR),
            });
        }
    }

    /// Whether the device says a queue is stopped (after GET_QUEUE_STATUS).
    fn queue_stopped(&self) -> bool {
        let stopped = |q: usize| self.shared.read_u32(q + qdesc::STOPPED) & 0xff != 0;
        stopped(qdesc::TX) || stopped(qdesc::RX)
    }
}

/// The parts of the driver-shared area that never change.
fn write_shared(s: &impl DmaRing) {
    s.write_u32(shared::MAGIC, shared::MAGIC_VALUE);
    s.write_u32(shared::DRIVER_VERSION, 1);
    // 64-bit guest (bits 0-1: 2), of a type the device has no special case for.
    s.write_u32(shared::GUEST_OS, 2);
    s.write_u32(shared::REVISION_SUPPORT, 1);
    s.write_u32(shared::UPT_SUPPORT, 1);
    s.write_u64(shared::QUEUE_DESC_PA, s.device_addr() + qdesc::TX as u64);
    s.write_u32(shared::QUEUE_DESC_LEN, qdesc::LEN as u32);
    s.write_u32(shared::MTU, MTU);
    // One receive fragment, one queue each way.
    s.write_u32(shared::RX_SG_AND_QUEUES, 1 | (1 << 16) | (1 << 24));
    // No automatic masking (the driver masks through IMR), one interrupt, events on 0.
    s.write_u32(shared::INTR_CONF, 1 << 8);
    s.write_u32(shared::INTR_CTRL, 0);
    s.write_u32(shared::RX_MODE, RXM_UCAST | RXM_BCAST);
    // VLAN 0: untagged frames, which VMware's device filters like any other VLAN (QEMU's
    // lets them through regardless).
    s.write_u32(shared::VLAN_FILTER, 1);
}

impl<R: Registers, A: DmaAllocator> NetDevice for Vmxnet3<R, A> {
    type Buffer = A::Buffer;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// GET_LINK's bit 0 (its upper half is the speed in Mbit/s); down for good once a
    /// queue stopped.
    fn link_up(&self) -> bool {
        self.failed.is_none() && !self.queue_stopped() && self.command(cmd::GET_LINK) & 1 != 0
    }

    fn receive(&mut self) -> Option<RxFrame<A::Buffer>> {
        self.service_events();
        if self.failed.is_some() {
            return None;
        }
        loop {
            if !Self::comp_ready(&self.rx_comp, &self.rx_comp_at) {
                return None;
            }
            fence(Ordering::Acquire);
            let off = self.rx_comp_at.offset();
            let word0 = self.rx_comp.read_u32(off);
            let word2 = self.rx_comp.read_u32(off + 8);
            self.rx_comp_at.advance();
            let index = usize::from((word0 & 0xfff) as u16);
            let ring = (word0 >> 16) & 0x3ff;
            if ring != 0 {
                // Ring 1 holds no buffers: nothing to take back.
                self.stats.bad_completions += 1;
                continue;
            }
            let Some(mut buffer) = self.rx_posted.get_mut(index).and_then(Option::take) else {
                self.stats.bad_completions += 1;
                continue;
            };
            let len = (word2 & 0x3fff) as usize;
            let whole = word0 & (RXCD_SOP | RXCD_EOP) == RXCD_SOP | RXCD_EOP;
            if word2 & RXCD_ERR != 0 || !whole || !(14..=BUFFER_LEN).contains(&len) {
                self.stats.rx_dropped += 1;
                self.recycle_buffer(buffer);
                continue;
            }
            buffer.sync_for_cpu();
            return Some(RxFrame { buffer, offset: 0, len });
        }
    }

    fn recycle(&mut self, frame: RxFrame<A::Buffer>) {
        self.recycle_buffer(frame.buffer);
    }

    fn can_send(&mut self) -> bool {
        self.reclaim_tx();
        self.failed.is_none() && !self.tx_pool.is_empty() && self.tx_in_flight < self.tx_fill.size
    }

    fn send<T>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> T) -> Option<T> {
        if !self.can_send() {
            return None;
        }
        let len = len.min(MAX_FRAME);
        let mut buffer = self.tx_pool.pop()?;
        let result = fill(&mut buffer.bytes_mut()[..len]);
        buffer.sync_for_device();
        let off = self.tx_fill.offset();
        self.tx_ring.write_u64(off, buffer.device_addr());
        self.tx_ring.write_u32(off + 12, TXD_EOP | TXD_CQ);
        fence(Ordering::Release);
        let phase = if self.tx_fill.phase { TXD_GEN } else { 0 };
        self.tx_ring.write_u32(off + 8, len as u32 | phase);
        self.tx_posted[usize::from(self.tx_fill.next)] = Some(buffer);
        self.tx_fill.advance();
        self.tx_in_flight += 1;
        fence(Ordering::SeqCst);
        self.pt.write32(pt::TXPROD, self.tx_fill.next.into());
        Some(result)
    }

    fn has_work(&self) -> bool {
        Self::comp_ready(&self.rx_comp, &self.rx_comp_at)
            || (self.tx_pool.is_empty() && Self::comp_ready(&self.tx_comp, &self.tx_comp_at))
            || self.shared.read_u32(shared::ECR) != 0
    }

    fn kick(&mut self) {
        self.service_events();
        self.pt.write32(pt::TXPROD, self.tx_fill.next.into());
        self.pt.write32(pt::RXPROD, self.rx_fill.next.into());
    }

    /// Reads (and so clears) the interrupt cause: INTx stays raised until then.
    fn ack_interrupt(&self) {
        self.vd.read32(vd::ICR);
    }

    /// Masks or unmasks interrupt 0, which all queues and events share.
    fn set_interrupts(&mut self, on: bool) {
        self.pt.write32(pt::IMR, u32::from(!on));
    }
}

impl<R: Registers, A: DmaAllocator> Vmxnet3<R, A> {
    fn recycle_buffer(&mut self, buffer: A::Buffer) {
        self.post_rx(buffer);
        // Slots that freed up take the buffers kept aside.
        while self.rx_posted[usize::from(self.rx_fill.next)].is_none()
            && let Some(b) = self.rx_spare.pop()
        {
            self.post_rx(b);
        }
        // QEMU's device ignores RXPROD; VMware's asks for it through `updateRxProd`.
        if self.shared.read_u32(qdesc::RX) & 0xff != 0 {
            self.pt.write32(pt::RXPROD, self.rx_fill.next.into());
        }
    }
}

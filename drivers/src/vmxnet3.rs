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

/// BAR0 registers (each 8 bytes apart per queue or interrupt).
mod pt {
    /// Interrupt mask of interrupt 0: 1 masks.
    pub const IMR: u16 = 0x000;
    pub const TXPROD: u16 = 0x600;
    pub const RXPROD: u16 = 0x800;
    pub const RXPROD2: u16 = 0xa00;
}

/// BAR1 registers.
mod vd {
    /// Revision report and select.
    pub const VRRS: u16 = 0x00;
    /// UPT version report and select.
    pub const UVRS: u16 = 0x08;
    /// Driver-shared area address, low then high half.
    pub const DSAL: u16 = 0x10;
    pub const DSAH: u16 = 0x18;
    pub const CMD: u16 = 0x20;
    pub const MACL: u16 = 0x28;
    pub const MACH: u16 = 0x30;
    /// Interrupt cause (INTx): reading it acknowledges.
    pub const ICR: u16 = 0x38;
    /// Event cause: writing bits acknowledges them.
    pub const ECR: u16 = 0x40;
}

mod cmd {
    pub const ACTIVATE_DEV: u32 = 0xcafe_0000;
    pub const RESET_DEV: u32 = 0xcafe_0002;
    pub const GET_QUEUE_STATUS: u32 = 0xf00d_0000;
    pub const GET_LINK: u32 = 0xf00d_0002;
}

/// Event cause bits (driver-shared `ecr` and the ECR register).
pub mod event {
    pub const RQERR: u32 = 1 << 0;
    pub const TQERR: u32 = 1 << 1;
    pub const LINK: u32 = 1 << 2;
}

/// Offsets in the driver-shared area (`Vmxnet3_DriverShared`).
mod shared {
    pub const MAGIC: usize = 0;
    pub const MAGIC_VALUE: u32 = 0xbabe_fee1;
    // devRead.misc.driverInfo
    pub const DRIVER_VERSION: usize = 8;
    pub const GUEST_OS: usize = 12;
    pub const REVISION_SUPPORT: usize = 16;
    pub const UPT_SUPPORT: usize = 20;
    // devRead.misc
    pub const QUEUE_DESC_PA: usize = 40;
    pub const QUEUE_DESC_LEN: usize = 52;
    pub const MTU: usize = 56;
    /// maxNumRxSG (u16), numTxQueues (u8), numRxQueues (u8).
    pub const RX_SG_AND_QUEUES: usize = 60;
    // devRead.intrConf: autoMask, numIntrs, eventIntrIdx, modLevels[0] (one u8 each)
    pub const INTR_CONF: usize = 80;
    pub const INTR_CTRL: usize = 108;
    // devRead.rxFilterConf
    pub const RX_MODE: usize = 120;
    /// The VLAN filter, one bit per VLAN id.
    pub const VLAN_FILTER: usize = 136;
    /// Event cause the device sets.
    pub const ECR: usize = 696;
    pub const LEN: usize = 720;
}

// The queue descriptors follow the driver-shared area in its allocation.
const _: () = assert!(shared::LEN <= qdesc::TX);

/// Queue descriptors (`Vmxnet3_TxQueueDesc`, then `Vmxnet3_RxQueueDesc`), 256 bytes
/// each, after the driver-shared area in the same allocation.
mod qdesc {
    pub const TX: usize = 1024;
    pub const RX: usize = TX + 256;
    pub const LEN: usize = 512;
    // Offsets within one descriptor.
    pub const RING: usize = 16;
    pub const RING2: usize = 24;
    pub const COMP_RING: usize = 32;
    pub const RING_SIZE: usize = 56;
    pub const RING2_SIZE: usize = 60;
    pub const COMP_RING_SIZE: usize = 64;
    pub const INTR_IDX: usize = 72;
    pub const STOPPED: usize = 80;
    pub const ERROR: usize = 84;
}

const RXM_UCAST: u32 = 1 << 0;
const RXM_BCAST: u32 = 1 << 2;

/// Every descriptor, of every ring, is 16 bytes.
const DESC: usize = 16;
/// Rings are multiples of 32 descriptors (Linux keeps to this; VMware's devices ask it).
pub const RING_ALIGN: u16 = 32;
/// A ring never gets longer than this.
pub const MAX_RING: u16 = 256;
/// Receive ring 1 gets the minimum: nothing is ever posted there.
const RING1: u16 = RING_ALIGN;
/// An Ethernet frame of 1514 bytes, rounded up.
pub const BUFFER_LEN: usize = 2048;
pub const MTU: u32 = 1500;

// Transmit descriptor, dword 2: length (14 bits), generation at 14.
const TXD_GEN: u32 = 1 << 14;
// Dword 3: end of packet, and ask for a completion.
const TXD_EOP: u32 = 1 << 12;
const TXD_CQ: u32 = 1 << 13;
// Receive descriptor, dword 2: length (14 bits), buffer type 0 (head), generation at 31.
const RXD_GEN: u32 = 1 << 31;
// Completion descriptors carry their generation in bit 31 of dword 3.
const COMP_GEN: u32 = 1 << 31;
// Receive completion, dword 0: descriptor index (12 bits), end and start of packet,
// ring id (10 bits at 16); dword 2: length (14 bits), error at 14.
const RXCD_EOP: u32 = 1 << 14;
const RXCD_SOP: u32 = 1 << 15;
const RXCD_ERR: u32 = 1 << 14;

/// Why the card did not start, or stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
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

/// vmxnet3 as QEMU's device model plays it, over the fake DMA memory: for the host
/// tests and the fuzz target.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    extern crate std;
    use super::*;
    use crate::dma::fake::FakeDma;
    use core::cell::RefCell;

    /// Reads and writes the device's view of DMA memory at a device address.
    pub fn rd32(dma: &FakeDma, addr: u64) -> u32 {
        let (mem, o) = dma.at(addr).expect("device read outside DMA memory");
        u32::from_le_bytes(mem.borrow()[o..o + 4].try_into().unwrap())
    }
    pub fn rd64(dma: &FakeDma, addr: u64) -> u64 {
        u64::from(rd32(dma, addr)) | (u64::from(rd32(dma, addr + 4)) << 32)
    }
    pub fn wr32(dma: &FakeDma, addr: u64, v: u32) {
        let (mem, o) = dma.at(addr).expect("device write outside DMA memory");
        mem.borrow_mut()[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// A ring as the device walks it.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct DevRing {
        pub base: u64,
        pub size: u32,
        pub next: u32,
        pub phase: bool,
    }

    impl DevRing {
        pub fn new(base: u64, size: u32) -> Self {
            DevRing { base, size, next: 0, phase: true }
        }
        pub fn cell(&self) -> u64 {
            self.base + u64::from(self.next) * 16
        }
        pub fn advance(&mut self) {
            self.next += 1;
            if self.next == self.size {
                self.next = 0;
                self.phase = !self.phase;
            }
        }
    }

    #[derive(Debug, Default)]
    pub struct State {
        pub revisions: u32,
        pub dsa: u64,
        pub last_cmd: u32,
        pub active: bool,
        pub masked: bool,
        pub link: bool,
        pub tx: DevRing,
        pub tx_comp: DevRing,
        pub rx: DevRing,
        pub rx_comp: DevRing,
        pub sent: Vec<Vec<u8>>,
        /// Completions to hold back and write in reverse (for the reordering test).
        pub hold_tx: Vec<u32>,
        pub reorder_tx: bool,
    }

    /// vmxnet3 as QEMU plays it, over fake DMA memory.
    #[derive(Debug)]
    pub struct FakeDevice<'a> {
        pub dma: &'a FakeDma,
        pub s: RefCell<State>,
    }

    #[derive(Clone, Copy, Debug)]
    pub struct Bar<'a>(&'a FakeDevice<'a>, u8);

    impl<'a> FakeDevice<'a> {
        pub fn new(dma: &'a FakeDma) -> Self {
            FakeDevice {
                dma,
                s: RefCell::new(State { revisions: 1, masked: true, link: true, ..State::default() }),
            }
        }
        pub fn bars(&'a self) -> (Bar<'a>, Bar<'a>) {
            (Bar(self, 0), Bar(self, 1))
        }
        fn activate(&self) {
            let mut s = self.s.borrow_mut();
            let d = self.dma;
            if rd32(d, s.dsa) != shared::MAGIC_VALUE {
                return;
            }
            assert_eq!(rd32(d, s.dsa + shared::MTU as u64), 1500);
            assert_eq!(rd32(d, s.dsa + shared::RX_SG_AND_QUEUES as u64), 0x0101_0001);
            assert_eq!(rd32(d, s.dsa + shared::RX_MODE as u64), RXM_UCAST | RXM_BCAST);
            assert_eq!(rd32(d, s.dsa + shared::VLAN_FILTER as u64) & 1, 1, "untagged frames pass");
            let q = rd64(d, s.dsa + shared::QUEUE_DESC_PA as u64);
            let (tx, rx) = (q, q + 256);
            s.tx = DevRing::new(rd64(d, tx + 16), rd32(d, tx + 56));
            s.tx_comp = DevRing::new(rd64(d, tx + 32), rd32(d, tx + 64));
            s.rx = DevRing::new(rd64(d, rx + 16), rd32(d, rx + 56));
            assert_eq!(rd32(d, rx + 60), 32, "ring 1 gets the minimum");
            s.rx_comp = DevRing::new(rd64(d, rx + 32), rd32(d, rx + 64));
            s.active = true;
        }
        fn process_tx(&self) {
            let mut s = self.s.borrow_mut();
            let d = self.dma;
            loop {
                let cell = s.tx.cell();
                let word2 = rd32(d, cell + 8);
                if (word2 & TXD_GEN != 0) != s.tx.phase {
                    break;
                }
                let addr = rd64(d, cell);
                let len = (word2 & 0x3fff) as usize;
                assert_ne!(rd32(d, cell + 12) & TXD_EOP, 0);
                let (mem, o) = d.at(addr).unwrap();
                let frame = mem.borrow()[o..o + len].to_vec();
                s.sent.push(frame);
                let index = s.tx.next;
                s.tx.advance();
                if s.reorder_tx {
                    s.hold_tx.push(index);
                    continue;
                }
                Self::complete_tx(d, &mut s, index);
            }
        }
        fn complete_tx(d: &FakeDma, s: &mut State, index: u32) {
            let c = s.tx_comp.cell();
            wr32(d, c, index);
            wr32(d, c + 12, if s.tx_comp.phase { COMP_GEN } else { 0 });
            s.tx_comp.advance();
        }
        pub fn release_held_tx(&self, reverse: bool) {
            let mut s = self.s.borrow_mut();
            let mut held = core::mem::take(&mut s.hold_tx);
            if reverse {
                held.reverse();
            }
            for i in held {
                Self::complete_tx(self.dma, &mut s, i);
            }
        }
        /// Delivers a frame into the next receive buffer; `len` is what the completion
        /// claims, `err` its error bit. False when no buffer is posted.
        pub fn deliver(&self, frame: &[u8], len: u32, err: bool) -> bool {
            let mut s = self.s.borrow_mut();
            let d = self.dma;
            let cell = s.rx.cell();
            let word2 = rd32(d, cell + 8);
            if (word2 & RXD_GEN != 0) != s.rx.phase {
                return false;
            }
            let addr = rd64(d, cell);
            let (mem, o) = d.at(addr).unwrap();
            let n = frame.len().min((word2 & 0x3fff) as usize);
            mem.borrow_mut()[o..o + n].copy_from_slice(&frame[..n]);
            let c = s.rx_comp.cell();
            wr32(d, c, s.rx.next | RXCD_SOP | RXCD_EOP);
            wr32(d, c + 8, len | if err { RXCD_ERR } else { 0 });
            wr32(d, c + 12, if s.rx_comp.phase { COMP_GEN } else { 0 });
            s.rx.advance();
            s.rx_comp.advance();
            true
        }
        /// Posts events in the driver-shared area, as the device does.
        pub fn raise_events(&self, bits: u32, tx_error: u32) {
            let s = self.s.borrow();
            let ecr = s.dsa + shared::ECR as u64;
            wr32(self.dma, ecr, rd32(self.dma, ecr) | bits);
            if tx_error != 0 {
                let q = rd64(self.dma, s.dsa + shared::QUEUE_DESC_PA as u64);
                wr32(self.dma, q + 80, 1);
                wr32(self.dma, q + 84, tx_error);
            }
        }
    }

    impl Registers for Bar<'_> {
        fn read8(&self, _: u16) -> u8 {
            unreachable!()
        }
        fn write8(&self, _: u16, _: u8) {
            unreachable!()
        }
        fn read16(&self, _: u16) -> u16 {
            unreachable!()
        }
        fn write16(&self, _: u16, _: u16) {
            unreachable!()
        }
        fn read32(&self, offset: u16) -> u32 {
            let s = self.0.s.borrow();
            match (self.1, offset) {
                (0, pt::IMR) => u32::from(s.masked),
                (1, vd::VRRS) | (1, vd::UVRS) => s.revisions,
                (1, vd::CMD) => match s.last_cmd {
                    cmd::ACTIVATE_DEV => u32::from(!s.active),
                    cmd::GET_LINK => u32::from(s.link) | (1000 << 16),
                    _ => 0,
                },
                (1, vd::MACL) => 0x5634_1202,
                (1, vd::MACH) => 0x9a78,
                _ => 0,
            }
        }
        fn write32(&self, offset: u16, value: u32) {
            match (self.1, offset) {
                (0, pt::IMR) => self.0.s.borrow_mut().masked = value != 0,
                (0, pt::TXPROD) => self.0.process_tx(),
                (1, vd::DSAL) => self.0.s.borrow_mut().dsa = value.into(),
                (1, vd::DSAH) => self.0.s.borrow_mut().dsa |= u64::from(value) << 32,
                (1, vd::CMD) => {
                    self.0.s.borrow_mut().last_cmd = value;
                    if value == cmd::ACTIVATE_DEV {
                        self.0.activate();
                    }
                }
                (1, vd::ECR) => {
                    let ecr = self.0.s.borrow().dsa + shared::ECR as u64;
                    wr32(self.0.dma, ecr, rd32(self.0.dma, ecr) & !value);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::fake::*;
    use super::*;
    use crate::dma::fake::FakeDma;
    use std::vec;

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&[0x02, 0x12, 0x34, 0x56, 0x78, 0x9a]);
        f
    }

    fn start<'a>(dev: &'a FakeDevice<'a>, dma: &FakeDma) -> Vmxnet3<Bar<'a>, FakeDma> {
        let (pt, vd) = dev.bars();
        Vmxnet3::new(pt, vd, dma, 32).unwrap()
    }

    #[test]
    fn activates_with_mac_and_link() {
        let dma = FakeDma::new(64);
        let dev = FakeDevice::new(&dma);
        let mut net = start(&dev, &dma);
        assert!(dev.s.borrow().active);
        assert_eq!(net.mac(), [0x02, 0x12, 0x34, 0x56, 0x78, 0x9a]);
        assert!(net.link_up());
        net.set_interrupts(true);
        assert!(!dev.s.borrow().masked);
        net.set_interrupts(false);
        assert!(dev.s.borrow().masked);
        dev.s.borrow_mut().link = false;
        dev.raise_events(event::LINK, 0);
        assert!(net.has_work(), "an event is work");
        assert!(net.receive().is_none());
        assert!(!net.has_work(), "the event was acknowledged");
        assert!(!net.link_up());
    }

    #[test]
    fn frames_round_trip_in_place_across_ring_wraps() {
        let dma = FakeDma::new(64);
        let dev = FakeDevice::new(&dma);
        let mut net = start(&dev, &dma);
        // 100 frames each way through 32-slot rings: every ring and completion ring
        // wraps and flips its generation several times.
        for i in 0..100u8 {
            let f = frame(i, 60 + usize::from(i));
            assert!(dev.deliver(&f, f.len() as u32, false));
            assert!(net.has_work());
            let rx = net.receive().unwrap();
            assert_eq!(rx.frame(), &f[..]);
            net.recycle(rx);
            assert_eq!(net.send(f.len(), |b| b.copy_from_slice(&f)), Some(()));
        }
        assert!(net.receive().is_none());
        let sent = &dev.s.borrow().sent;
        assert_eq!(sent.len(), 100);
        assert!(sent.iter().enumerate().all(|(i, f)| f[10] == i as u8 && f.len() == 60 + i));
        assert_eq!(net.stats, Stats::default());
    }

    #[test]
    fn frames_held_by_the_stack_and_returned_out_of_order() {
        let dma = FakeDma::new(64);
        let dev = FakeDevice::new(&dma);
        let mut net = start(&dev, &dma);
        for round in 0..5u8 {
            let mut held = Vec::new();
            for i in 0..20u8 {
                assert!(dev.deliver(&frame(i, 64), 64, false));
                held.push(net.receive().unwrap());
            }
            // Only 12 slots left: the device runs dry rather than overwrite.
            for _ in 0..12 {
                assert!(dev.deliver(&frame(round, 64), 64, false));
            }
            assert!(!dev.deliver(&frame(round, 64), 64, false));
            while let Some(f) = net.receive() {
                net.recycle(f);
            }
            held.reverse();
            for f in held {
                assert_eq!(f.frame()[10], f.frame()[63]);
                net.recycle(f);
            }
        }
        assert_eq!(net.stats, Stats::default());
    }

    #[test]
    fn bad_receive_completions_are_dropped_and_their_buffers_kept() {
        let dma = FakeDma::new(64);
        let dev = FakeDevice::new(&dma);
        let mut net = start(&dev, &dma);
        let f = frame(7, 100);
        assert!(dev.deliver(&f, 100, true), "error bit");
        assert!(dev.deliver(&f, 4000, false), "longer than its buffer");
        assert!(dev.deliver(&f, 10, false), "shorter than a header");
        assert!(dev.deliver(&f, 100, false));
        let rx = net.receive().unwrap();
        assert_eq!(rx.len, 100);
        net.recycle(rx);
        assert_eq!(net.stats.rx_dropped, 3);
        // The dropped frames' buffers went back: the ring takes 32 more frames.
        for _ in 0..32 {
            assert!(dev.deliver(&f, 100, false));
        }
        assert!(!dev.deliver(&f, 100, false));
        // A completion naming a slot the driver does not hold is ignored.
        {
            let s = dev.s.borrow();
            let c = s.rx_comp.cell();
            drop(s);
            let mut s = dev.s.borrow_mut();
            wr32(&dma, c, 4000 | RXCD_SOP | RXCD_EOP);
            wr32(&dma, c + 8, 100);
            wr32(&dma, c + 12, if s.rx_comp.phase { COMP_GEN } else { 0 });
            s.rx_comp.advance();
        }
        let mut n = 0;
        while let Some(f) = net.receive() {
            n += 1;
            net.recycle(f);
        }
        assert_eq!(n, 32);
        assert_eq!(net.stats.bad_completions, 1);
    }

    #[test]
    fn transmit_completions_out_of_order_free_what_they_cover() {
        let dma = FakeDma::new(64);
        let dev = FakeDevice::new(&dma);
        let mut net = start(&dev, &dma);
        dev.s.borrow_mut().reorder_tx = true;
        let f = frame(1, 60);
        let mut sent = 0;
        while net.send(60, |b| b.copy_from_slice(&f)).is_some() {
            sent += 1;
        }
        assert_eq!(sent, 32);
        let mut called = false;
        assert_eq!(net.send(60, |_| called = true), None);
        assert!(!called, "a refused send never fills");
        // The last descriptor completes first: it covers all the others.
        dev.release_held_tx(true);
        assert!(net.can_send());
        assert_eq!(net.stats.tx_out_of_order, 1);
        assert_eq!(net.stats.bad_completions, 31, "the rest name descriptors no longer held");
        dev.s.borrow_mut().reorder_tx = false;
        for _ in 0..32 {
            assert!(net.send(60, |b| b.copy_from_slice(&f)).is_some());
        }
        assert_eq!(dev.s.borrow().sent.len(), 64);
    }

    #[test]
    fn a_queue_error_stops_the_card_with_a_named_error() {
        let dma = FakeDma::new(64);
        let dev = FakeDevice::new(&dma);
        let mut net = start(&dev, &dma);
        dev.raise_events(event::TQERR, 0x42);
        assert!(net.receive().is_none());
        let err = net.error().cloned().unwrap();
        assert_eq!(err, Error::QueueStopped { tx_error: 0x42, rx_error: 0 });
        assert!(alloc::format!("{err}").starts_with("vmxnet3:"));
        assert!(!net.link_up());
        assert!(!net.can_send());
        assert!(net.send(60, |_| ()).is_none());
    }

    #[test]
    fn bad_revisions_and_refused_activation() {
        let dma = FakeDma::new(64);
        for revisions in [0, 2, u32::MAX] {
            let dev = FakeDevice::new(&dma);
            dev.s.borrow_mut().revisions = revisions;
            let (pt, vd) = dev.bars();
            let err = Vmxnet3::new(pt, vd, &dma, 32).unwrap_err();
            assert_eq!(err, Error::BadRevision(revisions));
            assert!(alloc::format!("{err}").contains("vmxnet3"));
        }
        // Short of memory.
        let small = FakeDma::new(40);
        let dev = FakeDevice::new(&small);
        let (pt, vd) = dev.bars();
        assert_eq!(Vmxnet3::new(pt, vd, &small, 32).unwrap_err(), Error::OutOfMemory);
    }

    /// A device writing garbage into both completion rings (any index, length, flags,
    /// generation) while the driver receives, recycles and sends: no panic, and no
    /// buffer is lost or duplicated.
    #[test]
    fn hostile_completions_never_panic_or_leak_buffers() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let dma = FakeDma::new(64);
        let dev = FakeDevice::new(&dma);
        let mut net = start(&dev, &dma);
        let mut held = Vec::new();
        for _ in 0..20_000 {
            let r = next();
            let (ring, size) = if r & 1 == 0 {
                let s = dev.s.borrow();
                (s.rx_comp, s.rx_comp.size)
            } else {
                let s = dev.s.borrow();
                (s.tx_comp, s.tx_comp.size)
            };
            let cell = ring.base + (r >> 8) % u64::from(size) * 16;
            // Indices mostly in range, ring ids mostly 0: the cases worth reaching.
            let index = (r >> 16) as u32 % 40;
            let ring_id = if r & 2 == 0 { (r >> 56) as u32 & 0x3ff } else { 0 };
            let flags = (r >> 20) as u32 & (RXCD_SOP | RXCD_EOP);
            wr32(&dma, cell, index | flags | ring_id << 16);
            wr32(&dma, cell + 8, (r >> 24) as u32);
            wr32(&dma, cell + 12, (r >> 32) as u32);
            match (r >> 40) % 4 {
                0 => held.extend(net.receive()),
                1 if !held.is_empty() => net.recycle(held.swap_remove((r >> 44) as usize % held.len())),
                _ => {
                    let _ = net.send(60 + (r >> 48) as usize % 1500, |b| b.len());
                }
            }
            let _ = net.has_work();
            let tx = net.tx_pool.len() + net.tx_posted.iter().flatten().count();
            assert_eq!(tx, 32, "transmit buffers are conserved");
            let rx = held.len() + net.rx_posted.iter().flatten().count() + net.rx_spare.len();
            assert_eq!(rx, 32, "receive buffers are conserved");
        }
        let stats = net.stats;
        assert!(stats.bad_completions > 0 && stats.rx_dropped > 0 && stats.tx_out_of_order > 0, "{stats:?}");
    }
}

//! Intel's e1000 family: the 82540EM (QEMU's default card on `-M pc`) and the 82574L
//! (QEMU's `e1000e`, the default on `-M q35`). Both run here the same way: legacy
//! 16-byte descriptors in one receive and one transmit ring, 2 KiB buffers handed out by
//! value (the stack reads received frames and writes frames to send in place, as with
//! virtio-net), interrupt causes read from ICR and masked with IMS/IMC, the link from
//! STATUS.LU. The register layout and bit values are those of Intel's 8254x and 82574
//! software developer's manuals.

use alloc::vec::Vec;
use core::cell::Cell;
use core::sync::atomic::{Ordering, fence};

use crate::Registers;
use crate::dma::{DmaAllocator, DmaBuffer, DmaRing};
use crate::net::{MAX_FRAME, NetDevice, RxFrame};

/// Register offsets (the same on both chips for everything used here).
mod reg {
    pub const CTRL: u16 = 0x0000;
    pub const STATUS: u16 = 0x0008;
    pub const EERD: u16 = 0x0014;
    pub const CTRL_EXT: u16 = 0x0018;
    pub const ICR: u16 = 0x00c0;
    pub const IMS: u16 = 0x00d0;
    pub const IMC: u16 = 0x00d8;
    /// 82574 only: which MSI-X causes clear themselves in ICR when signalled.
    pub const EIAC: u16 = 0x00dc;
    /// 82574 only: which interrupt cause goes to which MSI-X vector.
    pub const IVAR: u16 = 0x00e4;
    pub const RCTL: u16 = 0x0100;
    pub const TCTL: u16 = 0x0400;
    pub const TIPG: u16 = 0x0410;
    pub const RDBAL: u16 = 0x2800;
    pub const RDBAH: u16 = 0x2804;
    pub const RDLEN: u16 = 0x2808;
    pub const RDH: u16 = 0x2810;
    pub const RDT: u16 = 0x2818;
    /// Receive delay timer and absolute delay: 0, an interrupt per frame batch at once.
    pub const RDTR: u16 = 0x2820;
    pub const RADV: u16 = 0x282c;
    pub const TDBAL: u16 = 0x3800;
    pub const TDBAH: u16 = 0x3804;
    pub const TDLEN: u16 = 0x3808;
    pub const TDH: u16 = 0x3810;
    pub const TDT: u16 = 0x3818;
    pub const RXCSUM: u16 = 0x5000;
    /// Multicast table: 128 registers.
    pub const MTA: u16 = 0x5200;
    pub const RAL0: u16 = 0x5400;
    pub const RAH0: u16 = 0x5404;
}

const CTRL_LRST: u32 = 1 << 3;
const CTRL_ASDE: u32 = 1 << 5;
const CTRL_SLU: u32 = 1 << 6;
const CTRL_RST: u32 = 1 << 26;
const CTRL_PHY_RST: u32 = 1 << 31;

const STATUS_LU: u32 = 1 << 1;

/// Interrupt causes (ICR, IMS, IMC).
pub const ICR_TXDW: u32 = 1 << 0;
pub const ICR_LSC: u32 = 1 << 2;
pub const ICR_RXDMT0: u32 = 1 << 4;
pub const ICR_RXO: u32 = 1 << 6;
pub const ICR_RXT0: u32 = 1 << 7;
/// The causes this driver takes interrupts for (transmit only while every buffer is out).
const RX_CAUSES: u32 = ICR_RXT0 | ICR_RXDMT0 | ICR_RXO | ICR_LSC;
/// The 82574's causes in MSI-X mode: receive queue 0, transmit queue 0 (in place of
/// RXT0 and TXDW), and "other" (link changes and the rest).
pub const ICR_RXQ0: u32 = 1 << 20;
pub const ICR_TXQ0: u32 = 1 << 22;
pub const ICR_OTHER: u32 = 1 << 24;

/// CTRL_EXT: ICR's MSI-X causes cleared by EIAC leave IMS alone (without it, QEMU also
/// masks them, behind the driver's cached mask); the pending-bit array in MSI-X mode.
const CTRL_EXT_IAME: u32 = 1 << 27;
const CTRL_EXT_PBA_CLR: u32 = 1 << 31;
/// An IVAR field (4 bits per cause): the vector and the valid bit.
const IVAR_VALID: u32 = 1 << 3;

const RCTL_EN: u32 = 1 << 1;
const RCTL_BAM: u32 = 1 << 15;
/// Strip the frame check sequence: frames come without their 4 CRC bytes.
const RCTL_SECRC: u32 = 1 << 26;
// BSIZE (bits 16-17) 0 with BSEX 0 is 2048 bytes; RDMTS 0 is "half the ring".

const TCTL_EN: u32 = 1 << 1;
/// Pad short frames to 64 bytes.
const TCTL_PSP: u32 = 1 << 3;
/// Collision threshold (15, the manuals' recommendation) and distance (64 bytes, full
/// duplex).
const TCTL_CT: u32 = 0x0f << 4;
const TCTL_COLD: u32 = 0x40 << 12;
/// Inter-packet gap for copper: IPGT 10, IPGR1 8, IPGR2 6.
const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20);

const RAH_AV: u32 = 1 << 31;

const DESC_LEN: usize = 16;
/// Receive descriptor status and errors.
const RX_DD: u32 = 1 << 0;
const RX_EOP: u32 = 1 << 1;
/// Transmit command: end of packet, insert FCS, report status.
const TX_CMD_EOP: u32 = 1 << 0;
const TX_CMD_IFCS: u32 = 1 << 1;
const TX_CMD_RS: u32 = 1 << 3;
const TX_DD: u32 = 1 << 0;

/// Every buffer is this long (RCTL.BSIZE = 2048).
pub const BUFFER_LEN: usize = 2048;
/// The longest ring: 256 descriptors (4 KiB), one page.
pub const MAX_RING: u16 = 256;
/// How much of BAR 0 the driver uses (every register above sits below 0x5800).
pub const REGISTERS_LEN: u64 = 0x1_0000;
/// How many register reads a reset may take before the card is given up.
const RESET_POLLS: u32 = 100_000;
/// How many register reads one EEPROM word may take.
const EEPROM_POLLS: u32 = 10_000;

/// The chips this driver knows, by PCI ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// 8086:100e, the 82540EM: PCI, INTx.
    I82540Em,
    /// 8086:10d3, the 82574L: PCI Express, MSI and MSI-X.
    I82574L,
}

pub const VENDOR_INTEL: u16 = 0x8086;

impl Model {
    pub fn from_ids(vendor: u16, device: u16) -> Option<Model> {
        match (vendor, device) {
            (VENDOR_INTEL, 0x100e) => Some(Model::I82540Em),
            (VENDOR_INTEL, 0x10d3) => Some(Model::I82574L),
            _ => None,
        }
    }

    /// The chip's name, as Intel writes it.
    pub fn chip(self) -> &'static str {
        match self {
            Model::I82540Em => "82540EM",
            Model::I82574L => "82574L",
        }
    }

    /// The driver family's name (QEMU's device name).
    pub fn family(self) -> &'static str {
        match self {
            Model::I82540Em => "e1000",
            Model::I82574L => "e1000e",
        }
    }

    /// EERD's layout differs: the 8254x has DONE at bit 4 and the word address from bit
    /// 8, the 82574 DONE at bit 1 and the address from bit 2. START is bit 0 and the data
    /// bits 16-31 on both.
    fn eerd(self) -> (u32, u32) {
        match self {
            Model::I82540Em => (1 << 4, 8),
            Model::I82574L => (1 << 1, 2),
        }
    }
}

impl core::fmt::Display for Model {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.family(), self.chip())
    }
}

/// Why a card did not start; each names the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// BAR 0 (the registers) is absent, not memory, or too small to map.
    MissingBar(Model),
    /// CTRL.RST never cleared.
    ResetTimeout(Model),
    /// MSI-X asked of a chip without it (the 82540EM), or a vector past the 82574's five.
    NoMsix(Model),
    /// Neither RAL0/RAH0 nor the EEPROM holds a MAC address.
    NoMac(Model),
    OutOfMemory(Model),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::MissingBar(m) => write!(f, "{m}: no memory BAR 0 for its registers"),
            Error::ResetTimeout(m) => write!(f, "{m}: the reset did not complete"),
            Error::NoMsix(m) => write!(f, "{m}: no such MSI-X vector"),
            Error::NoMac(m) => write!(f, "{m}: no MAC address in RAL0/RAH0 nor in the EEPROM"),
            Error::OutOfMemory(m) => write!(f, "{m}: out of DMA memory for its rings"),
        }
    }
}

/// What went wrong with received frames, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxErrors {
    /// Descriptors with an error bit set (CRC, symbol, sequence, carrier, RX data).
    pub flagged: u64,
    /// Lengths beyond the buffer, shorter than an Ethernet header, or frames spread over
    /// several buffers (never expected: long frames are off).
    pub bad_length: u64,
}

pub struct E1000<R: Registers, A: DmaAllocator> {
    regs: R,
    model: Model,
    mac: [u8; 6],
    rx_ring: A::Ring,
    tx_ring: A::Ring,
    /// Descriptors per ring (both rings the same length).
    len: u16,
    /// The buffer in each receive slot while the card holds it.
    rx_posted: Vec<Option<A::Buffer>>,
    /// The next slot the card fills (the oldest one posted).
    rx_next: u16,
    /// The next slot a buffer goes into; the card owns `rx_next..rx_fill`.
    rx_fill: u16,
    /// RDT as last written: slots up to `rx_fill` are published in batches.
    rx_published: u16,
    /// Dropping the rest of a frame that spread over several buffers.
    rx_discarding: bool,
    tx_posted: Vec<Option<A::Buffer>>,
    /// The oldest slot in flight, and the next one to fill (TDT).
    tx_clean: u16,
    tx_tail: u16,
    tx_pool: Vec<A::Buffer>,
    /// IMS as last set, so unchanged masks cost no register write.
    mask: u32,
    /// The causes the stack wakes for: receive (and link) always, transmit done while
    /// every buffer is in flight. Their bits differ in MSI-X mode.
    rx_causes: u32,
    tx_causes: u32,
    link_changes: Cell<u64>,
    pub rx_errors: RxErrors,
}

impl<R: Registers, A: DmaAllocator> core::fmt::Debug for E1000<R, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("E1000")
            .field("model", &self.model)
            .field("mac", &self.mac)
            .field("ring", &self.len)
            .field("rx_errors", &self.rx_errors)
            .finish()
    }
}

fn next(i: u16, len: u16) -> u16 {
    if i + 1 == len { 0 } else { i + 1 }
}

/// How many slots lie from `from` up to (not including) `to` on a ring of `len`.
fn distance(from: u16, to: u16, len: u16) -> u16 {
    if to >= from { to - from } else { len - from + to }
}

impl<R: Registers, A: DmaAllocator> E1000<R, A> {
    /// Resets the card and brings it up: rings of at most `ring_limit` descriptors
    /// (rounded down to a multiple of 8, at least 8, at most [`MAX_RING`]), all receive
    /// buffers posted, receiver and transmitter on, interrupts masked.
    pub fn new(regs: R, model: Model, alloc: &A, ring_limit: u16) -> Result<Self, Error> {
        // The ring length in bytes must be a multiple of 128: 8 descriptors.
        let len = (ring_limit.clamp(8, MAX_RING)) & !7;
        regs.write32(reg::IMC, u32::MAX);
        regs.write32(reg::CTRL, regs.read32(reg::CTRL) | CTRL_RST);
        if !(0..RESET_POLLS).any(|_| regs.read32(reg::CTRL) & CTRL_RST == 0) {
            return Err(Error::ResetTimeout(model));
        }
        // The reset turned interrupts back on in some models: off, and nothing pending.
        regs.write32(reg::IMC, u32::MAX);
        let _ = regs.read32(reg::ICR);
        let ctrl = regs.read32(reg::CTRL);
        regs.write32(reg::CTRL, (ctrl | CTRL_SLU | CTRL_ASDE) & !(CTRL_LRST | CTRL_PHY_RST | CTRL_RST));

        let mac = Self::read_mac(&regs, model)?;
        let [a, b, c, d, e, f] = mac;
        regs.write32(reg::RAL0, u32::from_le_bytes([a, b, c, d]));
        regs.write32(reg::RAH0, u32::from(u16::from_le_bytes([e, f])) | RAH_AV);
        for i in 0..128 {
            regs.write32(reg::MTA + 4 * i, 0);
        }

        let ring_bytes = usize::from(len) * DESC_LEN;
        let oom = Error::OutOfMemory(model);
        let rx_ring = alloc.alloc_ring(ring_bytes).ok_or(oom)?;
        let tx_ring = alloc.alloc_ring(ring_bytes).ok_or(oom)?;
        // A ring holds at most `len - 1` buffers: head == tail means empty.
        let held = usize::from(len) - 1;
        let mut tx_pool = Vec::with_capacity(held);
        for _ in 0..held {
            tx_pool.push(alloc.alloc_buffer(BUFFER_LEN).ok_or(oom)?);
        }
        let mut nic = E1000 {
            regs,
            model,
            mac,
            rx_ring,
            tx_ring,
            len,
            rx_posted: (0..len).map(|_| None).collect(),
            rx_next: 0,
            rx_fill: 0,
            rx_published: 0,
            rx_discarding: false,
            tx_posted: (0..len).map(|_| None).collect(),
            tx_clean: 0,
            tx_tail: 0,
            tx_pool,
            mask: 0,
            rx_causes: RX_CAUSES,
            tx_causes: ICR_TXDW,
            link_changes: Cell::new(0),
            rx_errors: RxErrors::default(),
        };
        for _ in 0..held {
            let buffer = alloc.alloc_buffer(BUFFER_LEN).ok_or(oom)?;
            nic.post_rx(buffer);
        }
        nic.setup_rings();
        Ok(nic)
    }

    fn setup_rings(&mut self) {
        let r = &self.regs;
        let bytes = u32::from(self.len) * DESC_LEN as u32;
        let rx = self.rx_ring.device_addr();
        r.write32(reg::RDBAL, rx as u32);
        r.write32(reg::RDBAH, (rx >> 32) as u32);
        r.write32(reg::RDLEN, bytes);
        r.write32(reg::RDH, 0);
        r.write32(reg::RDT, 0);
        r.write32(reg::RDTR, 0);
        r.write32(reg::RADV, 0);
        // No checksum offload: the stack checks, and error bits then mean a bad frame.
        r.write32(reg::RXCSUM, 0);
        // Written once: QEMU's 82540EM holds received frames back for a second after any
        // RCTL write (its `flush_queue_timer`), which is why DHCP on `-device e1000`
        // takes a second longer than on the other cards.
        r.write32(reg::RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);

        let tx = self.tx_ring.device_addr();
        r.write32(reg::TDBAL, tx as u32);
        r.write32(reg::TDBAH, (tx >> 32) as u32);
        r.write32(reg::TDLEN, bytes);
        r.write32(reg::TDH, 0);
        r.write32(reg::TDT, 0);
        r.write32(reg::TIPG, TIPG_COPPER);
        r.write32(reg::TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
        self.publish_rx();
    }

    /// Routes every interrupt to MSI-X vector `vector` (the 82574L; the kernel has
    /// enabled MSI-X in configuration space): receive queue 0, transmit queue 0 and
    /// "other" in IVAR, the queue causes clearing themselves as they are signalled
    /// (EIAC), so no ICR access is needed per interrupt. Link changes then arrive as
    /// "other", which is left masked: the stack checks the link after a silence.
    pub fn use_msix(&mut self, vector: u8) -> Result<(), Error> {
        if self.model != Model::I82574L || vector > 4 {
            return Err(Error::NoMsix(self.model));
        }
        let field = IVAR_VALID | u32::from(vector);
        self.regs.write32(reg::IVAR, field | (field << 8) | (field << 16));
        self.regs.write32(reg::EIAC, ICR_RXQ0 | ICR_TXQ0);
        let ctrl_ext = self.regs.read32(reg::CTRL_EXT);
        self.regs.write32(reg::CTRL_EXT, ctrl_ext | CTRL_EXT_IAME | CTRL_EXT_PBA_CLR);
        let on = self.mask != 0;
        self.set_interrupts(false);
        self.rx_causes = ICR_RXQ0;
        self.tx_causes = ICR_TXQ0;
        self.set_interrupts(on);
        Ok(())
    }

    /// Masks its interrupts and resets the card, which turns its receiver and
    /// transmitter off and forgets the rings, then drops them (a card the stack does not
    /// use).
    pub fn stop(self) {
        self.regs.write32(reg::IMC, u32::MAX);
        self.regs.write32(reg::RCTL, 0);
        self.regs.write32(reg::TCTL, 0);
        self.regs.write32(reg::CTRL, self.regs.read32(reg::CTRL) | CTRL_RST);
        let _ = (0..RESET_POLLS).any(|_| self.regs.read32(reg::CTRL) & CTRL_RST == 0);
    }

    /// The address in receive address 0 (loaded from the EEPROM at reset), else the
    /// EEPROM's first three words.
    fn read_mac(regs: &R, model: Model) -> Result<[u8; 6], Error> {
        let ral = regs.read32(reg::RAL0).to_le_bytes();
        let rah = regs.read32(reg::RAH0);
        let [e, f, ..] = rah.to_le_bytes();
        let mac = [ral[0], ral[1], ral[2], ral[3], e, f];
        if rah & RAH_AV != 0 && mac != [0; 6] {
            return Ok(mac);
        }
        let mut mac = [0u8; 6];
        for word in 0..3u32 {
            let value = Self::eeprom_word(regs, model, word).ok_or(Error::NoMac(model))?;
            mac[2 * word as usize..2 * word as usize + 2].copy_from_slice(&value.to_le_bytes());
        }
        if mac == [0; 6] || mac == [0xff; 6] {
            return Err(Error::NoMac(model));
        }
        Ok(mac)
    }

    fn eeprom_word(regs: &R, model: Model, word: u32) -> Option<u16> {
        let (done, shift) = model.eerd();
        regs.write32(reg::EERD, 1 | (word << shift));
        (0..EEPROM_POLLS).find_map(|_| {
            let v = regs.read32(reg::EERD);
            (v & done != 0).then_some((v >> 16) as u16)
        })
    }

    pub fn model(&self) -> Model {
        self.model
    }

    /// Transmit and receive buffers the driver still owns, lent to the stack or not
    /// (for the fuzz target's check that none leaks: with the frames the stack holds,
    /// always `ring - 1` each).
    #[cfg(any(test, feature = "fakes"))]
    pub fn buffers_owned(&self) -> (usize, usize) {
        let tx = self.tx_pool.len() + self.tx_posted.iter().flatten().count();
        (tx, self.rx_posted.iter().flatten().count())
    }

    /// How many link-status changes the card reported (ICR.LSC).
    pub fn link_changes(&self) -> u64 {
        self.link_changes.get()
    }

    /// Puts a buffer in the next free receive slot (published to the card in batches).
    fn post_rx(&mut self, buffer: A::Buffer) {
        let slot = self.rx_fill;
        let off = usize::from(slot) * DESC_LEN;
        self.rx_ring.write_u64(off, buffer.device_addr());
        self.rx_ring.write_u32(off + 8, 0);
        self.rx_ring.write_u32(off + 12, 0);
        self.rx_posted[usize::from(slot)] = Some(buffer);
        self.rx_fill = next(slot, self.len);
    }

    /// Writes RDT: the card may fill every posted slot.
    fn publish_rx(&mut self) {
        if self.rx_published != self.rx_fill {
            // The descriptors are written before the card may read them.
            fence(Ordering::Release);
            self.rx_published = self.rx_fill;
            self.regs.write32(reg::RDT, u32::from(self.rx_fill));
        }
    }

    /// Publishes buffers given back once enough have gathered, or at once when the card
    /// runs short: one register write (a trip to the hypervisor) per batch, not per frame.
    fn maybe_publish_rx(&mut self) {
        let unpublished = distance(self.rx_published, self.rx_fill, self.len);
        let published = distance(self.rx_next, self.rx_published, self.len);
        if unpublished >= 8 || published < self.len / 4 {
            self.publish_rx();
        }
    }

    fn reclaim_tx(&mut self) {
        while self.tx_clean != self.tx_tail {
            let off = usize::from(self.tx_clean) * DESC_LEN;
            if self.tx_ring.read_u32(off + 12) & TX_DD == 0 {
                break;
            }
            fence(Ordering::Acquire);
            if let Some(b) = self.tx_posted[usize::from(self.tx_clean)].take() {
                self.tx_pool.push(b);
            }
            self.tx_clean = next(self.tx_clean, self.len);
        }
    }

    fn rx_ready(&self) -> bool {
        let off = usize::from(self.rx_next) * DESC_LEN;
        self.rx_next != self.rx_fill && self.rx_ring.read_u32(off + 12) & RX_DD != 0
    }

    fn tx_done(&self) -> bool {
        let off = usize::from(self.tx_clean) * DESC_LEN;
        self.tx_clean != self.tx_tail && self.tx_ring.read_u32(off + 12) & TX_DD != 0
    }

    /// Reads the interrupt causes and clears them. ICR clears on read on the 82540EM;
    /// the 82574 clears it on read only in some modes (its manual's 13.3.27, and QEMU
    /// follows that), so the causes read are also written back, which clears them on both.
    pub fn interrupt_causes(&self) -> u32 {
        let icr = self.regs.read32(reg::ICR);
        if icr != 0 {
            self.regs.write32(reg::ICR, icr);
        }
        if icr & ICR_LSC != 0 {
            self.link_changes.set(self.link_changes.get() + 1);
        }
        icr
    }
}

impl<R: Registers, A: DmaAllocator> NetDevice for E1000<R, A> {
    type Buffer = A::Buffer;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&self) -> bool {
        self.regs.read32(reg::STATUS) & STATUS_LU != 0
    }

    fn receive(&mut self) -> Option<RxFrame<A::Buffer>> {
        while self.rx_ready() {
            // The descriptor and buffer are read only after DD was seen set.
            fence(Ordering::Acquire);
            let slot = self.rx_next;
            let off = usize::from(slot) * DESC_LEN;
            let word = self.rx_ring.read_u32(off + 12);
            let (status, errors) = (word & 0xff, (word >> 8) & 0xff);
            let len = usize::from(self.rx_ring.read_u16(off + 8));
            self.rx_next = next(slot, self.len);
            let Some(mut buffer) = self.rx_posted[usize::from(slot)].take() else {
                // Cannot happen: every slot up to rx_fill holds a buffer.
                continue;
            };
            let discarding = core::mem::replace(&mut self.rx_discarding, status & RX_EOP == 0);
            if errors != 0 || discarding || status & RX_EOP == 0 || !(14..=BUFFER_LEN).contains(&len) {
                if errors != 0 {
                    self.rx_errors.flagged += 1;
                } else {
                    self.rx_errors.bad_length += 1;
                }
                self.post_rx(buffer);
                self.maybe_publish_rx();
                continue;
            }
            buffer.sync_for_cpu();
            return Some(RxFrame { buffer, offset: 0, len });
        }
        None
    }

    fn recycle(&mut self, frame: RxFrame<A::Buffer>) {
        self.post_rx(frame.buffer);
        self.maybe_publish_rx();
    }

    fn can_send(&mut self) -> bool {
        self.reclaim_tx();
        !self.tx_pool.is_empty()
    }

    fn send<R2>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R2) -> Option<R2> {
        self.reclaim_tx();
        let len = len.min(MAX_FRAME);
        let mut buffer = self.tx_pool.pop()?;
        let result = fill(&mut buffer.bytes_mut()[..len]);
        buffer.sync_for_device();
        let slot = self.tx_tail;
        let off = usize::from(slot) * DESC_LEN;
        self.tx_ring.write_u64(off, buffer.device_addr());
        self.tx_ring.write_u32(off + 8, len as u32 | ((TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS) << 24));
        self.tx_ring.write_u32(off + 12, 0);
        self.tx_posted[usize::from(slot)] = Some(buffer);
        self.tx_tail = next(slot, self.len);
        // Frame and descriptor are written before the card hears of them.
        fence(Ordering::Release);
        self.regs.write32(reg::TDT, u32::from(self.tx_tail));
        Some(result)
    }

    fn has_work(&self) -> bool {
        self.rx_ready() || (self.tx_pool.is_empty() && self.tx_done())
    }

    /// Publishes every receive buffer and the transmit tail again.
    fn kick(&mut self) {
        fence(Ordering::Release);
        self.rx_published = self.rx_fill;
        self.regs.write32(reg::RDT, u32::from(self.rx_fill));
        self.regs.write32(reg::TDT, u32::from(self.tx_tail));
    }

    /// Clears the causes, which lowers INTx (level) and lets the 82574 signal again.
    fn ack_interrupt(&self) {
        self.interrupt_causes();
    }

    /// Receive causes and link changes while on, and transmit done only while every
    /// transmit buffer is in flight (otherwise they are reclaimed on the next send).
    fn set_interrupts(&mut self, on: bool) {
        let wanted = if !on {
            0
        } else if self.tx_pool.is_empty() {
            self.rx_causes | self.tx_causes
        } else {
            self.rx_causes
        };
        if wanted & !self.mask != 0 {
            self.regs.write32(reg::IMS, wanted & !self.mask);
        }
        if self.mask & !wanted != 0 {
            self.regs.write32(reg::IMC, self.mask & !wanted);
        }
        self.mask = wanted;
    }
}

#[cfg(any(test, feature = "fakes"))]
pub mod fake;
#[cfg(test)]
mod tests;

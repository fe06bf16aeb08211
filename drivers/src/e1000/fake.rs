//! An e1000 or e1000e as QEMU's device model plays it, over the fake DMA memory: for
//! the host tests and the fuzz target.

extern crate std;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::dma::fake::FakeDma;

/// The address the fake's RAL0/RAH0 hold.
pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// An e1000 as far as the driver sees it: registers with the card's side effects
/// (self-clearing reset, ICR cleared on read and by writing ones, IMS/IMC, EERD), and
/// the rings in the fake DMA memory.
#[derive(Debug)]
pub struct Fake<'a> {
    pub dma: &'a FakeDma,
    pub model: Model,
    pub regs: RefCell<BTreeMap<u16, u32>>,
    pub eeprom: [u16; 3],
    pub link: Cell<bool>,
    pub stuck_reset: bool,
    /// Every register write, in order.
    pub writes: RefCell<Vec<(u16, u32)>>,
}

impl<'a> Fake<'a> {
    pub fn new(dma: &'a FakeDma, model: Model) -> Self {
        let regs = BTreeMap::from([
            (reg::RAL0, u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]])),
            (reg::RAH0, u32::from(u16::from_le_bytes([MAC[4], MAC[5]])) | RAH_AV),
        ]);
        Fake {
            dma,
            model,
            regs: RefCell::new(regs),
            eeprom: [0x1100, 0x3322, 0x5544],
            link: Cell::new(true),
            stuck_reset: false,
            writes: RefCell::new(Vec::new()),
        }
    }

    pub fn get(&self, r: u16) -> u32 {
        *self.regs.borrow().get(&r).unwrap_or(&0)
    }
    pub fn set(&self, r: u16, v: u32) {
        self.regs.borrow_mut().insert(r, v);
    }
    pub fn raise(&self, cause: u32) {
        self.set(reg::ICR, self.get(reg::ICR) | cause);
    }
    pub fn writes_to(&self, r: u16) -> Vec<u32> {
        self.writes.borrow().iter().filter(|w| w.0 == r).map(|w| w.1).collect()
    }

    pub fn descriptor(&self, base: u16, slot: u32) -> (std::rc::Rc<RefCell<Vec<u8>>>, usize) {
        let ring = u64::from(self.get(base)) | (u64::from(self.get(base + 4)) << 32);
        self.dma.at(ring + u64::from(slot) * 16).expect("descriptor in DMA memory")
    }

    /// Receives a frame into the next descriptor, writing `length`, `status` and
    /// `errors` as given; false when the driver left the card no buffer.
    pub fn deliver_raw(&self, bytes: &[u8], length: u16, status: u8, errors: u8) -> bool {
        let (head, tail, len) = (self.get(reg::RDH), self.get(reg::RDT), self.get(reg::RDLEN) / 16);
        if head == tail {
            return false;
        }
        let (desc, off) = self.descriptor(reg::RDBAL, head);
        let addr = u64::from_le_bytes(desc.borrow()[off..off + 8].try_into().unwrap());
        let (buf, boff) = self.dma.at(addr).expect("receive buffer");
        buf.borrow_mut()[boff..boff + bytes.len()].copy_from_slice(bytes);
        let mut d = desc.borrow_mut();
        d[off + 8..off + 10].copy_from_slice(&length.to_le_bytes());
        d[off + 12] = status;
        d[off + 13] = errors;
        self.set(reg::RDH, (head + 1) % len);
        self.raise(ICR_RXT0);
        true
    }

    pub fn deliver(&self, bytes: &[u8]) -> bool {
        self.deliver_raw(bytes, bytes.len() as u16, (RX_DD | RX_EOP) as u8, 0)
    }

    /// Sends what the driver queued: the frames, in order; DD set on each.
    pub fn transmit(&self) -> Vec<Vec<u8>> {
        let mut sent = Vec::new();
        let len = self.get(reg::TDLEN) / 16;
        while self.get(reg::TDH) != self.get(reg::TDT) {
            let head = self.get(reg::TDH);
            let (desc, off) = self.descriptor(reg::TDBAL, head);
            let (addr, length, cmd) = {
                let d = desc.borrow();
                let addr = u64::from_le_bytes(d[off..off + 8].try_into().unwrap());
                (addr, usize::from(u16::from_le_bytes([d[off + 8], d[off + 9]])), u32::from(d[off + 11]))
            };
            assert_eq!(cmd, TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS);
            let (buf, boff) = self.dma.at(addr).expect("transmit buffer");
            sent.push(buf.borrow()[boff..boff + length].to_vec());
            desc.borrow_mut()[off + 12] |= TX_DD as u8;
            self.set(reg::TDH, (head + 1) % len);
            self.raise(ICR_TXDW);
        }
        sent
    }

    /// Writes `byte` at `offset` (0-15) of descriptor `slot` (taken modulo the ring) of
    /// the transmit or the receive ring: the card saying anything at all.
    pub fn poke_descriptor(&self, tx: bool, slot: u32, offset: usize, byte: u8) {
        let (base, len) = if tx { (reg::TDBAL, reg::TDLEN) } else { (reg::RDBAL, reg::RDLEN) };
        let (desc, off) = self.descriptor(base, slot % (self.get(len) / 16).max(1));
        desc.borrow_mut()[off + offset % 16] = byte;
    }

    pub fn set_link(&self, up: bool) {
        self.link.set(up);
        self.raise(ICR_LSC);
    }
}

impl Registers for &Fake<'_> {
    fn read8(&self, _: u16) -> u8 {
        unreachable!("the driver reads 32 bits")
    }
    fn write8(&self, _: u16, _: u8) {
        unreachable!("the driver writes 32 bits")
    }
    fn read16(&self, _: u16) -> u16 {
        unreachable!("the driver reads 32 bits")
    }
    fn write16(&self, _: u16, _: u16) {
        unreachable!("the driver writes 32 bits")
    }
    fn read32(&self, offset: u16) -> u32 {
        match offset {
            reg::ICR => {
                let v = self.get(reg::ICR);
                if self.model == Model::I82540Em {
                    self.set(reg::ICR, 0);
                }
                v
            }
            reg::STATUS => {
                if self.link.get() {
                    STATUS_LU
                } else {
                    0
                }
            }
            _ => self.get(offset),
        }
    }
    fn write32(&self, offset: u16, value: u32) {
        self.writes.borrow_mut().push((offset, value));
        match offset {
            reg::CTRL if !self.stuck_reset => self.set(offset, value & !CTRL_RST),
            reg::IMS => self.set(reg::IMS, self.get(reg::IMS) | value),
            reg::IMC => self.set(reg::IMS, self.get(reg::IMS) & !value),
            reg::ICR => self.set(reg::ICR, self.get(reg::ICR) & !value),
            reg::EERD => {
                let (done, shift) = self.model.eerd();
                let word = self.eeprom[((value >> shift) & 0xff) as usize];
                self.set(reg::EERD, done | (u32::from(word) << 16));
            }
            _ => self.set(offset, value),
        }
    }
}

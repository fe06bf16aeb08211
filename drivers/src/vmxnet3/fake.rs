//! vmxnet3 as QEMU's device model plays it, over the fake DMA memory: for the host
//! tests and the fuzz target.

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
                match value {
                    cmd::ACTIVATE_DEV => self.0.activate(),
                    cmd::RESET_DEV => self.0.s.borrow_mut().active = false,
                    _ => {}
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

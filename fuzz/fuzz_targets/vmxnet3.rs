//! vmxnet3 against a device the fuzz input plays, after a normal activation (the host
//! fake): receive completions with any descriptor index, ring id, start and end flags,
//! length, error bit and generation; transmit completions with any index and
//! generation; events (link, stopped queues with any error code); while the stack
//! receives, holds, recycles and sends.
//!
//! After every operation no buffer may be lost or duplicated: the driver's own, with
//! the frames the stack holds, are always both ring sizes.
//!
//! Input: operations of one byte each followed by their operands.
#![no_main]

use chameleon_fuzz::Input;
use drivers::dma::DmaBuffer;
use drivers::dma::fake::FakeDma;
use drivers::net::{MAX_FRAME, NetDevice};
use drivers::vmxnet3::Vmxnet3;
use drivers::vmxnet3::fake::{FakeDevice, wr32};
use libfuzzer_sys::fuzz_target;

const RING: usize = 32;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let dma = FakeDma::new(2 * RING);
    let dev = FakeDevice::new(&dma);
    let (pt, vd) = dev.bars();
    let mut net = Vmxnet3::new(pt, vd, &dma, RING as u16).expect("the fake device activates");
    let mut held = Vec::new();
    while !input.is_empty() {
        match input.u8() % 10 {
            0 | 1 => {
                // A completion written anywhere in either completion ring.
                let s = dev.s.borrow();
                let ring = if input.u8() & 1 == 0 { s.rx_comp } else { s.tx_comp };
                drop(s);
                let cell = ring.base + u64::from(u32::from(input.u16()) % ring.size) * 16;
                wr32(&dma, cell, input.u32());
                wr32(&dma, cell + 8, input.u32());
                wr32(&dma, cell + 12, input.u32());
            }
            2 => {
                let len = usize::from(input.u16()) % 2100;
                let frame = vec![input.u8(); len];
                let claimed = u32::from(input.u16());
                let _ = dev.deliver(&frame, claimed, input.u8() & 1 == 1);
            }
            3 => {
                let bits = input.u8();
                dev.raise_events(u32::from(bits & 7), if bits & 8 != 0 { input.u32() } else { 0 });
            }
            4 | 5 => {
                if let Some(frame) = net.receive() {
                    assert!(frame.offset + frame.len <= frame.buffer.bytes().len(), "frame past its buffer");
                    held.push(frame);
                }
            }
            6 if !held.is_empty() => {
                let at = usize::from(input.u8()) % held.len();
                net.recycle(held.swap_remove(at));
            }
            7 => {
                let len = usize::from(input.u16());
                let can = net.can_send();
                let sent = net.send(len, |b| {
                    assert_eq!(b.len(), len.min(MAX_FRAME));
                    b.fill(0x5a);
                });
                assert_eq!(sent.is_some(), can, "send and can_send disagree");
            }
            8 => {
                let _ = net.has_work();
                let _ = net.link_up();
            }
            _ => {
                net.kick();
                net.set_interrupts(input.u8() & 1 == 1);
                net.ack_interrupt();
            }
        }
        let (tx, rx) = net.buffers_owned();
        assert_eq!(tx, RING, "transmit buffers lost or duplicated");
        assert_eq!(rx + held.len(), RING, "receive buffers lost or duplicated");
    }
});

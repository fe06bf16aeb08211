//! e1000 (82540EM) or e1000e (82574L, legacy interrupts or MSI-X routing), by the first
//! byte, against a card the fuzz input plays after a normal bring-up (the host fake):
//! receive descriptors written back with any length, status and error bits, anywhere in
//! the ring; transmit descriptors marked done in any order; frames delivered with any
//! claimed length; any interrupt causes and link changes; while the stack receives,
//! holds, recycles and sends.
//!
//! After every operation no buffer may be lost or duplicated: the driver's own, with
//! the frames the stack holds, are always a ring's worth less one each way.
//!
//! Input: a model byte, then operations of one byte each followed by their operands.
#![no_main]

use chameleon_fuzz::Input;
use drivers::dma::DmaBuffer;
use drivers::dma::fake::FakeDma;
use drivers::e1000::fake::Fake;
use drivers::e1000::{E1000, Model};
use drivers::net::{MAX_FRAME, NetDevice};
use libfuzzer_sys::fuzz_target;

const RING: usize = 16;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let model = if input.u8() & 1 == 0 { Model::I82540Em } else { Model::I82574L };
    let dma = FakeDma::new(2 * RING);
    let fake = Fake::new(&dma, model);
    let mut nic = E1000::new(&fake, model, &dma, RING as u16).expect("the fake card starts");
    let mut held = Vec::new();
    while !input.is_empty() {
        match input.u8() % 10 {
            0 => {
                // A receive write-back anywhere: length, checksum, status, errors.
                let (slot, offset, byte) =
                    (u32::from(input.u16()), 8 + usize::from(input.u8()) % 6, input.u8());
                fake.poke_descriptor(false, slot, offset, byte);
            }
            1 => {
                // A transmit descriptor's status (DD) set or cleared, in any order.
                fake.poke_descriptor(true, u32::from(input.u16()), 12, input.u8());
            }
            2 => {
                let len = usize::from(input.u16()) % 2049;
                let frame = vec![input.u8(); len];
                let _ = fake.deliver_raw(&frame, input.u16(), input.u8(), input.u8());
            }
            3 => match input.u8() & 1 {
                0 => fake.raise(input.u32()),
                _ => fake.set_link(input.u8() & 1 == 1),
            },
            4 | 5 => {
                if let Some(frame) = nic.receive() {
                    assert!(frame.offset + frame.len <= frame.buffer.bytes().len(), "frame past its buffer");
                    held.push(frame);
                }
            }
            6 if !held.is_empty() => {
                let at = usize::from(input.u8()) % held.len();
                nic.recycle(held.swap_remove(at));
            }
            7 => {
                let len = usize::from(input.u16());
                let can = nic.can_send();
                let sent = nic.send(len, |b| {
                    assert_eq!(b.len(), len.min(MAX_FRAME));
                    b.fill(0x5a);
                });
                assert_eq!(sent.is_some(), can, "send and can_send disagree");
            }
            8 => {
                let _ = nic.has_work();
                let _ = nic.link_up();
                let _ = nic.interrupt_causes();
            }
            _ => match input.u8() % 4 {
                0 => nic.kick(),
                1 => nic.set_interrupts(input.u8() & 1 == 1),
                2 => nic.ack_interrupt(),
                _ => {
                    let _ = nic.use_msix(input.u8() % 6);
                }
            },
        }
        let (tx, rx) = nic.buffers_owned();
        assert_eq!(tx, RING - 1, "transmit buffers lost or duplicated");
        assert_eq!(rx + held.len(), RING - 1, "receive buffers lost or duplicated");
    }
});

//! The driver against the fake card (`fake.rs`): a register file and the DMA memory,
//! with the card's side of the rings played by the test.

extern crate std;
use std::vec::Vec;

use super::fake::*;
use super::*;
use crate::dma::fake::FakeDma;

const RING: u16 = 16;

type Nic<'a, 'b> = E1000<&'a Fake<'b>, FakeDma>;

fn up<'a, 'b>(fake: &'a Fake<'b>) -> Nic<'a, 'b> {
    E1000::new(fake, fake.model, fake.dma, RING).expect("the card starts")
}

/// After a kick the card can be filled completely once more: no receive buffer was lost.
fn assert_every_buffer_back(nic: &mut Nic<'_, '_>, fake: &Fake<'_>) {
    nic.kick();
    let mut delivered = 0;
    while fake.deliver(&frame(delivered)) {
        delivered += 1;
    }
    assert_eq!(delivered, usize::from(RING) - 1);
}

fn frame(n: usize) -> Vec<u8> {
    (0..60 + n % 40).map(|i| (i + n) as u8).collect()
}

fn buffers() -> FakeDma {
    FakeDma::new(2 * usize::from(RING))
}

#[test]
fn bring_up_programs_rings_receiver_and_transmitter() {
    for model in [Model::I82540Em, Model::I82574L] {
        let dma = buffers();
        let fake = Fake::new(&dma, model);
        let nic = up(&fake);
        assert_eq!(nic.mac(), MAC);
        assert!(nic.link_up());
        assert_eq!(fake.get(reg::RDLEN), u32::from(RING) * 16);
        assert_eq!(fake.get(reg::TDLEN), u32::from(RING) * 16);
        assert_eq!(fake.get(reg::RDT), u32::from(RING) - 1, "every buffer but one slot posted");
        let rctl = fake.get(reg::RCTL);
        assert_eq!(rctl & (RCTL_EN | RCTL_BAM | RCTL_SECRC), RCTL_EN | RCTL_BAM | RCTL_SECRC);
        assert_eq!(rctl & (3 << 16 | 1 << 25), 0, "2048-byte buffers");
        assert_eq!(fake.get(reg::TCTL) & (TCTL_EN | TCTL_PSP), TCTL_EN | TCTL_PSP);
        assert_eq!(fake.get(reg::CTRL) & (CTRL_SLU | CTRL_RST), CTRL_SLU);
        assert_eq!(fake.get(reg::IMS), 0, "interrupts masked");
        assert_eq!(fake.get(reg::RAH0) & RAH_AV, RAH_AV);
        // The reset came first.
        assert_eq!(
            fake.writes.borrow().iter().position(|w| w.0 == reg::CTRL && w.1 & CTRL_RST != 0),
            Some(1)
        );
    }
}

#[test]
fn mac_from_the_eeprom_when_ral0_is_empty() {
    for model in [Model::I82540Em, Model::I82574L] {
        let dma = buffers();
        let fake = Fake::new(&dma, model);
        fake.set(reg::RAL0, 0);
        fake.set(reg::RAH0, 0);
        let nic = up(&fake);
        assert_eq!(nic.mac(), [0x00, 0x11, 0x22, 0x33, 0x44, 0x55], "{model}");
        // Written back to receive address 0, valid.
        assert_eq!(fake.get(reg::RAL0), 0x3322_1100);
        assert_eq!(fake.get(reg::RAH0), 0x5544 | RAH_AV);
    }
    let dma = buffers();
    let mut fake = Fake::new(&dma, Model::I82540Em);
    fake.set(reg::RAH0, 0);
    fake.eeprom = [0; 3];
    assert_eq!(E1000::new(&fake, fake.model, &dma, RING).unwrap_err(), Error::NoMac(Model::I82540Em));
}

#[test]
fn receives_in_place_and_wraps_around() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82540Em);
    let mut nic = up(&fake);
    assert!(!nic.has_work());
    assert!(nic.receive().is_none());
    // Several times round the ring, a few frames at a time (up to what the card is sure
    // to hold: recycled buffers are published 8 at a time).
    let mut n = 0;
    for burst in [1, 5, 8, 3, 8, 7, 8, 8, 2, 8, 8] {
        for i in 0..burst {
            assert!(fake.deliver(&frame(n + i)), "a buffer for frame {}", n + i);
        }
        assert!(nic.has_work());
        for i in 0..burst {
            let got = nic.receive().expect("a frame");
            assert_eq!(got.frame(), &frame(n + i)[..]);
            nic.recycle(got);
        }
        assert!(nic.receive().is_none());
        assert!(!nic.has_work());
        n += burst;
    }
    assert!(n > 4 * usize::from(RING));
    assert_eq!(nic.rx_errors, RxErrors::default());
    // Recycled buffers are published in batches, never one register write per frame.
    assert!(fake.writes_to(reg::RDT).len() < n / 4, "{} RDT writes", fake.writes_to(reg::RDT).len());
}

#[test]
fn frames_held_by_the_stack_come_back_in_any_order() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82574L);
    let mut nic = up(&fake);
    for round in 0..6 {
        let mut held = Vec::new();
        for i in 0..4 {
            assert!(fake.deliver(&frame(round * 4 + i)));
            held.push(nic.receive().unwrap());
        }
        held.reverse();
        for (i, f) in held.into_iter().enumerate() {
            assert_eq!(f.frame(), &frame(round * 4 + 3 - i)[..]);
            nic.recycle(f);
        }
    }
    // Nothing lost: the card can be filled completely once more.
    assert_every_buffer_back(&mut nic, &fake);
}

#[test]
fn bad_descriptors_are_dropped_counted_and_recycled() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82540Em);
    let mut nic = up(&fake);
    let dd_eop = (RX_DD | RX_EOP) as u8;
    for round in 0..3 {
        assert!(fake.deliver_raw(&frame(1), 60, dd_eop, 0x01)); // CRC error
        assert!(fake.deliver_raw(&frame(2), 60, dd_eop, 0x80)); // RX data error
        assert!(fake.deliver_raw(&frame(3), 4000, dd_eop, 0)); // beyond the buffer
        assert!(fake.deliver_raw(&frame(4), 10, dd_eop, 0)); // runt
        // A frame over two buffers: both parts go.
        assert!(fake.deliver_raw(&frame(5), 2048, RX_DD as u8, 0));
        assert!(fake.deliver_raw(&frame(6), 100, dd_eop, 0));
        assert!(fake.deliver(&frame(7)));
        let good = nic.receive().expect("the good frame after the bad ones");
        assert_eq!(good.frame(), &frame(7)[..], "round {round}");
        nic.recycle(good);
        assert!(nic.receive().is_none());
    }
    assert_eq!(nic.rx_errors, RxErrors { flagged: 6, bad_length: 12 });
    // Every dropped buffer went back to the card.
    assert_every_buffer_back(&mut nic, &fake);
}

#[test]
fn sends_in_place_and_reclaims_in_order() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82540Em);
    let mut nic = up(&fake);
    let mut n = 0;
    for burst in [1, 15, 4, 15, 9, 15, 15] {
        for i in 0..burst {
            let f = frame(n + i);
            assert_eq!(nic.send(f.len(), |b| b.copy_from_slice(&f)), Some(()));
        }
        assert_eq!(fake.get(reg::TDT) as usize, (n + burst) % usize::from(RING));
        let sent = fake.transmit();
        assert_eq!(sent.len(), burst);
        for (i, s) in sent.iter().enumerate() {
            assert_eq!(s, &frame(n + i));
        }
        n += burst;
    }
    assert!(nic.can_send());
}

#[test]
fn a_full_ring_refuses_before_filling_and_waits_for_dd_in_order() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82574L);
    let mut nic = up(&fake);
    for _ in 0..RING - 1 {
        assert_eq!(nic.send(60, |b| b.len()), Some(60));
    }
    assert!(!nic.can_send());
    let mut called = false;
    assert_eq!(nic.send(60, |_| called = true), None);
    assert!(!called);
    assert!(!nic.has_work());
    // The card reports the second descriptor done before the first: nothing comes back.
    let (desc, off) = fake.descriptor(reg::TDBAL, 1);
    desc.borrow_mut()[off + 12] |= TX_DD as u8;
    assert!(!nic.can_send());
    assert!(!nic.has_work());
    // All done: every buffer returns, and the stack hears of it while idle.
    fake.transmit();
    assert!(nic.has_work());
    assert!(nic.can_send());
    for _ in 0..RING - 1 {
        assert!(nic.send(60, |_| ()).is_some());
    }
}

#[test]
fn interrupt_causes_are_cleared_and_link_changes_seen() {
    for model in [Model::I82540Em, Model::I82574L] {
        let dma = buffers();
        let fake = Fake::new(&dma, model);
        let nic = up(&fake);
        fake.set_link(false);
        assert!(!nic.link_up());
        nic.ack_interrupt();
        assert_eq!(fake.get(reg::ICR), 0, "{model}: causes cleared");
        assert_eq!(nic.link_changes(), 1);
        fake.set_link(true);
        assert!(nic.link_up());
        assert_eq!(nic.interrupt_causes(), ICR_LSC);
        assert_eq!(nic.interrupt_causes(), 0);
        assert_eq!(nic.link_changes(), 2);
    }
}

#[test]
fn interrupt_masks_follow_the_stack() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82574L);
    let mut nic = up(&fake);
    let before = fake.writes.borrow().len();
    nic.set_interrupts(true);
    assert_eq!(fake.get(reg::IMS), RX_CAUSES);
    nic.set_interrupts(true);
    assert_eq!(fake.writes.borrow().len(), before + 1, "an unchanged mask is not written again");
    nic.set_interrupts(false);
    assert_eq!(fake.get(reg::IMS), 0);
    // Every transmit buffer out: transmit-done interrupts too.
    for _ in 0..RING - 1 {
        nic.send(60, |_| ());
    }
    nic.set_interrupts(true);
    assert_eq!(fake.get(reg::IMS), RX_CAUSES | ICR_TXDW);
    fake.transmit();
    nic.can_send();
    nic.set_interrupts(true);
    assert_eq!(fake.get(reg::IMS), RX_CAUSES);
}

#[test]
fn failures_name_the_card() {
    let dma = buffers();
    let mut fake = Fake::new(&dma, Model::I82540Em);
    fake.stuck_reset = true;
    let err = E1000::new(&fake, fake.model, &dma, RING).unwrap_err();
    assert_eq!(err, Error::ResetTimeout(Model::I82540Em));
    assert_eq!(alloc::format!("{err}"), "e1000 (82540EM): the reset did not complete");
    let err = Error::MissingBar(Model::I82574L);
    assert_eq!(alloc::format!("{err}"), "e1000e (82574L): no memory BAR 0 for its registers");
    // Short of buffers: an error, not a panic.
    let dma = FakeDma::new(usize::from(RING));
    let fake = Fake::new(&dma, Model::I82574L);
    assert_eq!(E1000::new(&fake, fake.model, &dma, RING).unwrap_err(), Error::OutOfMemory(Model::I82574L));
}

#[test]
fn ring_lengths_and_ids() {
    let dma = FakeDma::new(1024);
    let fake = Fake::new(&dma, Model::I82540Em);
    for (limit, len) in [(0, 8), (13, 8), (64, 64), (1000, 256)] {
        E1000::new(&fake, fake.model, &dma, limit).unwrap();
        assert_eq!(fake.get(reg::RDLEN), len * 16, "limit {limit}");
    }
    assert_eq!(Model::from_ids(0x8086, 0x100e), Some(Model::I82540Em));
    assert_eq!(Model::from_ids(0x8086, 0x10d3), Some(Model::I82574L));
    assert_eq!(Model::from_ids(0x8086, 0x10d4), None);
    assert_eq!(Model::from_ids(0x1af4, 0x100e), None);
}

#[test]
fn a_stopped_card_is_reset_with_receiver_and_transmitter_off() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82574L);
    let nic = up(&fake);
    let before = fake.writes.borrow().len();
    nic.stop();
    let writes = fake.writes.borrow()[before..].to_vec();
    assert_eq!(writes[0], (reg::IMC, u32::MAX), "interrupts masked first");
    assert!(writes.contains(&(reg::RCTL, 0)) && writes.contains(&(reg::TCTL, 0)));
    assert!(writes.last().is_some_and(|w| w.0 == reg::CTRL && w.1 & CTRL_RST != 0), "{writes:x?}");
}

#[test]
fn msix_routes_every_cause_to_one_vector_and_masks_the_queue_causes() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82574L);
    let mut nic = up(&fake);
    nic.set_interrupts(true);
    nic.use_msix(0).unwrap();
    // Receive queue 0, transmit queue 0 and "other" on vector 0, each valid.
    assert_eq!(fake.get(reg::IVAR), 0x0008_0808);
    assert_eq!(fake.get(reg::EIAC), ICR_RXQ0 | ICR_TXQ0);
    assert_eq!(
        fake.get(reg::CTRL_EXT) & (CTRL_EXT_IAME | CTRL_EXT_PBA_CLR),
        CTRL_EXT_IAME | CTRL_EXT_PBA_CLR
    );
    // The mask follows: the queue causes in place of RXT0 and TXDW, which are off.
    assert_eq!(fake.get(reg::IMS), ICR_RXQ0);
    while nic.send(60, |_| ()).is_some() {}
    nic.set_interrupts(true);
    assert_eq!(fake.get(reg::IMS), ICR_RXQ0 | ICR_TXQ0);
    nic.set_interrupts(false);
    assert_eq!(fake.get(reg::IMS), 0);
    // Frames still come in and go out as before.
    fake.transmit();
    assert!(fake.deliver(&frame(1)));
    assert_eq!(nic.receive().map(|f| f.frame().to_vec()), Some(frame(1)));
}

#[test]
fn msix_is_refused_where_the_chip_has_none() {
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82540Em);
    let mut nic = up(&fake);
    assert_eq!(nic.use_msix(0), Err(Error::NoMsix(Model::I82540Em)));
    assert_eq!(fake.get(reg::IVAR), 0, "nothing written");
    let dma = buffers();
    let fake = Fake::new(&dma, Model::I82574L);
    let mut nic = up(&fake);
    assert_eq!(nic.use_msix(5), Err(Error::NoMsix(Model::I82574L)));
    assert_eq!(alloc::format!("{}", Error::NoMsix(Model::I82574L)), "e1000e (82574L): no such MSI-X vector");
}

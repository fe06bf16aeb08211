//! The driver against the fake device.

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

#[test]
fn a_stopped_card_is_reset_and_masked() {
    let dma = FakeDma::new(64);
    let dev = FakeDevice::new(&dma);
    let mut net = start(&dev, &dma);
    net.set_interrupts(true);
    net.stop();
    let s = dev.s.borrow();
    assert!(!s.active && s.masked && s.last_cmd == cmd::RESET_DEV);
}

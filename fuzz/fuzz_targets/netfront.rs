//! netfront against a back end the fuzz input plays, after a normal handshake: receive
//! answers with any id, offset, flags and status, transmit answers with any id and
//! status, ring indices and bytes overwritten, grants held mapped, the back end's state
//! changed, while the stack receives, holds, recycles and sends.
//!
//! At the end the back end closes and lets go of every grant: every grant must then be
//! free (none leaked, whatever happened on the way).
//!
//! Input: operations of one byte each followed by their operands.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;

use chameleon_fuzz::Input;
use drivers::dma::DmaRing;
use drivers::dma::fake::FakeDma;
use drivers::net::{MAX_FRAME, NetDevice};
use drivers::xen::fake::{FakeEvents, FakePage, FakeXen, Netback, netback_control, store};
use drivers::xen::grant::GrantTable;
use drivers::xen::netfront::{Config, Netfront};
use drivers::xen::{SharedPage, netfront};
use libfuzzer_sys::fuzz_target;

const NODE: &str = "device/vif/0";
const BACKEND: &str = "/local/domain/0/backend/vif/1/0";
const GRANT_ENTRIES: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let grant_page = FakePage::new(GRANT_ENTRIES * 8);
    let grants = Rc::new(RefCell::new(GrantTable::new(grant_page.clone())));
    let (xs, daemon) = store();
    let dma = Rc::new(FakeDma::new(1000));
    let nb = Rc::new(RefCell::new(Netback {
        dma: dma.clone(),
        grant_page: grant_page.clone(),
        domid: 0,
        tx: None,
        rx: None,
        port: None,
    }));
    {
        let mut d = daemon.borrow_mut();
        for (k, v) in [
            (format!("{NODE}/backend"), BACKEND),
            (format!("{NODE}/backend-id"), "0"),
            (format!("{NODE}/mac"), "00:16:3e:00:00:02"),
            (format!("{BACKEND}/state"), "1"),
            (format!("{BACKEND}/feature-rx-copy"), "1"),
        ] {
            d.set(&k, v.as_bytes());
        }
        d.hooks.push(netback_control(nb.clone(), BACKEND.into(), NODE.into(), 2));
    }
    let events = Rc::new(FakeEvents::default());
    let store = Rc::new(RefCell::new(xs));
    let config = Config {
        rx_buffers: u16::from(input.u8() % 16) + 1,
        tx_buffers: u16::from(input.u8() % 8) + 1,
        connect_timeout_ns: 1_000_000_000,
    };
    let mut nic: Netfront<FakeDma, FakeXen> =
        netfront::Netfront::new(&*dma, grants.clone(), store.clone(), events.clone(), NODE, config)
            .expect("the handshake with a well-behaved back end");
    let mut held = Vec::new();
    while !input.is_empty() {
        match input.u8() % 12 {
            0 => {
                let id = input.u16();
                let id = if id & 0x8000 != 0 { Some(id & 0x7fff) } else { None };
                let (offset, flags, status) = (input.u16(), input.u16(), input.u16() as i16);
                nb.borrow_mut().answer_rx(id, offset, flags, status);
            }
            1 => {
                let len = usize::from(input.u16()) % 1600;
                let frame: Vec<u8> = (0..len).map(|i| i as u8).collect();
                nb.borrow_mut().deliver(&frame);
            }
            2 => {
                if let Some(f) = nic.receive() {
                    assert!(f.len >= 14 && f.offset + f.len <= 4096, "{} at {}", f.len, f.offset);
                    let _ = f.frame();
                    held.push(f);
                }
            }
            3 => {
                if !held.is_empty() {
                    let f = held.swap_remove(usize::from(input.u8()) % held.len());
                    nic.recycle(f);
                }
            }
            4 => {
                let len = usize::from(input.u16()) % 2000;
                let sent = nic.send(len, |b| {
                    assert_eq!(b.len(), len.min(MAX_FRAME));
                    b.fill(0xab);
                });
                assert!(sent.is_none() || nic.link_up());
            }
            5 => {
                let reqs = nb.borrow_mut().take_tx_requests();
                for (_, _, _, id, _) in reqs {
                    let id = if input.u8() & 1 == 0 { id } else { input.u16() };
                    nb.borrow_mut().answer_tx(id, input.u16() as i16);
                }
            }
            6 => {
                // Any index or byte of either ring page.
                let which = input.u8();
                let at = usize::from(input.u16()) % 4096 & !3;
                let value = input.u32();
                let n = nb.borrow();
                let ring = if which & 1 == 0 { n.rx.as_ref() } else { n.tx.as_ref() };
                if let Some(r) = ring {
                    r.mem.write_u32(if which & 2 == 0 { 8 } else { at }, value);
                }
            }
            7 => {
                // Hold a grant mapped, or let it go.
                let gref = u32::from(input.u8()) % GRANT_ENTRIES as u32;
                let n = nb.borrow();
                if input.u8() & 1 == 0 { n.map(gref, 1 << (3 + (gref & 1))) } else { n.unmap(gref) }
            }
            8 => {
                let state = input.u8() % 9;
                daemon.borrow_mut().set(&format!("{BACKEND}/state"), format!("{state}").as_bytes());
                daemon.borrow_mut().step();
            }
            9 => nic.kick(),
            10 => nic.set_interrupts(input.u8() & 1 == 1),
            _ => {
                let _ = (nic.has_work(), nic.can_send(), nic.link_up());
            }
        }
    }
    // The back end closes and unmaps everything: nothing may stay granted.
    for f in held.drain(..) {
        nic.recycle(f);
    }
    daemon.borrow_mut().set(&format!("{BACKEND}/state"), b"6");
    daemon.borrow_mut().step();
    nic.kick();
    for gref in 0..GRANT_ENTRIES as u32 {
        nb.borrow().unmap(gref);
    }
    nic.kick();
    assert!(!nic.link_up());
    assert_eq!(nic.held_grants(), 0);
    let g = grants.borrow();
    assert_eq!(g.available(), g.capacity(), "grants leaked");
    let _ = grant_page.len();
});

//! The xenstore client against a xenstored the fuzz input plays: replies and watch
//! events of any type, id and length, raw bytes, ring indices moved anywhere, while the
//! client reads, writes, lists, watches and runs transactions. Also the value parsers
//! on raw bytes.
//!
//! Input: one stream read by both sides. The client takes an operation byte and its
//! operands; each time it waits, the daemon takes an operation byte and its operands.
#![no_main]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use drivers::xen::fake::FakePage;
use drivers::xen::store::{self, Error, Tx, XenStore, kind, parse_mac, parse_state, parse_u16, parse_u32};
use drivers::xen::{SharedPage, StoreSignal, Wait};
use libfuzzer_sys::fuzz_target;

const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;

/// The fuzz bytes, shared by the client's and the daemon's moves.
struct Stream {
    bytes: Vec<u8>,
    at: usize,
}

impl Stream {
    fn u8(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// The daemon: bytes it has decided to send, flushed into the response ring as room
/// allows.
struct Daemon {
    page: FakePage,
    stream: Rc<RefCell<Stream>>,
    out: VecDeque<u8>,
}

impl Daemon {
    fn step(&mut self) {
        let mut s = self.stream.borrow_mut();
        match s.u8() % 7 {
            0 => {
                let n = usize::from(s.u8());
                self.out.extend(s.take(n));
            }
            1 => self.page.write_u32(REQ_CONS, self.page.read_u32(REQ_PROD)),
            2 => self.page.write_u32(RSP_PROD, s.u32()),
            3 => self.page.write_u32(REQ_CONS, s.u32()),
            4 | 5 => {
                // A well-formed header: a reply to one of the first requests, or an event.
                let types =
                    [kind::READ, kind::WRITE, kind::DIRECTORY, kind::WATCH, kind::ERROR, kind::WATCH_EVENT];
                let t = types[usize::from(s.u8()) % types.len()];
                let req_id = u32::from(s.u8() % 8);
                let len = usize::from(s.u16() % 4200);
                let payload = s.take(len.min(64));
                for field in [t, req_id, 0, len as u32] {
                    self.out.extend(field.to_le_bytes());
                }
                self.out.extend(payload.iter().copied().cycle().take(len));
                // Consume what the client sent, as a real daemon would.
                self.page.write_u32(REQ_CONS, self.page.read_u32(REQ_PROD));
            }
            _ => {}
        }
        let (cons, prod) = (self.page.read_u32(RSP_CONS), self.page.read_u32(RSP_PROD));
        let room = 1024u32.saturating_sub(prod.wrapping_sub(cons));
        let n = (room as usize).min(self.out.len());
        for i in 0..n {
            let b = self.out.pop_front().unwrap_or(0);
            self.page.write_u8(1024 + (prod.wrapping_add(i as u32) & 1023) as usize, b);
        }
        self.page.write_u32(RSP_PROD, prod.wrapping_add(n as u32));
    }
}

#[derive(Clone)]
struct Signal {
    clock: Rc<Cell<u64>>,
    daemon: Rc<RefCell<Daemon>>,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signal")
    }
}

impl Wait for Signal {
    fn now_ns(&self) -> u64 {
        self.clock.get()
    }
    fn wait_until(&self, deadline_ns: u64) {
        let now = self.clock.get();
        self.clock.set((now + 1_000_000).min(deadline_ns.max(now)));
        self.daemon.borrow_mut().step();
    }
}

impl StoreSignal for Signal {
    fn notify(&self) {}
}

const PATHS: [&str; 4] = ["device/vif/0/mac", "a", "/local/domain/0/backend/vif/1/0/state", ""];

fuzz_target!(|data: &[u8]| {
    let stream = Rc::new(RefCell::new(Stream { bytes: data.to_vec(), at: 0 }));
    let page = FakePage::new(4096);
    let daemon =
        Rc::new(RefCell::new(Daemon { page: page.clone(), stream: stream.clone(), out: VecDeque::new() }));
    let mut xs = XenStore::new(page, Signal { clock: Rc::new(Cell::new(0)), daemon });
    // At most 20 waits per request.
    xs.set_timeout_ns(20_000_000);
    let mut broken = false;
    let mut tx = Tx::NONE;
    while !stream.borrow().done() {
        let (op, path, arg) = {
            let mut s = stream.borrow_mut();
            (s.u8(), PATHS[usize::from(s.u8()) % PATHS.len()], s.u8())
        };
        let result: Result<(), Error> = match op % 9 {
            0 => xs.read_in(tx, path).map(drop),
            1 => {
                let value = stream.borrow_mut().take(usize::from(arg));
                xs.write_in(tx, path, &value)
            }
            2 => xs.directory(path).map(drop),
            3 => xs.watch(path, if arg & 1 == 0 { "t0" } else { "t1" }),
            4 => xs.unwatch(path, if arg & 1 == 0 { "t0" } else { "t1" }),
            5 => xs.transaction_start().map(|t| tx = t),
            6 => {
                let end = xs.transaction_end(tx, arg & 1 == 0);
                tx = Tx::NONE;
                end
            }
            7 => {
                let r = xs.poll();
                let _ = xs.take_event("t0");
                let _ = xs.pop_event();
                r
            }
            _ => {
                let deadline = xs.now_ns() + 3_000_000;
                xs.wait_event("t1", deadline).map(drop)
            }
        };
        assert!(xs.pending_events() <= 64);
        match result {
            Err(Error::Protocol(_)) | Err(Error::Broken) => broken = true,
            Err(Error::Timeout) => {}
            _ => assert!(!broken, "a broken connection answered: {result:?}"),
        }
        if broken {
            assert!(matches!(xs.read("a"), Err(Error::Broken)));
        }
    }
    // The parsers, on the raw input.
    let _ = (parse_u32(data), parse_u16(data), parse_mac(data), parse_state(data));
    let _ = store::PAYLOAD_MAX;
});

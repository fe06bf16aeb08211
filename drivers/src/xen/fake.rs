//! The other side, for host tests: shared pages, a xenstored, event channels, the back
//! half of a ring, and a netback that maps grants and moves frames.

extern crate std;

use core::cell::{Cell, RefCell};
use std::boxed::Box;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

use super::grant::GrantTable;
use super::store::{XenStore, kind};
use super::{DomId, EventChannels, HypercallError, Port, SharedPage, StoreSignal, Wait, Xen};
use crate::dma::DmaRing;
use crate::dma::fake::{FakeDma, FakeRing};

type Hook<T> = Box<dyn FnMut(&T)>;

/// Host memory standing for a mapped page (or pages).
#[derive(Clone)]
pub struct FakePage {
    pub mem: Rc<RefCell<Vec<u8>>>,
    /// Runs once, just before the next compare-exchange: the other side's write racing
    /// ours.
    race: Rc<RefCell<Option<Hook<FakePage>>>>,
}

impl core::fmt::Debug for FakePage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FakePage({} bytes)", self.mem.borrow().len())
    }
}

impl FakePage {
    pub fn new(len: usize) -> Self {
        FakePage { mem: Rc::new(RefCell::new(std::vec![0; len])), race: Rc::new(RefCell::new(None)) }
    }

    pub fn before_exchange(&self, f: impl FnMut(&FakePage) + 'static) {
        *self.race.borrow_mut() = Some(Box::new(f));
    }

    fn read<const N: usize>(&self, at: usize) -> [u8; N] {
        self.mem.borrow()[at..at + N].try_into().unwrap()
    }
}

impl SharedPage for FakePage {
    fn len(&self) -> usize {
        self.mem.borrow().len()
    }
    fn read_u8(&self, at: usize) -> u8 {
        self.mem.borrow()[at]
    }
    fn write_u8(&self, at: usize, v: u8) {
        self.mem.borrow_mut()[at] = v;
    }
    fn read_u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.read(at))
    }
    fn write_u16(&self, at: usize, v: u16) {
        self.mem.borrow_mut()[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn read_u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.read(at))
    }
    fn write_u32(&self, at: usize, v: u32) {
        self.mem.borrow_mut()[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn compare_exchange_u16(&self, at: usize, current: u16, new: u16) -> Result<u16, u16> {
        let race = self.race.borrow_mut().take();
        if let Some(mut race) = race {
            race(self);
        }
        let found = self.read_u16(at);
        if found == current {
            self.write_u16(at, new);
            Ok(found)
        } else {
            Err(found)
        }
    }
}

// The xenstore page's layout, as the daemon sees it.
const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;

type Tree = BTreeMap<String, Vec<u8>>;
type Timer = Box<dyn FnOnce(&mut Daemon)>;
pub type DaemonHook = Box<dyn FnMut(&mut Daemon)>;

/// A transaction: its copy of the tree, the tree's generation when it started, and the
/// paths it wrote.
struct Transaction {
    tree: Tree,
    generation: u64,
    written: Vec<String>,
}

impl core::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Daemon").field("tree", &self.tree).field("requests", &self.requests).finish()
    }
}

/// xenstored on the other side of the page: a flat tree of paths, watches,
/// transactions; it runs one step each time the client waits.
pub struct Daemon {
    page: FakePage,
    pub tree: Tree,
    generation: u64,
    transactions: BTreeMap<u32, Transaction>,
    next_tx: u32,
    watches: Vec<(String, String)>,
    inbuf: Vec<u8>,
    outbuf: VecDeque<u8>,
    /// Requests handled.
    pub requests: usize,
    /// Answer the next request with this error.
    pub fail_next: Option<&'static str>,
    /// Neither read requests nor answer.
    pub stalled: bool,
    /// Send these bytes instead of the next reply.
    pub replace_reply: Option<Vec<u8>>,
    /// Move the response producer index out of range.
    pub corrupt_rsp_prod: bool,
    steps: u64,
    timers: Vec<(u64, Timer)>,
    /// Run at every step (a back end's control plane).
    pub hooks: Vec<DaemonHook>,
}

impl Daemon {
    pub fn new(page: FakePage) -> Self {
        Daemon {
            page,
            tree: Tree::new(),
            generation: 0,
            transactions: BTreeMap::new(),
            next_tx: 1,
            watches: Vec::new(),
            inbuf: Vec::new(),
            outbuf: VecDeque::new(),
            requests: 0,
            fail_next: None,
            stalled: false,
            replace_reply: None,
            corrupt_rsp_prod: false,
            steps: 0,
            timers: Vec::new(),
            hooks: Vec::new(),
        }
    }

    pub fn raw_header(kind: u32, req_id: u32, len: u32) -> Vec<u8> {
        [kind, req_id, 0, len].iter().flat_map(|f| f.to_le_bytes()).collect()
    }

    /// Runs `f` `steps` steps from now.
    pub fn after(&mut self, steps: u64, f: impl FnOnce(&mut Daemon) + 'static) {
        self.timers.push((self.steps + steps, Box::new(f)));
    }

    /// A write by another domain: fires watches.
    pub fn set(&mut self, path: &str, value: &[u8]) {
        self.tree.insert(path.into(), value.into());
        self.generation += 1;
        self.fire(path);
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.tree.get(path).map(Vec::as_slice)
    }

    /// A removal by another domain: fires watches.
    pub fn remove(&mut self, path: &str) {
        let prefix = std::format!("{path}/");
        self.tree.retain(|k, _| k != path && !k.starts_with(&prefix));
        self.generation += 1;
        self.fire(path);
    }

    /// Queues an unasked message (req_id 0).
    pub fn inject(&mut self, kind: u32, payload: &[u8]) {
        self.queue(kind, 0, 0, payload);
    }

    fn queue(&mut self, kind: u32, req_id: u32, tx: u32, payload: &[u8]) {
        let header: Vec<u8> =
            [kind, req_id, tx, payload.len() as u32].iter().flat_map(|f| f.to_le_bytes()).collect();
        self.outbuf.extend(header);
        self.outbuf.extend(payload);
    }

    fn fire(&mut self, path: &str) {
        let events: Vec<(String, String)> = self
            .watches
            .iter()
            .filter_map(|(w, t)| {
                if path == w || path.starts_with(&std::format!("{w}/")) {
                    Some((path.into(), t.clone()))
                } else if w.starts_with(&std::format!("{path}/")) {
                    // A parent of the watched path changed (removed).
                    Some((w.clone(), t.clone()))
                } else {
                    None
                }
            })
            .collect();
        for (p, t) in events {
            let payload = [p.as_bytes(), b"\0", t.as_bytes(), b"\0"].concat();
            self.queue(kind::WATCH_EVENT, 0, 0, &payload);
        }
    }

    pub fn step(&mut self) {
        self.steps += 1;
        let (due, later) =
            core::mem::take(&mut self.timers).into_iter().partition(|(at, _)| *at <= self.steps);
        self.timers = later;
        for (_, f) in due {
            f(self);
        }
        let mut hooks = core::mem::take(&mut self.hooks);
        for h in &mut hooks {
            h(self);
        }
        hooks.append(&mut self.hooks);
        self.hooks = hooks;
        if self.stalled {
            return;
        }
        if self.corrupt_rsp_prod {
            let cons = self.page.read_u32(RSP_CONS);
            self.page.write_u32(RSP_PROD, cons.wrapping_add(2000));
            return;
        }
        let (cons, prod) = (self.page.read_u32(REQ_CONS), self.page.read_u32(REQ_PROD));
        let mut i = cons;
        while i != prod {
            self.inbuf.push(self.page.read_u8(REQ + (i & 1023) as usize));
            i = i.wrapping_add(1);
        }
        self.page.write_u32(REQ_CONS, prod);
        while self.inbuf.len() >= 16 {
            let field = |i: usize| u32::from_le_bytes(self.inbuf[i * 4..i * 4 + 4].try_into().unwrap());
            let (kind, req_id, tx, len) = (field(0), field(1), field(2), field(3) as usize);
            if self.inbuf.len() < 16 + len {
                break;
            }
            let payload: Vec<u8> = self.inbuf.drain(..16 + len).skip(16).collect();
            self.handle(kind, req_id, tx, &payload);
        }
        let (cons, prod) = (self.page.read_u32(RSP_CONS), self.page.read_u32(RSP_PROD));
        let room = 1024 - prod.wrapping_sub(cons) as usize;
        let n = room.min(self.outbuf.len());
        for i in 0..n {
            let b = self.outbuf.pop_front().unwrap();
            self.page.write_u8(RSP + (prod.wrapping_add(i as u32) & 1023) as usize, b);
        }
        self.page.write_u32(RSP_PROD, prod.wrapping_add(n as u32));
    }

    fn tree_for(&mut self, tx: u32) -> &mut Tree {
        match self.transactions.get_mut(&tx) {
            Some(t) => &mut t.tree,
            None => &mut self.tree,
        }
    }

    fn handle(&mut self, kind: u32, req_id: u32, tx: u32, payload: &[u8]) {
        self.requests += 1;
        let mut fields = payload.split(|&b| b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
        let first = fields.next().unwrap_or_default();
        let reply: Result<Vec<u8>, &'static str> = match self.fail_next.take() {
            Some(e) => Err(e),
            None => match kind {
                kind::READ => self
                    .tree_for(tx)
                    .get(&first)
                    .cloned()
                    .or_else(|| {
                        let prefix = std::format!("{first}/");
                        self.tree_for(tx).keys().any(|k| k.starts_with(&prefix)).then(Vec::new)
                    })
                    .ok_or("ENOENT"),
                kind::WRITE => {
                    let value = payload[first.len() + 1..].to_vec();
                    if let Some(t) = self.transactions.get_mut(&tx) {
                        t.tree.insert(first.clone(), value);
                        t.written.push(first);
                    } else {
                        self.set(&first, &value);
                    }
                    Ok(b"OK\0".to_vec())
                }
                kind::RM => {
                    self.remove(&first);
                    Ok(b"OK\0".to_vec())
                }
                kind::DIRECTORY => {
                    let prefix = std::format!("{first}/");
                    let tree = self.tree_for(tx);
                    let mut names: Vec<String> = tree
                        .keys()
                        .filter_map(|k| {
                            k.strip_prefix(&prefix).map(|rest| rest.split('/').next().unwrap().into())
                        })
                        .collect();
                    names.dedup();
                    if names.is_empty() && !tree.contains_key(&first) {
                        Err("ENOENT")
                    } else {
                        Ok(names.iter().flat_map(|n| [n.as_bytes(), b"\0"].concat()).collect())
                    }
                }
                kind::WATCH => {
                    let token = fields.next().unwrap_or_default();
                    self.watches.push((first.clone(), token.clone()));
                    // Fired at once (and here before the reply, so the client must keep
                    // it while it waits for the reply).
                    let event = [first.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
                    self.queue(kind::WATCH_EVENT, 0, 0, &event);
                    Ok(b"OK\0".to_vec())
                }
                kind::UNWATCH => {
                    let token = fields.next().unwrap_or_default();
                    let before = self.watches.len();
                    self.watches.retain(|(w, t)| !(*w == first && *t == token));
                    if self.watches.len() < before { Ok(b"OK\0".to_vec()) } else { Err("ENOENT") }
                }
                kind::TRANSACTION_START => {
                    let id = self.next_tx;
                    self.next_tx += 1;
                    let t = Transaction {
                        tree: self.tree.clone(),
                        generation: self.generation,
                        written: Vec::new(),
                    };
                    self.transactions.insert(id, t);
                    Ok(std::format!("{id}\0").into_bytes())
                }
                kind::TRANSACTION_END => match self.transactions.remove(&tx) {
                    None => Err("ENOENT"),
                    Some(_) if first != "T" => Ok(b"OK\0".to_vec()),
                    Some(t) if t.generation != self.generation => Err("EAGAIN"),
                    Some(t) => {
                        self.tree = t.tree;
                        self.generation += 1;
                        for p in t.written {
                            self.fire(&p);
                        }
                        Ok(b"OK\0".to_vec())
                    }
                },
                _ => Err("EINVAL"),
            },
        };
        if let Some(raw) = self.replace_reply.take() {
            self.outbuf.extend(raw);
            return;
        }
        match reply {
            Ok(payload) => self.queue(kind, req_id, tx, &payload),
            Err(e) => self.queue(kind::ERROR, req_id, tx, &[e.as_bytes(), b"\0"].concat()),
        }
    }
}

/// Each wait moves the clock this far and lets the daemon take a step.
pub const STEP_NS: u64 = 1_000_000;

#[derive(Clone)]
pub struct FakeSignal {
    pub clock: Rc<Cell<u64>>,
    pub daemon: Rc<RefCell<Daemon>>,
    pub notifies: Rc<Cell<u64>>,
}

impl core::fmt::Debug for FakeSignal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FakeSignal(t={})", self.clock.get())
    }
}

impl Wait for FakeSignal {
    fn now_ns(&self) -> u64 {
        self.clock.get()
    }
    fn wait_until(&self, deadline_ns: u64) {
        let now = self.clock.get();
        self.clock.set((now + STEP_NS).min(deadline_ns.max(now)));
        self.daemon.borrow_mut().step();
    }
}

impl StoreSignal for FakeSignal {
    fn notify(&self) {
        self.notifies.set(self.notifies.get() + 1);
    }
}

pub type FakeStore = XenStore<FakePage, FakeSignal>;

/// A client connected to a fresh daemon.
pub fn store() -> (FakeStore, Rc<RefCell<Daemon>>) {
    let page = FakePage::new(4096);
    let daemon = Rc::new(RefCell::new(Daemon::new(page.clone())));
    let signal =
        FakeSignal { clock: Rc::new(Cell::new(0)), daemon: daemon.clone(), notifies: Rc::new(Cell::new(0)) };
    (XenStore::new(page, signal), daemon)
}

/// The back half of a ring (`BACK_RING_*`).
#[derive(Debug)]
pub struct BackRing {
    pub mem: FakeRing,
    entry: usize,
    size: u32,
    req_cons: u32,
    rsp_prod: u32,
}

impl BackRing {
    pub fn new(mem: FakeRing, entry: usize) -> Self {
        let size = super::ring::FrontRing::<FakeRing>::slots(mem.mem.borrow().len(), entry);
        BackRing { mem, entry, size, req_cons: 0, rsp_prod: 0 }
    }

    /// Starts every index at `start` (the front end's private ones are the test's).
    pub fn set_indices(&mut self, start: u32) {
        self.req_cons = start;
        self.rsp_prod = start;
        for (off, v) in [(0, start), (4, start.wrapping_add(1)), (8, start), (12, start.wrapping_add(1))] {
            self.mem.write_u32(off, v);
        }
    }

    fn offset(&self, index: u32) -> usize {
        super::ring::HEADER + (index & (self.size - 1)) as usize * self.entry
    }

    /// The next published request's offset, consumed.
    pub fn next_request(&mut self) -> Option<usize> {
        // Never more requests than free slots, whatever the front end's index says.
        if self.mem.read_u32(0) == self.req_cons || self.req_cons.wrapping_sub(self.rsp_prod) >= self.size {
            return None;
        }
        let off = self.offset(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Some(off)
    }

    pub fn take_requests(&mut self) -> Vec<usize> {
        core::iter::from_fn(|| self.next_request()).collect()
    }

    /// Asks to be notified when a request beyond those published now comes (as
    /// netback does when it runs short of receive pages).
    pub fn arm_requests(&mut self) {
        let prod = self.mem.read_u32(0);
        self.mem.write_u32(4, prod.wrapping_add(1));
    }

    /// Writes the next response slot.
    pub fn respond(&mut self, f: impl FnOnce(&FakeRing, usize)) {
        let off = self.offset(self.rsp_prod);
        f(&self.mem, off);
        self.rsp_prod = self.rsp_prod.wrapping_add(1);
    }

    /// Publishes the responses; whether the front end asked to hear of them.
    pub fn push_responses(&mut self) -> bool {
        let old = self.mem.read_u32(8);
        let new = self.rsp_prod;
        self.mem.write_u32(8, new);
        let event = self.mem.read_u32(12);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }
}

/// Event channels: ports handed out in order; notifications and closes recorded.
#[derive(Debug, Default)]
pub struct FakeEvents {
    next: Cell<Port>,
    pub bound_to: RefCell<Vec<DomId>>,
    pub notified: RefCell<Vec<Port>>,
    pub closed: RefCell<Vec<Port>>,
    pub refuse: Cell<bool>,
}

impl EventChannels for Rc<FakeEvents> {
    fn alloc_unbound(&self, remote: DomId) -> Result<Port, HypercallError> {
        if self.refuse.get() {
            return Err(HypercallError(-28));
        }
        self.bound_to.borrow_mut().push(remote);
        self.next.set(self.next.get() + 1);
        Ok(self.next.get() + 10)
    }
    fn notify(&self, port: Port) {
        self.notified.borrow_mut().push(port);
    }
    fn close(&self, port: Port) {
        self.closed.borrow_mut().push(port);
    }
}

/// The fakes as the drivers' [`Xen`] bundle.
#[derive(Debug)]
pub enum FakeXen {}

impl Xen for FakeXen {
    type GrantFrames = FakePage;
    type StorePage = FakePage;
    type StoreSignal = FakeSignal;
    type Events = Rc<FakeEvents>;
    type Grants = Rc<RefCell<GrantTable<FakePage>>>;
    type Store = Rc<RefCell<FakeStore>>;
}

const GTF_PERMIT_ACCESS: u16 = 1;
const GTF_READONLY: u16 = 1 << 2;

/// What a netback sees: the guest's grant table (to resolve references) and memory.
#[derive(Debug)]
pub struct Netback {
    pub dma: Rc<FakeDma>,
    pub grant_page: FakePage,
    /// The back end's domain: grants must name it.
    pub domid: DomId,
    pub tx: Option<BackRing>,
    pub rx: Option<BackRing>,
    pub port: Option<Port>,
}

impl Netback {
    /// Resolves a grant to the address of the guest page it names, if it is granted to
    /// us (and writable, if `writable`).
    pub fn resolve(&self, gref: u32, writable: bool) -> Option<u64> {
        let at = gref as usize * 8;
        if at + 8 > self.grant_page.len() {
            return None;
        }
        let flags = self.grant_page.read_u16(at);
        let domid = self.grant_page.read_u16(at + 2);
        let frame = self.grant_page.read_u32(at + 4);
        if flags & 3 != GTF_PERMIT_ACCESS || domid != self.domid || (writable && flags & GTF_READONLY != 0) {
            return None;
        }
        Some(u64::from(frame) << 12)
    }

    fn map_ring(&self, gref: u32, entry: usize) -> Option<BackRing> {
        let addr = self.resolve(gref, true)?;
        let (mem, offset) = self.dma.at(addr)?;
        assert_eq!(offset, 0, "ring pages are whole pages");
        Some(BackRing::new(FakeRing { addr, mem }, entry))
    }

    /// Copies `frame` into the next posted receive page, as netback's grant copy does,
    /// and answers it (status -1 if the grant is bad). `None` if no page is posted.
    pub fn deliver(&mut self, frame: &[u8]) -> Option<bool> {
        let rx = self.rx.as_mut()?;
        let off = rx.next_request()?;
        let id = rx.mem.read_u16(off);
        let gref = rx.mem.read_u32(off + 4);
        let copied = self.resolve(gref, true).and_then(|addr| self.dma.at(addr)).map(|(mem, base)| {
            mem.borrow_mut()[base..base + frame.len()].copy_from_slice(frame);
        });
        let status = if copied.is_some() { frame.len() as u16 } else { (-1i16) as u16 };
        let rx = self.rx.as_mut()?;
        rx.respond(|m, o| {
            m.write_u16(o, id);
            m.write_u16(o + 2, 0);
            m.write_u16(o + 4, 0);
            m.write_u16(o + 6, status);
        });
        Some(rx.push_responses())
    }

    /// Consumes the next posted receive request and answers it with these fields (`id`
    /// `None`: the posted one); the posted id and grant.
    pub fn answer_rx(&mut self, id: Option<u16>, offset: u16, flags: u16, status: i16) -> Option<(u16, u32)> {
        let rx = self.rx.as_mut()?;
        let off = rx.next_request()?;
        let (posted, gref) = (rx.mem.read_u16(off), rx.mem.read_u32(off + 4));
        let id = id.unwrap_or(posted);
        rx.respond(|m, o| {
            m.write_u16(o, id);
            m.write_u16(o + 2, offset);
            m.write_u16(o + 4, flags);
            m.write_u16(o + 6, status as u16);
        });
        rx.push_responses();
        Some((posted, gref))
    }

    /// Takes the requests the guest sent: (gref, offset, flags, id, size) each.
    pub fn take_tx_requests(&mut self) -> Vec<(u32, u16, u16, u16, u16)> {
        let Some(tx) = self.tx.as_mut() else { return Vec::new() };
        let offsets = tx.take_requests();
        let m = &tx.mem;
        offsets
            .into_iter()
            .map(|o| {
                (m.read_u32(o), m.read_u16(o + 4), m.read_u16(o + 6), m.read_u16(o + 8), m.read_u16(o + 10))
            })
            .collect()
    }

    /// Reads a sent frame through its grant.
    pub fn read_granted(&self, gref: u32, offset: u16, size: u16) -> Option<Vec<u8>> {
        let addr = self.resolve(gref, false)?;
        let (mem, base) = self.dma.at(addr + u64::from(offset))?;
        let bytes = mem.borrow().get(base..base + usize::from(size))?.to_vec();
        Some(bytes)
    }

    /// Answers a transmit request.
    pub fn answer_tx(&mut self, id: u16, status: i16) {
        if let Some(tx) = self.tx.as_mut() {
            tx.respond(|m, o| {
                m.write_u16(o, id);
                m.write_u16(o + 2, status as u16);
            });
            tx.push_responses();
        }
    }

    /// Takes every frame the guest sent, reading it through its grant, and answers each
    /// with `status`.
    pub fn take_sent(&mut self, status: i16) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for (gref, offset, flags, id, size) in self.take_tx_requests() {
            assert_eq!(flags, 0, "one slot per frame, no offloads");
            frames.extend(self.read_granted(gref, offset, size));
            self.answer_tx(id, status);
        }
        frames
    }

    /// Sets the in-use bits of a grant, as Xen does while the back end has it mapped.
    pub fn map(&self, gref: u32, flags: u16) {
        let at = gref as usize * 8;
        let f = self.grant_page.read_u16(at);
        self.grant_page.write_u16(at, f | flags);
    }

    pub fn unmap(&self, gref: u32) {
        let at = gref as usize * 8;
        let f = self.grant_page.read_u16(at);
        self.grant_page.write_u16(at, f & !((1 << 3) | (1 << 4)));
    }
}

/// Plays netback's side of the xenbus handshake, at every daemon step: `InitWait` once
/// `delay` steps have passed, then (front end `Connected`) map the rings and connect.
pub fn netback_control(
    nb: Rc<RefCell<Netback>>,
    backend: String,
    frontend: String,
    delay: u64,
) -> DaemonHook {
    let mut steps = 0u64;
    Box::new(move |d: &mut Daemon| {
        steps += 1;
        let state = |d: &Daemon, p: &str| d.get(&std::format!("{p}/state")).map(|v| v.to_vec());
        let back = state(d, &backend);
        if steps >= delay && back.as_deref() == Some(b"1") {
            d.set(&std::format!("{backend}/state"), b"2");
            return;
        }
        if back.as_deref() == Some(b"2") && state(d, &frontend).as_deref() == Some(b"4") {
            let read = |k: &str| -> Option<u32> {
                core::str::from_utf8(d.get(&std::format!("{frontend}/{k}"))?).ok()?.parse().ok()
            };
            let (Some(tx), Some(rx), Some(port)) =
                (read("tx-ring-ref"), read("rx-ring-ref"), read("event-channel"))
            else {
                return;
            };
            let mut n = nb.borrow_mut();
            n.tx = n.map_ring(tx, 12);
            n.rx = n.map_ring(rx, 8);
            n.port = Some(port);
            d.set(&std::format!("{backend}/state"), b"4");
        }
    })
}

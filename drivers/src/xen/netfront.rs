//! netfront: the guest half of Xen's paravirtual network card (`io/netif.h`), one queue,
//! receive by copy (`request-rx-copy`).
//!
//! Two shared rings, one page each, granted to the back end. Receive: we post requests
//! `{id, gref}` naming whole pages we grant writable; the back end copies a frame into
//! one and answers `{id, offset, flags, status}`, `status` being the frame's length or a
//! negative error. Transmit: one request `{gref, offset, flags, id, size}` per frame
//! (frames never exceed a page), the buffer granted read-only until the answer
//! `{id, status}` comes back. One event channel carries notifications both ways.
//!
//! The handshake is xenbus's (under `device/vif/N`): read `backend`, `backend-id`,
//! `mac`; once the back end is in `InitWait` (it has written its features), write the
//! ring references, the event channel and our features, move to `Connected`, and wait
//! for the back end to follow. Linux's netback connects only when the front end says
//! `Connected` (it ignores `Initialised`), so we cannot wait for it before saying so.

use alloc::string::String;
use alloc::vec::Vec;

use super::grant::{GrantError, GrantRef, GrantTable};
use super::ring::{FrontRing, RingError};
use super::store::{self, Errno, XenStore, XenbusState, parse_mac, parse_state, parse_u16, parse_u32};
use super::{DomId, EventChannels, HypercallError, PAGE_SIZE, Port, Shared, Xen};
use crate::dma::{DmaAllocator, DmaBuffer, DmaRing};
use crate::net::{MAX_FRAME, NetDevice, RxFrame};

/// Bytes of a transmit request/response slot (the request's size; the union's).
const TX_ENTRY: usize = 12;
/// Bytes of a receive request/response slot.
const RX_ENTRY: usize = 8;

/// A transmit buffer: one frame, never crossing a page (a request names one page).
pub const TX_BUFFER_LEN: usize = 2048;

const NETRXF_MORE_DATA: u16 = 1 << 2;
const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// In an extra-info slot's flags: another extra-info slot follows.
const EXTRA_FLAG_MORE: u16 = 1;
/// `NETIF_RSP_NULL`: the answer to a slot that carried no frame (extra info).
const RSP_NULL: i16 = 1;

/// How often the key writes are retried when their transaction meets another writer.
const TRANSACTION_TRIES: usize = 5;

/// Sizes and limits.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Receive pages posted (at most the ring's 256).
    pub rx_buffers: u16,
    /// Transmit buffers (at most the ring's 256).
    pub tx_buffers: u16,
    /// How long the back end may take to reach `InitWait`, and then `Connected`.
    pub connect_timeout_ns: u64,
}

impl Default for Config {
    fn default() -> Self {
        // Hotplug scripts in dom0 can take seconds under emulation.
        Config { rx_buffers: 256, tx_buffers: 256, connect_timeout_ns: 30_000_000_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Store(store::Error),
    Grant(GrantError),
    EventChannel(HypercallError),
    OutOfMemory,
    /// The allocator gave a buffer a grant cannot describe (a receive buffer that is not
    /// a whole page, a transmit buffer across a page boundary).
    BadBuffer {
        addr: u64,
    },
    /// The back end lacks a feature we need.
    Unsupported(&'static str),
    /// The back end went to `Closing` or `Closed` instead of connecting.
    BackendClosed(XenbusState),
    /// The back end did not get to `waiting_for` in time; `state` is where it stayed.
    Timeout {
        waiting_for: XenbusState,
        state: XenbusState,
    },
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        Error::Store(e)
    }
}

impl From<GrantError> for Error {
    fn from(e: GrantError) -> Self {
        Error::Grant(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Store(e) => e.fmt(f),
            Error::Grant(e) => e.fmt(f),
            Error::EventChannel(e) => write!(f, "event channel: {e}"),
            Error::OutOfMemory => write!(f, "out of DMA memory"),
            Error::BadBuffer { addr } => write!(f, "DMA buffer at {addr:#x} does not fit a grant"),
            Error::Unsupported(feature) => write!(f, "back end lacks {feature}"),
            Error::BackendClosed(state) => write!(f, "back end closed ({state:?}) instead of connecting"),
            Error::Timeout { waiting_for, state } => {
                write!(f, "back end did not reach {waiting_for:?} in time (it is {state:?})")
            }
        }
    }
}

/// What went wrong on the rings since start (the back end's doing, or memory's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Received frames dropped: error statuses, runts, frames over several slots.
    pub rx_dropped: u64,
    /// Frames the back end answered with an error status.
    pub tx_errors: u64,
    /// Responses naming no request we have out (bad or repeated ids).
    pub bad_responses: u64,
    /// Buffers not posted for want of a grant reference (retried later).
    pub grant_shortages: u64,
}

/// A grant the back end still held when we revoked it, and what it covers: the buffer
/// stays out of use until the revoke succeeds.
#[derive(Debug)]
enum Held<B> {
    Rx(B, GrantRef),
    Tx(B, GrantRef),
    Ring(GrantRef),
}

/// The device nodes of the network cards xenstore lists for this domain
/// (`device/vif/0`, ...); none if there is no `device/vif`.
pub fn find<P: super::SharedPage, S: super::StoreSignal>(
    store: &mut XenStore<P, S>,
) -> Result<Vec<String>, store::Error> {
    match store.directory("device/vif") {
        Ok(names) => Ok(names.into_iter().map(|n| alloc::format!("device/vif/{n}")).collect()),
        Err(store::Error::Daemon(Errno::ENOENT)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Connects the first card xenstore lists for this domain: `None` if there is none (or
/// xenstore cannot say), else the card or why it did not start.
pub fn probe<A: DmaAllocator, X: Xen>(
    alloc: &A,
    grants: X::Grants,
    store: X::Store,
    events: X::Events,
    config: Config,
) -> Option<Result<Netfront<A, X>, Error>> {
    let node = store.with(|s: &mut Store<X>| find(s)).ok()?.into_iter().next()?;
    Some(Netfront::new(alloc, grants, store, events, &node, config))
}

type Store<X> = XenStore<<X as Xen>::StorePage, <X as Xen>::StoreSignal>;

pub struct Netfront<A: DmaAllocator, X: Xen> {
    node: String,
    backend: String,
    backend_id: DomId,
    mac: [u8; 6],
    grants: X::Grants,
    store: X::Store,
    events: X::Events,
    port: Option<Port>,
    /// Whether the back end is connected and we use the rings.
    link: bool,
    /// Whether our watch on the back end's state is registered.
    watching: bool,
    tx: FrontRing<A::Ring>,
    rx: FrontRing<A::Ring>,
    ring_grants: Vec<GrantRef>,
    /// Posted receive pages and their grants, by request id.
    rx_posted: Vec<Option<(A::Buffer, GrantRef)>>,
    rx_free_ids: Vec<u16>,
    /// The id posted in each receive slot: a slot answered with extra info instead of
    /// a frame gives its page back by position (`io/netif.h`).
    rx_slot_id: Vec<u16>,
    /// Receive pages waiting for a grant reference.
    rx_spare: Vec<A::Buffer>,
    /// Frames in flight and their grants, by request id.
    tx_posted: Vec<Option<(A::Buffer, GrantRef)>>,
    tx_free_ids: Vec<u16>,
    tx_pool: Vec<A::Buffer>,
    held: Vec<Held<A::Buffer>>,
    pub stats: Stats,
}

impl<A: DmaAllocator, X: Xen> core::fmt::Debug for Netfront<A, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Netfront")
            .field("node", &self.node)
            .field("backend", &self.backend)
            .field("mac", &self.mac)
            .field("link", &self.link)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<A: DmaAllocator, X: Xen> Netfront<A, X> {
    /// Connects the card at `node` (`device/vif/N`, from [`find`]) to its back end.
    /// On any error every grant, the event channel and the watch are given back.
    pub fn new(
        alloc: &A,
        grants: X::Grants,
        store: X::Store,
        events: X::Events,
        node: &str,
        config: Config,
    ) -> Result<Self, Error> {
        let (backend, backend_id, mac) = store.with(|s: &mut Store<X>| -> Result<_, Error> {
            let backend = s.read_string(&alloc::format!("{node}/backend"))?;
            let backend_id = s.read_parsed(&alloc::format!("{node}/backend-id"), parse_u16)?;
            let mac = s.read_parsed(&alloc::format!("{node}/mac"), parse_mac)?;
            Ok((backend, backend_id, mac))
        })?;
        let ring = || alloc.alloc_ring(PAGE_SIZE).ok_or(Error::OutOfMemory);
        let tx = FrontRing::new(ring()?, PAGE_SIZE, TX_ENTRY).ok_or(Error::OutOfMemory)?;
        let rx = FrontRing::new(ring()?, PAGE_SIZE, RX_ENTRY).ok_or(Error::OutOfMemory)?;
        let rx_count = config.rx_buffers.clamp(1, rx.size() as u16);
        let tx_count = config.tx_buffers.clamp(1, tx.size() as u16);
        let rx_size = rx.size() as usize;
        let mut nic = Netfront {
            node: node.into(),
            backend,
            backend_id,
            mac,
            grants,
            store,
            events,
            port: None,
            link: false,
            watching: false,
            tx,
            rx,
            ring_grants: Vec::new(),
            rx_posted: (0..rx_count).map(|_| None).collect(),
            rx_free_ids: (0..rx_count).rev().collect(),
            rx_slot_id: alloc::vec![0; rx_size],
            rx_spare: Vec::with_capacity(usize::from(rx_count)),
            tx_posted: (0..tx_count).map(|_| None).collect(),
            tx_free_ids: (0..tx_count).rev().collect(),
            tx_pool: Vec::with_capacity(usize::from(tx_count)),
            held: Vec::new(),
            stats: Stats::default(),
        };
        match nic.connect(alloc, config) {
            Ok(()) => Ok(nic),
            Err(e) => {
                nic.release(XenbusState::Closed);
                Err(e)
            }
        }
    }

    fn connect(&mut self, alloc: &A, config: Config) -> Result<(), Error> {
        let deadline =
            self.store.with(|s: &mut Store<X>| s.now_ns()).saturating_add(config.connect_timeout_ns);
        let state_path = alloc::format!("{}/state", self.backend);
        let token = self.node.clone();
        self.store.with(|s: &mut Store<X>| s.watch(&state_path, &token))?;
        self.watching = true;
        // The back end writes its features before it moves to InitWait.
        self.wait_backend(XenbusState::InitWait, deadline)?;
        let rx_copy = alloc::format!("{}/feature-rx-copy", self.backend);
        match self.store.with(|s: &mut Store<X>| s.read_parsed(&rx_copy, parse_u32)) {
            Ok(1) => {}
            Ok(_) | Err(store::Error::Daemon(Errno::ENOENT)) => {
                return Err(Error::Unsupported("feature-rx-copy"));
            }
            Err(e) => return Err(e.into()),
        }

        for addr in [self.tx.device_addr(), self.rx.device_addr()] {
            let r = self.grant(addr >> 12, false)?;
            self.ring_grants.push(r);
        }
        let port = self.events.alloc_unbound(self.backend_id).map_err(Error::EventChannel)?;
        self.port = Some(port);

        for _ in 0..self.tx_posted.len() {
            let buffer = alloc.alloc_buffer(TX_BUFFER_LEN).ok_or(Error::OutOfMemory)?;
            let addr = buffer.device_addr();
            if (addr as usize % PAGE_SIZE) + TX_BUFFER_LEN > PAGE_SIZE || buffer.bytes().len() < TX_BUFFER_LEN
            {
                return Err(Error::BadBuffer { addr });
            }
            self.tx_pool.push(buffer);
        }
        for _ in 0..self.rx_posted.len() {
            let buffer = alloc.alloc_buffer(PAGE_SIZE).ok_or(Error::OutOfMemory)?;
            let addr = buffer.device_addr();
            if !(addr as usize).is_multiple_of(PAGE_SIZE) || buffer.bytes().len() < PAGE_SIZE {
                return Err(Error::BadBuffer { addr });
            }
            // Every page must be posted now: a back end is not obliged to look again.
            let id = self.rx_free_ids.pop().ok_or(Error::Grant(GrantError::Exhausted))?;
            let gref = match self.grant(addr >> 12, false) {
                Ok(gref) => gref,
                Err(e) => {
                    self.rx_free_ids.push(id);
                    return Err(e);
                }
            };
            self.post_rx_as(id, buffer, gref);
        }
        self.rx.push_requests();

        let [tx_ref, rx_ref] = [self.ring_grants[0], self.ring_grants[1]];
        let keys = [
            ("tx-ring-ref", alloc::format!("{tx_ref}")),
            ("rx-ring-ref", alloc::format!("{rx_ref}")),
            ("event-channel", alloc::format!("{port}")),
            ("request-rx-copy", "1".into()),
            // We notify when we post receive buffers, as the back end's req_event asks.
            ("feature-rx-notify", "1".into()),
            // smoltcp checks every checksum: a frame with a blank one would be dropped.
            ("feature-no-csum-offload", "1".into()),
        ];
        let node = self.node.clone();
        self.store.with(|s: &mut Store<X>| -> Result<(), store::Error> {
            for attempt in 1..=TRANSACTION_TRIES {
                let tx = s.transaction_start()?;
                let written = keys.iter().try_for_each(|(key, value)| {
                    s.write_in(tx, &alloc::format!("{node}/{key}"), value.as_bytes())
                });
                if let Err(e) = written {
                    let _ = s.transaction_end(tx, false);
                    return Err(e);
                }
                match s.transaction_end(tx, true) {
                    Err(store::Error::Daemon(Errno::EAGAIN)) if attempt < TRANSACTION_TRIES => continue,
                    other => return other,
                }
            }
            Ok(())
        })?;
        self.set_state(XenbusState::Initialised)?;
        self.set_state(XenbusState::Connected)?;
        self.wait_backend(XenbusState::Connected, deadline)?;
        self.link = true;
        Ok(())
    }

    /// Waits until the back end is at least in `want` (and not closing).
    fn wait_backend(&mut self, want: XenbusState, deadline: u64) -> Result<(), Error> {
        let path = alloc::format!("{}/state", self.backend);
        let token = self.node.clone();
        loop {
            let state = match self.store.with(|s: &mut Store<X>| s.read_parsed(&path, parse_state)) {
                Ok(state) => state,
                // Not written yet.
                Err(store::Error::Daemon(Errno::ENOENT)) => XenbusState::Unknown,
                Err(e) => return Err(e.into()),
            };
            if state >= XenbusState::Closing {
                return Err(Error::BackendClosed(state));
            }
            if state >= want {
                return Ok(());
            }
            match self.store.with(|s: &mut Store<X>| s.wait_event(&token, deadline)) {
                Ok(_) => {}
                Err(store::Error::Timeout) => return Err(Error::Timeout { waiting_for: want, state }),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn set_state(&mut self, state: XenbusState) -> Result<(), store::Error> {
        let path = alloc::format!("{}/state", self.node);
        self.store.with(|s: &mut Store<X>| s.write(&path, state.as_bytes()))
    }

    fn grant(&mut self, frame: u64, readonly: bool) -> Result<GrantRef, Error> {
        let to = self.backend_id;
        Ok(self.grants.with(|g: &mut GrantTable<X::GrantFrames>| g.grant_access(to, frame, readonly))?)
    }

    fn end(&mut self, gref: GrantRef) -> Result<(), GrantError> {
        self.grants.with(|g: &mut GrantTable<X::GrantFrames>| g.end_access(gref))
    }

    /// Writes a receive request for `buffer` (granted as `gref`) under `id`; the caller
    /// publishes it.
    fn post_rx_as(&mut self, id: u16, buffer: A::Buffer, gref: GrantRef) {
        // A free id means a free slot: ids are no more than slots, and every slot's
        // response is consumed before its id is freed.
        let Some((index, off)) = self.rx.next_request() else {
            self.rx_free_ids.push(id);
            self.stats.grant_shortages += 1;
            if self.end(gref).is_err() {
                self.held.push(Held::Rx(buffer, gref));
            } else {
                self.rx_spare.push(buffer);
            }
            return;
        };
        let mem = self.rx.mem();
        mem.write_u16(off, id);
        mem.write_u16(off + 2, 0);
        mem.write_u32(off + 4, gref);
        let mask = self.rx.size() - 1;
        self.rx_slot_id[(index & mask) as usize] = id;
        self.rx_posted[usize::from(id)] = Some((buffer, gref));
    }

    /// Grants and posts a receive page (kept as a spare when no id or grant is free).
    fn post_rx(&mut self, buffer: A::Buffer) {
        let Some(id) = self.rx_free_ids.pop() else {
            self.rx_spare.push(buffer);
            return;
        };
        match self.grant(buffer.device_addr() >> 12, false) {
            Ok(gref) => self.post_rx_as(id, buffer, gref),
            Err(_) => {
                self.rx_free_ids.push(id);
                self.rx_spare.push(buffer);
                self.stats.grant_shortages += 1;
            }
        }
    }

    fn push_rx(&mut self) {
        if self.rx.push_requests()
            && let Some(port) = self.port
        {
            self.events.notify(port);
        }
    }

    /// Takes back the page posted under `id`, its grant revoked; `None` for an id we
    /// have not posted, or (kept aside) a page the back end still has mapped.
    fn take_rx(&mut self, id: u16) -> Option<A::Buffer> {
        let Some((mut buffer, gref)) = self.rx_posted.get_mut(usize::from(id)).and_then(Option::take) else {
            self.stats.bad_responses += 1;
            return None;
        };
        self.rx_free_ids.push(id);
        if self.end(gref).is_err() {
            self.held.push(Held::Rx(buffer, gref));
            return None;
        }
        buffer.sync_for_cpu();
        Some(buffer)
    }

    /// Takes the next receive response; `None` when there is none (or the ring broke).
    fn next_rx(&mut self) -> Option<(u32, u16, u16, u16, i16)> {
        match self.rx.next_response() {
            Ok(Some((index, off))) => {
                let mem = self.rx.mem();
                let rsp = (
                    index,
                    mem.read_u16(off),
                    mem.read_u16(off + 2),
                    mem.read_u16(off + 4),
                    mem.read_u16(off + 6) as i16,
                );
                Some(rsp)
            }
            Ok(None) => None,
            Err(e) => {
                self.broken(e);
                None
            }
        }
    }

    /// Gives back the page of a slot that carried no frame (an extra-info slot).
    fn skip_slot(&mut self, index: u32) {
        let id = self.rx_slot_id[(index & (self.rx.size() - 1)) as usize];
        if let Some(b) = self.take_rx(id) {
            self.post_rx(b);
        }
    }

    /// The back end broke the ring protocol: nothing it writes there can be trusted, so
    /// the card stops (its grants stay until it lets go of them).
    fn broken(&mut self, _e: RingError) {
        self.stats.bad_responses += 1;
        self.release(XenbusState::Closing);
    }

    fn reclaim_tx(&mut self) {
        loop {
            let (id, status) = match self.tx.next_response() {
                Ok(Some((_, off))) => {
                    let mem = self.tx.mem();
                    (mem.read_u16(off), mem.read_u16(off + 2) as i16)
                }
                Ok(None) => return,
                Err(e) => return self.broken(e),
            };
            if status == RSP_NULL {
                continue;
            }
            let Some((buffer, gref)) = self.tx_posted.get_mut(usize::from(id)).and_then(Option::take) else {
                self.stats.bad_responses += 1;
                continue;
            };
            self.tx_free_ids.push(id);
            if status < 0 {
                self.stats.tx_errors += 1;
            }
            match self.end(gref) {
                Ok(()) => self.tx_pool.push(buffer),
                Err(_) => self.held.push(Held::Tx(buffer, gref)),
            }
        }
    }

    /// Retries revoking grants the back end held, and posts spare receive pages.
    fn tidy(&mut self) {
        for held in core::mem::take(&mut self.held) {
            let gref = match &held {
                Held::Rx(_, g) | Held::Tx(_, g) | Held::Ring(g) => *g,
            };
            if self.end(gref).is_err() {
                self.held.push(held);
                continue;
            }
            match held {
                Held::Rx(b, _) => self.rx_spare.push(b),
                Held::Tx(b, _) => self.tx_pool.push(b),
                Held::Ring(_) => {}
            }
        }
        if self.link && !self.rx_spare.is_empty() {
            for b in core::mem::take(&mut self.rx_spare) {
                self.post_rx(b);
            }
            self.push_rx();
        }
    }

    /// Looks at the back end's state if our watch fired: anything but `Connected` takes
    /// the link down.
    fn check_backend(&mut self) {
        if !self.watching {
            return;
        }
        let token = self.node.clone();
        let path = alloc::format!("{}/state", self.backend);
        let state = self.store.with(|s: &mut Store<X>| {
            s.poll().ok()?;
            let mut fired = false;
            while s.take_event(&token).is_some() {
                fired = true;
            }
            fired.then(|| s.read_parsed(&path, parse_state))
        });
        match state {
            None | Some(Ok(XenbusState::Connected)) => {}
            // Gone (the toolstack removed the device), closing or closed.
            Some(
                Ok(XenbusState::Closing | XenbusState::Closed) | Err(store::Error::Daemon(Errno::ENOENT)),
            ) => self.release(XenbusState::Closed),
            // Any other state, or a failed read: look again at the next event.
            Some(_) => {}
        }
    }

    /// Stops using the rings and gives everything back: the watch, every grant (those
    /// the back end still holds are retried by [`kick`](NetDevice::kick)), the event
    /// channel; then tells the back end `state`.
    fn release(&mut self, state: XenbusState) {
        self.link = false;
        if self.watching {
            let (path, token) = (alloc::format!("{}/state", self.backend), self.node.clone());
            let _ = self.store.with(|s: &mut Store<X>| s.unwatch(&path, &token));
            self.watching = false;
        }
        for id in 0..self.rx_posted.len() {
            if let Some((b, gref)) = self.rx_posted[id].take() {
                self.rx_free_ids.push(id as u16);
                self.held.push(Held::Rx(b, gref));
            }
        }
        for id in 0..self.tx_posted.len() {
            if let Some((b, gref)) = self.tx_posted[id].take() {
                self.tx_free_ids.push(id as u16);
                self.held.push(Held::Tx(b, gref));
            }
        }
        for gref in core::mem::take(&mut self.ring_grants) {
            self.held.push(Held::Ring(gref));
        }
        self.tidy();
        if let Some(port) = self.port.take() {
            self.events.close(port);
        }
        let _ = self.set_state(state);
    }

    /// Grants the back end still holds (released when it lets go).
    pub fn held_grants(&self) -> usize {
        self.held.len()
    }

    pub fn backend(&self) -> &str {
        &self.backend
    }

    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }

    /// The event channel, while connected.
    pub fn port(&self) -> Option<Port> {
        self.port
    }
}

impl<A: DmaAllocator, X: Xen> NetDevice for Netfront<A, X> {
    type Buffer = A::Buffer;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&self) -> bool {
        self.link
    }

    fn receive(&mut self) -> Option<RxFrame<A::Buffer>> {
        while self.link {
            let (_, id, offset, flags, status) = self.next_rx()?;
            // Extra info (GSO and the like, never asked for) follows in the next slots,
            // which carry no frame; each says in its flags byte (the high byte of the
            // first u16) whether another follows (XEN_NETIF_EXTRA_FLAG_MORE).
            let mut extra = flags & NETRXF_EXTRA_INFO != 0;
            while extra {
                let Some((slot, head, ..)) = self.next_rx() else { break };
                self.skip_slot(slot);
                extra = (head >> 8) & EXTRA_FLAG_MORE != 0;
            }
            let Some(buffer) = self.take_rx(id) else { continue };
            let (offset, len) = (usize::from(offset), status as usize);
            let fits = status > 0 && offset + len <= buffer.bytes().len();
            if flags & NETRXF_MORE_DATA != 0 || !fits || len < 14 {
                // An error status, a runt, or a frame over several slots (we did not ask
                // for scatter-gather): drop it with every slot it spans.
                self.stats.rx_dropped += 1;
                let mut more = flags & NETRXF_MORE_DATA != 0;
                while more {
                    let Some((_, id, _, flags, _)) = self.next_rx() else { break };
                    more = flags & NETRXF_MORE_DATA != 0;
                    if let Some(b) = self.take_rx(id) {
                        self.post_rx(b);
                    }
                }
                self.post_rx(buffer);
                self.push_rx();
                continue;
            }
            return Some(RxFrame { buffer, offset, len });
        }
        None
    }

    fn recycle(&mut self, frame: RxFrame<A::Buffer>) {
        if !self.link {
            self.rx_spare.push(frame.buffer);
            return;
        }
        self.post_rx(frame.buffer);
        self.push_rx();
    }

    fn can_send(&mut self) -> bool {
        if !self.link {
            return false;
        }
        self.reclaim_tx();
        self.link && !self.tx_pool.is_empty() && self.tx.free_requests() > 0
    }

    fn send<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if !self.can_send() {
            return None;
        }
        let len = len.min(MAX_FRAME);
        let id = self.tx_free_ids.pop()?;
        let Some(mut buffer) = self.tx_pool.pop() else {
            self.tx_free_ids.push(id);
            return None;
        };
        let addr = buffer.device_addr();
        let gref = match self.grant(addr >> 12, true) {
            Ok(gref) => gref,
            Err(_) => {
                self.stats.grant_shortages += 1;
                self.tx_pool.push(buffer);
                self.tx_free_ids.push(id);
                return None;
            }
        };
        // can_send saw a free slot, and nothing took it since.
        let Some((_, off)) = self.tx.next_request() else {
            if self.end(gref).is_ok() {
                self.tx_pool.push(buffer);
            } else {
                self.held.push(Held::Tx(buffer, gref));
            }
            self.tx_free_ids.push(id);
            return None;
        };
        let result = fill(&mut buffer.bytes_mut()[..len]);
        buffer.sync_for_device();
        let mem = self.tx.mem();
        mem.write_u32(off, gref);
        mem.write_u16(off + 4, (addr as usize % PAGE_SIZE) as u16);
        mem.write_u16(off + 6, 0);
        mem.write_u16(off + 8, id);
        mem.write_u16(off + 10, len as u16);
        self.tx_posted[usize::from(id)] = Some((buffer, gref));
        if self.tx.push_requests()
            && let Some(port) = self.port
        {
            self.events.notify(port);
        }
        Some(result)
    }

    fn has_work(&self) -> bool {
        self.link && (self.rx.has_responses() || (self.tx_pool.is_empty() && self.tx.has_responses()))
    }

    /// Also where the back end's state is looked at (when its watch fired) and grants
    /// it held are retried: the stack calls this after every silence.
    fn kick(&mut self) {
        self.check_backend();
        self.tidy();
        if self.link
            && let Some(port) = self.port
        {
            self.events.notify(port);
        }
    }

    /// Event channels need no acknowledgement at the device.
    fn ack_interrupt(&self) {}

    /// Notifications for received frames, and for sent ones only while every transmit
    /// buffer is in flight (as virtio-net).
    fn set_interrupts(&mut self, on: bool) {
        if !self.link {
            return;
        }
        if on {
            self.rx.arm_responses();
        } else {
            self.rx.quiet_responses();
        }
        if on && self.tx_pool.is_empty() {
            self.tx.arm_responses();
        } else {
            self.tx.quiet_responses();
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::dma::fake::FakeDma;
    use crate::xen::fake::{
        Daemon, FakeEvents, FakePage, FakeStore, FakeXen, Netback, netback_control, store,
    };
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::RefCell;

    const NODE: &str = "device/vif/0";
    const BACKEND: &str = "/local/domain/0/backend/vif/1/0";

    struct Rig {
        dma: Rc<FakeDma>,
        grants: Rc<RefCell<GrantTable<FakePage>>>,
        store: Rc<RefCell<FakeStore>>,
        daemon: Rc<RefCell<Daemon>>,
        events: Rc<FakeEvents>,
        nb: Rc<RefCell<Netback>>,
    }

    type Nic = Netfront<FakeDma, FakeXen>;

    /// A domain with one vif whose back end reaches InitWait after `delay` daemon steps
    /// and connects when we do; a grant table of `entries`.
    fn rig_with(entries: usize, delay: u64) -> Rig {
        let grant_page = FakePage::new(entries * 8);
        let grants = Rc::new(RefCell::new(GrantTable::new(grant_page.clone())));
        let (xs, daemon) = store();
        let dma = Rc::new(FakeDma::new(10_000));
        let nb = Rc::new(RefCell::new(Netback {
            dma: dma.clone(),
            grant_page,
            domid: 0,
            tx: None,
            rx: None,
            port: None,
        }));
        {
            let mut d = daemon.borrow_mut();
            for (k, v) in [
                (alloc::format!("{NODE}/backend"), BACKEND),
                (alloc::format!("{NODE}/backend-id"), "0"),
                (alloc::format!("{NODE}/mac"), "00:16:3e:00:00:02"),
                (alloc::format!("{NODE}/state"), "1"),
                (alloc::format!("{BACKEND}/state"), "1"),
                (alloc::format!("{BACKEND}/feature-rx-copy"), "1"),
            ] {
                d.set(&k, v.as_bytes());
            }
            d.hooks.push(netback_control(nb.clone(), BACKEND.into(), NODE.into(), delay));
        }
        Rig {
            dma,
            grants,
            store: Rc::new(RefCell::new(xs)),
            daemon,
            events: Rc::new(FakeEvents::default()),
            nb,
        }
    }

    fn rig() -> Rig {
        rig_with(2048, 3)
    }

    fn small() -> Config {
        Config { rx_buffers: 8, tx_buffers: 4, connect_timeout_ns: 1_000_000_000 }
    }

    fn connect(r: &Rig, config: Config) -> Result<Nic, Error> {
        Netfront::new(&*r.dma, r.grants.clone(), r.store.clone(), r.events.clone(), NODE, config)
    }

    fn node(r: &Rig, key: &str) -> std::string::String {
        let d = r.daemon.borrow();
        std::string::String::from_utf8(d.get(&alloc::format!("{NODE}/{key}")).unwrap_or_default().to_vec())
            .unwrap()
    }

    /// Every grant given back, and nothing left held.
    fn all_grants_free(r: &Rig) -> bool {
        let g = r.grants.borrow();
        g.available() == g.capacity()
    }

    fn frame(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn the_handshake_writes_our_keys_and_connects() {
        let r = rig();
        let nic = connect(&r, small()).unwrap();
        assert!(nic.link_up());
        assert_eq!(nic.mac(), [0, 0x16, 0x3e, 0, 0, 2]);
        assert_eq!((nic.backend(), nic.backend_id()), (BACKEND, 0));
        assert_eq!(node(&r, "state"), "4");
        assert_eq!(node(&r, "request-rx-copy"), "1");
        assert_eq!(node(&r, "feature-rx-notify"), "1");
        assert_eq!(node(&r, "feature-no-csum-offload"), "1");
        let port: Port = node(&r, "event-channel").parse().unwrap();
        assert_eq!(nic.port(), Some(port));
        assert_eq!(*r.events.bound_to.borrow(), vec![0], "the channel is offered to the back end's domain");
        // The rings are granted to the back end and it mapped them.
        let nb = r.nb.borrow();
        assert!(nb.tx.is_some() && nb.rx.is_some());
        assert_eq!(nb.port, Some(port));
        // Two ring pages and every receive page are granted; nothing else.
        let g = r.grants.borrow();
        assert_eq!(g.capacity() - g.available(), 2 + 8);
        // All eight receive pages are posted.
        assert_eq!(nb.rx.as_ref().unwrap().mem.mem.borrow()[0..4], 8u32.to_le_bytes());
    }

    #[test]
    fn receive_round_trip_recycles_pages_many_times() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        assert!(!nic.has_work());
        assert!(nic.receive().is_none());
        for i in 0..1000usize {
            let sent = frame(60 + i % 1400, i as u8);
            r.nb.borrow_mut().deliver(&sent).expect("a page is posted");
            assert!(nic.has_work());
            let got = nic.receive().expect("a frame");
            assert_eq!(got.frame(), &sent[..]);
            nic.recycle(got);
        }
        assert_eq!(nic.stats, Stats::default());
        let g = r.grants.borrow();
        assert_eq!(g.capacity() - g.available(), 2 + 8, "one grant per posted page, none leaked");
    }

    #[test]
    fn frames_held_by_the_stack_leave_the_ring_short_until_recycled() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        let mut held = Vec::new();
        for i in 0..8u8 {
            r.nb.borrow_mut().deliver(&frame(64, i)).unwrap();
            held.push(nic.receive().unwrap());
        }
        assert!(r.nb.borrow_mut().deliver(&frame(64, 0)).is_none(), "no page posted");
        for f in held {
            nic.recycle(f);
        }
        assert!(r.nb.borrow_mut().deliver(&frame(64, 0)).is_some());
    }

    #[test]
    fn transmit_round_trip_grants_read_only_and_ends_on_answer() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        let before = r.grants.borrow().available();
        for round in 0..100u8 {
            let n = 1 + usize::from(round) % 4;
            for i in 0..n {
                let data = frame(100 + i * 300, round);
                assert!(nic.can_send());
                assert_eq!(nic.send(data.len(), |buf| buf.copy_from_slice(&data)), Some(()));
            }
            // Each buffer is granted, read-only, while in flight.
            let reqs = r.nb.borrow_mut().take_tx_requests();
            assert_eq!(reqs.len(), n);
            for (k, &(gref, offset, _, id, size)) in reqs.iter().enumerate() {
                let nb = r.nb.borrow();
                assert!(nb.resolve(gref, false).is_some());
                assert!(nb.resolve(gref, true).is_none(), "read-only");
                assert_eq!(nb.read_granted(gref, offset, size).unwrap(), frame(100 + k * 300, round));
                drop(nb);
                r.nb.borrow_mut().answer_tx(id, 0);
            }
            assert!(nic.can_send());
            assert_eq!(r.grants.borrow().available(), before, "grants ended when answered");
        }
        assert!(r.events.notified.borrow().iter().all(|&p| Some(p) == nic.port()));
        assert!(!r.events.notified.borrow().is_empty());
    }

    #[test]
    fn sending_stops_when_every_buffer_is_in_flight() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        for _ in 0..4 {
            assert!(nic.send(60, |b| b.fill(1)).is_some());
        }
        assert!(!nic.can_send());
        let mut called = false;
        assert_eq!(nic.send(60, |_| called = true), None);
        assert!(!called, "fill is not called when nothing is sent");
        // Answers waiting while every buffer is out: work to do.
        assert!(!nic.has_work());
        let sent = r.nb.borrow_mut().take_sent(0);
        assert_eq!(sent.len(), 4);
        assert!(nic.has_work());
        assert!(nic.can_send());
        // Longer than a frame: cut to MAX_FRAME.
        nic.send(9000, |b| assert_eq!(b.len(), MAX_FRAME)).unwrap();
    }

    #[test]
    fn transmit_errors_are_counted_and_buffers_come_back() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        nic.send(60, |b| b.fill(0)).unwrap();
        nic.send(60, |b| b.fill(0)).unwrap();
        let reqs = r.nb.borrow_mut().take_tx_requests();
        r.nb.borrow_mut().answer_tx(reqs[0].3, -1);
        r.nb.borrow_mut().answer_tx(reqs[1].3, -2);
        assert!(nic.can_send());
        assert_eq!(nic.stats.tx_errors, 2);
        // Bad ids (out of range, not in flight, answered twice), each answer in the slot
        // of a real request: those frames are never answered, their buffers lost to
        // the back end's bug, but nothing breaks.
        for _ in 0..4 {
            nic.send(60, |b| b.fill(0)).unwrap();
        }
        let reqs = r.nb.borrow_mut().take_tx_requests();
        for id in [999, u16::MAX, reqs[0].3, reqs[0].3] {
            r.nb.borrow_mut().answer_tx(id, 0);
        }
        assert!(nic.can_send());
        assert_eq!(nic.stats.bad_responses, 3);
        assert_eq!(nic.stats.tx_errors, 2);
        // A NULL answer (for an extra-info slot, which we never send) is skipped; the
        // frame whose slot it took stays unanswered.
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        nic.send(60, |b| b.fill(0)).unwrap();
        nic.send(60, |b| b.fill(0)).unwrap();
        let reqs = r.nb.borrow_mut().take_tx_requests();
        r.nb.borrow_mut().answer_tx(reqs[0].3, RSP_NULL);
        r.nb.borrow_mut().answer_tx(reqs[1].3, 0);
        assert!(nic.can_send());
        assert_eq!(nic.stats, Stats::default());
        let g = r.grants.borrow();
        assert_eq!(g.capacity() - g.available(), 2 + 8 + 1);
    }

    #[test]
    fn bad_receive_answers_are_dropped_not_trusted() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        let nb = |id, offset, flags, status| r.nb.borrow_mut().answer_rx(id, offset, flags, status).unwrap();
        // Error statuses, a runt, a zero length, a frame past the page's end.
        nb(None, 0, 0, -1);
        nb(None, 0, 0, -2);
        nb(None, 0, 0, 10);
        nb(None, 0, 0, 0);
        nb(None, 4000, 0, 200);
        assert!(nic.receive().is_none());
        assert_eq!(nic.stats.rx_dropped, 5);
        // An id out of range, and one not posted (already answered): ignored.
        nb(Some(999), 0, 0, 60);
        assert!(nic.receive().is_none());
        assert_eq!(nic.stats.bad_responses, 1);
        // Every page that came back was posted again; none is lost but the one whose
        // answer named another id.
        r.nb.borrow_mut().deliver(&frame(60, 1)).unwrap();
        assert_eq!(nic.receive().unwrap().frame(), &frame(60, 1)[..]);
        let g = r.grants.borrow();
        assert_eq!(g.capacity() - g.available(), 2 + 7, "the recycled frame is with the stack");
    }

    #[test]
    fn multi_slot_frames_and_extra_info_are_dropped_with_their_slots() {
        let r = rig();
        let mut nic = connect(&r, Config { rx_buffers: 16, ..small() }).unwrap();
        let nb = |flags, status| r.nb.borrow_mut().answer_rx(None, 0, flags, status).unwrap();
        // A frame over three slots.
        nb(NETRXF_MORE_DATA, 1000);
        nb(NETRXF_MORE_DATA, 1000);
        nb(0, 500);
        // A frame with an extra-info slot after it: the frame is good, the extra slot's
        // page (it carries no frame) is posted again.
        nb(NETRXF_EXTRA_INFO, 100);
        nb(0, 0);
        // Two chained extra-info slots (type 1, flags MORE; then type 1).
        nb(NETRXF_EXTRA_INFO, 100);
        r.nb.borrow_mut().answer_rx(Some(0x0101), 0, 0, 0).unwrap();
        r.nb.borrow_mut().answer_rx(Some(0x0001), 0, 0, 0).unwrap();
        r.nb.borrow_mut().deliver(&frame(70, 3)).unwrap();
        let with_extra = nic.receive().unwrap();
        assert_eq!(with_extra.len, 100);
        let with_two = nic.receive().unwrap();
        assert_eq!(with_two.len, 100);
        let got = nic.receive().unwrap();
        assert_eq!(got.frame(), &frame(70, 3)[..], "the frame after them comes through");
        assert_eq!(nic.stats.rx_dropped, 1, "the multi-slot frame");
        assert_eq!(nic.stats.bad_responses, 0);
        nic.recycle(got);
        nic.recycle(with_extra);
        nic.recycle(with_two);
        let g = r.grants.borrow();
        assert_eq!(g.capacity() - g.available(), 2 + 16, "every page posted again");
    }

    #[test]
    fn a_back_end_that_never_gets_ready_times_out_and_leaves_nothing() {
        let r = rig_with(2048, u64::MAX);
        let err = connect(&r, small()).unwrap_err();
        assert_eq!(
            err,
            Error::Timeout { waiting_for: XenbusState::InitWait, state: XenbusState::Initialising }
        );
        assert!(all_grants_free(&r));
        assert!(r.events.bound_to.borrow().is_empty());
        assert_eq!(r.store.borrow().pending_events(), 0);
    }

    #[test]
    fn a_back_end_that_never_connects_times_out_and_gives_everything_back() {
        let r = rig();
        // It reaches InitWait but never maps our rings.
        r.daemon.borrow_mut().hooks.clear();
        r.daemon.borrow_mut().set(&alloc::format!("{BACKEND}/state"), b"2");
        let err = connect(&r, small()).unwrap_err();
        assert_eq!(err, Error::Timeout { waiting_for: XenbusState::Connected, state: XenbusState::InitWait });
        assert!(std::format!("{err}").contains("did not reach Connected"));
        assert!(all_grants_free(&r));
        let bound = r.events.bound_to.borrow().len();
        assert_eq!(r.events.closed.borrow().len(), bound, "the event channel is closed");
        assert_eq!(node(&r, "state"), "6", "we say Closed");
    }

    #[test]
    fn a_back_end_closing_during_the_handshake_is_an_error() {
        let r = rig();
        r.daemon.borrow_mut().hooks.clear();
        r.daemon.borrow_mut().after(5, |d| d.set(&alloc::format!("{BACKEND}/state"), b"5"));
        assert_eq!(connect(&r, small()).unwrap_err(), Error::BackendClosed(XenbusState::Closing));
        assert!(all_grants_free(&r));
    }

    #[test]
    fn malformed_or_missing_keys_are_clear_errors() {
        for (key, value, expect) in [
            ("mac", Some("00:16:3e:zz:00:02"), "is not a MAC address"),
            ("backend-id", Some("dom0"), "is not a number"),
            ("backend-id", Some("70000"), "is not a number"),
            ("backend", None, "ENOENT"),
        ] {
            let r = rig();
            let path = alloc::format!("{NODE}/{key}");
            match value {
                Some(v) => r.daemon.borrow_mut().set(&path, v.as_bytes()),
                None => r.daemon.borrow_mut().remove(&path),
            }
            let err = connect(&r, small()).unwrap_err();
            let text = std::format!("{err}");
            assert!(text.contains(expect), "{key}: {text}");
            assert!(all_grants_free(&r));
        }
        let r = rig();
        r.daemon.borrow_mut().set(&alloc::format!("{BACKEND}/state"), b"banana");
        assert!(matches!(connect(&r, small()), Err(Error::Store(store::Error::Parse { .. }))));
        let r = rig();
        r.daemon.borrow_mut().remove(&alloc::format!("{BACKEND}/feature-rx-copy"));
        assert_eq!(connect(&r, small()).unwrap_err(), Error::Unsupported("feature-rx-copy"));
        assert!(all_grants_free(&r));
    }

    #[test]
    fn running_out_of_grants_or_event_channels_is_an_error_and_leaks_nothing() {
        // 8 reserved + 6: the two rings and four of the eight receive pages.
        let r = rig_with(14, 3);
        assert_eq!(connect(&r, small()).unwrap_err(), Error::Grant(GrantError::Exhausted));
        assert!(all_grants_free(&r));
        let r = rig();
        r.events.refuse.set(true);
        assert_eq!(connect(&r, small()).unwrap_err(), Error::EventChannel(HypercallError(-28)));
        assert!(all_grants_free(&r));
    }

    #[test]
    fn grant_shortage_while_running_parks_pages_and_fails_sends_softly() {
        // Exactly enough for the rings and the receive pages: nothing left for sends.
        let r = rig_with(8 + 2 + 8, 3);
        let mut nic = connect(&r, small()).unwrap();
        assert!(nic.can_send());
        assert_eq!(nic.send(60, |_| ()), None);
        assert_eq!(nic.stats.grant_shortages, 1);
        // A frame arrives and the stack holds it: its grant is free again, so a send fits.
        r.nb.borrow_mut().deliver(&frame(60, 0)).unwrap();
        let f = nic.receive().unwrap();
        assert!(nic.send(60, |_| ()).is_some());
        // The page comes back while the send still holds the last grant: parked...
        nic.recycle(f);
        assert_eq!(nic.stats.grant_shortages, 2);
        // ...and posted by the next kick, once the send's grant is back.
        r.nb.borrow_mut().take_sent(0);
        assert!(nic.can_send());
        nic.kick();
        let g = r.grants.borrow();
        assert_eq!(g.available(), 0, "all eight pages posted again");
    }

    #[test]
    fn the_back_end_closing_takes_the_link_down_and_frees_everything() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        nic.send(60, |b| b.fill(0)).unwrap();
        let port = nic.port().unwrap();
        nic.kick();
        assert!(nic.link_up(), "a kick with nothing changed changes nothing");
        r.daemon.borrow_mut().set(&alloc::format!("{BACKEND}/state"), b"5");
        // The daemon sends the watch event at its next step.
        r.daemon.borrow_mut().step();
        nic.kick();
        assert!(!nic.link_up());
        assert!(r.events.closed.borrow().contains(&port));
        assert_eq!(node(&r, "state"), "6");
        assert!(all_grants_free(&r), "the in-flight send's grant too");
        assert!(nic.receive().is_none());
        assert!(!nic.can_send());
        assert_eq!(nic.send(60, |_| ()), None);
        assert!(!nic.has_work());
    }

    #[test]
    fn grants_the_back_end_still_maps_wait_until_it_lets_go() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        nic.send(60, |b| b.fill(0)).unwrap();
        let gref = r.nb.borrow_mut().take_tx_requests()[0].0;
        r.nb.borrow().map(gref, 1 << 3);
        r.daemon.borrow_mut().remove(BACKEND);
        r.daemon.borrow_mut().step();
        nic.kick();
        assert!(!nic.link_up(), "the back end vanished");
        assert_eq!(nic.held_grants(), 1);
        assert!(r.grants.borrow().is_granted(gref));
        nic.kick();
        assert_eq!(nic.held_grants(), 1, "still mapped");
        r.nb.borrow().unmap(gref);
        nic.kick();
        assert_eq!(nic.held_grants(), 0);
        assert!(all_grants_free(&r));
    }

    #[test]
    fn a_back_end_overrunning_the_ring_stops_the_card() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        // Claims 100 responses with 8 requests out.
        r.nb.borrow().rx.as_ref().unwrap().mem.write_u32(8, 100);
        assert!(nic.receive().is_none());
        assert!(!nic.link_up());
        assert!(all_grants_free(&r));
    }

    #[test]
    fn notifications_follow_the_event_marks() {
        let r = rig();
        let mut nic = connect(&r, small()).unwrap();
        nic.set_interrupts(false);
        assert_eq!(r.nb.borrow_mut().deliver(&frame(60, 0)), Some(false), "quiet while polling");
        nic.set_interrupts(true);
        assert!(nic.has_work(), "the frame that came in between is seen");
        let f = nic.receive().unwrap();
        nic.set_interrupts(true);
        assert_eq!(r.nb.borrow_mut().deliver(&frame(60, 0)), Some(true), "armed");
        // Receive pages: the back end asks to hear when new ones are posted.
        r.nb.borrow_mut().rx.as_mut().unwrap().arm_requests();
        let before = r.events.notified.borrow().len();
        nic.recycle(f);
        assert_eq!(r.events.notified.borrow().len(), before + 1);
        // A kick always notifies.
        nic.kick();
        assert_eq!(r.events.notified.borrow().len(), before + 2);
    }

    #[test]
    fn probe_connects_the_first_vif() {
        let r = rig();
        let nic =
            probe::<FakeDma, FakeXen>(&*r.dma, r.grants.clone(), r.store.clone(), r.events.clone(), small());
        assert!(nic.unwrap().unwrap().link_up());
        let (xs, _) = store();
        let none = probe::<FakeDma, FakeXen>(
            &*r.dma,
            r.grants.clone(),
            Rc::new(RefCell::new(xs)),
            r.events.clone(),
            small(),
        );
        assert!(none.is_none());
    }

    #[test]
    fn find_lists_the_vifs() {
        let (mut xs, d) = store();
        assert_eq!(find(&mut xs).unwrap(), Vec::<std::string::String>::new());
        d.borrow_mut().set("device/vif/0/backend", b"x");
        d.borrow_mut().set("device/vif/1/backend", b"y");
        d.borrow_mut().set("device/vbd/768/backend", b"z");
        assert_eq!(find(&mut xs).unwrap(), vec!["device/vif/0", "device/vif/1"]);
    }
}

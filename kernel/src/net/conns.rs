//! The stack's memory budget in force: a socket table that never grows past what was
//! reserved for it, socket buffers allocated without panicking, and the cap on live
//! connections (`max_conns=`, else sized to memory by [`mm::budget`]).
//!
//! Over the cap, a new connection takes the place of the one whose peer has been quiet
//! longest, if that has been quiet for [`EVICT_QUIET_NS`] (as nginx reuses idle
//! keep-alive connections when it runs out); if every connection is busy, the new one is
//! reset. Either way the log says so.

use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::AnySocket;

/// The socket table with its live count, so it never outgrows the capacity reserved
/// when the stack started (smoltcp would grow its `Vec`, and the allocation could fail).
pub(super) struct Sockets {
    pub(super) set: SocketSet<'static>,
    live: usize,
    slots: usize,
}

impl Sockets {
    pub(super) fn with_slots(slots: usize) -> Sockets {
        Sockets { set: SocketSet::new(Vec::with_capacity(slots)), live: 0, slots }
    }

    /// Adds a socket, or `None` when every reserved slot is taken.
    pub(super) fn add<T: AnySocket<'static>>(&mut self, socket: T) -> Option<SocketHandle> {
        if self.live == self.slots {
            return None;
        }
        self.live += 1;
        Some(self.set.add(socket))
    }

    pub(super) fn remove(&mut self, handle: SocketHandle) {
        self.set.remove(handle);
        self.live -= 1;
    }

    pub(super) fn get<T: AnySocket<'static>>(&self, handle: SocketHandle) -> &T {
        self.set.get(handle)
    }

    pub(super) fn get_mut<T: AnySocket<'static>>(&mut self, handle: SocketHandle) -> &mut T {
        self.set.get_mut(handle)
    }

    pub(super) fn live(&self) -> usize {
        self.live
    }
}

/// A zeroed buffer of `len` bytes, or `None` if the heap cannot supply it.
pub(super) fn try_zeroed(len: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).ok()?;
    buf.resize(len, 0);
    Some(buf)
}

/// A connection over the cap may replace one whose peer has been quiet this long.
pub(super) const EVICT_QUIET_NS: u64 = 1_000_000_000;
/// The log reports connections reset or replaced at most this often.
const REPORT_EVERY_NS: u64 = 10_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// An app holds it.
    Open,
    /// Its app dropped it; it finishes its shutdown.
    Closing,
    /// Reset to make room; no longer counted against the cap.
    Evicted,
}

#[derive(Debug)]
struct Conn {
    handle: SocketHandle,
    /// When the peer last gave or took bytes (or the app closed it), kernel ns.
    active_ns: u64,
    phase: Phase,
}

/// Live connections by slot number (which `TcpStream` keeps), and the cap on them.
pub(super) struct Conns {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Connections counted against the cap: open and closing ones.
    counted: usize,
    max: usize,
    /// Resets and replacements since the last report, and when that was.
    refused: u64,
    evicted: u64,
    reported_ns: u64,
}

/// What [`Conns::admit`] decided for a new connection.
pub(super) enum Admission {
    /// Room under the cap.
    Room,
    /// Room made by taking this connection's place: the caller resets it.
    Replaced(SocketHandle),
    /// No room: reset the new connection.
    Full,
}

impl Conns {
    pub(super) fn new(max: usize) -> Conns {
        // Replaced connections keep their slots until their apps let go, so there are a
        // few more slots than the cap; the table never grows past them.
        let slots = max + max / 4 + 1;
        Conns {
            slots: Vec::with_capacity(slots),
            free: Vec::with_capacity(slots),
            counted: 0,
            max,
            refused: 0,
            evicted: 0,
            reported_ns: 0,
        }
    }

    /// Whether a new connection fits, making room if a quiet one can go. The caller
    /// aborts a replaced connection; its app sees the end of the stream and drops it.
    pub(super) fn admit(&mut self, now: u64, port: u16) -> Admission {
        let table_full = self.free.is_empty() && self.slots.len() == self.slots.capacity();
        if self.counted < self.max && !table_full {
            return Admission::Room;
        }
        let quietest = self
            .slots
            .iter_mut()
            .flatten()
            .filter(|c| c.phase != Phase::Evicted && now.saturating_sub(c.active_ns) >= EVICT_QUIET_NS)
            .min_by_key(|c| c.active_ns);
        let admission = match quietest {
            Some(conn) if !table_full => {
                conn.phase = Phase::Evicted;
                self.counted -= 1;
                self.evicted += 1;
                Admission::Replaced(conn.handle)
            }
            _ => {
                self.refused += 1;
                Admission::Full
            }
        };
        if now.saturating_sub(self.reported_ns) >= REPORT_EVERY_NS || self.reported_ns == 0 {
            log::warn!(
                "tcp: port {port}: at max_conns={}: {} quiet connections reset to make room, {} new ones reset (all busy)",
                self.max,
                self.evicted,
                self.refused
            );
            self.reported_ns = now.max(1);
            (self.evicted, self.refused) = (0, 0);
        }
        admission
    }

    /// Records an admitted connection; its slot number.
    pub(super) fn insert(&mut self, handle: SocketHandle, now: u64) -> usize {
        let conn = Conn { handle, active_ns: now, phase: Phase::Open };
        self.counted += 1;
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(conn);
                slot
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        }
    }

    /// The peer gave or took bytes.
    pub(super) fn touch(&mut self, slot: usize, now: u64) {
        if let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            conn.active_ns = now;
        }
    }

    /// Its app dropped the connection: it stays counted while it closes.
    pub(super) fn closing(&mut self, slot: usize, now: u64) {
        if let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut)
            && conn.phase == Phase::Open
        {
            conn.phase = Phase::Closing;
            conn.active_ns = now;
        }
    }

    /// Its socket is gone: the slot is free.
    pub(super) fn release(&mut self, slot: usize) {
        if let Some(conn) = self.slots.get_mut(slot).and_then(Option::take) {
            if conn.phase != Phase::Evicted {
                self.counted -= 1;
            }
            self.free.push(slot);
        }
    }
}

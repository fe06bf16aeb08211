//! A xenstore client over the shared interface page (`io/xs_wire.h`,
//! `docs/misc/xenstore.txt`).
//!
//! The page holds two 1 KiB byte rings, requests (ours to write) and responses (ours to
//! read), each with free-running `u32` consumer and producer indices. Every message in
//! either direction is a 16-byte header (`type`, `req_id`, `tx_id`, `len`) and `len`
//! bytes of payload, at most 4096, streamed through the ring in as many pieces as it
//! takes. Replies carry their request's `req_id`; `WATCH_EVENT`s arrive unasked, between
//! replies, and are queued here until their owner takes them.
//!
//! The client is synchronous: one request at a time, waiting (through
//! [`StoreSignal`]) for the reply, and giving up with [`Error::Timeout`] at a deadline.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use super::{SharedPage, StoreSignal};

const REQ: usize = 0;
const RSP: usize = 1024;
const RING_SIZE: u32 = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;
/// The interface page's size as this client uses it (the rings and four indices).
pub const PAGE_BYTES: usize = 2064;

const HEADER_LEN: usize = 16;
/// The largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// The longest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const PATH_MAX: usize = 3072;

/// Message types (`enum xsd_sockmsg_type`), those this client uses.
pub mod kind {
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const WRITE: u32 = 11;
    pub const RM: u32 = 13;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
}

/// Watch events kept for their owners at most; older ones are dropped first (a watch
/// event says only "look again", so the newest is the one that matters).
const MAX_EVENTS: usize = 64;

/// Unmatched replies kept at most (only late ones can pile up).
const MAX_REPLIES: usize = 8;

/// How long a request may wait for its reply unless told otherwise.
pub const DEFAULT_TIMEOUT_NS: u64 = 10_000_000_000;

/// A transaction (`tx_id`), or [`Tx::NONE`] for a plain request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tx(pub u32);

impl Tx {
    pub const NONE: Tx = Tx(0);
}

/// An error name xenstored answered with (an errno's name, sent as a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Errno {
    ENOENT,
    EACCES,
    EEXIST,
    EISDIR,
    EINVAL,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    /// A transaction met a conflicting write: run it again.
    EAGAIN,
    EISCONN,
    E2BIG,
    Other(String),
}

impl Errno {
    fn parse(payload: &[u8]) -> Errno {
        let name = payload.split(|&b| b == 0).next().unwrap_or_default();
        match name {
            b"ENOENT" => Errno::ENOENT,
            b"EACCES" => Errno::EACCES,
            b"EEXIST" => Errno::EEXIST,
            b"EISDIR" => Errno::EISDIR,
            b"EINVAL" => Errno::EINVAL,
            b"ENOMEM" => Errno::ENOMEM,
            b"ENOSPC" => Errno::ENOSPC,
            b"EIO" => Errno::EIO,
            b"ENOTEMPTY" => Errno::ENOTEMPTY,
            b"ENOSYS" => Errno::ENOSYS,
            b"EROFS" => Errno::EROFS,
            b"EBUSY" => Errno::EBUSY,
            b"EAGAIN" => Errno::EAGAIN,
            b"EISCONN" => Errno::EISCONN,
            b"E2BIG" => Errno::E2BIG,
            other => Errno::Other(String::from_utf8_lossy(&other[..other.len().min(32)]).into()),
        }
    }
}

/// Why a value read from xenstore was not what it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    NotUtf8,
    /// Not a decimal number (or not one that fits): the value as read.
    NotANumber(String),
    /// Not six hexadecimal bytes separated by colons.
    BadMac(String),
    /// Not a xenbus state (0 to 8).
    BadState(u32),
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParseError::NotUtf8 => write!(f, "not UTF-8"),
            ParseError::NotANumber(v) => write!(f, "{v:?} is not a number in range"),
            ParseError::BadMac(v) => write!(f, "{v:?} is not a MAC address"),
            ParseError::BadState(s) => write!(f, "{s} is not a xenbus state"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No reply (or no room in the request ring) before the deadline.
    Timeout,
    /// xenstored answered with an error.
    Daemon(Errno),
    /// A request's payload (or a path) is longer than the protocol allows.
    TooLong,
    /// A path or token holds a NUL byte.
    Nul,
    /// xenstored broke the protocol (indices out of range, a reply too long or of the
    /// wrong type). Fatal for the connection, as is a request left half-written by a
    /// timeout: the two sides no longer agree where messages start.
    Protocol(&'static str),
    /// A previous protocol error or half-written request ended the connection.
    Broken,
    /// A value was not what the key should hold.
    Parse { path: String, error: ParseError },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Timeout => write!(f, "xenstore did not answer in time"),
            Error::Daemon(e) => write!(f, "xenstore answered {e:?}"),
            Error::TooLong => write!(f, "xenstore request too long"),
            Error::Nul => write!(f, "NUL byte in a xenstore path or token"),
            Error::Protocol(what) => write!(f, "xenstore protocol error: {what}"),
            Error::Broken => write!(f, "xenstore connection broken by an earlier error"),
            Error::Parse { path, error } => write!(f, "xenstore {path}: {error}"),
        }
    }
}

/// A watch fired: `path` changed (or is the watched path itself, at registration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub path: String,
    pub token: String,
}

#[derive(Debug)]
struct Message {
    kind: u32,
    req_id: u32,
    payload: Vec<u8>,
}

/// The client. `P` is the interface page, `S` its event channel and the wait.
#[derive(Debug)]
pub struct XenStore<P: SharedPage, S: StoreSignal> {
    page: P,
    signal: S,
    next_req_id: u32,
    /// Bytes of a response not yet complete.
    partial: Vec<u8>,
    /// Replies received and not yet matched to the request in flight (a reply to a
    /// request that timed out may come late).
    replies: VecDeque<Message>,
    events: VecDeque<WatchEvent>,
    /// Watch events dropped because nobody took them.
    pub dropped_events: u64,
    timeout_ns: u64,
    broken: bool,
}

impl<P: SharedPage, S: StoreSignal> XenStore<P, S> {
    /// A client on the interface page xenstored already serves (the domain builder set it
    /// up: indices as xenstored left them). `page` must map at least [`PAGE_BYTES`].
    pub fn new(page: P, signal: S) -> Self {
        XenStore {
            page,
            signal,
            next_req_id: 1,
            partial: Vec::new(),
            replies: VecDeque::new(),
            events: VecDeque::new(),
            dropped_events: 0,
            timeout_ns: DEFAULT_TIMEOUT_NS,
            broken: false,
        }
    }

    /// How long each request may take.
    pub fn set_timeout_ns(&mut self, ns: u64) {
        self.timeout_ns = ns;
    }

    pub fn now_ns(&self) -> u64 {
        self.signal.now_ns()
    }

    /// Reads the value at `path` (absolute, or relative to this domain's home).
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        self.read_in(Tx::NONE, path)
    }

    pub fn read_in(&mut self, tx: Tx, path: &str) -> Result<Vec<u8>, Error> {
        self.request(kind::READ, tx, &[path.as_bytes(), b"\0"], &[path])
    }

    /// Reads the value at `path` as text.
    pub fn read_string(&mut self, path: &str) -> Result<String, Error> {
        let value = self.read(path)?;
        String::from_utf8(value).map_err(|_| Error::Parse { path: path.into(), error: ParseError::NotUtf8 })
    }

    /// Reads the value at `path` and parses it with `parse` (see [`parse_u32`] and its
    /// siblings), naming the path in the error.
    pub fn read_parsed<T>(
        &mut self,
        path: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, Error> {
        let value = self.read(path)?;
        parse(&value).map_err(|error| Error::Parse { path: path.into(), error })
    }

    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        self.write_in(Tx::NONE, path, value)
    }

    pub fn write_in(&mut self, tx: Tx, path: &str, value: &[u8]) -> Result<(), Error> {
        self.request(kind::WRITE, tx, &[path.as_bytes(), b"\0", value], &[path]).map(drop)
    }

    /// Removes `path` and everything under it.
    pub fn remove(&mut self, path: &str) -> Result<(), Error> {
        self.request(kind::RM, Tx::NONE, &[path.as_bytes(), b"\0"], &[path]).map(drop)
    }

    /// The names of `path`'s children.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, Error> {
        let payload = self.request(kind::DIRECTORY, Tx::NONE, &[path.as_bytes(), b"\0"], &[path])?;
        // Each name is followed by a NUL; an empty payload is no children.
        let body = payload.strip_suffix(b"\0").unwrap_or(&payload);
        if body.is_empty() {
            return Ok(Vec::new());
        }
        body.split(|&b| b == 0)
            .map(|name| {
                String::from_utf8(name.into())
                    .map_err(|_| Error::Parse { path: path.into(), error: ParseError::NotUtf8 })
            })
            .collect()
    }

    /// Watches `path` and everything under it; events come back with `token`. xenstored
    /// fires a new watch once straight away.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.request(
            kind::WATCH,
            Tx::NONE,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
            &[path, token],
        )
        .map(drop)
    }

    /// Stops a watch, and forgets its queued events.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.events.retain(|e| e.token != token);
        self.request(
            kind::UNWATCH,
            Tx::NONE,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
            &[path, token],
        )
        .map(drop)
    }

    pub fn transaction_start(&mut self) -> Result<Tx, Error> {
        let payload = self.request(kind::TRANSACTION_START, Tx::NONE, &[b"\0"], &[])?;
        let id =
            parse_u32(&payload).map_err(|error| Error::Parse { path: "(transaction id)".into(), error })?;
        Ok(Tx(id))
    }

    /// Commits (`commit`) or discards a transaction. A commit that met a conflicting
    /// write fails with `Daemon(EAGAIN)`: run the transaction again.
    pub fn transaction_end(&mut self, tx: Tx, commit: bool) -> Result<(), Error> {
        self.request(kind::TRANSACTION_END, tx, &[if commit { b"T\0" } else { b"F\0" }], &[]).map(drop)
    }

    /// Reads whatever xenstored has sent, without waiting: watch events join the queue.
    pub fn poll(&mut self) -> Result<(), Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        self.pump()
    }

    /// Takes the oldest queued event for `token`.
    pub fn take_event(&mut self, token: &str) -> Option<WatchEvent> {
        let at = self.events.iter().position(|e| e.token == token)?;
        self.events.remove(at)
    }

    /// Takes the oldest queued event, whoever it is for.
    pub fn pop_event(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    /// Events queued.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Waits until an event for `token` comes, or `deadline_ns` passes.
    pub fn wait_event(&mut self, token: &str, deadline_ns: u64) -> Result<WatchEvent, Error> {
        loop {
            self.poll()?;
            if let Some(e) = self.take_event(token) {
                return Ok(e);
            }
            if self.signal.now_ns() >= deadline_ns {
                return Err(Error::Timeout);
            }
            self.signal.wait_until(deadline_ns);
        }
    }

    /// Sends a request and waits for its reply's payload. `names` are the paths and
    /// tokens in it, checked for NULs and length.
    fn request(&mut self, kind: u32, tx: Tx, parts: &[&[u8]], names: &[&str]) -> Result<Vec<u8>, Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        if names.iter().any(|n| n.as_bytes().contains(&0)) {
            return Err(Error::Nul);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX || names.iter().any(|n| n.len() > PATH_MAX) {
            return Err(Error::TooLong);
        }
        let req_id = self.next_req_id;
        // Never 0: watch events carry req_id 0.
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        let mut message = Vec::with_capacity(HEADER_LEN + len);
        for field in [kind, req_id, tx.0, len as u32] {
            message.extend_from_slice(&field.to_le_bytes());
        }
        for part in parts {
            message.extend_from_slice(part);
        }
        let deadline = self.signal.now_ns().saturating_add(self.timeout_ns);
        // Late replies to requests that timed out will never be wanted.
        self.replies.clear();
        self.send(&message, deadline)?;
        loop {
            self.pump()?;
            if let Some(at) = self.replies.iter().position(|m| m.req_id == req_id) {
                let reply = self.replies.remove(at).ok_or(Error::Protocol("reply vanished"))?;
                return match reply.kind {
                    kind::ERROR => Err(Error::Daemon(Errno::parse(&reply.payload))),
                    k if k == kind => Ok(reply.payload),
                    _ => Err(self.fail("a reply of another type than its request")),
                };
            }
            if self.signal.now_ns() >= deadline {
                return Err(Error::Timeout);
            }
            self.signal.wait_until(deadline);
        }
    }

    /// Writes a whole message into the request ring, waiting for room as needed.
    fn send(&mut self, mut data: &[u8], deadline: u64) -> Result<(), Error> {
        let mut started = false;
        while !data.is_empty() {
            let cons = self.page.read_u32(REQ_CONS);
            let prod = self.page.read_u32(REQ_PROD);
            let used = prod.wrapping_sub(cons);
            if used > RING_SIZE {
                return Err(self.fail("request ring indices out of range"));
            }
            let room = (RING_SIZE - used) as usize;
            if room == 0 {
                if self.signal.now_ns() >= deadline {
                    // Half a message in the ring would be read as the start of the next.
                    if started {
                        self.broken = true;
                    }
                    return Err(Error::Timeout);
                }
                self.signal.wait_until(deadline);
                continue;
            }
            let n = room.min(data.len());
            // Read the consumer index before reusing the bytes it has freed.
            fence(Ordering::Acquire);
            for (i, &b) in data[..n].iter().enumerate() {
                let at = prod.wrapping_add(i as u32) & (RING_SIZE - 1);
                self.page.write_u8(REQ + at as usize, b);
            }
            // The bytes before the index that publishes them.
            fence(Ordering::Release);
            self.page.write_u32(REQ_PROD, prod.wrapping_add(n as u32));
            fence(Ordering::SeqCst);
            self.signal.notify();
            started = true;
            data = &data[n..];
        }
        Ok(())
    }

    /// Moves what the response ring holds into `partial` and takes complete messages
    /// out of it: replies to `replies`, watch events to the queue.
    fn pump(&mut self) -> Result<(), Error> {
        let prod = self.page.read_u32(RSP_PROD);
        let cons = self.page.read_u32(RSP_CONS);
        let ready = prod.wrapping_sub(cons);
        if ready > RING_SIZE {
            return Err(self.fail("response ring indices out of range"));
        }
        if ready > 0 {
            // The bytes after the index that published them.
            fence(Ordering::Acquire);
            for i in 0..ready {
                let at = cons.wrapping_add(i) & (RING_SIZE - 1);
                self.partial.push(self.page.read_u8(RSP + at as usize));
            }
            // Done reading before xenstored may overwrite.
            fence(Ordering::SeqCst);
            self.page.write_u32(RSP_CONS, prod);
            // It may be waiting for room.
            self.signal.notify();
        }
        while self.partial.len() >= HEADER_LEN {
            let field =
                |i: usize| u32::from_le_bytes(self.partial[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]));
            let (kind, req_id, len) = (field(0), field(1), field(3) as usize);
            if len > PAYLOAD_MAX {
                return Err(self.fail("a message longer than the payload limit"));
            }
            if self.partial.len() < HEADER_LEN + len {
                break;
            }
            let payload = self.partial[HEADER_LEN..HEADER_LEN + len].to_vec();
            self.partial.drain(..HEADER_LEN + len);
            if kind == kind::WATCH_EVENT {
                self.queue_event(&payload);
            } else {
                if self.replies.len() == MAX_REPLIES {
                    self.replies.pop_front();
                }
                self.replies.push_back(Message { kind, req_id, payload });
            }
        }
        Ok(())
    }

    /// Queues a watch event (`path\0token\0`); a malformed one is dropped.
    fn queue_event(&mut self, payload: &[u8]) {
        let mut parts = payload.split(|&b| b == 0);
        let (Some(path), Some(token)) = (parts.next(), parts.next()) else {
            self.dropped_events += 1;
            return;
        };
        let (Ok(path), Ok(token)) = (core::str::from_utf8(path), core::str::from_utf8(token)) else {
            self.dropped_events += 1;
            return;
        };
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(WatchEvent { path: path.into(), token: token.into() });
    }

    fn fail(&mut self, what: &'static str) -> Error {
        self.broken = true;
        Error::Protocol(what)
    }
}

/// Parses a decimal `u32` (digits only, as xenstore values are written).
pub fn parse_u32(value: &[u8]) -> Result<u32, ParseError> {
    let text = core::str::from_utf8(value).map_err(|_| ParseError::NotUtf8)?;
    // Some writers end values with a NUL; nothing else is tolerated.
    let digits = text.strip_suffix('\0').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::NotANumber(text.into()));
    }
    digits.parse().map_err(|_| ParseError::NotANumber(text.into()))
}

/// Parses a decimal `u16` (a domain id).
pub fn parse_u16(value: &[u8]) -> Result<u16, ParseError> {
    let n = parse_u32(value)?;
    u16::try_from(n).map_err(|_| ParseError::NotANumber(String::from_utf8_lossy(value).into()))
}

/// Parses a MAC address: six hexadecimal bytes (one or two digits) separated by `:`.
pub fn parse_mac(value: &[u8]) -> Result<[u8; 6], ParseError> {
    let text = core::str::from_utf8(value).map_err(|_| ParseError::NotUtf8)?;
    let text = text.strip_suffix('\0').unwrap_or(text);
    let bad = || ParseError::BadMac(text.into());
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(bad)?;
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// The state of one end of a xenbus device (`io/xenbus.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    /// Early setup done; waiting for the peer's details (or hotplug scripts).
    InitWait = 2,
    /// Our details are written; waiting for the peer to connect.
    Initialised = 3,
    Connected = 4,
    /// Being closed, because of an error or an unplug.
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    /// The value written to a `state` node.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            XenbusState::Unknown => b"0",
            XenbusState::Initialising => b"1",
            XenbusState::InitWait => b"2",
            XenbusState::Initialised => b"3",
            XenbusState::Connected => b"4",
            XenbusState::Closing => b"5",
            XenbusState::Closed => b"6",
            XenbusState::Reconfiguring => b"7",
            XenbusState::Reconfigured => b"8",
        }
    }
}

/// Parses a `state` node.
pub fn parse_state(value: &[u8]) -> Result<XenbusState, ParseError> {
    Ok(match parse_u32(value)? {
        0 => XenbusState::Unknown,
        1 => XenbusState::Initialising,
        2 => XenbusState::InitWait,
        3 => XenbusState::Initialised,
        4 => XenbusState::Connected,
        5 => XenbusState::Closing,
        6 => XenbusState::Closed,
        7 => XenbusState::Reconfiguring,
        8 => XenbusState::Reconfigured,
        n => return Err(ParseError::BadState(n)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::fake::{Daemon, store};
    use alloc::vec;

    #[test]
    fn read_write_directory_remove() {
        let (mut xs, d) = store();
        xs.write("device/vif/0/mac", b"00:16:3e:00:00:02").unwrap();
        assert_eq!(xs.read("device/vif/0/mac").unwrap(), b"00:16:3e:00:00:02");
        assert_eq!(xs.read_string("device/vif/0/mac").unwrap(), "00:16:3e:00:00:02");
        xs.write("device/vif/1/mac", b"x").unwrap();
        assert_eq!(xs.directory("device/vif").unwrap(), vec!["0", "1"]);
        assert_eq!(xs.directory("device/vif/0/mac").unwrap(), Vec::<String>::new());
        xs.remove("device/vif/1").unwrap();
        assert_eq!(xs.directory("device/vif").unwrap(), vec!["0"]);
        assert_eq!(d.borrow().requests, 8);
    }

    #[test]
    fn errors_come_back_by_name() {
        let (mut xs, d) = store();
        assert_eq!(xs.read("nope"), Err(Error::Daemon(Errno::ENOENT)));
        d.borrow_mut().fail_next = Some("EACCES");
        assert_eq!(xs.write("a", b"b"), Err(Error::Daemon(Errno::EACCES)));
        xs.write("a", b"b").unwrap();
        d.borrow_mut().fail_next = Some("EWHATEVER");
        assert_eq!(xs.read("a"), Err(Error::Daemon(Errno::Other("EWHATEVER".into()))));
        // The connection carries on.
        assert_eq!(xs.read("a").unwrap(), b"b");
    }

    /// A message longer than the 1 KiB ring goes through in pieces, both ways.
    #[test]
    fn long_messages_stream_through_the_ring() {
        let (mut xs, _d) = store();
        let value: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        xs.write("big", &value).unwrap();
        assert_eq!(xs.read("big").unwrap(), value);
        // Many small ones wrap the indices round the ring many times.
        for i in 0..300u32 {
            let v = alloc::format!("{i}");
            xs.write("n", v.as_bytes()).unwrap();
            assert_eq!(xs.read_parsed("n", parse_u32).unwrap(), i);
        }
    }

    #[test]
    fn requests_beyond_the_limits_are_refused_without_sending() {
        let (mut xs, d) = store();
        assert_eq!(xs.write("big", &[0; PAYLOAD_MAX]), Err(Error::TooLong));
        assert_eq!(xs.read(&"a".repeat(PATH_MAX + 1)), Err(Error::TooLong));
        assert_eq!(xs.read("a\0b"), Err(Error::Nul));
        assert_eq!(xs.watch("a", "t\0"), Err(Error::Nul));
        assert_eq!(d.borrow().requests, 0);
    }

    #[test]
    fn a_silent_daemon_times_out() {
        let (mut xs, d) = store();
        xs.set_timeout_ns(50_000_000);
        d.borrow_mut().stalled = true;
        let start = xs.now_ns();
        assert_eq!(xs.read("a"), Err(Error::Timeout));
        let waited = xs.now_ns() - start;
        assert!((50_000_000..60_000_000).contains(&waited), "{waited}");
        // It wakes up: the late reply is skipped, the next request answered.
        d.borrow_mut().stalled = false;
        xs.write("a", b"1").unwrap();
        assert_eq!(xs.read("a").unwrap(), b"1");
    }

    /// A request that cannot even be written (the daemon never empties the request ring)
    /// times out, and the connection, left with half a message, is closed for good.
    #[test]
    fn a_request_stuck_half_written_breaks_the_connection() {
        let (mut xs, d) = store();
        xs.set_timeout_ns(50_000_000);
        d.borrow_mut().stalled = true;
        assert_eq!(xs.write("big", &[b'x'; 2000]), Err(Error::Timeout));
        assert_eq!(xs.read("a"), Err(Error::Broken));
    }

    #[test]
    fn watches_fire_and_queue_between_replies() {
        let (mut xs, _d) = store();
        xs.watch("backend/vif/1/0/state", "vif0").unwrap();
        xs.watch("other", "x").unwrap();
        // The registration fires each once.
        xs.write("backend/vif/1/0/state", b"4").unwrap();
        xs.write("other/y", b"1").unwrap();
        let first = xs.take_event("vif0").unwrap();
        assert_eq!(first, WatchEvent { path: "backend/vif/1/0/state".into(), token: "vif0".into() });
        assert_eq!(xs.take_event("vif0").unwrap().path, "backend/vif/1/0/state");
        assert_eq!(xs.take_event("vif0"), None);
        assert_eq!(xs.pending_events(), 2);
        assert_eq!(xs.pop_event().unwrap().path, "other");
        assert_eq!(xs.pop_event().unwrap().path, "other/y");
        xs.unwatch("backend/vif/1/0/state", "vif0").unwrap();
        xs.write("backend/vif/1/0/state", b"5").unwrap();
        assert_eq!(xs.take_event("vif0"), None);
    }

    #[test]
    fn wait_event_waits_and_times_out() {
        let (mut xs, d) = store();
        xs.watch("be/state", "t").unwrap();
        xs.take_event("t").unwrap();
        let deadline = xs.now_ns() + 100_000_000;
        // The "back end" writes after a few steps of the daemon.
        d.borrow_mut().after(3, |d| d.set("be/state", b"4"));
        assert_eq!(xs.wait_event("t", deadline).unwrap().path, "be/state");
        assert_eq!(xs.wait_event("t", deadline), Err(Error::Timeout));
        assert!(xs.now_ns() >= deadline);
    }

    #[test]
    fn old_events_are_dropped_when_nobody_takes_them() {
        let (mut xs, _d) = store();
        xs.watch("w", "t").unwrap();
        for i in 0..MAX_EVENTS + 10 {
            xs.write("w", alloc::format!("{i}").as_bytes()).unwrap();
        }
        assert_eq!(xs.pending_events(), MAX_EVENTS);
        assert_eq!(xs.dropped_events, 11);
    }

    #[test]
    fn transactions_commit_discard_and_conflict() {
        let (mut xs, d) = store();
        let tx = xs.transaction_start().unwrap();
        xs.write_in(tx, "a", b"1").unwrap();
        assert_eq!(xs.read("a"), Err(Error::Daemon(Errno::ENOENT)), "not visible outside");
        assert_eq!(xs.read_in(tx, "a").unwrap(), b"1");
        xs.transaction_end(tx, true).unwrap();
        assert_eq!(xs.read("a").unwrap(), b"1");

        let tx = xs.transaction_start().unwrap();
        xs.write_in(tx, "a", b"2").unwrap();
        xs.transaction_end(tx, false).unwrap();
        assert_eq!(xs.read("a").unwrap(), b"1");

        let tx = xs.transaction_start().unwrap();
        xs.write_in(tx, "a", b"3").unwrap();
        d.borrow_mut().set("a", b"conflict");
        assert_eq!(xs.transaction_end(tx, true), Err(Error::Daemon(Errno::EAGAIN)));
        assert_eq!(xs.read("a").unwrap(), b"conflict");
    }

    /// Replies that break the protocol end the connection with a clear error instead of
    /// a panic or a wait forever.
    #[test]
    fn protocol_violations() {
        for (raw, what) in [
            (Daemon::raw_header(kind::READ, 1, PAYLOAD_MAX as u32 + 1), "longer"),
            (Daemon::raw_header(kind::WATCH, 1, 0), "another type"),
        ] {
            let (mut xs, d) = store();
            d.borrow_mut().replace_reply = Some(raw);
            match xs.read("a") {
                Err(Error::Protocol(m)) => assert!(m.contains(what), "{m}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(xs.read("a"), Err(Error::Broken));
        }
        let (mut xs, d) = store();
        d.borrow_mut().corrupt_rsp_prod = true;
        assert_eq!(xs.read("a"), Err(Error::Protocol("response ring indices out of range")));
        assert_eq!(xs.read("a"), Err(Error::Broken));
    }

    #[test]
    fn malformed_watch_events_are_dropped() {
        let (mut xs, d) = store();
        d.borrow_mut().inject(kind::WATCH_EVENT, b"no-token");
        d.borrow_mut().inject(kind::WATCH_EVENT, b"\xff\0t\0");
        d.borrow_mut().inject(kind::WATCH_EVENT, b"p\0t\0");
        xs.write("a", b"1").unwrap();
        assert_eq!(xs.dropped_events, 2);
        assert_eq!(xs.pop_event().unwrap(), WatchEvent { path: "p".into(), token: "t".into() });
    }

    #[test]
    fn parse_helpers() {
        assert_eq!(parse_u32(b"42"), Ok(42));
        assert_eq!(parse_u32(b"42\0"), Ok(42));
        assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
        for bad in [&b""[..], b"-1", b" 1", b"1 ", b"0x10", b"4294967296", b"12a"] {
            assert!(matches!(parse_u32(bad), Err(ParseError::NotANumber(_))), "{bad:?}");
        }
        assert_eq!(parse_u32(b"\xff"), Err(ParseError::NotUtf8));
        assert_eq!(parse_u16(b"65535"), Ok(65535));
        assert!(parse_u16(b"65536").is_err());
        assert_eq!(parse_mac(b"00:16:3e:00:00:02"), Ok([0, 0x16, 0x3e, 0, 0, 2]));
        assert_eq!(parse_mac(b"0:16:3E:a:b:FF"), Ok([0, 0x16, 0x3e, 0xa, 0xb, 0xff]));
        for bad in [
            &b"00:16:3e:00:00"[..],
            b"00:16:3e:00:00:02:03",
            b"00:16:3e:00:00:",
            b"00-16-3e-00-00-02",
            b"000:16:3e:00:00:02",
            b"00:16:3e:00:00:0g",
            b"",
        ] {
            assert!(matches!(parse_mac(bad), Err(ParseError::BadMac(_))), "{bad:?}");
        }
        assert_eq!(parse_state(b"4"), Ok(XenbusState::Connected));
        assert_eq!(parse_state(b"9"), Err(ParseError::BadState(9)));
        for s in 0..=8u32 {
            let state = parse_state(alloc::format!("{s}").as_bytes()).unwrap();
            assert_eq!(parse_state(state.as_bytes()), Ok(state));
        }
    }

    #[test]
    fn parse_errors_name_the_path() {
        let (mut xs, _d) = store();
        xs.write("device/vif/0/backend-id", b"zero").unwrap();
        assert_eq!(
            xs.read_parsed("device/vif/0/backend-id", parse_u16),
            Err(Error::Parse {
                path: "device/vif/0/backend-id".into(),
                error: ParseError::NotANumber("zero".into())
            })
        );
    }
}

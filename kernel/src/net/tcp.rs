//! TCP for apps: a listener with a backlog of listening sockets, and streams with async
//! read and write. Socket buffers are fixed per connection, so a slow reader holds back
//! its writer (backpressure) instead of growing memory.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::{Poll, Waker};
use core::time::Duration;

use mm::budget::{ConnBudget, Costs};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};

use super::conns::{Admission, Sockets, try_zeroed};
use super::{Stack, with_stack};

/// Receive and send buffer sizes of every connection.
const RX_BUFFER: usize = 4 * 1024;
const TX_BUFFER: usize = 8 * 1024;

/// What an app may allocate per connection beyond its socket (its task, read and write
/// buffers), for the connection budget. httpd's worst case stays under it (checked where
/// httpd sizes its buffers).
const APP_BYTES_PER_CONN: u64 = 24 * 1024;

/// The connection cap and backlog for the memory free now (see [`mm::budget`]):
/// handshakes (and established connections not yet accepted) that one listener may hold,
/// a SYN that finds the backlog full recycling the oldest unfinished handshake so a flood
/// of SYNs cannot lock clients out; and the connections apps may hold, each at its worst.
pub(super) fn budget(requested: Option<usize>) -> ConnBudget {
    let heap = crate::heap_stats();
    let free = heap.frames_free + (heap.claimed.saturating_sub(heap.allocated)) as u64;
    // A socket costs its buffers and its slot in smoltcp's table.
    let socket_bytes = (RX_BUFFER + TX_BUFFER + core::mem::size_of::<tcp::Socket<'static>>() + 64) as u64;
    let (budget, cut) =
        ConnBudget::from_memory(free, Costs { socket_bytes, app_bytes: APP_BYTES_PER_CONN }, requested);
    if cut {
        log::warn!(
            "net: max_conns={} does not fit in memory; using {}",
            requested.unwrap_or(0),
            budget.max_conns
        );
    }
    log::info!(
        "net: at most {} connections, backlog {} ({} KiB free)",
        budget.max_conns,
        budget.backlog,
        free / 1024
    );
    budget
}

/// Sockets kept in LISTEN per listener. smoltcp walks every socket on every poll, so a
/// backlog of idle listening sockets would cost each request hundreds of socket visits;
/// instead a few listen, and the stack tops them up after every received packet.
pub(super) const LISTENING: usize = 4;

/// "backlog full" is logged at most this often.
const BACKLOG_REPORT_EVERY_NS: u64 = 10_000_000_000;

/// How long a handshake may stay unfinished before its socket is recycled.
const HANDSHAKE_LIMIT_NS: u64 = 10_000_000_000;

/// How long [`TcpStream::close`] waits for the peer to acknowledge what was sent; the
/// socket then finishes closing (or is aborted) on its own.
const LINGER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No network card was found (or it failed to start).
    NoDevice,
    /// The port is taken (by a socket of the same protocol) or invalid.
    BadPort,
    /// A datagram's destination cannot be sent to: address 0.0.0.0 or port 0.
    BadDestination,
    /// The peer reset the connection, or it is closed for writing.
    ConnectionClosed,
    /// The memory budget has no room for another socket.
    NoRoom,
    /// The peer took no data for the time [`TcpStream::write_all_within`] allowed.
    TimedOut,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::NoDevice => write!(f, "no network device"),
            NetError::BadPort => write!(f, "port unavailable"),
            NetError::BadDestination => write!(f, "invalid destination (address 0.0.0.0 or port 0)"),
            NetError::ConnectionClosed => write!(f, "connection closed"),
            NetError::NoRoom => write!(f, "no room for another socket"),
            NetError::TimedOut => write!(f, "the peer took no data in time"),
        }
    }
}

/// A new socket listening on `port`; `NoRoom` when the socket table or the heap has no
/// room for it (a client's SYN then finds no listener and gets a reset).
fn new_listening(sockets: &mut Sockets, port: u16) -> Result<SocketHandle, NetError> {
    let (Some(rx), Some(tx)) = (try_zeroed(RX_BUFFER), try_zeroed(TX_BUFFER)) else {
        return Err(NetError::NoRoom);
    };
    let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
    socket.listen(port).map_err(|_| NetError::BadPort)?;
    socket.set_nagle_enabled(false);
    sockets.add(socket).ok_or(NetError::NoRoom)
}

/// A listening port as the stack keeps it: a few sockets in LISTEN, and the ones that
/// received a SYN, until `accept` takes them.
pub(super) struct ListenQueue {
    port: u16,
    listening: Vec<SocketHandle>,
    /// Sockets that left LISTEN, oldest first, with when they did (kernel ns).
    pending: VecDeque<(SocketHandle, u64)>,
    limit: usize,
    /// The task waiting in `accept`.
    waker: Option<Waker>,
    /// When "backlog full" was last logged (kernel ns, 0 for never), and the handshakes
    /// recycled since.
    full_reported_ns: u64,
    recycled: u64,
}

impl ListenQueue {
    fn sockets(&self) -> impl Iterator<Item = SocketHandle> + '_ {
        self.listening.iter().copied().chain(self.pending.iter().map(|&(h, _)| h))
    }
}

impl Stack {
    /// After a received packet: sockets that left LISTEN become pending, and every
    /// listener gets back to `LISTENING` listening sockets while its backlog allows; with
    /// the backlog full, the oldest unfinished handshake is recycled into a listening
    /// socket. The work is bounded by `LISTENING`, not by the backlog, as it runs per
    /// packet.
    pub(super) fn service_listeners(&mut self) {
        let now = crate::time::since_boot_ns();
        let sockets = &mut self.sockets;
        for queue in self.listeners.iter_mut().flatten() {
            let pending = &mut queue.pending;
            let waker = &queue.waker;
            queue.listening.retain(|&h| {
                let socket = sockets.get_mut::<tcp::Socket>(h);
                let listening = socket.state() == State::Listen;
                if !listening {
                    // Its next change of state (established, reset) is for `accept`.
                    if let Some(w) = waker {
                        socket.register_recv_waker(w);
                    }
                    pending.push_back((h, now));
                }
                listening
            });
            top_up(sockets, queue);
            if queue.listening.is_empty() {
                recycle_oldest_handshake(sockets, queue, now);
            }
        }
    }

    /// Handshakes unfinished after `HANDSHAKE_LIMIT_NS` are freed (from the reaper, so a
    /// flood's leftovers go even when no more packets come), as are pending sockets a
    /// reset put back to listening. Pending sockets are in age order, so only the
    /// expired front is visited.
    pub(super) fn expire_handshakes(&mut self, now: u64) {
        let sockets = &mut self.sockets;
        for queue in self.listeners.iter_mut().flatten() {
            // Established ones past the limit still wait for `accept`, among the front.
            let mut i = 0;
            while let Some(&(h, since)) = queue.pending.get(i)
                && now.saturating_sub(since) >= HANDSHAKE_LIMIT_NS
            {
                // Unfinished, or reset back to listening (surplus by now).
                if matches!(sockets.get::<tcp::Socket>(h).state(), State::SynReceived | State::Listen) {
                    queue.pending.remove(i);
                    sockets.remove(h);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// An accepted connection with its slot in `conns`, or `Pending` with `waker`
    /// registered. A connection over the cap replaces a quiet one or is reset.
    fn accept(&mut self, id: usize, waker: &Waker) -> Poll<Result<(SocketHandle, usize), NetError>> {
        let Some(queue) = self.listeners.get_mut(id).and_then(Option::as_mut) else {
            return Poll::Ready(Err(NetError::BadPort));
        };
        let now = crate::time::since_boot_ns();
        let mut i = 0;
        while i < queue.pending.len() {
            let (h, _) = queue.pending[i];
            let socket = self.sockets.get_mut::<tcp::Socket>(h);
            match socket.state() {
                State::SynReceived => {
                    socket.register_recv_waker(waker);
                    i += 1;
                }
                // A reset during the handshake put it back to listening, with what it
                // learned of that peer (smoltcp does not reset it): start it afresh.
                State::Listen => {
                    queue.pending.remove(i);
                    if queue.listening.len() < LISTENING && relisten(socket, queue.port) {
                        queue.listening.push(h);
                    } else {
                        self.sockets.remove(h);
                    }
                }
                _ => {
                    queue.pending.remove(i);
                    // The backlog has room again: listen now, not after the next packet
                    // (which may be the SYN that would otherwise find no listener).
                    top_up(&mut self.sockets, queue);
                    match self.conns.admit(now, queue.port) {
                        Admission::Room => {}
                        Admission::Replaced(quiet) => self.sockets.get_mut::<tcp::Socket>(quiet).abort(),
                        Admission::Full => {
                            // Reset, and freed once the reset is out.
                            self.sockets.get_mut::<tcp::Socket>(h).abort();
                            self.closing.push((h, now, None));
                            continue;
                        }
                    }
                    return Poll::Ready(Ok((h, self.conns.insert(h, now))));
                }
            }
        }
        queue.waker = Some(waker.clone());
        Poll::Pending
    }
}

/// Adds listening sockets up to `LISTENING`, as far as the backlog and memory allow.
fn top_up(sockets: &mut Sockets, queue: &mut ListenQueue) {
    while queue.listening.len() < LISTENING && queue.listening.len() + queue.pending.len() < queue.limit {
        match new_listening(sockets, queue.port) {
            Ok(h) => queue.listening.push(h),
            Err(_) => break,
        }
    }
}

/// Returns a used socket to LISTEN with nothing left of its last peer. Its waker goes
/// first, so the reset does not wake `accept` for nothing (under a flood that would be
/// once per recycled handshake, each a scan of the backlog).
fn relisten(socket: &mut tcp::Socket<'static>, port: u16) -> bool {
    socket.register_recv_waker(Waker::noop());
    socket.abort();
    socket.listen(port).is_ok()
}

/// Turns the longest-waiting unfinished handshake of `queue` back into a listening
/// socket (no RST: a flood's source addresses are usually forged). Established sockets
/// waiting for `accept` are passed over; they are few and at the front.
fn recycle_oldest_handshake(sockets: &mut Sockets, queue: &mut ListenQueue, now: u64) {
    let oldest =
        queue.pending.iter().position(|&(h, _)| sockets.get::<tcp::Socket>(h).state() == State::SynReceived);
    let Some((h, _)) = oldest.and_then(|i| queue.pending.remove(i)) else { return };
    queue.recycled += 1;
    if queue.full_reported_ns == 0 || now.saturating_sub(queue.full_reported_ns) >= BACKLOG_REPORT_EVERY_NS {
        log::warn!(
            "tcp: port {}: backlog full ({} connections pending): recycling the oldest unfinished handshakes ({} since this was last said)",
            queue.port,
            queue.pending.len() + 1,
            queue.recycled
        );
        queue.full_reported_ns = now.max(1);
        queue.recycled = 0;
    }
    if relisten(sockets.get_mut::<tcp::Socket>(h), queue.port) {
        queue.listening.push(h);
    } else {
        sockets.remove(h);
    }
}

/// Accepts TCP connections on a port.
#[derive(Debug)]
pub struct TcpListener {
    id: usize,
    port: u16,
    backlog: usize,
}

impl TcpListener {
    pub fn bind(port: u16) -> Result<Self, NetError> {
        if port == 0 {
            return Err(NetError::BadPort);
        }
        with_stack(|s| {
            let limit = s.backlog;
            let taken = s.listeners.iter().flatten().any(|q| q.port == port);
            if taken {
                return Err(NetError::BadPort);
            }
            let queue = ListenQueue {
                port,
                listening: Vec::new(),
                pending: VecDeque::with_capacity(limit),
                limit,
                waker: None,
                full_reported_ns: 0,
                recycled: 0,
            };
            let id = match s.listeners.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    s.listeners.push(None);
                    s.listeners.len() - 1
                }
            };
            s.listeners[id] = Some(queue);
            s.service_listeners();
            Ok(TcpListener { id, port, backlog: limit })
        })?
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many handshakes and unaccepted connections the listener holds at most.
    pub fn backlog(&self) -> usize {
        self.backlog
    }

    /// The next established connection.
    pub async fn accept(&mut self) -> Result<TcpStream, NetError> {
        let id = self.id;
        let (handle, slot) =
            poll_fn(|cx| with_stack(|s| s.accept(id, cx.waker())).unwrap_or_else(|e| Poll::Ready(Err(e))))
                .await?;
        Ok(TcpStream { handle, slot })
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let _ = with_stack(|s| {
            if let Some(queue) = s.listeners.get_mut(self.id).and_then(Option::take) {
                for h in queue.sockets() {
                    s.sockets.remove(h);
                }
            }
        });
    }
}

/// One TCP connection.
#[derive(Debug)]
pub struct TcpStream {
    handle: SocketHandle,
    /// Its place in the stack's connection table.
    slot: usize,
}

impl TcpStream {
    /// Reads at least one byte into `buf`; `Ok(0)` at end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        let (handle, slot) = (self.handle, self.slot);
        poll_fn(|cx| {
            with_stack(|s| {
                let socket = s.sockets.get_mut::<tcp::Socket>(handle);
                if socket.can_recv() {
                    let read = socket.recv_slice(buf).map_err(|_| NetError::ConnectionClosed);
                    s.conns.touch(slot, crate::time::since_boot_ns());
                    return Poll::Ready(read);
                }
                if !socket.may_recv() {
                    // The peer finished sending (FIN) or the connection is gone: end of
                    // stream either way.
                    return Poll::Ready(Ok(0));
                }
                socket.register_recv_waker(cx.waker());
                Poll::Pending
            })?
        })
        .await
    }

    /// Writes all of `data`, waiting for room in the send buffer as needed.
    /// Time spent waiting for room counts as quiet for the connection budget: a peer
    /// that stops reading is a candidate for replacement.
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), NetError> {
        let (handle, slot) = (self.handle, self.slot);
        poll_fn(|cx| {
            with_stack(|s| {
                let socket = s.sockets.get_mut::<tcp::Socket>(handle);
                let before = data.len();
                let result = loop {
                    if data.is_empty() {
                        break Poll::Ready(Ok(()));
                    }
                    if !socket.may_send() {
                        break Poll::Ready(Err(NetError::ConnectionClosed));
                    }
                    if !socket.can_send() {
                        socket.register_send_waker(cx.waker());
                        break Poll::Pending;
                    }
                    match socket.send_slice(data) {
                        Ok(n) => data = &data[n..],
                        Err(_) => break Poll::Ready(Err(NetError::ConnectionClosed)),
                    }
                };
                if data.len() != before {
                    s.conns.touch(slot, crate::time::since_boot_ns());
                }
                result
            })?
        })
        .await
    }

    /// Writes all of `data` in pieces of `piece` bytes, each of which the peer must take
    /// within `limit` (as nginx's `send_timeout`): a slow reader that keeps taking data is
    /// served, one that stops gets [`NetError::TimedOut`].
    pub async fn write_all_within(
        &mut self,
        data: &[u8],
        piece: usize,
        limit: Duration,
    ) -> Result<(), NetError> {
        for piece in data.chunks(piece.max(1)) {
            let mut write = core::pin::pin!(self.write_all(piece));
            // One try without a timer first: most pieces fit in the send buffer at once,
            // and arming a timer costs a clock read and a timer-table entry.
            if let Poll::Ready(written) = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
                written?;
                continue;
            }
            crate::executor::timeout(limit, write).await.map_err(|_| {
                log::debug!("net: send timeout: the peer took no data for {limit:?}");
                NetError::TimedOut
            })??;
        }
        Ok(())
    }

    /// Closes the sending side and waits until everything sent was acknowledged, or
    /// `LINGER` passed.
    pub async fn close(self) {
        let handle = self.handle;
        let acknowledged = poll_fn(|cx| {
            with_stack(|s| {
                let socket = s.sockets.get_mut::<tcp::Socket>(handle);
                socket.close();
                if socket.send_queue() == 0 || !socket.is_active() {
                    Poll::Ready(())
                } else {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
            })
            .unwrap_or(Poll::Ready(()))
        });
        let _ = crate::executor::timeout(LINGER, acknowledged).await;
        // `Drop` hands the socket to the reaper.
    }

    /// Drops the connection at once (RST).
    pub fn abort(&mut self) {
        let handle = self.handle;
        let _ = with_stack(|s| s.sockets.get_mut::<tcp::Socket>(handle).abort());
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let (handle, slot) = (self.handle, self.slot);
        let _ = with_stack(|s| {
            let now = crate::time::since_boot_ns();
            s.sockets.get_mut::<tcp::Socket>(handle).close();
            s.conns.closing(slot, now);
            s.closing.push((handle, now, Some(slot)));
        });
    }
}

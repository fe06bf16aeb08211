//! TCP for apps: a listener with a backlog of listening sockets, and streams with async
//! read and write. Socket buffers are fixed per connection, so a slow reader holds back
//! its writer (backpressure) instead of growing memory.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};

use super::{Stack, with_stack};

/// Receive and send buffer sizes of every connection.
const RX_BUFFER: usize = 4 * 1024;
const TX_BUFFER: usize = 8 * 1024;
/// Handshakes (and established connections not yet accepted) one listener may hold: a
/// SYN that finds the backlog full recycles the oldest unfinished handshake, so a flood
/// of SYNs cannot lock clients out. Sized to memory: an eighth of what is free when the
/// listener starts, in sockets, between 16 and 1024.
fn backlog() -> usize {
    let free = crate::heap_stats().frames_free as usize;
    (free / 8 / (RX_BUFFER + TX_BUFFER)).clamp(16, 1024)
}

/// Socket-table slots to reserve: one listener's full backlog and its listening sockets,
/// plus a few for other sockets (DHCP, UDP).
pub(super) fn socket_table_size() -> usize {
    backlog() + LISTENING + 8
}

/// Sockets kept in LISTEN per listener. smoltcp walks every socket on every poll, so a
/// backlog of idle listening sockets would cost each request hundreds of socket visits;
/// instead a few listen, and the stack tops them up after every received packet.
const LISTENING: usize = 4;

/// How long a handshake may stay unfinished before its socket is recycled.
const HANDSHAKE_LIMIT_NS: u64 = 10_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No network card was found (or it failed to start).
    NoDevice,
    /// The port is taken or invalid.
    BadPort,
    /// The peer reset the connection, or it is closed for writing.
    ConnectionClosed,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::NoDevice => write!(f, "no network device"),
            NetError::BadPort => write!(f, "port unavailable"),
            NetError::ConnectionClosed => write!(f, "connection closed"),
        }
    }
}

fn new_listening(sockets: &mut SocketSet<'static>, port: u16) -> Result<SocketHandle, NetError> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; RX_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TX_BUFFER]),
    );
    socket.listen(port).map_err(|_| NetError::BadPort)?;
    socket.set_nagle_enabled(false);
    Ok(sockets.add(socket))
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
    /// Whether "backlog full" was logged since the backlog last had room.
    full_logged: bool,
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
                recycle_oldest_handshake(sockets, queue);
            } else if queue.pending.len() < queue.limit / 2 {
                queue.full_logged = false;
            }
        }
    }

    /// Handshakes unfinished after `HANDSHAKE_LIMIT_NS` are freed (from the reaper, so a
    /// flood's leftovers go even when no more packets come), as are pending sockets a
    /// reset put back to listening. Pending sockets are in age order, so only the
    /// expired front is visited.
    pub(super) fn expire_handshakes(&mut self) {
        let now = crate::time::since_boot_ns();
        let sockets = &mut self.sockets;
        for queue in self.listeners.iter_mut().flatten() {
            // Established ones past the limit still wait for `accept`, at the front.
            let mut kept = Vec::new();
            while let Some(&(h, since)) = queue.pending.front()
                && now.saturating_sub(since) >= HANDSHAKE_LIMIT_NS
            {
                queue.pending.pop_front();
                // Unfinished, or reset back to listening (surplus by now).
                if matches!(sockets.get::<tcp::Socket>(h).state(), State::SynReceived | State::Listen) {
                    sockets.remove(h);
                } else {
                    kept.push((h, since));
                }
            }
            for entry in kept.into_iter().rev() {
                queue.pending.push_front(entry);
            }
        }
    }

    /// An accepted connection, or `Pending` with `waker` registered.
    fn accept(&mut self, id: usize, waker: &Waker) -> Poll<Result<SocketHandle, NetError>> {
        let Some(queue) = self.listeners.get_mut(id).and_then(Option::as_mut) else {
            return Poll::Ready(Err(NetError::BadPort));
        };
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
                    return Poll::Ready(Ok(h));
                }
            }
        }
        queue.waker = Some(waker.clone());
        Poll::Pending
    }
}

/// Adds listening sockets up to `LISTENING`, as far as the backlog allows.
fn top_up(sockets: &mut SocketSet<'static>, queue: &mut ListenQueue) {
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
fn recycle_oldest_handshake(sockets: &mut SocketSet<'static>, queue: &mut ListenQueue) {
    let oldest =
        queue.pending.iter().position(|&(h, _)| sockets.get::<tcp::Socket>(h).state() == State::SynReceived);
    let Some((h, _)) = oldest.and_then(|i| queue.pending.remove(i)) else { return };
    if !queue.full_logged {
        queue.full_logged = true;
        log::warn!(
            "tcp: port {}: backlog full ({} connections pending); recycling the oldest unfinished handshakes",
            queue.port,
            queue.pending.len() + 1
        );
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
        let limit = backlog();
        with_stack(|s| {
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
                full_logged: false,
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
        let handle =
            poll_fn(|cx| with_stack(|s| s.accept(id, cx.waker())).unwrap_or_else(|e| Poll::Ready(Err(e))))
                .await?;
        Ok(TcpStream { handle })
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
}

impl TcpStream {
    /// Reads at least one byte into `buf`; `Ok(0)` at end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        let handle = self.handle;
        poll_fn(|cx| {
            with_stack(|s| {
                let socket = s.sockets.get_mut::<tcp::Socket>(handle);
                if socket.can_recv() {
                    return Poll::Ready(socket.recv_slice(buf).map_err(|_| NetError::ConnectionClosed));
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
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), NetError> {
        let handle = self.handle;
        poll_fn(|cx| {
            with_stack(|s| {
                let socket = s.sockets.get_mut::<tcp::Socket>(handle);
                loop {
                    if data.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    if !socket.may_send() {
                        return Poll::Ready(Err(NetError::ConnectionClosed));
                    }
                    if !socket.can_send() {
                        socket.register_send_waker(cx.waker());
                        return Poll::Pending;
                    }
                    match socket.send_slice(data) {
                        Ok(n) => data = &data[n..],
                        Err(_) => return Poll::Ready(Err(NetError::ConnectionClosed)),
                    }
                }
            })?
        })
        .await
    }

    /// Closes the sending side and waits until everything sent was acknowledged.
    pub async fn close(self) {
        let handle = self.handle;
        let _ = poll_fn(|cx| {
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
        })
        .await;
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
        let handle = self.handle;
        let _ = with_stack(|s| {
            s.sockets.get_mut::<tcp::Socket>(handle).close();
            s.closing.push((handle, crate::time::since_boot_ns()));
        });
    }
}

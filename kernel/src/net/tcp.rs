//! TCP for apps: a listener with a backlog of listening sockets, and streams with async
//! read and write. Socket buffers are fixed per connection, so a slow reader holds back
//! its writer (backpressure) instead of growing memory.

use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};

use super::with_stack;

/// Receive and send buffer sizes of every connection.
const RX_BUFFER: usize = 4 * 1024;
const TX_BUFFER: usize = 8 * 1024;
/// Listening sockets kept ready per listener: how many handshakes can be in flight. A
/// SYN that finds none is answered with RST (smoltcp has no SYN queue), so the backlog
/// is sized to memory: an eighth of what is free when the listener starts, in
/// listening sockets, between 16 and 1024.
fn backlog() -> usize {
    let free = crate::heap_stats().frames_free as usize;
    (free / 8 / (RX_BUFFER + TX_BUFFER)).clamp(16, 1024)
}

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

fn new_listening(port: u16) -> Result<SocketHandle, NetError> {
    with_stack(|s| {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TX_BUFFER]),
        );
        socket.listen(port).map_err(|_| NetError::BadPort)?;
        socket.set_nagle_enabled(false);
        Ok(s.sockets.add(socket))
    })?
}

/// Accepts TCP connections on a port.
#[derive(Debug)]
pub struct TcpListener {
    port: u16,
    backlog: Vec<SocketHandle>,
}

impl TcpListener {
    pub fn bind(port: u16) -> Result<Self, NetError> {
        if port == 0 {
            return Err(NetError::BadPort);
        }
        let backlog = (0..backlog()).map(|_| new_listening(port)).collect::<Result<_, _>>()?;
        Ok(TcpListener { port, backlog })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many handshakes can be in flight at once.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// The next established connection.
    pub async fn accept(&mut self) -> Result<TcpStream, NetError> {
        let port = self.port;
        let backlog = &mut self.backlog;
        poll_fn(|cx| {
            let ready = with_stack(|s| {
                for (i, &h) in backlog.iter().enumerate() {
                    let socket = s.sockets.get_mut::<tcp::Socket>(h);
                    match socket.state() {
                        State::Listen | State::SynReceived => socket.register_recv_waker(cx.waker()),
                        _ => return Some(i),
                    }
                }
                None
            });
            match ready {
                Err(e) => Poll::Ready(Err(e)),
                Ok(None) => Poll::Pending,
                Ok(Some(i)) => Poll::Ready(new_listening(port).map(|fresh| {
                    let handle = core::mem::replace(&mut backlog[i], fresh);
                    TcpStream { handle }
                })),
            }
        })
        .await
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let _ = with_stack(|s| {
            for h in self.backlog.drain(..) {
                s.sockets.remove(h);
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

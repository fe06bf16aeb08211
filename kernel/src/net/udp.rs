//! UDP for apps: a bound socket with async `recv_from` and `send_to`.

use alloc::vec;
use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::{Socket, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

use super::{NetError, with_stack};

/// Datagrams buffered per socket, each way, and their total payload.
const PACKETS: usize = 32;
const PAYLOAD: usize = 32 * 1024;

/// An IPv4 address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketAddr {
    pub ip: [u8; 4],
    pub port: u16,
}

impl From<IpEndpoint> for SocketAddr {
    fn from(e: IpEndpoint) -> Self {
        let IpAddress::Ipv4(ip) = e.addr;
        SocketAddr { ip: ip.octets(), port: e.port }
    }
}

/// A bound UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    handle: SocketHandle,
}

impl UdpSocket {
    /// A socket on `port`; `BadPort` when it is 0 or another UDP socket has it (smoltcp
    /// would hand each datagram to only one of them), as for [`TcpListener::bind`].
    ///
    /// [`TcpListener::bind`]: super::TcpListener::bind
    pub fn bind(port: u16) -> Result<Self, NetError> {
        with_stack(|s| {
            let taken = s
                .sockets
                .set
                .iter()
                .any(|(_, socket)| matches!(socket, Socket::Udp(udp) if udp.endpoint().port == port));
            if taken {
                return Err(NetError::BadPort);
            }
            let buffer =
                || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; PACKETS], vec![0; PAYLOAD]);
            let mut socket = udp::Socket::new(buffer(), buffer());
            socket.bind(port).map_err(|_| NetError::BadPort)?;
            let handle = s.sockets.add(socket).ok_or(NetError::NoRoom)?;
            Ok(UdpSocket { handle })
        })?
    }

    /// Receives one datagram into `buf` (truncated if longer); its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        let handle = self.handle;
        poll_fn(|cx| {
            with_stack(|s| {
                let socket = s.sockets.get_mut::<udp::Socket>(handle);
                match socket.recv() {
                    Ok((data, meta)) => {
                        let n = data.len().min(buf.len());
                        buf[..n].copy_from_slice(&data[..n]);
                        Poll::Ready(Ok((n, meta.endpoint.into())))
                    }
                    Err(_) => {
                        socket.register_recv_waker(cx.waker());
                        Poll::Pending
                    }
                }
            })?
        })
        .await
    }

    /// Sends one datagram, waiting for buffer room if needed.
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), NetError> {
        let handle = self.handle;
        let [a, b, c, d] = to.ip;
        let endpoint = IpEndpoint::new(Ipv4Address::new(a, b, c, d).into(), to.port);
        poll_fn(|cx| {
            with_stack(|s| {
                let socket = s.sockets.get_mut::<udp::Socket>(handle);
                match socket.send_slice(data, endpoint) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(udp::SendError::BufferFull) => {
                        socket.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    Err(udp::SendError::Unaddressable) => Poll::Ready(Err(NetError::BadDestination)),
                }
            })?
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let handle = self.handle;
        let _ = with_stack(|s| s.sockets.remove(handle));
    }
}

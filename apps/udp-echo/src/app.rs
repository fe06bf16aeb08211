//! udp-echo's code: built for the kernel target only (see main.rs).

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use kernel::app::{self, AppResult, Args, NetError, SocketAddr, UdpSocket, println};

fn main(args: &Args<'_>) -> AppResult {
    let mut limit = None;
    let mut ports = Vec::new();
    for arg in args.args() {
        match arg.split_once('=') {
            Some(("count", n)) => limit = Some(n.parse::<u64>().map_err(|_| format!("bad count {n:?}"))?),
            Some(("port", p)) => ports.push(p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
            _ => return Err(format!("unknown argument {arg:?} (known: count=N, port=N)").into()),
        }
    }
    if ports.is_empty() {
        ports.push(7);
    }
    app::block_on(async move {
        let mut sockets = Vec::with_capacity(ports.len());
        for port in ports {
            sockets.push(UdpSocket::bind(port).map_err(|e| format!("udp-echo: {e} (port {port})"))?);
            println!("udp-echo: listening on port {port}");
        }
        let mut buf = [0u8; 2048];
        let mut echoed = 0u64;
        while limit.is_none_or(|l| echoed < l) {
            let (socket, n, from) =
                recv_any(&sockets, &mut buf).await.map_err(|e| format!("udp-echo: {e}"))?;
            socket.send_to(&buf[..n], from).await.map_err(|e| format!("udp-echo: {e}"))?;
            echoed += 1;
        }
        println!("udp-echo: echoed {echoed} datagrams");
        Ok(())
    })
}

/// The next datagram on any of `sockets`: the socket it came to, its length and sender.
async fn recv_any<'s>(
    sockets: &'s [UdpSocket],
    buf: &mut [u8],
) -> Result<(&'s UdpSocket, usize, SocketAddr), NetError> {
    poll_fn(|cx| {
        for socket in sockets {
            // A `recv_from` dropped before it completes takes nothing from its socket, so
            // each poll may start afresh.
            if let Poll::Ready(r) = pin!(socket.recv_from(buf)).poll(cx) {
                return Poll::Ready(r.map(|(n, from)| (socket, n, from)));
            }
        }
        Poll::Pending
    })
    .await
}

kernel::app!(main);

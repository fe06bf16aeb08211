//! udp-echo's code: built for the kernel target only (see main.rs).

extern crate alloc;

use kernel::app::{self, AppResult, Args, UdpSocket, println};

fn main(args: &Args<'_>) -> AppResult {
    let mut limit = None;
    for arg in args.args() {
        match arg.split_once('=') {
            Some(("count", n)) => {
                limit = Some(n.parse::<u64>().map_err(|_| alloc::format!("bad count {n:?}"))?)
            }
            _ => return Err(alloc::format!("unknown argument {arg:?} (known: count=N)").into()),
        }
    }
    app::block_on(async move {
        let socket = UdpSocket::bind(7).map_err(|e| alloc::format!("udp-echo: {e}"))?;
        println!("udp-echo: listening on port 7");
        let mut buf = [0u8; 2048];
        let mut echoed = 0u64;
        while limit.is_none_or(|l| echoed < l) {
            let (n, from) = socket.recv_from(&mut buf).await.map_err(|e| alloc::format!("udp-echo: {e}"))?;
            socket.send_to(&buf[..n], from).await.map_err(|e| alloc::format!("udp-echo: {e}"))?;
            echoed += 1;
        }
        println!("udp-echo: echoed {echoed} datagrams");
        Ok(())
    })
}

kernel::app!(main);

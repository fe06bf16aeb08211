//! kv's connections and timers: built for the kernel target only (see main.rs). Each
//! connection is a task that parses what it read, runs the commands against the shared
//! server and writes the replies; a timer task sweeps expired keys.

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::time::Duration;

use kernel::app::{self, AppResult, Args, TcpListener, TcpStream, println, timeout};
use kv::commands::{self, After};
use kv::resp::{Parsed, Parser};
use kv::server::{Config, Env, Memory, Server};

/// Bytes asked of the socket per read (more when a long bulk string is arriving).
const READ_CHUNK: usize = 4 * 1024;
/// The most one read asks for, however long the bulk string being received.
const READ_MAX: usize = 64 * 1024;
/// Replies are gathered up to this size before a write. Parsing stops while they are
/// written, so a client that does not read its replies holds back its own requests
/// (backpressure) instead of growing the server's memory.
const WRITE_BATCH: usize = 8 * 1024;
// A connection's memory in the common case: the request buffer (a read and a partial
// request), the reply buffer (a batch plus one reply, in a `Vec` that doubles: 16 KiB)
// and the task, within the 24 KiB the kernel's connection budget allows an app per
// connection. Long values and long replies take more, for as long as they last.
const _: () = assert!(2 * READ_CHUNK + 2 * WRITE_BATCH <= 24 * 1024);
/// Buffers grown past this by a long request or reply are given back afterwards.
const KEEP_CAPACITY: usize = 16 * 1024;
/// How often the active expiry sweep runs (Redis's `hz 10`), and how long one run may
/// take at most.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
const SWEEP_BUDGET: Duration = Duration::from_millis(2);
/// Buckets looked at per sweep step.
const SWEEP_STEP: usize = 1024;
/// Replies are sent in pieces this big, each under the send timeout.
const SEND_PIECE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
struct Settings {
    port: u16,
    maxmemory: Option<u64>,
    idle: Option<Duration>,
    send: Duration,
}

fn parse_args(args: &Args<'_>) -> Result<Settings, alloc::string::String> {
    let mut s = Settings { port: 6379, maxmemory: None, idle: None, send: Duration::from_secs(10) };
    for arg in args.args() {
        let bad = || alloc::format!("bad argument {arg:?}");
        match arg.split_once('=') {
            Some(("port", v)) => s.port = v.parse().map_err(|_| bad())?,
            Some(("maxmemory", v)) => {
                s.maxmemory = Some(commands::memory_size(v.as_bytes()).ok_or_else(bad)?)
            }
            Some(("timeout", v)) => {
                let secs: u64 = v.parse().map_err(|_| bad())?;
                s.idle = (secs > 0).then(|| Duration::from_secs(secs));
            }
            Some(("send", v)) => s.send = Duration::from_secs(v.parse().map_err(|_| bad())?),
            _ => {
                return Err(alloc::format!(
                    "unknown argument {arg:?} (known: port=N maxmemory=BYTES timeout=SECONDS send=SECONDS)"
                ));
            }
        }
    }
    Ok(s)
}

/// What every task shares: the server, and the clock's anchor.
struct Shared {
    server: RefCell<Server>,
    /// Unix time (µs) at the monotonic clock's zero: the wall clock is read once, so
    /// that expiry times never jump with it.
    unix_at_boot_us: u64,
    started: Duration,
    ram: u64,
    send: Duration,
    idle: Option<Duration>,
}

impl Shared {
    fn env(&self) -> Env {
        let mono = app::now();
        let now_us = self.unix_at_boot_us + mono.as_micros() as u64;
        let heap = app::heap();
        Env {
            now_ms: now_us / 1000,
            now_us,
            uptime_ms: mono.saturating_sub(self.started).as_millis() as u64,
            memory: Memory { used: heap.allocated, heap: heap.claimed, ram: self.ram },
        }
    }
}

/// Why a connection ends.
enum End {
    /// The client closed, or asked to (`QUIT`), or sent what the protocol refuses: the
    /// replies so far are sent and the connection closed.
    Close,
    /// The client cannot be written to: drop it at once.
    Abort,
}

async fn flush(stream: &mut TcpStream, out: &mut Vec<u8>, limit: Duration) -> Result<(), End> {
    if out.is_empty() {
        return Ok(());
    }
    stream.write_all_within(out, SEND_PIECE, limit).await.map_err(|_| End::Abort)?;
    out.clear();
    if out.capacity() > KEEP_CAPACITY {
        out.shrink_to(WRITE_BATCH);
    }
    Ok(())
}

async fn serve(shared: Rc<Shared>, mut stream: TcpStream) {
    let mut client = shared.server.borrow_mut().connect();
    let end = session(&shared, &mut stream, &mut client).await;
    shared.server.borrow_mut().disconnect(client);
    match end {
        End::Close => stream.close().await,
        End::Abort => stream.abort(),
    }
}

async fn session(shared: &Shared, stream: &mut TcpStream, client: &mut kv::server::Client) -> End {
    let max_bulk = shared.server.borrow().config.max_bulk;
    let mut parser = Parser::new(max_bulk);
    // `buf[..filled]` is what was read and not yet answered; the rest is room for the
    // next read, zeroed once when the buffer grows rather than before every read (TCG
    // runs one translated block per iteration of the `rep stos` that zeroing is).
    let mut buf: Vec<u8> = Vec::new();
    let mut filled = 0;
    let mut out: Vec<u8> = Vec::new();
    loop {
        // Answer every complete request buffered (a pipeline), in order.
        let mut used = 0;
        let need = loop {
            match parser.parse(&buf[used..filled]) {
                Ok(Parsed::Request { used: n }) => {
                    let request = parser.request(&buf[used..filled]);
                    let mut after = After::Continue;
                    if !request.is_empty() {
                        let env = shared.env();
                        let mut server = shared.server.borrow_mut();
                        after = commands::execute(&mut server, client, &env, &request, &mut out);
                    }
                    used += n;
                    if after == After::Close {
                        return flush(stream, &mut out, shared.send).await.err().unwrap_or(End::Close);
                    }
                    if out.len() >= WRITE_BATCH
                        && let Err(end) = flush(stream, &mut out, shared.send).await
                    {
                        return end;
                    }
                }
                Ok(Parsed::Incomplete { need }) => break need,
                Err(refused) => {
                    log::debug!("kv: client {}: {}", client.id, refused.message());
                    kv::reply::error(&mut out, refused.message());
                    return flush(stream, &mut out, shared.send).await.err().unwrap_or(End::Close);
                }
            }
        };
        if let Err(end) = flush(stream, &mut out, shared.send).await {
            return end;
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
        if buf.capacity() > KEEP_CAPACITY && filled < READ_CHUNK {
            buf.truncate(READ_CHUNK);
            buf.shrink_to(READ_CHUNK);
        }
        // Room for what the pending request needs, within one read's worth; a long bulk
        // string is received in several reads. Taken fallibly: a request the heap
        // cannot hold ends its connection, not the kernel.
        let want = need.saturating_sub(filled).clamp(READ_CHUNK, READ_MAX);
        if buf.len() < filled + want {
            if buf.try_reserve(filled + want - buf.len()).is_err() {
                log::warn!(
                    "kv: client {}: no memory for a request of {need} bytes; disconnecting",
                    client.id
                );
                return End::Abort;
            }
            buf.resize(filled + want, 0);
        }
        let room = &mut buf[filled..filled + want];
        let read = match shared.idle {
            Some(idle) => match timeout(idle, stream.read(room)).await {
                Ok(read) => read,
                Err(_) => return End::Close,
            },
            None => stream.read(room).await,
        };
        match read {
            Ok(0) | Err(_) => return End::Close,
            Ok(n) => filled += n,
        }
    }
}

/// Removes expired keys in small steps, every `SWEEP_EVERY`: another step follows while
/// more than a quarter of the keys with an expiry that were looked at had expired and the
/// run is within `SWEEP_BUDGET` (Redis's adaptive active expiry, by buckets).
async fn sweep_expired(shared: Rc<Shared>) {
    loop {
        app::sleep(SWEEP_EVERY).await;
        let started = app::now();
        loop {
            let now = shared.env().now_ms;
            let (_, volatile, removed) = shared.server.borrow_mut().db.sweep(now, SWEEP_STEP);
            if volatile == 0 || removed * 4 <= volatile || app::now() - started > SWEEP_BUDGET {
                break;
            }
        }
    }
}

fn main(args: &Args<'_>) -> AppResult {
    let settings = parse_args(args)?;
    let heap = app::heap();
    let free = heap.frames_free + heap.claimed.saturating_sub(heap.allocated) as u64;
    // By default the store may take half of what is free now: the rest is the
    // network's, for its connections at their worst.
    let maxmemory = settings.maxmemory.unwrap_or(heap.allocated as u64 + free / 2);
    // No value can be longer than the store may hold (Redis's own limit is 512 MiB), nor
    // than half the memory free now when there is no limit.
    let room = match maxmemory {
        0 => free / 2,
        limit => limit.saturating_sub(heap.allocated as u64),
    };
    let max_bulk = (512u64 << 20).min(room.max(1 << 20)) as usize;
    let config = Config {
        port: settings.port,
        maxmemory,
        max_bulk,
        idle_timeout: settings.idle.map_or(0, |d| d.as_secs()),
    };
    let started = app::now();
    let unix_now_us = app::wall_clock().map_or(0, |d| d.as_micros() as u64);
    let shared = Rc::new(Shared {
        server: RefCell::new(Server::new(config, unix_now_us ^ started.as_nanos() as u64)),
        unix_at_boot_us: unix_now_us.saturating_sub(started.as_micros() as u64),
        started,
        ram: args.facts().ram_bytes,
        send: settings.send,
        idle: settings.idle,
    });
    app::block_on(async move {
        let mut listener = TcpListener::bind(settings.port).map_err(|e| alloc::format!("kv: {e}"))?;
        println!(
            "kv: listening on port {} (maxmemory {} bytes, proto-max-bulk-len {}, backlog {})",
            settings.port,
            maxmemory,
            max_bulk,
            listener.backlog()
        );
        app::spawn(sweep_expired(shared.clone()));
        loop {
            match listener.accept().await {
                Ok(stream) => app::spawn(serve(shared.clone(), stream)),
                Err(e) => return Err(alloc::format!("kv: accept: {e}").into()),
            }
        }
    })
}

kernel::app!(main);

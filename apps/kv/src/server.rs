//! The server's state shared by every connection (keyspace, configuration, statistics),
//! each connection's own state, and what the host tells a command (time, memory).

use alloc::vec::Vec;

use crate::store::{Db, Rng};

/// The server's settings (`CONFIG GET` reports them).
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    /// Bytes of heap in use beyond which writes are refused (0: no limit).
    pub maxmemory: u64,
    /// The longest bulk string a request may carry, and the longest string value.
    pub max_bulk: usize,
    /// Seconds a client may stay silent before it is disconnected (0: never).
    pub idle_timeout: u64,
}

/// Counters `INFO` reports.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub connections_received: u64,
    pub commands_processed: u64,
    pub rejected_connections: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub peak_memory: usize,
}

/// What the host knows that a command may need.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// Unix time in milliseconds, from the monotonic clock (anchored once to the wall
    /// clock), so that it never runs backwards.
    pub now_ms: u64,
    /// Unix time in microseconds (`TIME`).
    pub now_us: u64,
    /// Milliseconds since the server started.
    pub uptime_ms: u64,
    pub memory: Memory,
}

/// The heap's figures (`INFO memory`, `maxmemory`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Bytes allocated and not yet freed: the store, every connection's buffers and
    /// sockets, the kernel's own allocations.
    pub used: usize,
    /// Bytes the heap has taken from RAM (what it holds, free or not).
    pub heap: usize,
    /// The guest's RAM.
    pub ram: u64,
}

/// One connection's state.
#[derive(Debug, Default)]
pub struct Client {
    pub id: u64,
    pub name: Option<Vec<u8>>,
    pub lib_name: Option<Vec<u8>>,
    pub lib_ver: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Server {
    pub db: Db,
    pub config: Config,
    pub stats: Stats,
    pub rng: Rng,
    pub connected_clients: usize,
    next_client_id: u64,
}

impl Server {
    pub fn new(config: Config, seed: u64) -> Server {
        Server {
            db: Db::default(),
            config,
            stats: Stats::default(),
            rng: Rng::new(seed),
            connected_clients: 0,
            next_client_id: 1,
        }
    }

    /// A new connection's state (and its place in the counters).
    pub fn connect(&mut self) -> Client {
        self.connected_clients += 1;
        self.stats.connections_received += 1;
        let id = self.next_client_id;
        self.next_client_id += 1;
        Client { id, ..Client::default() }
    }

    pub fn disconnect(&mut self, _client: Client) {
        self.connected_clients -= 1;
    }

    /// Whether writes are refused now (`used` past `maxmemory`).
    pub fn over_maxmemory(&self, memory: &Memory) -> bool {
        self.config.maxmemory != 0 && memory.used as u64 > self.config.maxmemory
    }
}

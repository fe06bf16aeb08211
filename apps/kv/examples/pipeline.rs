//! The command path without the network, on the host: redis-benchmark's requests in
//! pipelines of 16, parsed and executed as a connection does, in ns per command. For
//! profiling (`perf record target/release/examples/pipeline GET`); the guest's own figures
//! come from `./run.sh bench kv`.
//!
//! `cargo run --release -p kv --example pipeline [TEST...]`

use std::time::Instant;

use kv::commands;
use kv::resp::{Parsed, Parser};
use kv::server::{Config, Env, Memory, Server};

/// redis-benchmark's requests for its tests of the same names.
const TESTS: &[(&str, &[u8])] = &[
    ("PING", b"*1\r\n$4\r\nPING\r\n"),
    ("SET", b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n"),
    ("GET", b"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n"),
    ("INCR", b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n"),
    ("LPUSH", b"*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$3\r\nxxx\r\n"),
    ("LPOP", b"*2\r\n$4\r\nLPOP\r\n$6\r\nmylist\r\n"),
];

const PIPELINE: usize = 16;
const COMMANDS: usize = 2_000_000;

/// ns per command of `request`, sent `COMMANDS` times in pipelines of `PIPELINE`.
fn measure(request: &[u8]) -> f64 {
    let config = Config { port: 6379, maxmemory: 0, max_bulk: 1 << 20, idle_timeout: 0 };
    let mut server = Server::new(config, 1);
    let mut client = server.connect();
    let mut parser = Parser::new(1 << 20);
    let pipeline = request.repeat(PIPELINE);
    let memory = Memory { used: 1 << 20, heap: 2 << 20, ram: 512 << 20 };
    let env = Env { now_ms: 1, now_us: 1000, uptime_ms: 0, memory };
    let mut out = Vec::with_capacity(8192);
    let started = Instant::now();
    for _ in 0..COMMANDS / PIPELINE {
        let mut used = 0;
        while let Ok(Parsed::Request { used: n }) = parser.parse(&pipeline[used..]) {
            let request = parser.request(&pipeline[used..]);
            commands::execute(&mut server, &mut client, &env, &request, &mut out);
            used += n;
        }
        assert_eq!(used, pipeline.len(), "every request parsed");
        out.clear();
    }
    started.elapsed().as_nanos() as f64 / COMMANDS as f64
}

fn main() {
    let chosen: Vec<String> = std::env::args().skip(1).map(|a| a.to_ascii_uppercase()).collect();
    for (name, request) in TESTS {
        if chosen.is_empty() || chosen.iter().any(|c| c == name) {
            println!("{name:<6} {:>6.0} ns per command", measure(request));
        }
    }
}

//! kv on a tap device inside a network namespace this test creates, with no user network
//! in between: redis-benchmark's whole default suite (50 clients), and 1024 clients
//! connected at once. Needs root and iproute2; skipped, loudly, without them.

use std::process::Command;
use std::time::Duration;

use tests::{Namespace, Net, Running, Vm};

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh namespace, or `None` (said on stderr) where there is no root.
fn namespace() -> Option<Namespace> {
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match Namespace::create(format!("kv{}-{n}", std::process::id())) {
        Ok(ns) => Some(ns),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// Boots kv at 10.0.3.2 in `ns` and waits until it listens.
fn boot(ns: &Namespace, memory_mib: u32) -> Running {
    let vm = ns
        .wrap(Vm::app("kv"))
        .net(Net::Tap)
        .memory_mib(memory_mib)
        .cmdline(format!("ip={}/24", Namespace::GUEST_IP))
        .timeout(Duration::from_secs(600));
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("kv: listening on port 6379").expect("kv listens");
    run
}

/// Runs `shell` in `ns`; returns stdout and stderr, asserting it succeeded.
fn exec(ns: &Namespace, shell: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "sh", "-c", shell])
        .output()
        .expect("ip netns exec");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shell}: {text}");
    text
}

/// The results of a `redis-benchmark -q` run (its progress lines end in CRs).
fn results(report: &str) -> Vec<&str> {
    report.split(['\r', '\n']).filter(|l| l.contains("requests per second")).collect()
}

#[test]
fn redis_benchmark_default_suite_plain_and_pipelined() {
    let Some(ns) = namespace() else { return };
    let _kv = boot(&ns, 64);
    let host = Namespace::GUEST_IP;
    for extra in ["-n 2000", "-n 4000 -P 16"] {
        let report = exec(&ns, &format!("redis-benchmark -h {host} -q {extra}"));
        let lines = results(&report);
        eprintln!("redis-benchmark -q {extra}:\n{}", lines.join("\n"));
        assert!(!report.contains("Error") && !report.contains("WARNING"), "{report}");
        for test in [
            "PING_INLINE:",
            "PING_MBULK:",
            "SET:",
            "GET:",
            "INCR:",
            "LPUSH:",
            "RPUSH:",
            "LPOP:",
            "RPOP:",
            "SADD:",
            "HSET:",
            "SPOP:",
            "ZADD:",
            "ZPOPMIN:",
            "LRANGE_100",
            "LRANGE_300",
            "LRANGE_500",
            "LRANGE_600",
            "MSET",
        ] {
            assert!(lines.iter().any(|l| l.starts_with(test)), "{test} missing from {report}");
        }
    }
    // What the suite left is what its commands made: 2000 + 4000 INCRs of one counter.
    assert_eq!(exec(&ns, &format!("redis-cli -h {host} GET counter:__rand_int__")).trim(), "6000");
}

#[test]
fn a_thousand_and_twenty_four_clients_at_once() {
    let Some(ns) = namespace() else { return };
    let _kv = boot(&ns, 128);
    // 1024 connections opened and kept, each asked something, then every one of them
    // answering while all are open.
    let script = r#"
import socket, sys
host = "10.0.3.2"
conns = [socket.create_connection((host, 6379), timeout=30) for _ in range(1024)]
def ask(s, cmd, expect):
    s.sendall(cmd)
    got = b""
    while not got.endswith(b"\r\n") or len(got) < len(expect):
        chunk = s.recv(65536)
        assert chunk, "connection closed"
        got += chunk
    assert got == expect, (cmd, got)
for i, s in enumerate(conns):
    key = b"c:%d" % i
    ask(s, b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n" % (len(key), key), b"+OK\r\n")
info = socket.create_connection((host, 6379), timeout=30)
info.sendall(b"INFO clients\r\n")
text = b""
while b"blocked_clients" not in text:
    text += info.recv(65536)
clients = int(text.split(b"connected_clients:")[1].split(b"\r\n")[0])
assert clients == 1025, clients
for s in conns:
    ask(s, b"DBSIZE\r\n", b":1024\r\n")
for s in conns:
    s.close()
print("1024 clients served, connected_clients", clients)
"#;
    let out = exec(&ns, &format!("ulimit -n 8192; /usr/bin/python3 -c '{}'", script.replace('\'', "\"")));
    assert!(out.contains("1024 clients served"), "{out}");
    // And 1024 redis-benchmark clients, all connected before the first request.
    let report = exec(
        &ns,
        &format!(
            "ulimit -n 8192; redis-benchmark -h {} -q -c 1024 -n 20000 -t ping,set,get",
            Namespace::GUEST_IP
        ),
    );
    let lines = results(&report);
    eprintln!("{}", lines.join("\n"));
    assert!(!report.contains("Error"), "{report}");
    assert_eq!(lines.len(), 4, "{report}");
}

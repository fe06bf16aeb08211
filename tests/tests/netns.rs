//! httpd on a tap device inside a network namespace this test creates: no user-network
//! bottleneck, so 1024 clients can connect at once. Needs root and iproute2; skipped,
//! loudly, without them.

use std::process::Command;
use std::time::Duration;

use tests::{Running, Vm};

/// A network namespace with a tap device at 10.0.3.1/24, deleted on drop.
struct Namespace(String);

impl Namespace {
    fn create() -> Option<Namespace> {
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !is_root || Command::new("ip").arg("-V").output().is_err() {
            eprintln!("skipped: needs root and iproute2 for a network namespace");
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ns = Namespace(format!("chm{}-{n}", std::process::id()));
        for cmd in [
            vec!["netns", "add", &ns.0],
            vec!["-n", &ns.0, "link", "set", "lo", "up"],
            vec!["-n", &ns.0, "tuntap", "add", "dev", "tap0", "mode", "tap"],
            vec!["-n", &ns.0, "addr", "add", "10.0.3.1/24", "dev", "tap0"],
            vec!["-n", &ns.0, "link", "set", "tap0", "up"],
        ] {
            let ok = Command::new("ip").args(&cmd).status().is_ok_and(|s| s.success());
            assert!(ok, "ip {cmd:?} failed");
        }
        Some(ns)
    }

    fn exec(&self, shell: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "sh", "-c", shell])
            .output()
            .expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Namespace {
    /// Boots httpd at 10.0.3.2 on the namespace's tap device and waits until it listens.
    fn boot_httpd(&self, memory_mib: u32, cmdline: &str) -> Running {
        let vm = Vm::app("httpd")
            .inside(&["ip", "netns", "exec", &self.0])
            .memory_mib(memory_mib)
            .cmdline(format!("ip=10.0.3.2/24 {cmdline}"))
            .arg("-netdev")
            .arg("tap,id=n0,ifname=tap0,script=no,downscript=no")
            .arg("-device")
            .arg("virtio-net-pci,netdev=n0")
            .timeout(Duration::from_secs(120));
        let mut run = vm.spawn().expect("spawn QEMU");
        run.wait_for("httpd: listening on port 80").expect("httpd listens");
        run
    }
}

/// Whether hping3 is installed (saying so when it is not).
fn have_hping3() -> bool {
    let found = Command::new("hping3").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: needs hping3 (apt-get install hping3)");
    }
    found
}

/// Whether slowhttptest is installed (saying so when it is not).
fn have_slowhttptest() -> bool {
    let found = Command::new("slowhttptest").arg("-h").output().is_ok();
    if !found {
        eprintln!("skipped: needs slowhttptest (apt-get install slowhttptest)");
    }
    found
}

/// A fetch of `/` that must answer 200 within two seconds.
const QUICK_FETCH: &str =
    "curl -s -o /dev/null -m 2 -w '%{http_code}' -H 'Connection: close' http://10.0.3.2/";

/// Waits (up to `limit`) for the heap to come back within 64 KiB of `idle`, running
/// `fetch` once a second so the stack logs its figure; returns the last figure.
fn heap_settles(ns: &Namespace, run: &mut Running, fetch: &str, idle: u64, limit: Duration) -> u64 {
    let start = std::time::Instant::now();
    let mut after = u64::MAX;
    while after > idle + 64 * 1024 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(ns.exec(fetch), "200", "a client after the attack");
        std::thread::sleep(Duration::from_millis(300));
        after = run.heap_figure().expect("a heap figure");
    }
    eprintln!("heap {idle} bytes idle, {after} {:?} after the attack", start.elapsed());
    after
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_thousand_and_twenty_four_concurrent_clients() {
    let Some(ns) = Namespace::create() else { return };
    let _httpd = ns.boot_httpd(128, "");
    let report = ns.exec("ulimit -n 8192; wrk -t2 -c1024 -d8s --latency http://10.0.3.2/");
    let requests: u64 = report
        .lines()
        .find_map(|l| {
            l.trim().split(" requests in ").next().filter(|_| l.contains(" requests in "))?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no wrk summary:\n{report}"));
    eprintln!("{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    // 1024 connections open at once, no socket errors, thousands of answers.
    assert!(requests > 4 * 1024, "{report}");
    // And the server is still there for a new client.
    assert!(ns.exec("curl -s -o /dev/null -w '%{http_code}' http://10.0.3.2/").contains("200"));
}

/// A SYN flood from forged addresses (hping3, 20,000 SYNs at up to 10,000 a second):
/// clients are still served while it lasts, the full backlog recycles its oldest
/// handshakes, and once the flood's handshakes expire the heap is back where it was.
#[test]
fn a_syn_flood_does_not_lock_clients_out_or_leak() {
    let Some(ns) = Namespace::create() else { return };
    if !have_hping3() {
        return;
    }
    let mut run = ns.boot_httpd(64, "log=debug");
    let fetch = "curl -s -o /dev/null -m 15 -w '%{http_code}' -H 'Connection: close' http://10.0.3.2/";
    assert_eq!(ns.exec(fetch), "200");
    run.wait_for("; heap ").expect("a heap figure");
    let idle = run.heap_figure().expect("a heap figure");

    let flooder = {
        let ns = ns.0.clone();
        std::thread::spawn(move || {
            Command::new("ip")
                .args(["netns", "exec", &ns, "hping3", "-S", "-p", "80", "--rand-source", "-i", "u100"])
                .args(["-c", "20000", "-q", "10.0.3.2"])
                .output()
                .expect("hping3 runs")
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(ns.exec(fetch), "200", "a client during the flood");
    }
    // hping3 exits non-zero when nothing answers, which forged sources never do.
    let report = flooder.join().unwrap();
    let report = String::from_utf8_lossy(&report.stdout) + String::from_utf8_lossy(&report.stderr);
    assert!(report.contains("20000 packets transmitted"), "{report}");
    run.wait_for("backlog full").expect("the flood filled the backlog");
    // Unfinished handshakes are freed 10 s after they began; each fetch logs the heap
    // once its connection is reaped.
    let after = heap_settles(&ns, &mut run, fetch, idle, Duration::from_secs(30));
    let last = run.lines.iter().rev().find(|l| l.text.contains("; heap ")).map(|l| l.text.clone());
    assert!(
        after <= idle + 64 * 1024,
        "heap {idle} bytes idle, still {after} 30 s after the flood: {last:?}"
    );
}

/// Packet-level bad input from hping3: a SYN with a wrong IP checksum, one whose TCP
/// header claims more bytes than the packet has, and one split into IP fragments (not
/// reassembled) get no answer, while a well-formed SYN and an ICMP echo do. Then a
/// flood of bad-checksum SYNs, enough to keep the receive ring full, and the server
/// still serves.
#[test]
fn malformed_packets_are_dropped_and_pings_answered() {
    let Some(ns) = Namespace::create() else { return };
    if !have_hping3() {
        return;
    }
    let _httpd = ns.boot_httpd(64, "");
    let answers = |probe: &str| -> u32 {
        let report = ns.exec(&format!("hping3 -c 3 -i u200000 {probe} 10.0.3.2"));
        report
            .lines()
            .find_map(|l| l.split(" packets received").next().filter(|_| l.contains(" packets received")))
            .and_then(|l| l.rsplit(", ").next()?.parse().ok())
            .unwrap_or_else(|| panic!("no hping3 summary for {probe}:\n{report}"))
    };
    assert_eq!(answers("-S -p 80"), 3, "well-formed SYNs are answered");
    assert_eq!(answers("-1"), 3, "ICMP echo is answered");
    for bad in ["-S -p 80 -b", "-S -p 80 -O 15", "-S -p 80 -f -d 64"] {
        assert_eq!(answers(bad), 0, "hping3 {bad}");
    }
    ns.exec("timeout 3 hping3 --flood -S -b -p 80 10.0.3.2");
    let fetch = "curl -s -o /dev/null -m 15 -w '%{http_code}' http://10.0.3.2/";
    assert_eq!(ns.exec(fetch), "200", "served after the flood");
}

/// 4,000 slowloris connections (slowhttptest: 400 a second, a header line every 5 s)
/// against the default 64 MiB guest: more than its connection budget holds. Quiet
/// connections make room for new ones, clients are served during the attack and within
/// 2 s after it, and the heap comes back to idle.
#[test]
fn four_thousand_slowloris_connections_do_not_crash_it() {
    let Some(ns) = Namespace::create() else { return };
    if !have_slowhttptest() {
        return;
    }
    let mut run = ns.boot_httpd(64, "log=debug");
    assert_eq!(ns.exec(QUICK_FETCH), "200");
    run.wait_for("; heap ").expect("a heap figure");
    let idle = run.heap_figure().expect("a heap figure");

    let attack = {
        let ns = ns.0.clone();
        std::thread::spawn(move || {
            let shell =
                "ulimit -n 16384; cd /tmp && slowhttptest -c 4000 -H -i 5 -r 400 -l 20 -u http://10.0.3.2/";
            Command::new("ip")
                .args(["netns", "exec", &ns, "sh", "-c", shell])
                .output()
                .expect("slowhttptest runs")
        })
    };
    std::thread::sleep(Duration::from_secs(12));
    let during = "curl -s -o /dev/null -m 10 -w '%{http_code}' -H 'Connection: close' http://10.0.3.2/";
    for _ in 0..3 {
        assert_eq!(ns.exec(during), "200", "a client during the attack");
    }
    let report = attack.join().unwrap();
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(report.contains("Hit test time limit"), "{report}");
    run.wait_for("at max_conns=").expect("the attack reached the connection cap");
    assert!(run.is_running(), "the kernel stopped");
    assert_eq!(ns.exec(QUICK_FETCH), "200", "a client right after the attack");
    let after = heap_settles(&ns, &mut run, QUICK_FETCH, idle, Duration::from_secs(30));
    assert!(after <= idle + 64 * 1024, "heap {idle} bytes idle, still {after} after the attack");
}

/// `wrk -c 128` against a 4 MiB guest, which holds about 20 connections: the ones over
/// the cap are reset, the kernel keeps serving, and the heap comes back to idle.
#[test]
fn a_4_mib_guest_survives_128_busy_clients() {
    let Some(ns) = Namespace::create() else { return };
    let mut run = ns.boot_httpd(4, "log=debug");
    assert_eq!(ns.exec(QUICK_FETCH), "200");
    run.wait_for("; heap ").expect("a heap figure");
    let idle = run.heap_figure().expect("a heap figure");
    let report = ns.exec("ulimit -n 8192; wrk -t2 -c128 -d8s http://10.0.3.2/");
    eprintln!("{report}");
    assert!(report.contains(" requests in "), "{report}");
    run.wait_for("at max_conns=").expect("wrk reached the connection cap");
    assert!(run.is_running(), "the kernel stopped");
    assert_eq!(ns.exec(QUICK_FETCH), "200", "a client right after wrk");
    let after = heap_settles(&ns, &mut run, QUICK_FETCH, idle, Duration::from_secs(20));
    assert!(after <= idle + 64 * 1024, "heap {idle} bytes idle, still {after} after wrk");
}

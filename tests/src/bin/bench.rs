//! Benchmarks for Chameleon.
//!
//! `bench boot [--runs N] [--image PATH]` compares the wall time from QEMU
//! spawn to QEMU exit of the `hello` app against a *floor*: a PVH stub that
//! exits immediately under the identical QEMU command line. Runs alternate
//! between the two so machine noise (thermal, other load) hits both equally.
//! Then the same from a GRUB ISO on SeaBIOS and on OVMF, beside a multiboot2 stub that
//! exits at once in an ISO built the same way. Then hello as a Xen PV and PVH dom0: QEMU start to Xen's halt line.
//! `bench pvops` times the hot pv ops, `bench first200` QEMU start to httpd's first
//! 200, `bench http` runs wrk against httpd and Linux guests, and `bench soak` holds
//! httpd under wrk for minutes and reports whether throughput, latency and heap stay flat.
//! `bench xen-http` runs httpd as a Xen PV and PVH domU next to Linux domUs, loaded by
//! wrk in dom0 (tests/src/xen_domu.rs's testbed).
//! `bench kv` runs redis-benchmark against kv and a Linux guest running Debian's
//! redis-server, measures memory per stored key in both, and finds the smallest `-m` with
//! which kv serves the benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use tests::image::{Firmware, Format, ImageSpec, build_image};
use tests::{
    Dom0, Namespace, Net, Vm, XEN_HALTED, build_app, build_floor_stub, build_multiboot2_floor_stub,
    cpu_model, require_qemu, xen_binary, xen_dom0,
};

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench boot [--runs N] [--image PATH]\n       bench pvops [--no-kvm]\n       bench first200 [--runs N]\n       bench http [--duration SECONDS] [--tap] [--nic virtio,vmxnet3,e1000,e1000e|all]\n       bench soak [--minutes N]\n       bench xen-http [--duration SECONDS] [--rounds N]\n       bench kv [--requests N] [--keys N] [--rounds N] [--tap]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        return usage();
    };
    if cmd == "http" {
        let mut secs = 20;
        let mut tap = false;
        let mut nics = None;
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--tap" => tap = true,
                "--duration" => match it.next().and_then(|s| s.parse().ok()) {
                    Some(s) => secs = s,
                    None => return usage(),
                },
                "--nic" => match it.next().map(|list| nic_models(list)) {
                    Some(Some(models)) => nics = Some(models),
                    _ => return usage(),
                },
                _ => return usage(),
            }
        }
        return http(secs, tap, nics);
    }
    if cmd == "xen-http" {
        let (mut secs, mut rounds) = (5, 3);
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            match (a.as_str(), it.next().and_then(|n| n.parse::<u32>().ok()).filter(|&n| n > 0)) {
                ("--duration", Some(n)) => secs = n,
                ("--rounds", Some(n)) => rounds = n as usize,
                _ => return usage(),
            }
        }
        return xen_http(secs, rounds);
    }
    if cmd == "kv" {
        let (mut requests, mut keys, mut rounds, mut tap) = (100_000, 1_000_000, 3, false);
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            if a == "--tap" {
                tap = true;
                continue;
            }
            match (a.as_str(), it.next().and_then(|n| n.parse::<u32>().ok())) {
                ("--requests", Some(n)) if n > 0 => requests = n,
                ("--keys", Some(n)) => keys = n,
                ("--rounds", Some(n)) if n > 0 => rounds = n as usize,
                _ => return usage(),
            }
        }
        return kv(requests, keys, rounds, tap);
    }
    if cmd == "soak" {
        return match rest {
            [] => soak(10),
            [flag, n] if flag == "--minutes" => n.parse().ok().filter(|&n| n > 0).map_or_else(usage, soak),
            _ => usage(),
        };
    }
    if cmd == "first200" {
        return match rest {
            [] => first200(5),
            [flag, n] if flag == "--runs" => n.parse().ok().filter(|&n| n > 0).map_or_else(usage, first200),
            _ => usage(),
        };
    }
    if cmd == "pvops" {
        return match rest {
            [] => pvops(true),
            [flag] if flag == "--no-kvm" => pvops(false),
            _ => usage(),
        };
    }
    if cmd != "boot" {
        return usage();
    }
    let mut runs = 15usize;
    let mut image: Option<PathBuf> = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--runs", Some(n)) => match n.parse() {
                Ok(n) if n > 0 => runs = n,
                _ => return usage(),
            },
            ("--image", Some(p)) => image = Some(PathBuf::from(p)),
            _ => return usage(),
        }
    }
    boot(runs, image)
}

/// One timed boot, spawn to exit. Panics (with guest output) on failure so a
/// broken image never produces a plausible-looking number.
fn time_boot(image: &Path) -> f64 {
    time_vm(Vm::new(image))
}

fn time_vm(vm: Vm) -> f64 {
    let shown = vm.command_line();
    let vm = vm.verbose(false).timeout(Duration::from_secs(120));
    let mut run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
    let out = run.wait_exit().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.guest_code().is_some(),
        "{shown} did not exit through isa-debug-exit (status {:?})\n{}\n{}",
        out.status,
        out.output(),
        out.qemu_stderr
    );
    out.wall.as_secs_f64() * 1e3
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Stats { median, min: v[0], max: v[n - 1] }
}

/// Size of `image` after `strip --strip-all` (falls back to objcopy).
fn stripped_size(image: &Path, tmp: &Path) -> Option<u64> {
    let out = tmp.join("stripped");
    let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
    let done = ok(Command::new("strip").arg("--strip-all").arg("-o").arg(&out).arg(image))
        || ok(Command::new("objcopy").arg("--strip-all").arg(image).arg(&out));
    if !done {
        return None;
    }
    std::fs::metadata(&out).ok().map(|m| m.len())
}

fn boot(runs: usize, image: Option<PathBuf>) -> ExitCode {
    require_qemu();
    let tmp = std::env::temp_dir().join(format!("chameleon-bench-{}", std::process::id()));
    let floor = build_floor_stub(&tmp);

    let (hello_name, hello) = match image {
        Some(p) => (p.file_name().map_or("image".into(), |n| n.to_string_lossy().into_owned()), p),
        None => ("hello".to_owned(), build_app("hello")),
    };

    // Warm-up boot of each so page cache / first-exec costs are not measured.
    time_boot(&floor);
    time_boot(&hello);

    let (mut floor_ms, mut hello_ms) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate which goes first so neither always follows the other.
        let order = [true, false];
        let order = if i % 2 == 0 { order } else { [false, true] };
        for is_floor in order {
            if is_floor {
                floor_ms.push(time_boot(&floor));
            } else {
                hello_ms.push(time_boot(&hello));
            }
        }
    }

    println!(
        "boot: spawn -> exit wall time, {runs} interleaved runs, accel {}",
        Vm::new(&floor).accel_name()
    );
    println!("{:<24} {:>10} {:>10} {:>10}", "image", "median ms", "min ms", "max ms");
    let f = stats(floor_ms);
    println!("{:<24} {:>10.2} {:>10.2} {:>10.2}", "floor (pvh stub)", f.median, f.min, f.max);
    let h = stats(hello_ms);
    println!("{:<24} {:>10.2} {:>10.2} {:>10.2}", hello_name, h.median, h.min, h.max);
    println!("ratio median(hello)/median(floor): {:.3}", h.median / f.median);
    let raw = std::fs::metadata(&hello).map(|m| m.len()).unwrap_or(0);
    println!("image size unstripped: {raw} bytes ({:.1} KiB)", raw as f64 / 1024.0);
    match stripped_size(&hello, &tmp) {
        Some(s) => println!("image size stripped:   {s} bytes ({:.1} KiB)", s as f64 / 1024.0),
        None => println!("image size stripped:   unavailable (need strip or objcopy)"),
    }
    grub_boot(&hello, &tmp, runs);
    let _ = std::fs::remove_dir_all(&tmp);
    match xen_binary() {
        Some(xen) => xen_boot(&xen, &hello, runs.div_ceil(3).max(3)),
        None => println!("xen: no Xen 4.17 binary; the Xen boot rows are skipped"),
    }
    ExitCode::SUCCESS
}

/// QEMU start to exit for hello booted by firmware and GRUB from an ISO (as `./run.sh
/// image` writes it, no menu delay), beside the multiboot2 floor stub in an ISO built
/// the same way, on SeaBIOS and on OVMF; then the image sizes.
fn grub_boot(hello: &Path, tmp: &Path, runs: usize) {
    let floor = build_multiboot2_floor_stub(tmp);
    let iso = |kernel: &Path, name: &str| {
        let spec = ImageSpec {
            kernel: kernel.to_path_buf(),
            title: name.to_owned(),
            cmdline: String::new(),
            menu_seconds: 0,
            modules: Vec::new(),
        };
        build_image(&spec, Format::Iso, &tmp.join(format!("{name}.iso"))).unwrap_or_else(|e| panic!("{e}"))
    };
    let (floor_iso, hello_iso) = (iso(&floor, "floor"), iso(hello, "hello"));
    let vm = |image: &Path, firmware| Vm::boot_image(image, Format::Iso).firmware(firmware);
    println!(
        "
grub: spawn -> exit wall time from an ISO (CD) through GRUB 2.06's multiboot2, {runs} interleaved runs"
    );
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>14}",
        "firmware, image", "median ms", "min ms", "max ms", "hello/floor"
    );
    for (name, firmware) in [("SeaBIOS", Firmware::SeaBios), ("OVMF", Firmware::Ovmf)] {
        time_vm(vm(&floor_iso, firmware));
        time_vm(vm(&hello_iso, firmware));
        let (mut floor_ms, mut hello_ms) = (Vec::new(), Vec::new());
        for i in 0..runs {
            let order = if i % 2 == 0 { [true, false] } else { [false, true] };
            for is_floor in order {
                if is_floor {
                    floor_ms.push(time_vm(vm(&floor_iso, firmware)));
                } else {
                    hello_ms.push(time_vm(vm(&hello_iso, firmware)));
                }
            }
        }
        let (f, h) = (stats(floor_ms), stats(hello_ms));
        let row = |what: &str, s: &Stats, ratio: String| {
            println!(
                "{:<24} {:>10.1} {:>10.1} {:>10.1} {:>14}",
                format!("{name}, {what}"),
                s.median,
                s.min,
                s.max,
                ratio
            )
        };
        row("floor (mb2 stub)", &f, String::new());
        row("hello", &h, format!("{:.3}", h.median / f.median));
    }
    let qcow2 = tmp.join("hello.qcow2");
    let converted = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&hello_iso)
        .arg(&qcow2)
        .status()
        .is_ok_and(|s| s.success());
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    println!(
        "image sizes: hello ISO (= raw) {} bytes ({:.2} MiB), floor ISO {} bytes ({:.2} MiB){}",
        size(&hello_iso),
        mib(size(&hello_iso)),
        size(&floor_iso),
        mib(size(&floor_iso)),
        if converted {
            format!(", hello qcow2 {} bytes ({:.2} MiB)", size(&qcow2), mib(size(&qcow2)))
        } else {
            String::new()
        }
    );
}

/// QEMU start to Xen's report that hello's dom0 halted, as a PV and a PVH dom0, and the
/// dom0's own share: from Xen handing over (its "Freed ... init memory" line) to the halt.
fn xen_boot(xen: &Path, image: &Path, runs: usize) {
    println!(
        "\nxen: QEMU start -> \"{XEN_HALTED}\" for hello as dom0, {runs} runs each (Xen 4.17 under TCG)"
    );
    println!("{:<10} {:>16} {:>24}", "dom0", "median total ms", "median dom0 share ms");
    for mode in [Dom0::Pv, Dom0::Pvh] {
        let (mut total, mut share) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let vm = xen_dom0(xen, mode, image, "").verbose(false).timeout(Duration::from_secs(120));
            let start = std::time::Instant::now();
            let mut run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
            let handover = run.wait_for("(XEN) Freed").unwrap_or_else(|e| panic!("{e}"));
            let halted = run.wait_for(XEN_HALTED).unwrap_or_else(|e| panic!("{e}"));
            run.kill();
            total.push((halted.at - start).as_secs_f64() * 1e3);
            share.push((halted.at - handover.at).as_secs_f64() * 1e3);
        }
        let (t, d) = (stats(total), stats(share));
        println!("{:<10} {:>16.1} {:>24.1}", format!("{mode:?}"), t.median, d.median);
    }
}

/// One pvops row as the guest prints it: `pvbench: NAME site N bare M|-`.
struct OpTicks {
    name: String,
    site: u64,
    bare: Option<u64>,
}

fn parse_pvbench(line: &str) -> Option<OpTicks> {
    let rest = line.strip_prefix("pvbench: ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        [name, "site", site, "bare", bare] => {
            Some(OpTicks { name: name.to_string(), site: site.parse().ok()?, bare: bare.parse().ok() })
        }
        _ => None,
    }
}

/// Where the pvops bench runs: plain QEMU (the VM exits with the guest's code), or as a
/// Xen dom0 (Xen halts; QEMU is stopped).
#[derive(Clone)]
enum Host {
    Qemu(Box<Vm>),
    Xen(PathBuf, Dom0),
}

/// Boots hello with `cmdline` (which includes `selftest=pvops-bench`) and collects its
/// rows.
fn pvops_run(host: &Host, image: &Path, cmdline: &str) -> Vec<OpTicks> {
    match host {
        Host::Qemu(vm) => {
            let vm = (**vm).clone().cmdline(cmdline.to_string()).verbose(false);
            let mut run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
            let out = run.wait_exit().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.guest_code(), Some(0), "pvops bench failed:\n{}", out.output());
            out.lines.iter().filter_map(|l| parse_pvbench(&l.text)).collect()
        }
        Host::Xen(xen, mode) => {
            let vm = xen_dom0(xen, *mode, image, cmdline).verbose(false).timeout(Duration::from_secs(600));
            let mut run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
            let mut rows = Vec::new();
            loop {
                let line = run.wait_for("pvbench: ").unwrap_or_else(|e| panic!("{e}"));
                if line.text.starts_with("pvbench: done") {
                    break;
                }
                rows.extend(parse_pvbench(&line.text));
            }
            run.wait_for(XEN_HALTED).unwrap_or_else(|e| panic!("{e}"));
            run.kill();
            rows
        }
    }
}

/// Cycles per hot pv op, patched vs unpatched vs the bare native instruction, for each
/// backend that runs here: native, vmware and (with a usable /dev/kvm) kvm under QEMU,
/// then xen_pv and xen_hvm under Xen 4.17 (itself under QEMU TCG).
fn pvops(with_kvm: bool) -> ExitCode {
    require_qemu();
    let image = build_app("hello");
    let cmd = "log=warn selftest=pvops-bench";
    let mut backends: Vec<(&str, Host, String)> = vec![
        ("native (TCG)", Host::Qemu(Box::new(Vm::new(&image).accel("tcg"))), cmd.to_string()),
        (
            "vmware (TCG, pv=vmware)",
            Host::Qemu(Box::new(Vm::new(&image).accel("tcg").machine("pc,vmport=on"))),
            format!("{cmd} pv=vmware"),
        ),
    ];
    if with_kvm && Path::new("/dev/kvm").exists() {
        let kvm = Vm::new(&image).accel("kvm").cpu(cpu_model("kvm"));
        backends.push((
            "kvm (KVM)",
            Host::Qemu(Box::new(kvm.timeout(Duration::from_secs(600)))),
            cmd.to_string(),
        ));
    }
    match xen_binary() {
        Some(xen) => {
            backends.push((
                "xen_pv (Xen 4.17 PV dom0, TCG)",
                Host::Xen(xen.clone(), Dom0::Pv),
                cmd.to_string(),
            ));
            backends.push(("xen_hvm (Xen 4.17 PVH dom0, TCG)", Host::Xen(xen, Dom0::Pvh), cmd.to_string()));
        }
        None => eprintln!("pvops: no Xen 4.17 binary; the Xen rows are skipped"),
    }
    println!("pvops: TSC ticks per call (median of 7 rounds x 20000 calls, empty-loop cost removed)");
    println!("bare: the native instruction itself ('-' where it cannot run, as in a PV guest's ring 3)");
    for (name, host, cmdline) in backends {
        let patched = pvops_run(&host, &image, &cmdline);
        let indirect = pvops_run(&host, &image, &format!("{cmdline} pv.patch=off"));
        println!("\n{name}");
        println!(
            "{:<14} {:>9} {:>11} {:>6} {:>16}",
            "op", "patched", "unpatched", "bare", "unpatched/patched"
        );
        for (p, u) in patched.iter().zip(&indirect) {
            let bare = p.bare.map_or("-".to_string(), |b| b.to_string());
            let ratio =
                if p.site == 0 { "-".to_string() } else { format!("{:.2}", u.site as f64 / p.site as f64) };
            println!("{:<14} {:>9} {:>11} {:>6} {:>16}", p.name, p.site, u.site, bare, ratio);
        }
    }
    ExitCode::SUCCESS
}

/// QEMU start to httpd's first 200 through QEMU's user network, on the `pc` machine
/// (SeaBIOS loads the PVH image) and on `microvm` (qboot, virtio-mmio: the Firecracker
/// model), `runs` boots each.
fn first200(runs: usize) -> ExitCode {
    require_qemu();
    let httpd = build_app("httpd");
    println!("first200: QEMU start -> first HTTP 200 from httpd, user network, TCG, {runs} runs each");
    println!("{:<10} {:>10} {:>10} {:>10}", "machine", "median s", "min s", "max s");
    for machine in ["pc", "microvm"] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let port = free_port();
            let vm = Vm::new(&httpd)
                .machine(machine)
                .memory_mib(64)
                .cmdline("log=warn")
                .net(Net::User { host_port: port, guest_port: 80 })
                .verbose(false)
                .timeout(Duration::from_secs(60));
            let run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
            let first = first_200(port, run.started, Duration::from_secs(30)).expect("httpd answers");
            drop(run);
            times.push(first.as_secs_f64());
        }
        let t = stats(times);
        println!("{:<10} {:>10.3} {:>10.3} {:>10.3}", machine, t.median, t.min, t.max);
    }
    ExitCode::SUCCESS
}

/// One wrk run's figures.
#[derive(Debug, Default, Clone, Copy)]
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => f64::NAN,
    }
}

/// Where a guest's server is reached: a forwarded host port, or an address inside a
/// network namespace.
#[derive(Debug, Clone)]
enum Target {
    Port(u16),
    Namespace(String),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Port(p) => format!("http://127.0.0.1:{p}/"),
            Target::Namespace(_) => format!("http://{}/", Namespace::GUEST_IP),
        }
    }
    fn command(&self, program: &str) -> Command {
        match self {
            Target::Port(_) => Command::new(program),
            Target::Namespace(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
        }
    }
    /// `program` (redis-cli, redis-benchmark) pointed at the guest's Redis port.
    fn redis(&self, program: &str) -> Command {
        let mut c = self.command(program);
        self.point_at_redis(&mut c);
        c
    }
    /// [`Target::redis`], killed if it runs longer than `limit`: a guest that stops
    /// answering leaves redis-benchmark waiting forever.
    fn redis_within(&self, limit: Duration, program: &str) -> Command {
        let mut c = self.command("timeout");
        c.args(["--signal=KILL", &limit.as_secs().to_string(), program]);
        self.point_at_redis(&mut c);
        c
    }
    /// Whether the guest answers redis-cli's PING on a new connection within `limit`.
    fn pings(&self, limit: Duration) -> bool {
        self.redis_within(limit, "redis-cli").arg("PING").output().is_ok_and(|o| o.stdout == b"PONG\n")
    }
    fn point_at_redis(&self, c: &mut Command) {
        match self {
            Target::Port(p) => c.args(["-p", &p.to_string()]),
            Target::Namespace(_) => c.args(["-h", Namespace::GUEST_IP]),
        };
    }
}

fn wrk(target: &Target, connections: u32, secs: u32, close: bool) -> WrkResult {
    let mut cmd = target.command("wrk");
    cmd.args(["-t", if connections > 1 { "2" } else { "1" }])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency");
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd.arg(target.url()).output().expect("wrk runs (apt-get install wrk)");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// The figures of wrk's `--latency` report.
fn parse_wrk(text: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => r.p50_ms = parse_ms(v),
            ["90%", v] => r.p90_ms = parse_ms(v),
            ["99%", v] => r.p99_ms = parse_ms(v),
            ["Socket", "errors:", rest @ ..] => {
                r.errors = rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum()
            }
            ["Non-2xx", "or", "3xx", "responses:", v] => r.errors += v.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    r
}

/// Polls with a raw GET until a 200 comes back; the time from QEMU's start. Each try
/// gives up after 20 ms: QEMU's user network accepts host connections before the guest
/// runs and then retries its SYN to the guest only after seconds, so a patient client
/// would measure slirp's retransmit timer instead of the guest.
fn first_200(port: u16, started: std::time::Instant, limit: Duration) -> Option<Duration> {
    use std::io::{Read, Write};
    while started.elapsed() < limit {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut buf = [0u8; 16];
            if s.read(&mut buf).is_ok_and(|n| n >= 12 && &buf[9..12] == b"200") {
                return Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A namespace of this process's own for `--tap` runs, deleted on drop.
fn namespace(prefix: &str) -> Namespace {
    Namespace::create(format!("{prefix}{}", std::process::id())).unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until the guest in the namespace answers (coarse: one curl per try).
fn first_200_in(ns: &str, started: std::time::Instant, limit: Duration) -> Option<Duration> {
    while started.elapsed() < limit {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-s", "-m", "0.2", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{}/", Namespace::GUEST_IP))
            .output()
            .ok()?;
        if out.stdout == b"200" {
            return Some(started.elapsed());
        }
    }
    None
}

/// The cards `bench http --nic` takes (`virtio`: virtio-net, QEMU's `-device` name for
/// the others).
const NIC_MODELS: [&str; 4] = ["virtio", "vmxnet3", "e1000", "e1000e"];

/// `--nic`'s list: models from [`NIC_MODELS`], comma-separated, or `all`.
fn nic_models(list: &str) -> Option<Vec<&'static str>> {
    if list == "all" {
        return Some(NIC_MODELS.to_vec());
    }
    list.split(',').map(|m| NIC_MODELS.iter().find(|&&n| n == m).copied()).collect()
}

/// httpd vs a Linux guest (Debian's kernel with nginx, and with busybox httpd) on the
/// same QEMU TCG configuration, through QEMU's user network or (`tap`) a tap device in
/// a network namespace. With `nics`, once per card model, each guest on that card
/// (Debian's generic kernel then, which has every card's driver; nginx only), with
/// httpd's figures on each card also set against its own on virtio-net.
fn http(secs: u32, tap: bool, nics: Option<Vec<&'static str>>) -> ExitCode {
    require_qemu();
    let httpd = build_app("httpd");
    let root = tests::workspace_root();
    let flavour = if nics.is_some() { "generic" } else { "cloud" };
    let linux_dir = root.join(format!("target/bench-linux-{flavour}"));
    let status = Command::new(root.join("benches/linux-guest.sh"))
        .arg(&linux_dir)
        .arg(flavour)
        .status()
        .expect("linux-guest.sh");
    assert!(status.success(), "building the Linux guest failed");
    let kernel = std::fs::read_to_string(linux_dir.join("kernel")).unwrap_or_default();
    let ns = tap.then(|| namespace("chmbench"));
    // Each guest's card, on the namespace's tap device or a forwarded host port.
    let connect = |vm: Vm, port: u16, model: &str| {
        let vm = if model == "virtio" { vm } else { vm.nic_model(model) };
        match &ns {
            Some(ns) => ns.wrap(vm).net(Net::Tap),
            None => vm.net(Net::User { host_port: port, guest_port: 80 }),
        }
    };
    let ip = Namespace::GUEST_IP;
    let (chameleon_ip, linux_ip) = if tap {
        (format!("ip={ip}/24"), format!(" guest_ip={ip}/24"))
    } else {
        ("ip=10.0.2.15/24 gw=10.0.2.2".to_owned(), String::new())
    };
    let linux = |server: &'static str| {
        let (dir, linux_ip) = (&linux_dir, &linux_ip);
        move |port: u16, model: &str| {
            let vm = Vm::new(dir.join("vmlinuz"))
                .memory_mib(128)
                .cmdline(format!("console=ttyS0 quiet server={server}{linux_ip}"))
                .arg("-initrd")
                .arg(dir.join("initrd.cpio.gz").to_string_lossy());
            connect(vm, port, model)
        }
    };
    type Guest<'a> = (&'static str, Box<dyn Fn(u16, &str) -> Vm + 'a>);
    let mut guests: Vec<Guest> = vec![
        (
            "chameleon httpd",
            Box::new(|port, model| {
                connect(
                    Vm::new(&httpd).memory_mib(64).cmdline(format!("log=warn {chameleon_ip}")),
                    port,
                    model,
                )
            }),
        ),
        ("linux nginx", Box::new(linux("nginx"))),
    ];
    if nics.is_none() {
        guests.push(("linux busybox httpd", Box::new(linux("busybox"))));
    }
    let models = nics.clone().unwrap_or_else(|| vec!["virtio"]);
    let modes = [("keep-alive -c16", 16, false), ("keep-alive -c1", 1, false), ("close -c16", 16, true)];
    // (model, guest, start->first 200, one result per mode)
    let mut table = Vec::new();
    for &model in &models {
        for (name, make) in &guests {
            let port = free_port();
            let vm = make(port, model).verbose(false).timeout(Duration::from_secs(u64::from(secs) * 4 + 120));
            let run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
            let target = match &ns {
                Some(n) => Target::Namespace(n.name().to_owned()),
                None => Target::Port(port),
            };
            let first = match &target {
                Target::Port(p) => first_200(*p, run.started, Duration::from_secs(60)),
                Target::Namespace(n) => first_200_in(n, run.started, Duration::from_secs(60)),
            }
            .unwrap_or_else(|| panic!("{name} on {model} answers"));
            let results: Vec<WrkResult> =
                modes.iter().map(|&(_, c, close)| wrk(&target, c, secs, close)).collect();
            drop(run);
            table.push((model, *name, first, results));
        }
    }
    let network = if tap { "tap device in a network namespace" } else { "user network" };
    println!(
        "http: wrk against the default 612-byte page, {secs} s per run, QEMU TCG, {network}; Linux: {}",
        kernel.trim()
    );
    println!(
        "{:<8} {:<22} {:<16} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "card", "guest", "mode", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors"
    );
    for (model, name, first, results) in &table {
        for ((mode, _, _), r) in modes.iter().zip(results) {
            println!(
                "{:<8} {:<22} {:<16} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                model, name, mode, r.rps, r.p50_ms, r.p90_ms, r.p99_ms, r.errors
            );
        }
        println!("{:<8} {:<22} {:<16} {:>10.3} s", model, name, "start->first 200", first.as_secs_f64());
    }
    let ours = |model: &str| table.iter().find(|row| row.0 == model && row.1 == "chameleon httpd");
    for &model in &models {
        let Some((_, _, cf, c)) = ours(model) else { continue };
        for (_, name, lf, l) in table.iter().filter(|row| row.0 == model && row.1 != "chameleon httpd") {
            for (i, (mode, _, _)) in modes.iter().enumerate() {
                println!("ratio on {model}: chameleon/{name} req/s, {mode}: {:.1}x", c[i].rps / l[i].rps);
            }
            println!(
                "ratio on {model}: {name}/chameleon start->first 200: {:.1}x",
                lf.as_secs_f64() / cf.as_secs_f64()
            );
        }
        if let Some((_, _, _, v)) = ours("virtio").filter(|_| model != "virtio") {
            for (i, (mode, _, _)) in modes.iter().enumerate() {
                println!("ratio chameleon on {model}/on virtio req/s, {mode}: {:.2}x", c[i].rps / v[i].rps);
            }
        }
    }
    ExitCode::SUCCESS
}

/// The least-squares slope of `ys` against their index (per slice).
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    num / den
}

/// httpd (64 MiB, tap device in a network namespace) under `wrk -c32` for `minutes`
/// one-minute slices: req/s, p50/p99 and the guest's heap at rest after each slice, and
/// each column's slope per slice. Over the tap device, so the figures are the guest's
/// and not QEMU's user network's (whose forwarded port accepts with a backlog of 1).
fn soak(minutes: u32) -> ExitCode {
    require_qemu();
    let httpd = build_app("httpd");
    let ns = namespace("chmsoak");
    let vm = ns
        .wrap(Vm::new(&httpd))
        .memory_mib(64)
        .cmdline(format!("log=debug ip={}/24", Namespace::GUEST_IP))
        .net(Net::Tap)
        .verbose(false)
        .timeout(Duration::from_secs(u64::from(minutes) * 70 + 120));
    let mut run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
    first_200_in(ns.name(), run.started, Duration::from_secs(60)).expect("httpd answers");
    let heap_at_rest = |run: &mut tests::Running| {
        // The stack logs the heap when its last closing connection is gone.
        std::thread::sleep(Duration::from_secs(2));
        run.heap_figure().map_or(f64::NAN, |b| b as f64 / 1024.0)
    };
    let idle = heap_at_rest(&mut run);
    let target = Target::Namespace(ns.name().to_owned());
    println!(
        "soak: wrk -c32 against httpd (64 MiB, tap device), {minutes} one-minute slices; heap at rest after each"
    );
    println!(
        "{:>5} {:>10} {:>9} {:>9} {:>7} {:>10}",
        "slice", "req/s", "p50 ms", "p99 ms", "errors", "heap KiB"
    );
    println!("{:>5} {:>10} {:>9} {:>9} {:>7} {:>10.0}", "idle", "", "", "", "", idle);
    let mut rows = Vec::new();
    for slice in 1..=minutes {
        let r = wrk(&target, 32, 60, false);
        let heap = heap_at_rest(&mut run);
        assert!(run.is_running(), "httpd stopped during slice {slice}:\n{}", run.qemu_stderr());
        println!(
            "{:>5} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>10.0}",
            slice, r.rps, r.p50_ms, r.p99_ms, r.errors, heap
        );
        rows.push((r, heap));
    }
    let column = |f: &dyn Fn(&(WrkResult, f64)) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    println!(
        "slope per slice: req/s {:+.1}, p50 {:+.3} ms, p99 {:+.3} ms, heap {:+.1} KiB",
        slope(&column(&|(r, _)| r.rps)),
        slope(&column(&|(r, _)| r.p50_ms)),
        slope(&column(&|(r, _)| r.p99_ms)),
        slope(&column(&|(_, h)| *h)),
    );
    ExitCode::SUCCESS
}

/// httpd as a Xen PV and a PVH domU, and Debian's Linux as a domU serving the same
/// site (busybox httpd as PV; nginx as PV and PVH), side by side in one testbed (Xen 4.17
/// and a Linux dom0 under QEMU TCG). Each is created in turn and timed from `xl create`
/// to its first 200; then wrk in dom0 loads each at 1 and 16 connections over netback
/// and the bridge, `secs` seconds a run, guests taking turns for `rounds` rounds so that
/// the load of a shared machine falls on all of them; medians are reported.
fn xen_http(secs: u32, rounds: usize) -> ExitCode {
    use tests::xen_domu::{Domu, DomuType, FirstPage, Options, Testbed};
    let options = Options::new().image("httpd", build_app("httpd")).linux_nginx().load_generator();
    let tb = match Testbed::boot(options) {
        Ok(tb) => tb,
        Err(e) => {
            eprintln!("xen-http: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok = |cmd: &str| tb.ok(cmd).unwrap_or_else(|e| panic!("{e}"));
    ok("wrk --version | head -n 1");
    // ARP probes 50 ms apart, not 1 s: a poll that reaches a domU before its network
    // is up would otherwise wait seconds for the next probe, and the first-200 figure
    // would count dom0's ARP timer.
    ok("echo 50 > /proc/sys/net/ipv4/neigh/xenbr0/retrans_time_ms");
    let chameleon =
        |name, kind, ip| Domu::image(name, "httpd", kind).vif(true).extra(&format!("ip={ip}/24 log=warn"));
    // 128 MiB each (Linux needs more than 64), one vCPU; 640 of Xen's 754 MiB free.
    let guests = [
        ("chameleon httpd PV", "10.0.9.10", chameleon("web-pv", DomuType::Pv, "10.0.9.10")),
        ("chameleon httpd PVH", "10.0.9.11", chameleon("web-pvh", DomuType::Pvh, "10.0.9.11")),
        (
            "linux busybox httpd PV",
            "10.0.9.12",
            Domu::linux_site("web-busybox", DomuType::Pv, "10.0.9.12/24"),
        ),
        ("linux nginx PV", "10.0.9.13", Domu::linux_nginx("web-nginx", DomuType::Pv, "10.0.9.13/24")),
        ("linux nginx PVH", "10.0.9.14", Domu::linux_nginx("web-nginx-pvh", DomuType::Pvh, "10.0.9.14/24")),
    ];
    // Start times: every guest created, timed to its first 200 and destroyed, `rounds`
    // times with each hotplug script, guests taking turns. Debian's vif-bridge is what
    // a stock dom0 runs; the lean script shows the guests' part without bash's.
    let scripts = [("vif-bridge", None), ("vif-lean", Some("vif-lean"))];
    // [script][guest] -> one FirstPage per round
    let mut starts = vec![vec![Vec::new(); guests.len()]; scripts.len()];
    for round in 0..rounds {
        for (s, (script_name, script)) in scripts.iter().enumerate() {
            for (g, (label, ip, domu)) in guests.iter().enumerate() {
                let domu = match script {
                    Some(name) => domu.clone().vif_script(name),
                    None => domu.clone(),
                };
                let url = format!("http://{ip}/");
                // A guest's address comes back in the next round with another MAC:
                // dom0 must ask afresh, not wait out an old neighbour entry.
                ok("ip neigh flush dev xenbr0");
                let first = tb
                    .create_until_page(&domu, &url, Duration::from_secs(180))
                    .unwrap_or_else(|e| panic!("{e}"));
                let page = tb.fetch(&url).unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
                assert!(
                    page.contains("It works: Chameleon is serving"),
                    "{label} serves another page: {page}"
                );
                eprintln!(
                    "xen-http: start round {} {script_name} {label}: xl create {:.2} s, first 200 {:.2} s",
                    round + 1,
                    first.create.as_secs_f64(),
                    first.page.as_secs_f64()
                );
                starts[s][g].push(first);
                tb.destroy(domu.name()).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    for (label, ip, domu) in &guests {
        let url = format!("http://{ip}/");
        tb.create_until_page(&domu.clone().vif_script("vif-lean"), &url, Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("xen-http: {label} up");
    }
    // Each domain's CPU seconds (xl list) around a run show which side was busy.
    let cpu = |name: &str| tb.domain(name).ok().flatten().map_or(f64::NAN, |d| d.cpu_seconds);
    let busy = |before: &[f64], after: &[f64], t0: Instant| -> Vec<f64> {
        let wall = t0.elapsed().as_secs_f64();
        before.iter().zip(after).map(|(b, a)| 100.0 * (a - b) / wall).collect()
    };
    let names: Vec<&str> = guests.iter().map(|(_, _, d)| d.name()).collect();
    let (before, t0) = (names.iter().map(|n| cpu(n)).collect::<Vec<_>>(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let idle = busy(&before, &names.iter().map(|n| cpu(n)).collect::<Vec<_>>(), t0);

    let connections = [1, 16];
    // [guest][connections] -> one (wrk, dom0 %, domU %) per round
    let mut samples = vec![vec![Vec::new(); connections.len()]; guests.len()];
    for round in 0..rounds {
        for (g, (label, ip, domu)) in guests.iter().enumerate() {
            for (i, c) in connections.iter().enumerate() {
                // The port spelled out: dom0 has no /etc/services for wrk to look "http" up in.
                let cmd = format!("wrk -t1 -c{c} -d{secs}s --latency http://{ip}:80/");
                let (before, t0) = ([cpu("Domain-0"), cpu(domu.name())], Instant::now());
                let out = tb
                    .run_for(&cmd, Duration::from_secs(u64::from(secs) + 60))
                    .unwrap_or_else(|e| panic!("{e}"));
                let load = busy(&before, &[cpu("Domain-0"), cpu(domu.name())], t0);
                assert!(out.success(), "{cmd}: {}", out.text);
                let r = parse_wrk(&out.text);
                eprintln!(
                    "xen-http: round {} {label} -c{c}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, dom0 {:.0}%, domU {:.0}%",
                    round + 1,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    load[0],
                    load[1]
                );
                samples[g][i].push((r, load[0], load[1]));
            }
        }
    }
    for name in &names {
        tb.destroy(name).unwrap_or_else(|e| panic!("{e}"));
    }

    println!(
        "xen-http: wrk in dom0 against the default 612-byte page, {secs} s per run, median of {rounds} \
         rounds (guests taking turns); Xen 4.17, Linux 6.1 PV dom0, QEMU TCG"
    );
    println!("dom0%, domU%: each domain's CPU over the run, in % of one vCPU (xl list's CPU seconds)");
    println!(
        "{:<23} {:<5} {:>7} {:>13} {:>7} {:>8} {:>6} {:>6} {:>6}",
        "guest", "mode", "req/s", "req/s range", "p50 ms", "p99 ms", "errors", "dom0%", "domU%"
    );
    let median = |v: Vec<f64>| stats(v).median;
    // Per guest and connection count: the median and the best round's req/s.
    let mut rps = vec![[(0.0, 0.0); 2]; guests.len()];
    for (g, (label, _, _)) in guests.iter().enumerate() {
        for (i, c) in connections.iter().enumerate() {
            let runs = &samples[g][i];
            let col = |f: &dyn Fn(&(WrkResult, f64, f64)) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
            let r = stats(col(&|s| s.0.rps));
            rps[g][i] = (r.median, r.max);
            println!(
                "{:<23} {:<5} {:>7.0} {:>13} {:>7.2} {:>8.2} {:>6} {:>6.0} {:>6.0}",
                label,
                format!("-c{c}"),
                r.median,
                format!("{:.0}-{:.0}", r.min, r.max),
                median(col(&|s| s.0.p50_ms)),
                median(col(&|s| s.0.p99_ms)),
                runs.iter().map(|s| s.0.errors).sum::<u64>(),
                median(col(&|s| s.1)),
                median(col(&|s| s.2)),
            );
        }
    }
    // Medians over the rounds: [script][guest] -> (xl create, first 200, after create)
    let start_medians: Vec<Vec<(f64, f64, f64)>> = starts
        .iter()
        .map(|per_guest| {
            per_guest
                .iter()
                .map(|runs| {
                    let col = |f: &dyn Fn(&FirstPage) -> Duration| {
                        median(runs.iter().map(|r| f(r).as_secs_f64()).collect())
                    };
                    (col(&|r| r.create), col(&|r| r.page), col(&|r| r.page - r.create))
                })
                .collect()
        })
        .collect();
    println!(
        "\nstarts: from the start of `xl create`, by dom0's clock; medians of {rounds} per guest and script"
    );
    println!(
        "{:<23} {:<10} {:>10} {:>10} {:>14} {:>10}",
        "guest", "vif script", "xl create", "first 200", "after create", "idle CPU%"
    );
    for (s, (script_name, _)) in scripts.iter().enumerate() {
        for (g, (label, _, _)) in guests.iter().enumerate() {
            let (create, page, after) = start_medians[s][g];
            println!(
                "{label:<23} {script_name:<10} {create:>8.2} s {page:>8.2} s {after:>12.2} s {:>10.1}",
                idle[g]
            );
        }
    }
    println!();
    for ours in 0..2 {
        for linux in 2..guests.len() {
            let ratio = |i: usize| {
                let ((a, a_best), (b, b_best)) = (rps[ours][i], rps[linux][i]);
                format!("{:.1}x (best rounds {:.1}x)", a / b, a_best / b_best)
            };
            let sooner = |s: usize| {
                let (ours, linux) = (start_medians[s][ours], start_medians[s][linux]);
                format!("{:.1}x ({:.0}x after create)", linux.1 / ours.1, linux.2 / ours.2)
            };
            println!(
                "ratio {} / {}: req/s -c1 {}, -c16 {}; first 200 sooner: {} with {}, {} with {}",
                guests[ours].0,
                guests[linux].0,
                ratio(0),
                ratio(1),
                sooner(0),
                scripts[0].0,
                sooner(1),
                scripts[1].0,
            );
        }
    }
    ExitCode::SUCCESS
}

/// Waits until the guest's Redis server answers PING (each try gives up fast: QEMU's
/// user network accepts before the guest listens, see `first_200`).
fn first_pong(target: &Target, started: Instant, limit: Duration) -> Option<Duration> {
    use std::io::{Read, Write};
    while started.elapsed() < limit {
        let answered = match target {
            Target::Port(port) => std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok_and(|mut s| {
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                let mut buf = [0u8; 7];
                s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf).is_ok_and(|n| n == 7 && &buf == b"+PONG\r\n")
            }),
            // A guest that is not up yet may not answer a SYN: each try is cut short.
            Target::Namespace(_) => target.pings(Duration::from_secs(1)),
        };
        if answered {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// What one `redis-benchmark --csv` run gave.
struct BenchmarkRun {
    /// The tests it reported, with their requests per second.
    rows: Vec<(String, f64)>,
    /// Its exit status and last lines, when its output holds an error or it was stopped.
    failure: Option<String>,
    /// It was stopped because the server stopped answering PING on new connections.
    stalled: bool,
}

/// Runs `redis-benchmark --csv ARGS` against `target`, stopping it after `limit` or once
/// the server has not answered a PING on a new connection three times in a row, 10 s
/// apart. (QEMU 7.2's virtio-net can stop delivering to a Linux guest under load with
/// receive buffers posted, waiting for a notification the guest never sends; the guest
/// then answers nothing, and redis-benchmark would wait for ever.)
fn redis_benchmark(target: &Target, limit: Duration, args: &[&str]) -> BenchmarkRun {
    use std::io::Read;
    let mut child = target
        .redis_within(limit, "redis-benchmark")
        .arg("--csv")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("redis-benchmark runs (apt-get install redis-tools)");
    // Read while it runs, so a full pipe never holds it up.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let (mut silent, mut next_probe, mut stalled) = (0, Instant::now() + Duration::from_secs(10), false);
    let status = loop {
        if let Some(status) = child.try_wait().expect("redis-benchmark's status") {
            break status;
        }
        if Instant::now() >= next_probe {
            silent = if target.pings(Duration::from_secs(5)) { 0 } else { silent + 1 };
            next_probe = Instant::now() + Duration::from_secs(10);
            if silent == 3 {
                stalled = true;
                // `timeout` passes a TERM on to redis-benchmark (a KILL would leave it
                // running, holding the pipes).
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                break child.wait().expect("redis-benchmark's status");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    let rows = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(',').map(|f| f.trim_matches('"'));
            let (name, rps) = (fields.next()?, fields.next()?.parse().ok()?);
            Some((name.to_owned(), rps))
        })
        .collect();
    let failed = stalled
        || !status.success()
        || text.contains("ERR")
        || text.contains("Error")
        || text.contains("OOM");
    let lines: Vec<&str> = text.lines().collect();
    let failure = failed.then(|| {
        let why = if stalled { "stopped: the server answers no PING" } else { "ended" };
        format!("{why} ({status}); it printed:\n{}", lines[lines.len().saturating_sub(10)..].join("\n"))
    });
    BenchmarkRun { rows, failure, stalled }
}

/// A Redis INFO field through redis-cli.
fn info_field(target: &Target, field: &str) -> Option<u64> {
    let out = target.redis("redis-cli").args(["INFO", "memory"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok())
}

/// `keys` SETs of 16-byte names and 32-byte values as RESP, for `redis-cli --pipe`.
fn key_load(path: &Path, keys: u32) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the key load"));
    for i in 0..keys {
        write!(out, "*3\r\n$3\r\nSET\r\n$16\r\nkey:{i:012}\r\n$32\r\n{i:032}\r\n").unwrap();
    }
    out.flush().unwrap();
}

/// Bytes of `used_memory` per key after loading `load` (`keys` keys) into an empty server.
fn memory_per_key(target: &Target, load: &Path, keys: u32) -> Option<f64> {
    let before = info_field(target, "used_memory")?;
    let out = target.redis("redis-cli").arg("--pipe").stdin(std::fs::File::open(load).ok()?).output().ok()?;
    let report = String::from_utf8_lossy(&out.stdout);
    if !report.contains(&format!("errors: 0, replies: {keys}")) {
        eprintln!("bench kv: loading the keys failed: {report}");
        return None;
    }
    let after = info_field(target, "used_memory")?;
    Some(after.saturating_sub(before) as f64 / f64::from(keys))
}

/// How many times `bench kv` boots a guest again after it stopped answering.
const MAX_RESTARTS: usize = 3;

/// A guest of `bench kv`: where it is reached, how it was started (to boot it again), its
/// namespace (dropped after the guest) and the running QEMU.
struct KvGuest {
    name: &'static str,
    target: Target,
    vm: Vm,
    run: tests::Running,
    // Declared after `run`, so the namespace goes after QEMU.
    _ns: Option<Namespace>,
    restarts: usize,
}

impl KvGuest {
    fn boot(name: &'static str, vm: Vm, target: Target, ns: Option<Namespace>) -> Result<KvGuest, String> {
        let run = Self::start(name, &vm, &target)?;
        Ok(KvGuest { name, target, vm, run, _ns: ns, restarts: 0 })
    }

    /// Kills QEMU and boots the guest again, on the same port or namespace.
    fn reboot(&mut self) -> Result<(), String> {
        self.run.kill();
        self.run = Self::start(self.name, &self.vm, &self.target)?;
        self.restarts += 1;
        Ok(())
    }

    /// Spawns `vm` and waits until it answers PING.
    fn start(name: &str, vm: &Vm, target: &Target) -> Result<tests::Running, String> {
        let mut run = vm.clone().spawn().map_err(|e| e.to_string())?;
        if first_pong(target, run.started, Duration::from_secs(120)).is_none() {
            return Err(format!("{name} does not answer PING; its console:\n{}", run.console_tail(40)));
        }
        Ok(run)
    }
}

/// kv vs Debian's redis-server in a Linux guest (Debian's cloud kernel, small
/// initramfs, no persistence), both under QEMU TCG with 512 MiB, on QEMU's user network
/// or (`tap`) each on a tap device in a network namespace of its own:
/// `redis-benchmark -t set,get,incr,lpush,lpop -n REQUESTS` at `-c 1`, `-c 8` and
/// `-c 8 -P 16`. Both guests run at once, and each round runs every mode against one
/// then the other (the order alternating between rounds), so that the machine's changing
/// load falls on both alike; each test's figure is its median over the rounds. Then
/// `used_memory` per key for `keys` keys of 16-byte names and 32-byte values; then the
/// smallest `-m` with which kv serves the pipelined benchmark.
fn kv(requests: u32, keys: u32, rounds: usize, tap: bool) -> ExitCode {
    require_qemu();
    let kv = build_app("kv");
    let root = tests::workspace_root();
    let linux_dir = root.join("target/bench-linux");
    let status =
        Command::new(root.join("benches/linux-guest.sh")).arg(&linux_dir).status().expect("linux-guest.sh");
    assert!(status.success(), "building the Linux guest failed");
    let load = root.join("target/bench-kv-keys.resp");
    if keys > 0 {
        key_load(&load, keys);
    }
    const MEMORY_MIB: u32 = 512;
    let (kv_ip, linux_ip) = match tap {
        true => (format!("ip={}/24", Namespace::GUEST_IP), format!(" guest_ip={}/24", Namespace::GUEST_IP)),
        false => ("ip=10.0.2.15/24 gw=10.0.2.2".to_owned(), String::new()),
    };
    let guests: [(&str, Vm); 2] = [
        (
            "chameleon kv",
            Vm::new(&kv).memory_mib(MEMORY_MIB).cmdline(format!("log=warn {kv_ip} -- maxmemory=400mb")),
        ),
        (
            "linux redis-server",
            Vm::new(linux_dir.join("vmlinuz"))
                .memory_mib(MEMORY_MIB)
                .cmdline(format!("console=ttyS0 quiet server=redis{linux_ip}"))
                .arg("-initrd")
                .arg(linux_dir.join("initrd.cpio.gz").to_string_lossy()),
        ),
    ];
    let mut running: Vec<KvGuest> = Vec::new();
    for (i, (name, vm)) in guests.into_iter().enumerate() {
        let (vm, target, ns) = if tap {
            let ns = namespace(&format!("chmkv{i}-"));
            (ns.wrap(vm).net(Net::Tap), Target::Namespace(ns.name().to_owned()), Some(ns))
        } else {
            let port = free_port();
            (vm.net(Net::User { host_port: port, guest_port: 6379 }), Target::Port(port), None)
        };
        let vm = vm.verbose(false).timeout(Duration::from_secs(3 * 3600));
        eprintln!("$ {}", vm.command_line());
        match KvGuest::boot(name, vm, target, ns) {
            Ok(guest) => running.push(guest),
            Err(e) => {
                eprintln!("bench kv: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let n = requests.to_string();
    // Far beyond the slowest run seen (Redis at -c 1 over the user network: five tests
    // of 100,000 requests at 2,200 req/s or more, under 4 minutes), scaled with -n.
    let benchmark_limit = Duration::from_secs(600 + u64::from(requests) / 100);
    let modes: [(&str, Vec<&str>); 3] =
        [("-c 1", vec!["-c", "1"]), ("-c 8", vec!["-c", "8"]), ("-c 8 -P 16", vec!["-c", "8", "-P", "16"])];
    let tests = ["SET", "GET", "INCR", "LPUSH", "LPOP"];
    // req/s per round, per guest, mode and test.
    let mut rps = vec![vec![vec![Vec::new(); tests.len()]; modes.len()]; running.len()];
    for round in 0..rounds {
        for (m, (mode, args)) in modes.iter().enumerate() {
            let mut all = vec!["-t", "set,get,incr,lpush,lpop", "-n", &n];
            all.extend_from_slice(args);
            for turn in 0..running.len() {
                let g = (turn + round) % running.len();
                let name = running[g].name;
                eprintln!(
                    "bench kv: round {}/{rounds}: {name}: redis-benchmark {}",
                    round + 1,
                    all.join(" ")
                );
                let mut run = redis_benchmark(&running[g].target, benchmark_limit, &all);
                // A guest that stopped answering is booted again and the test repeated
                // (a few times at most), and the summary says so.
                while run.stalled && running[g].restarts < MAX_RESTARTS {
                    eprintln!(
                        "bench kv: {name} {mode}: stopped answering; booting it again. {}\n--- its console, last \
                         lines ---\n{}",
                        run.failure.as_deref().unwrap_or_default(),
                        running[g].run.console_tail(20)
                    );
                    if let Err(e) = running[g].reboot() {
                        eprintln!("bench kv: {e}");
                        return ExitCode::FAILURE;
                    }
                    run = redis_benchmark(&running[g].target, benchmark_limit, &all);
                }
                let rows = run.rows;
                if run.failure.is_some() || rows.len() != tests.len() {
                    // Returning (not panicking: release builds abort) drops the guests
                    // and their namespaces; their consoles say what went wrong.
                    eprintln!(
                        "bench kv: {name} {mode}: redis-benchmark failed: {rows:?}, {}",
                        run.failure.unwrap_or_default()
                    );
                    for guest in &mut running {
                        eprintln!(
                            "--- {}: console, last lines ---\n{}\n--- QEMU's stderr ---\n{}",
                            guest.name,
                            guest.run.console_tail(40),
                            guest.run.qemu_stderr()
                        );
                    }
                    return ExitCode::FAILURE;
                }
                for (t, (test, value)) in rows.iter().enumerate() {
                    assert_eq!(test, tests[t], "redis-benchmark's tests in their usual order");
                    rps[g][m][t].push(*value);
                }
            }
        }
    }
    let per_key: Vec<Option<f64>> = running
        .iter()
        .map(|guest| {
            (keys > 0)
                .then(|| {
                    let _ = guest.target.redis("redis-cli").arg("FLUSHALL").output();
                    eprintln!("bench kv: {}: loading {keys} keys", guest.name);
                    memory_per_key(&guest.target, &load, keys)
                })
                .flatten()
        })
        .collect();
    let names: Vec<&str> = running.iter().map(|guest| guest.name).collect();
    let restarts: Vec<usize> = running.iter().map(|guest| guest.restarts).collect();
    drop(running);
    let network = if tap { "tap devices in network namespaces" } else { "user network" };
    println!(
        "kv: redis-benchmark -t set,get,incr,lpush,lpop -n {requests}, QEMU TCG, -m {MEMORY_MIB}, {network}, \
         {rounds} rounds, both guests up, turns alternating"
    );
    for (name, n) in names.iter().zip(&restarts).filter(|(_, n)| **n > 0) {
        println!("{name}: stopped answering and was booted again {n} time(s); its tests were repeated");
    }
    println!("{:<20} {:<12} {:>8} {:>12}   each round", "guest", "mode", "test", "median req/s");
    for (g, name) in names.iter().enumerate() {
        for (m, (mode, _)) in modes.iter().enumerate() {
            for (t, test) in tests.iter().enumerate() {
                let each: Vec<String> = rps[g][m][t].iter().map(|v| format!("{v:.0}")).collect();
                let median = stats(rps[g][m][t].clone()).median;
                println!("{name:<20} {mode:<12} {test:>8} {median:>12.0}   {}", each.join(" "));
            }
        }
    }
    for (m, (mode, _)) in modes.iter().enumerate() {
        let ratios: Vec<String> = tests
            .iter()
            .enumerate()
            .map(|(t, test)| {
                let median = |g: usize| stats(rps[g][m][t].clone()).median;
                let lowest =
                    (0..rounds).map(|r| rps[0][m][t][r] / rps[1][m][t][r]).fold(f64::INFINITY, f64::min);
                format!("{test} {:.1}x (lowest round {lowest:.1}x)", median(0) / median(1))
            })
            .collect();
        println!("ratio {}/{} median req/s, {mode}: {}", names[0], names[1], ratios.join(", "));
    }
    if let [Some(a), Some(b)] = per_key[..] {
        println!(
            "used_memory per key ({keys} keys, 16-byte names, 32-byte values): kv {a:.1} B, redis {b:.1} B"
        );
    }
    // The smallest guest that serves the pipelined benchmark without an error (over the
    // user network: the figure is about memory).
    for mib in [3u32, 4, 5, 6, 8, 10, 12, 16, 24, 32] {
        let port = free_port();
        let vm = Vm::new(&kv)
            .memory_mib(mib)
            .cmdline("log=warn ip=10.0.2.15/24 gw=10.0.2.2")
            .net(Net::User { host_port: port, guest_port: 6379 })
            .verbose(false)
            .timeout(Duration::from_secs(1800));
        let target = Target::Port(port);
        let Ok(run) = vm.spawn() else { continue };
        if first_pong(&target, run.started, Duration::from_secs(60)).is_none() {
            println!("kv -m {mib}: does not boot or serve");
            continue;
        }
        let BenchmarkRun { rows, failure: failed, .. } = redis_benchmark(
            &target,
            benchmark_limit,
            &["-t", "set,get,incr,lpush,lpop", "-n", &n, "-c", "8", "-P", "16"],
        );
        drop(run);
        if failed.is_some() || rows.len() != tests.len() {
            let last = failed.as_deref().and_then(|why| why.lines().last()).unwrap_or_default();
            println!("kv -m {mib}: the benchmark failed ({} of {} tests): {last}", rows.len(), tests.len());
            continue;
        }
        println!(
            "kv -m {mib}: serves redis-benchmark -c 8 -P 16 -n {requests} (the smallest tried that does)"
        );
        break;
    }
    ExitCode::SUCCESS
}

//! httpd over virtio-net and QEMU's user network, with curl and raw TCP clients.

use std::io::{Read, Write};
use std::net::{TcpListener as HostListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{Running, Vm, workspace_root};

/// A host port nobody listens on right now.
fn free_port() -> u16 {
    HostListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    run: Running,
    port: u16,
}

/// Boots httpd with `device` as its NIC and waits until it has an address.
fn boot(cmdline: &str, device: &str, machine: &str) -> Server {
    let port = free_port();
    let vm = Vm::app("httpd")
        .machine(machine)
        .cmdline(cmdline)
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80"))
        .arg("-device")
        .arg(device)
        .timeout(Duration::from_secs(180));
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("httpd: listening on port 80").expect("httpd listens");
    if !cmdline.contains("ip=") {
        run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP lease");
    }
    Server { run, port }
}

fn boot_default() -> Server {
    boot("", "virtio-net-pci,netdev=n0", "pc")
}

fn site() -> PathBuf {
    workspace_root().join("apps/httpd/site")
}

fn curl(port: u16, path: &str, extra: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "20", "-D", "-", "-o", "-"])
        .args(extra)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs (apt-get install curl)");
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    (String::from_utf8_lossy(&raw[..split]).into_owned(), raw[split..].to_vec())
}

/// Sends raw bytes, returns everything until the server closes (or 10 s pass).
fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { files(&p, out) } else { out.push(p) }
    }
}

#[test]
fn serves_every_file_byte_for_byte() {
    let srv = boot_default();
    let mut all = Vec::new();
    files(&site(), &mut all);
    assert!(all.len() >= 4);
    for path in all {
        let url = format!("/{}", path.strip_prefix(site()).unwrap().display());
        let (head, body) = curl(srv.port, &url, &[]);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{url}: {head}");
        assert_eq!(body, std::fs::read(&path).unwrap(), "{url}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        assert!(head.contains("Date: "), "{head}");
    }
    let (head, body) = curl(srv.port, "/", &[]);
    assert!(head.contains("Content-Type: text/html; charset=utf-8"));
    assert_eq!(body.len(), 612);
    let (head, _) = curl(srv.port, "/logo.png", &[]);
    assert!(head.contains("Content-Type: image/png"));
}

#[test]
fn head_404_405_400_431() {
    let srv = boot_default();
    let reply = raw(srv.port, b"HEAD /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.contains("Content-Length: 612"), "{reply}");
    assert!(reply.ends_with("\r\n\r\n"), "HEAD must send no body: {reply}");
    let (head, _) = curl(srv.port, "/missing.html", &[]);
    assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{head}");
    let (head, _) = curl(srv.port, "/../etc/passwd", &["--path-as-is"]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = curl(srv.port, "/", &["-X", "DELETE"]);
    assert!(head.starts_with("HTTP/1.1 405") && head.contains("Allow: GET, HEAD"), "{head}");
    let reply = raw(srv.port, b"THIS IS NOT HTTP\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request"), "{reply}");
    let reply = raw(srv.port, &[0x16, 0x03, 0x01, 0x02, 0x00, 0xff, 0xfe]);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.resize(64 * 1024, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    let reply = raw(srv.port, &big);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    let reply = raw(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // And it still serves.
    let (head, _) = curl(srv.port, "/", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
}

#[test]
fn idle_connection_gets_408() {
    let srv = boot("-- idle=1", "virtio-net-pci,netdev=n0", "pc");
    let start = Instant::now();
    let reply = raw(srv.port, b"GET / HT");
    assert!(reply.starts_with("HTTP/1.1 408 Request Timeout"), "{reply}");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

#[test]
fn keep_alive_and_pipelining() {
    let srv = boot_default();
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let one = b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut three = Vec::new();
    for _ in 0..3 {
        three.extend_from_slice(one);
    }
    s.write_all(&three).unwrap();
    let css = std::fs::read(site().join("style.css")).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(css.len()).filter(|w| *w == css.as_slice()).count() < 3 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got).matches("HTTP/1.1 200 OK").count(), 3);
}

/// 200 keep-alive connections, opened in batches (QEMU's hostfwd listens with a
/// backlog of 1), each fetching the page 50 times.
#[test]
fn two_hundred_keep_alive_clients() {
    let srv = boot_default();
    let port = srv.port;
    let page = std::fs::read(site().join("index.html")).unwrap();
    let mut threads = Vec::new();
    for batch in 0..20 {
        for _ in 0..10 {
            let page = page.clone();
            threads.push(std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                for _ in 0..50 {
                    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !got.ends_with(&page) {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0);
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
                }
            }));
        }
        let _ = batch;
        std::thread::sleep(Duration::from_millis(50));
    }
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn legacy_virtio_with_static_address() {
    let srv = boot("ip=10.0.2.15/24 gw=10.0.2.2", "virtio-net-pci,netdev=n0,disable-modern=on", "pc");
    let (head, body) = curl(srv.port, "/", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body.len(), 612);
    assert!(srv.run.lines.iter().any(|l| l.text.contains("virtio-net (legacy PCI)")));
    assert!(srv.run.lines.iter().any(|l| l.text.contains("ip 10.0.2.15/24 gw Some([10, 0, 2, 2]) (static)")));
}

#[test]
fn modern_only_virtio_on_q35() {
    let srv = boot("", "virtio-net-pci,netdev=n0,disable-legacy=on", "q35");
    let (head, _) = curl(srv.port, "/docs/about.html", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert!(srv.run.lines.iter().any(|l| l.text.contains("virtio-net (modern PCI)")));
    // q35 has an MCFG: configuration space goes through ECAM, not the legacy ports.
    assert!(srv.run.lines.iter().any(|l| l.text.contains("pci: ECAM at 0xb0000000")));
}

#[test]
fn microvm_legacy_mmio_found_through_acpi() {
    let srv = boot("", "virtio-net-device,netdev=n0", "microvm");
    let (head, body) = curl(srv.port, "/big.txt", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, std::fs::read(site().join("big.txt")).unwrap());
    assert!(srv.run.lines.iter().any(|l| l.text.contains("virtio-net (legacy MMIO)")));
}

#[test]
fn microvm_modern_mmio_from_the_command_line() {
    // Without ACPI, QEMU appends `virtio_mmio.device=...` to the command line.
    let port = free_port();
    let vm = Vm::app("httpd")
        .machine("microvm,acpi=off")
        .arg("-global")
        .arg("virtio-mmio.force-legacy=false")
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80"))
        .arg("-device")
        .arg("virtio-net-device,netdev=n0")
        .timeout(Duration::from_secs(120));
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("virtio_mmio.device=").expect("QEMU passes the device on the command line");
    run.wait_for("net: virtio-net (MMIO)").expect("modern MMIO transport");
    run.wait_for("net: DHCP gave ip").expect("DHCP");
    let (head, body) = curl(port, "/logo.png", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, std::fs::read(site().join("logo.png")).unwrap());
}

/// Hostile clients: a slow one (a byte every 0.7 s), silent connections, binary
/// garbage and a 1 MiB request line. Others keep being served, and once the hostile
/// connections are gone the heap is back near where it was.
#[test]
fn hostile_clients_do_not_stop_service_or_leak() {
    let mut srv = boot("log=debug -- idle=3", "virtio-net-pci,netdev=n0", "pc");
    let port = srv.port;
    // Warm up: one full connection, then note the heap once it is reaped.
    let _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = srv.run.wait_for("; heap ");
    let idle = srv.run.heap_figure().expect("a heap figure");

    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for b in b"GET / H" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(700));
        }
    });
    // QEMU's hostfwd accepts with a backlog of 1 (every third connect waits out a SYN
    // retransmit), so the burst of silent connections stays small.
    let silent: Vec<TcpStream> =
        (0..12).filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    let reply = raw(port, &[0u8, 0xff, 0x13, 0x37, b'\r', b'\n', b'\r', b'\n']);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let mut huge = b"GET /".to_vec();
    huge.resize(1 << 20, b'a');
    let reply = raw(port, &huge);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    for _ in 0..20 {
        let (head, body) = curl(port, "/", &[]);
        assert!(head.starts_with("HTTP/1.1 200") && body.len() == 612);
    }
    drop(silent);
    slow.join().unwrap();
    // Idle connections time out after 3 s; give the reaper a moment after that.
    std::thread::sleep(Duration::from_secs(5));
    let _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::thread::sleep(Duration::from_secs(1));
    let after = srv.run.heap_figure().expect("a heap figure");
    assert!(after <= idle + 128 * 1024, "heap {idle} bytes idle, {after} after the hostile clients");
}

/// Without MSI-X the card's INTx line is used: on QEMU's pc machine the firmware routes
/// it to IRQ 10, which the MADT overrides to a level-triggered, active-high GSI.
#[test]
fn card_without_msix_uses_its_intx_line() {
    let srv = boot("ip=10.0.2.15/24 gw=10.0.2.2", "virtio-net-pci,netdev=n0,vectors=0", "pc");
    assert!(
        srv.run
            .lines
            .iter()
            .any(|l| l.text.contains("virtio-net (modern PCI) at 00:02.0, GSI 10 (level, active high)")),
        "no INTx line in the log"
    );
    let (head, body) = curl(srv.port, "/big.txt", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, std::fs::read(site().join("big.txt")).unwrap());
}

//! httpd over vmxnet3 (QEMU's `-device vmxnet3`) on `-M pc` and QEMU's user network:
//! every site file byte for byte, a 404, keep-alive; once with `pv=vmware`, so the
//! kernel also takes the VMware backend it would pick on ESXi.

use std::io::{Read, Write};
use std::net::{TcpListener as HostListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tests::{Running, Vm, workspace_root};

fn free_port() -> u16 {
    HostListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    run: Running,
    port: u16,
}

/// Boots httpd with only a vmxnet3 card and waits for its DHCP lease.
fn boot(cmdline: &str) -> Server {
    boot_with(cmdline, &[])
}

fn boot_with(cmdline: &str, args: &[&str]) -> Server {
    let port = free_port();
    let mut vm = Vm::app("httpd")
        .machine("pc")
        .cmdline(cmdline)
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80"))
        .arg("-device")
        .arg("vmxnet3,netdev=n0")
        .timeout(Duration::from_secs(180));
    for arg in args {
        vm = vm.arg(*arg);
    }
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("httpd: listening on port 80").expect("httpd listens");
    run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP lease");
    assert!(
        run.lines.iter().any(|l| l.text.contains("net: vmxnet3 at 00:02.0, MSI-X")),
        "the vmxnet3 card is found and signals through MSI-X"
    );
    Server { run, port }
}

fn site() -> PathBuf {
    workspace_root().join("apps/httpd/site")
}

fn curl(port: u16, path: &str) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "20", "-D", "-", "-o", "-"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs (apt-get install curl)");
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    (String::from_utf8_lossy(&raw[..split]).into_owned(), raw[split..].to_vec())
}

fn files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { files(&p, out) } else { out.push(p) }
    }
}

fn serves_the_site(srv: &Server) {
    let mut all = Vec::new();
    files(&site(), &mut all);
    assert!(all.len() >= 4);
    for path in all {
        let url = format!("/{}", path.strip_prefix(site()).unwrap().display());
        let (head, body) = curl(srv.port, &url);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{url}: {head}");
        assert_eq!(body, std::fs::read(&path).unwrap(), "{url}");
    }
    let (head, _) = curl(srv.port, "/missing.html");
    assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{head}");
}

/// Three pipelined requests on one connection, then three more on the same one.
fn keep_alive(srv: &Server) {
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let css = std::fs::read(site().join("style.css")).unwrap();
    for _ in 0..2 {
        s.write_all(&b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.windows(css.len()).filter(|w| *w == css.as_slice()).count() < 3 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&got).matches("HTTP/1.1 200 OK").count(), 3);
    }
}

#[test]
fn httpd_over_vmxnet3() {
    let srv = boot("");
    serves_the_site(&srv);
    keep_alive(&srv);
}

#[test]
fn httpd_over_vmxnet3_with_the_vmware_backend() {
    let srv = boot("pv=vmware");
    assert!(srv.run.lines.iter().any(|l| l.text.contains("backend=vmware")), "the VMware backend is chosen");
    serves_the_site(&srv);
    keep_alive(&srv);
}

/// QEMU's `set_link` raises the card's link event: the kernel sees the link go down
/// (ECR, then GET_LINK) and come back, and serves again.
#[test]
fn link_events_follow_the_host() {
    let sock = std::env::temp_dir().join(format!("chameleon-vmxnet3-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let monitor = format!("unix:{},server=on,wait=off", sock.display());
    let mut srv = boot_with("", &["-monitor", &monitor]);
    let mut hmp = std::os::unix::net::UnixStream::connect(&sock).expect("QEMU's monitor");
    hmp.write_all(b"set_link n0 off\n").unwrap();
    srv.run.wait_for("net: link down").expect("the link goes down");
    hmp.write_all(b"set_link n0 on\n").unwrap();
    srv.run.wait_for("net: link up").expect("the link comes back");
    let (head, _) = curl(srv.port, "/");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let _ = std::fs::remove_file(&sock);
}

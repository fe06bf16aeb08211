//! httpd on Intel's e1000 family: the 82540EM (`-device e1000`, QEMU's default card on
//! `-M pc`) and the 82574L (`-device e1000e`, the default on `-M q35`), and a boot with
//! nothing but `-nic user,...`, QEMU's default card for the machine.

use std::io::Write;
use std::time::Duration;

use tests::site::{self, curl, free_port};
use tests::{Running, Vm};

struct Server {
    run: Running,
    port: u16,
}

impl Server {
    fn logged(&self, text: &str) -> bool {
        self.run.lines.iter().any(|l| l.text.contains(text))
    }
}

/// Boots httpd on `machine` with `nic` (QEMU arguments naming the host port with
/// `{port}`) and waits for its DHCP lease.
fn boot(machine: &str, nic: &[&str]) -> Server {
    let port = free_port();
    let mut vm = Vm::app("httpd").machine(machine).timeout(Duration::from_secs(180));
    for a in nic {
        vm = vm.arg(a.replace("{port}", &port.to_string()));
    }
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("httpd: listening on port 80").expect("httpd listens");
    run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP lease");
    Server { run, port }
}

fn boot_device(machine: &str, device: &str) -> Server {
    boot(machine, &["-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80", "-device", device])
}

/// Every site file byte for byte, a 404, and three pipelined requests on one
/// keep-alive connection.
fn serves_the_site(srv: &Server) {
    site::assert_served(srv.port);
    site::assert_pipelined(srv.port, 1);
}

#[test]
fn e1000_on_pc() {
    let srv = boot_device("pc", "e1000,netdev=n0");
    assert!(srv.logged("net: e1000 (82540EM) at 00:"), "the card is named in the log");
    // The 82540EM has no MSI: its INTx line, routed by the firmware.
    assert!(srv.logged(", GSI "), "INTx");
    serves_the_site(&srv);
}

#[test]
fn e1000e_on_q35() {
    let srv = boot_device("q35", "e1000e,netdev=n0");
    assert!(srv.logged("net: e1000e (82574L) at "), "the card is named in the log");
    assert!(srv.logged(", MSI"), "the 82574L signals with MSI");
    serves_the_site(&srv);
}

/// QEMU's `set_link` (from its monitor) clears the card's link bit (e1000's STATUS.LU,
/// virtio-net's config STATUS) and signals the change: the stack says so, and serves
/// again once the link is back.
#[test]
fn link_down_and_up() {
    for (machine, device) in
        [("pc", "e1000,netdev=n0"), ("q35", "e1000e,netdev=n0"), ("pc", "virtio-net-pci,netdev=n0")]
    {
        let sock =
            std::env::temp_dir().join(format!("chameleon-nics-{}-{}.sock", std::process::id(), free_port()));
        let monitor = format!("unix:{},server=on,wait=off", sock.display());
        let netdev = ["-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80"];
        let mut srv = boot(machine, &[netdev[0], netdev[1], "-device", device, "-monitor", &monitor]);
        let mut hmp = std::os::unix::net::UnixStream::connect(&sock).expect("QEMU's monitor");
        hmp.write_all(b"set_link n0 off\n").unwrap();
        srv.run.wait_for("net: link down").expect("the stack sees the link go down");
        hmp.write_all(b"set_link n0 on\n").unwrap();
        srv.run.wait_for("net: link up").expect("and come back");
        let (head, _) = curl(srv.port, "/");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{machine}: {head}");
        let _ = std::fs::remove_file(&sock);
    }
}

/// `-nic user,...` and nothing else: QEMU's default card for the machine.
#[test]
fn default_nic_on_pc_and_q35() {
    for (machine, card) in [("pc", "net: e1000 (82540EM)"), ("q35", "net: e1000e (82574L)")] {
        let srv = boot(machine, &["-nic", "user,hostfwd=tcp:127.0.0.1:{port}-:80"]);
        assert!(srv.logged(card), "{machine}: {card}");
        let (head, body) = curl(srv.port, "/");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{machine}: {head}");
        assert_eq!(body, std::fs::read(site::dir().join("index.html")).unwrap(), "{machine}");
    }
}

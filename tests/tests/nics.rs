//! Cards coming and going: link down and up on e1000 (`-device e1000`, QEMU's default
//! card on `-M pc`), e1000e (the default on `-M q35`) and virtio-net; a boot with
//! nothing but `-nic user,...`, QEMU's default card for the machine; `net.nic=` choosing
//! between two cards. (httpd and udp-echo on every card: nic_matrix.rs.)

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
    let run = vm.spawn().expect("spawn QEMU");
    up(run, port)
}

/// Waits for httpd and its DHCP lease.
fn up(mut run: Running, port: u16) -> Server {
    run.wait_for("httpd: listening on port 80").expect("httpd listens");
    run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP lease");
    Server { run, port }
}

/// QEMU's `set_link` (from its monitor) clears the card's link bit (e1000's STATUS.LU,
/// virtio-net's config STATUS) and signals the change: the stack says so, asks DHCP
/// again once the link is back, and a keep-alive connection opened before the blip
/// carries on after it.
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
        site::link_blip(&mut srv.run, &mut hmp, "n0", srv.port);
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

/// Two cards, virtio-net at 00:03.0 and an e1000 at 00:04.0, each on its own user
/// network forwarding its own host port: the stack uses the one `net.nic=` names (by
/// PCI address or MAC), else the first with its link up, and says which; the card it
/// serves on shows which it took.
#[test]
fn net_nic_chooses_among_two_cards() {
    const VIRTIO: &str = "net: using the virtio-net at 00:03.0";
    const E1000: &str = "net: using the e1000 at 00:04.0";
    // (command line, the virtio card's link at boot, what the log says, which card serves)
    let cases = [
        ("", true, VIRTIO, 0),
        ("net.nic=00:04.0", true, "net: using the e1000 at 00:04.0 (net.nic=00:04.0)", 1),
        ("net.nic=52:54:00:00:00:04", true, "(net.nic=52:54:00:00:00:04)", 1),
        ("net.nic=0000:00:03.0", true, "net: using the virtio-net at 00:03.0 (net.nic=00:03.0)", 0),
        ("", false, E1000, 1),
        ("net.nic=00:09.0", true, "`net.nic=00:09.0` names no card here", 0),
        ("net.nic=eth1", true, "`net.nic=eth1` ignored: expected a PCI address", 0),
    ];
    for (cmdline, virtio_link, logged, serving) in cases {
        let ports = [free_port(), free_port()];
        let sock = std::env::temp_dir().join(format!(
            "chameleon-nic-choice-{}-{}.sock",
            std::process::id(),
            ports[0]
        ));
        let mut vm = Vm::app("httpd").machine("pc").cmdline(cmdline).timeout(Duration::from_secs(180));
        for (i, (card, addr)) in [("virtio-net-pci", 3), ("e1000", 4)].into_iter().enumerate() {
            vm = vm
                .arg("-netdev")
                .arg(format!("user,id=n{i},hostfwd=tcp:127.0.0.1:{}-:80", ports[i]))
                .arg("-device")
                .arg(format!("{card},netdev=n{i},addr={addr:02x},mac=52:54:00:00:00:{addr:02x}"));
        }
        if !virtio_link {
            // Held before the first instruction while the monitor takes the link down.
            vm = vm.arg("-S").arg("-monitor").arg(format!("unix:{},server=on,wait=off", sock.display()));
        }
        let run = vm.spawn().expect("spawn QEMU");
        // Kept open until the boot is done: QEMU drops what a closed client sent.
        let mut monitor = None;
        if !virtio_link {
            // QEMU makes the socket shortly after it starts.
            let mut hmp = (0..100)
                .find_map(|_| {
                    std::os::unix::net::UnixStream::connect(&sock)
                        .inspect_err(|_| std::thread::sleep(Duration::from_millis(100)))
                        .ok()
                })
                .expect("QEMU's monitor");
            hmp.write_all(b"set_link n0 off\ncont\n").unwrap();
            monitor = Some(hmp);
        }
        let srv = up(run, ports[serving]);
        assert!(srv.logged(logged), "`{cmdline}`: {logged}");
        let used = if serving == 0 { VIRTIO } else { E1000 };
        assert!(srv.logged(used), "`{cmdline}`: {used}");
        let (head, body) = curl(ports[serving], "/");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "`{cmdline}`: {head}");
        assert_eq!(body, std::fs::read(site::dir().join("index.html")).unwrap(), "`{cmdline}`");
        drop(monitor);
        let _ = std::fs::remove_file(&sock);
    }
}

//! httpd over vmxnet3 (QEMU's `-device vmxnet3`) on `-M pc` and QEMU's user network
//! with `pv=vmware`, so the kernel also takes the VMware backend it would pick on ESXi
//! (every site file byte for byte, a 404, keep-alive), and its link events. (vmxnet3
//! without it, on pc and q35, MSI-X, MSI and INTx: nic_matrix.rs.)

use std::time::Duration;

use tests::site::{self, free_port};
use tests::{Running, Vm};

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

fn serves_the_site(srv: &Server) {
    site::assert_served(srv.port);
}

/// Three pipelined requests on one connection, then three more on the same one.
fn keep_alive(srv: &Server) {
    site::assert_pipelined(srv.port, 2);
}

#[test]
fn httpd_over_vmxnet3_with_the_vmware_backend() {
    let srv = boot("pv=vmware");
    assert!(srv.run.lines.iter().any(|l| l.text.contains("backend=vmware")), "the VMware backend is chosen");
    serves_the_site(&srv);
    keep_alive(&srv);
}

/// QEMU's `set_link` raises the card's link event: the kernel sees the link go down
/// (ECR, then GET_LINK) and come back, asks DHCP again, and a keep-alive connection
/// opened before the blip carries on.
#[test]
fn link_events_follow_the_host() {
    let sock = std::env::temp_dir().join(format!("chameleon-vmxnet3-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let monitor = format!("unix:{},server=on,wait=off", sock.display());
    let mut srv = boot_with("", &["-monitor", &monitor]);
    let mut hmp = std::os::unix::net::UnixStream::connect(&sock).expect("QEMU's monitor");
    site::link_blip(&mut srv.run, &mut hmp, "n0", srv.port);
    let _ = std::fs::remove_file(&sock);
}

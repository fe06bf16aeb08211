//! The UDP socket API, through the udp-echo app and QEMU's UDP port forwarding (echoes
//! over every card: nic_matrix.rs).

use std::net::UdpSocket;
use std::time::Duration;

use tests::{Vm, run_to_exit};

/// Sends `payload` to `port` until its echo comes back (UDP may drop); the echo.
fn echo(client: &UdpSocket, port: u16, payload: &[u8]) -> Option<Vec<u8>> {
    (0..10).find_map(|_| {
        client.send_to(payload, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 2048];
        client.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    })
}

#[test]
fn each_port_echoes() {
    let free = || UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (seven, nine) = (free(), free());
    let vm = Vm::app("udp-echo")
        .cmdline("-- port=7 port=9")
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=udp:127.0.0.1:{seven}-:7,hostfwd=udp:127.0.0.1:{nine}-:9"))
        .arg("-device")
        .arg("virtio-net-pci,netdev=n0")
        .timeout(Duration::from_secs(60));
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("udp-echo: listening on port 9").expect("both ports bound");
    run.wait_for("net: DHCP gave ip").expect("DHCP");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert_eq!(echo(&client, seven, b"to seven").as_deref(), Some(&b"to seven"[..]));
    assert_eq!(echo(&client, nine, b"to nine").as_deref(), Some(&b"to nine"[..]));
}

#[test]
fn a_port_bound_twice_is_refused() {
    // As TCP refuses a second listener: smoltcp would hand each datagram to one socket
    // only, so the second would never receive.
    let out = run_to_exit(
        Vm::app("udp-echo")
            .cmdline("-- port=7 port=7")
            .arg("-netdev")
            .arg("user,id=n0")
            .arg("-device")
            .arg("virtio-net-pci,netdev=n0"),
    );
    assert_eq!(out.guest_code(), Some(1), "{}", out.output());
    assert!(out.has_line("udp-echo: listening on port 7"), "{}", out.output());
    assert!(out.has_line("chameleon: app failed: udp-echo: port unavailable (port 7)"), "{}", out.output());
}

#[test]
fn udp_echo_without_a_card_fails_clearly() {
    // Without a network card the socket cannot even be bound: a clear error, exit 1.
    let out = run_to_exit(Vm::app("udp-echo").cmdline("-- count=1"));
    assert_eq!(out.guest_code(), Some(1), "{}", out.output());
    assert!(out.has_line("chameleon: app failed: udp-echo: no network device"), "{}", out.output());
}

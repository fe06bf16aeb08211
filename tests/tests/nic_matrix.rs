//! httpd and udp-echo on every network card the kernel drives, as a table: NIC model
//! (virtio-net modern and legacy on PCI, virtio-net over MMIO, vmxnet3, e1000, e1000e)
//! by machine (`pc`, `q35`; MMIO on `microvm`, where QEMU has a virtio-mmio bus), and
//! each way the card can interrupt (MSI-X, MSI, INTx: the device's offer, capped with
//! `net.irq=` where QEMU has no switch). One httpd boot per row serves every site file
//! byte-for-byte, the status codes, pipelined keep-alive requests and 200 clients at
//! once; one udp-echo boot echoes datagrams of every size up to a full frame.
//!
//! Each row is its own test, so the harness runs two at a time and names the failing
//! one.

use std::net::UdpSocket;
use std::time::Duration;

use tests::Vm;
use tests::site::{self, free_port};

/// One configuration: the machine, the card's `-device` (without `netdev=`), the kernel
/// command line, the driver's name as logged, and how it signals (the log's words).
struct Row {
    machine: &'static str,
    device: &'static str,
    cmdline: &'static str,
    card: &'static str,
    signal: &'static str,
}

fn vm(row: &Row, app: &str, hostfwd: &str) -> Vm {
    Vm::app(app)
        .machine(row.machine)
        .cmdline(row.cmdline)
        .arg("-netdev")
        .arg(format!("user,id=n0,{hostfwd}"))
        .arg("-device")
        .arg(format!("{},netdev=n0", row.device))
        .timeout(Duration::from_secs(300))
}

fn run(row: Row) {
    let port = free_port();
    let mut httpd =
        vm(&row, "httpd", &format!("hostfwd=tcp:127.0.0.1:{port}-:80")).spawn().expect("spawn QEMU");
    httpd.wait_for("httpd: listening on port 80").expect("httpd listens");
    httpd.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP lease");
    // `net: CARD at PLACE, SIGNAL`: the signal in full, or the start of a line's (GSI N
    // (level, ...)).
    let named = httpd.lines.iter().any(|l| {
        let Some((_, at)) = l.text.split_once(&format!("net: {} at ", row.card)) else { return false };
        at.split_once(", ").is_some_and(|(_, signal)| {
            signal == row.signal || (row.signal.starts_with("GSI") && signal.starts_with(row.signal))
        })
    });
    assert!(named, "the log names the {} and its {}", row.card, row.signal);
    site::assert_served(port);
    site::assert_status_codes(port);
    site::assert_pipelined(port, 2);
    site::assert_concurrent_clients(port, 200, 20);
    // And still serving after all that.
    let (head, _) = site::curl(port, "/");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    drop(httpd);

    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut echo =
        vm(&row, "udp-echo", &format!("hostfwd=udp:127.0.0.1:{port}-:7")).spawn().expect("spawn QEMU");
    echo.wait_for("net: DHCP gave ip").expect("DHCP");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // Up to 1472 bytes: a full Ethernet frame with IP and UDP headers.
    for (i, len) in [1, 2, 60, 61, 200, 512, 1000, 1400, 1471, 1472].into_iter().enumerate() {
        let payload: Vec<u8> = (0..len).map(|b| (b ^ i) as u8).collect();
        // UDP may drop: resend until this datagram's echo arrives.
        let echoed = (0..10).find_map(|_| {
            client.send_to(&payload, ("127.0.0.1", port)).unwrap();
            let mut buf = [0u8; 2048];
            client.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
        });
        assert_eq!(echoed.as_deref(), Some(payload.as_slice()), "datagram of {len} bytes");
    }
}

macro_rules! matrix {
    ($($name:ident: $machine:literal, $device:literal, $cmdline:literal => $card:literal, $signal:literal;)*) => {
        $(
            #[test]
            fn $name() {
                run(Row { machine: $machine, device: $device, cmdline: $cmdline, card: $card, signal: $signal });
            }
        )*
    };
}

matrix! {
    virtio_modern_pc: "pc", "virtio-net-pci,disable-legacy=on", "" => "virtio-net (modern PCI)", "MSI-X";
    virtio_modern_q35: "q35", "virtio-net-pci,disable-legacy=on", "" => "virtio-net (modern PCI)", "MSI-X";
    // No MSI-X vectors: the INTx line the firmware routed (IRQ 10 on pc, level).
    virtio_modern_pc_intx: "pc", "virtio-net-pci,vectors=0", "" => "virtio-net (modern PCI)", "GSI 10 (level";
    virtio_modern_q35_intx: "q35", "virtio-net-pci", "net.irq=intx" => "virtio-net (modern PCI)", "GSI";
    virtio_legacy_pc: "pc", "virtio-net-pci,disable-modern=on", "" => "virtio-net (legacy PCI)", "MSI-X";
    virtio_legacy_q35: "q35", "virtio-net-pci,disable-modern=on", "" => "virtio-net (legacy PCI)", "MSI-X";
    virtio_mmio_microvm: "microvm,ioapic2=off", "virtio-net-device", "" => "virtio-net (legacy MMIO)", "GSI";
    // microvm's default puts the virtio-mmio lines on a second I/O APIC (GSI 24 on).
    virtio_mmio_microvm_ioapic2: "microvm", "virtio-net-device", "" => "virtio-net (legacy MMIO)", "GSI 47";
    vmxnet3_pc: "pc", "vmxnet3", "" => "vmxnet3", "MSI-X";
    vmxnet3_q35: "q35", "vmxnet3", "" => "vmxnet3", "MSI-X";
    vmxnet3_pc_msi: "pc", "vmxnet3", "net.irq=msi" => "vmxnet3", "MSI";
    vmxnet3_q35_intx: "q35", "vmxnet3", "net.irq=intx" => "vmxnet3", "GSI";
    // The 82540EM has neither MSI nor MSI-X.
    e1000_pc: "pc", "e1000", "" => "e1000 (82540EM)", "GSI";
    e1000_q35: "q35", "e1000", "" => "e1000 (82540EM)", "GSI";
    e1000e_pc: "pc", "e1000e", "" => "e1000e (82574L)", "MSI-X";
    e1000e_q35: "q35", "e1000e", "" => "e1000e (82574L)", "MSI-X";
    e1000e_q35_msi: "q35", "e1000e", "net.irq=msi" => "e1000e (82574L)", "MSI";
    e1000e_q35_intx: "q35", "e1000e", "net.irq=intx" => "e1000e (82574L)", "GSI";
}

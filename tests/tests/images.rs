//! The app images `./run.sh image` writes, booted by firmware through GRUB's multiboot2
//! loader: hello and httpd from an ISO (a CD) and from a qcow2 disk, on SeaBIOS and on
//! OVMF, on `-M pc` and `-M q35`. hello's exit code must reach the host and the command
//! line baked into the image arrive word for word; httpd must serve every site file.
//! hello also from a raw disk (the ISO's bytes), once per firmware.
//! One image per app and format is built and shared by the tests of this file.

use std::time::Duration;

use tests::image::{Firmware, Format, ImageSpec, build_image, test_image, write_image};
use tests::site::{self, free_port};
use tests::{Net, Vm};

/// Characters GRUB's script would interpret outside single quotes ($, ;, #) must arrive
/// as written, as must the words after ` -- `.
const HELLO_CMDLINE: &str = "log=info -- built=at-image-time a;b $c #d";
const HELLO_ARGS: [&str; 4] = ["built=at-image-time", "a;b", "$c", "#d"];

fn vm(app: &str, format: Format, firmware: Firmware, machine: &str, cmdline: &str) -> Vm {
    // OVMF under TCG takes a few seconds before GRUB runs; a loaded machine more.
    Vm::boot_image(test_image(app, format, cmdline, 0), format)
        .firmware(firmware)
        .machine(machine)
        .timeout(Duration::from_secs(240))
}

fn hello(format: Format, firmware: Firmware, machine: &str) {
    let mut run = vm("hello", format, firmware, machine, HELLO_CMDLINE).spawn().expect("spawn QEMU");
    let outcome = run.wait_exit().expect("hello exits");
    outcome.assert_exit(0);
    outcome.assert_line(&format!(
        "booting via multiboot2 (boot information v2), command line: {HELLO_CMDLINE:?}"
    ));
    outcome.assert_line("hello from chameleon: boot=multiboot2 ");
    let args: Vec<String> =
        outcome.output().lines().filter(|l| l.starts_with("hello: argument ")).map(String::from).collect();
    let expected: Vec<String> =
        HELLO_ARGS.iter().enumerate().map(|(i, a)| format!("hello: argument {i}: {a}")).collect();
    assert_eq!(args, expected, "the app's arguments, word for word");
    let on = match firmware {
        Firmware::SeaBios => "on BIOS;",
        Firmware::Ovmf => "on UEFI, boot services exited by the loader;",
    };
    outcome.assert_line("boot: loaded by GRUB 2");
    outcome.assert_line(on);
}

fn httpd(format: Format, firmware: Firmware, machine: &str) {
    let port = free_port();
    let vm =
        vm("httpd", format, firmware, machine, "log=info").net(Net::User { host_port: port, guest_port: 80 });
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("booting via multiboot2").expect("GRUB starts the kernel");
    run.wait_for("httpd: listening on port 80").expect("httpd listens");
    run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP lease");
    site::assert_served(port);
}

/// UEFI promises no PIT: OVMF, GRUB and the kernel boot on a q35 without one, the
/// kernel's clock calibrated against the ACPI PM timer.
#[test]
fn hello_on_ovmf_without_a_pit() {
    let run =
        vm("hello", Format::Iso, Firmware::Ovmf, "q35,pit=off", HELLO_CMDLINE).spawn().expect("spawn QEMU");
    let outcome = { run }.wait_exit().expect("hello exits");
    outcome.assert_exit(0);
    outcome.assert_line("time: clock from ACPI PM timer calibration");
    outcome.assert_line("on UEFI, boot services exited by the loader;");
}

/// A file GRUB loads with `module2` is the kernel's boot module 0, read from the
/// multiboot2 module tag, kept out of the allocator (page-aligned, as the header asks)
/// and intact after the heap has filled memory: under OVMF, where GRUB places it
/// according to the EFI memory map.
#[test]
fn a_grub_module_reaches_the_kernel_intact() {
    let data = tests::pseudo_random_bytes(0x2545_f491_4f6c_dd1d, 3 << 20);
    let dir = std::env::temp_dir().join(format!("chameleon-module-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("module");
    std::fs::write(&module, &data).unwrap();
    let spec = ImageSpec {
        kernel: tests::build_app("hello"),
        title: "Chameleon hello with a module".into(),
        cmdline: "selftest=heap".into(),
        menu_seconds: 0,
        modules: vec![module],
    };
    let image = build_image(&spec, Format::Iso, &dir.join("hello.iso")).unwrap_or_else(|e| panic!("{e}"));
    let vm = Vm::boot_image(&image, Format::Iso).firmware(Firmware::Ovmf).machine("q35");
    let outcome =
        vm.timeout(Duration::from_secs(240)).spawn().expect("spawn QEMU").wait_exit().expect("exit");
    let _ = std::fs::remove_dir_all(&dir);
    outcome.assert_exit(0);
    let fnv = tests::fnv1a64(&data);
    outcome.assert_line(&format!("selftest heap: module 0: {} bytes, fnv1a64 {fnv:016x}", data.len()));
}

/// GRUB passes a command line's bytes on as they are in grub.cfg: one that is not UTF-8
/// stops the boot with a message and exit code 2, as under PVH.
#[test]
fn a_command_line_that_is_not_utf8_stops_the_boot() {
    let dir = std::env::temp_dir().join(format!("chameleon-badcmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = ImageSpec {
        kernel: tests::build_app("hello"),
        title: "Chameleon hello".into(),
        cmdline: "log=info bad=XX".into(),
        menu_seconds: 0,
        modules: Vec::new(),
    };
    let cfg = tests::image::grub_cfg(&spec).unwrap().replace("bad=XX", "bad=\u{1}\u{2}").into_bytes();
    // The two placeholder bytes become 0xff 0xfe, which no UTF-8 string holds.
    let cfg: Vec<u8> = cfg
        .iter()
        .map(|&b| match b {
            1 => 0xff,
            2 => 0xfe,
            b => b,
        })
        .collect();
    let image = write_image(&cfg, &spec, Format::Iso, &dir.join("bad.iso")).unwrap_or_else(|e| panic!("{e}"));
    let outcome = Vm::boot_image(&image, Format::Iso).spawn().expect("spawn QEMU").wait_exit().expect("exit");
    let _ = std::fs::remove_dir_all(&dir);
    outcome.assert_exit(2);
    outcome.assert_line(
        "chameleon: boot failed: command line: command line is not UTF-8 (invalid byte at offset 13)",
    );
}

/// A person stops GRUB's count on the serial console, edits the entry with `e` (its
/// second line is the `multiboot2` command), appends words and boots with Ctrl-X: the
/// kernel gets the edited line; a bad setting typed there is warned about and the boot
/// goes on, as any bad setting is.
#[test]
fn a_command_line_edited_in_grubs_menu_reaches_the_kernel() {
    let image = test_image("hello", Format::Iso, "log=info", 30);
    let vm = Vm::boot_image(image, Format::Iso).serial_input(true).timeout(Duration::from_secs(120));
    let mut run = vm.spawn().expect("spawn QEMU");
    // The help lines under the menu and the editor end in newlines; the rest is drawn
    // with cursor moves.
    run.wait_for("`e' to edit the commands").expect("GRUB's menu");
    run.send(b"e").unwrap();
    run.wait_for("Press Ctrl-x or F10 to boot").expect("GRUB's editor");
    // Ctrl-N twice: down past `setparams` and a blank line to `multiboot2`; Ctrl-E: its
    // end; Ctrl-X: boot. One key at a time, as a person
    // types: the UART holds 16 bytes and GRUB polls it.
    for key in b"\x0e\x0e\x05 max_conns=lots -- edited\x18" {
        run.send(&[*key]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let outcome = run.wait_exit().expect("hello exits");
    outcome.assert_exit(0);
    outcome.assert_line(r#"command line: "log=info max_conns=lots -- edited""#);
    outcome.assert_line("chameleon: warning: command line: `max_conns=lots` ignored");
    outcome.assert_line("hello: argument 0: edited");
}

macro_rules! boots {
    ($($name:ident: $app:ident $format:ident $firmware:ident $machine:literal;)*) => {$(
        #[test]
        fn $name() {
            $app(Format::$format, Firmware::$firmware, $machine);
        }
    )*};
}

boots! {
    hello_iso_seabios_pc: hello Iso SeaBios "pc";
    hello_iso_seabios_q35: hello Iso SeaBios "q35";
    hello_iso_ovmf_pc: hello Iso Ovmf "pc";
    hello_iso_ovmf_q35: hello Iso Ovmf "q35";
    hello_qcow2_seabios_pc: hello Qcow2 SeaBios "pc";
    hello_qcow2_seabios_q35: hello Qcow2 SeaBios "q35";
    hello_qcow2_ovmf_pc: hello Qcow2 Ovmf "pc";
    hello_qcow2_ovmf_q35: hello Qcow2 Ovmf "q35";
    hello_raw_seabios_q35: hello Raw SeaBios "q35";
    hello_raw_ovmf_pc: hello Raw Ovmf "pc";
    httpd_iso_seabios_pc: httpd Iso SeaBios "pc";
    httpd_iso_seabios_q35: httpd Iso SeaBios "q35";
    httpd_iso_ovmf_pc: httpd Iso Ovmf "pc";
    httpd_iso_ovmf_q35: httpd Iso Ovmf "q35";
    httpd_qcow2_seabios_pc: httpd Qcow2 SeaBios "pc";
    httpd_qcow2_seabios_q35: httpd Qcow2 SeaBios "q35";
    httpd_qcow2_ovmf_pc: httpd Qcow2 Ovmf "pc";
    httpd_qcow2_ovmf_q35: httpd Qcow2 Ovmf "q35";
}

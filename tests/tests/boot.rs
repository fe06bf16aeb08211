//! Boots the real hello image in QEMU (TCG) and checks what it prints and how it exits.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use tests::{Outcome, Vm, run_to_exit};

fn hello() -> Vm {
    Vm::app("hello")
}

fn boot(vm: Vm) -> Outcome {
    run_to_exit(vm)
}

fn with_cmdline(cmdline: &str) -> Vm {
    hello().cmdline(cmdline)
}

/// The number right before `unit` in the first line containing `marker`.
fn number_before(out: &Outcome, marker: &str, unit: &str) -> u64 {
    let line = out
        .lines
        .iter()
        .find(|l| l.text.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in:\n{}", out.output()));
    let before = &line.text[..line.text.find(unit).expect("unit")];
    let digits: String = before.chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().expect("number")
}

#[test]
fn hello_boots_and_exits_zero() {
    let out = boot(with_cmdline("-- first second"));
    out.assert_exit(0);
    out.assert_line("hello from chameleon: boot=pvh");
    out.assert_line("hypervisor=tcg");
    out.assert_line("nx=true exit=isa-debug-exit");
    out.assert_line("hello: argument 0: first");
    out.assert_line("hello: argument 1: second");
    out.assert_line("chameleon: exit code 0");
}

#[test]
fn panic_exits_nonzero_with_message_and_backtrace() {
    let out = boot(with_cmdline("selftest=panic"));
    out.assert_exit(101);
    out.assert_line("panic at kernel/src/selftest.rs:");
    out.assert_line("selftest: deliberate panic");
    out.assert_line("backtrace (return addresses");
    out.assert_line("  #0  0x");
}

#[test]
fn page_fault_reports_cr2_error_and_rip() {
    let out = boot(with_cmdline("selftest=page-fault"));
    out.assert_exit(102);
    out.assert_line("fatal: CPU exception: page fault (vector 14), error code 0x0, at rip 0x");
    out.assert_line("page fault: read at address 0x00007fffdead0000: page not mapped");
    out.assert_line("(faulting instruction)");
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    let out = boot(with_cmdline("selftest=stack-overflow"));
    out.assert_exit(102);
    out.assert_line("double fault (vector 8)");
    out.assert_line("stack overflow: the boot stack ran into its guard page");
}

#[test]
fn text_is_not_writable() {
    let out = boot(with_cmdline("selftest=write-text"));
    out.assert_exit(102);
    out.assert_line("page fault: write at address");
    out.assert_line("protection violation");
}

#[test]
fn rodata_is_not_executable() {
    let out = boot(with_cmdline("selftest=exec-data"));
    out.assert_exit(102);
    out.assert_line("page fault: instruction fetch at address");
    out.assert_line("protection violation");
}

#[test]
fn heap_stress_uses_most_of_memory_without_leaking() {
    let out = boot(with_cmdline("selftest=heap").memory_mib(64).timeout(Duration::from_secs(120)));
    out.assert_exit(0);
    out.assert_line("selftest heap: ok");
    let ram_mib = number_before(&out, "MiB RAM", " MiB RAM");
    for round in 1..=3 {
        let kib = number_before(&out, &format!("round {round} allocated"), " KiB in");
        assert!(kib * 100 >= ram_mib * 1024 * 85, "round {round}: {kib} KiB of {ram_mib} MiB RAM");
    }
}

fn boots_with(machine: &str, memory_mib: u32) -> Outcome {
    let out = boot(hello().machine(machine).memory_mib(memory_mib));
    out.assert_exit(0);
    out
}

#[test]
fn boots_with_8_mib() {
    let out = boots_with("pc", 8);
    assert!(number_before(&out, "hello from", "MiB free") >= 5);
}

#[test]
fn boots_with_4_gib() {
    let out = boots_with("pc", 4096);
    // QEMU's pc machine splits 4 GiB around the PCI hole; all of it must be found.
    assert!(number_before(&out, "hello from", "MiB free") >= 4000, "{}", out.output());
}

#[test]
fn boots_on_q35() {
    boots_with("q35", 64);
}

#[test]
fn boots_on_microvm() {
    boots_with("microvm", 64);
}

#[test]
fn too_little_memory_is_a_clear_error() {
    let out = boot(hello().memory_mib(2));
    out.assert_exit(2);
    out.assert_line("chameleon: boot failed: memory: not enough memory:");
}

/// Without isa-debug-exit the kernel powers off through ACPI S5, which QEMU answers by
/// exiting with status 0 (a kill would give no status).
fn powers_off_via_acpi(machine: &str) {
    let out = boot(hello().machine(machine).debug_exit(false));
    assert_eq!(out.status, Some(0), "{machine}: {}", out.output());
    out.assert_line("exit=acpi-s5");
    out.assert_line("chameleon: exit code 0");
}

#[test]
fn acpi_power_off_on_pc() {
    powers_off_via_acpi("pc");
}

#[test]
fn acpi_power_off_on_q35() {
    powers_off_via_acpi("q35");
}

#[test]
fn acpi_power_off_on_microvm() {
    powers_off_via_acpi("microvm");
}

#[test]
fn invalid_utf8_command_line_is_refused() {
    let out = boot(hello().cmdline(OsString::from_vec(b"log=info \xff\xfe".to_vec())));
    out.assert_exit(2);
    out.assert_line(
        "chameleon: boot failed: command line: command line is not UTF-8 (invalid byte at offset 9)",
    );
}

#[test]
fn overlong_command_line_is_refused() {
    let out = boot(with_cmdline(&format!("log=info {}", "x".repeat(4100))));
    out.assert_exit(2);
    out.assert_line("chameleon: boot failed: command line: command line is longer than 4096 bytes");
}

/// QEMU 7.2's PVH option ROM copies an 8 KiB command line over the start info it
/// built: a real boot with a corrupt `hvm_start_info`.
#[test]
fn corrupt_start_info_is_refused() {
    let out = boot(with_cmdline(&"x".repeat(8192)));
    out.assert_exit(2);
    out.assert_line(
        "chameleon: boot failed: PVH start info: start info magic is 0x78787878, expected 0x336ec578",
    );
}

#[test]
fn bad_settings_warn_and_boot_continues() {
    let out = boot(with_cmdline("log=loud mystery=1 flag -- x"));
    out.assert_exit(0);
    out.assert_line(
        "chameleon: warning: command line: `log=loud` ignored: expected error, warn, info, debug or trace",
    );
    out.assert_line("chameleon: warning: command line: unknown setting `mystery` ignored");
    out.assert_line("chameleon: warning: command line: unknown setting `flag` ignored");
    out.assert_line("3 command-line setting(s) ignored");
    out.assert_line("hello: argument 0: x");
}

#[test]
fn log_level_and_timestamps() {
    let out = boot(with_cmdline("log=debug"));
    out.assert_exit(0);
    let debug =
        out.lines.iter().find(|l| l.text.contains("DEBUG kernel::boot: memory:")).expect("a debug line");
    // `[   0.012345] DEBUG ...`: seconds, a dot, six digits of microseconds.
    let stamp = &debug.text[1..debug.text.find(']').unwrap()];
    let (secs, micros) = stamp.trim().split_once('.').unwrap();
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6 && micros.parse::<u64>().is_ok(), "{stamp}");

    let quiet = boot(with_cmdline("log=warn"));
    quiet.assert_exit(0);
    assert!(!quiet.output().contains(" INFO "), "{}", quiet.output());
    assert!(!quiet.output().contains(" DEBUG "));
}

#[test]
fn timestamps_are_monotonic() {
    let out = boot(with_cmdline("log=trace"));
    let stamps = out.log_timestamps();
    assert!(stamps.len() >= 3, "{}", out.output());
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
}

#[test]
fn unknown_selftest_is_an_error() {
    let out = boot(with_cmdline("selftest=nonsense"));
    out.assert_exit(2);
    out.assert_line("unknown selftest `nonsense`");
}

#[test]
fn boot_modules_survive_a_full_heap() {
    // 3 MiB of pseudo-random bytes as QEMU's initrd (PVH module 0).
    let data = tests::pseudo_random_bytes(0x9e37_79b9_7f4a_7c15, 3 << 20);
    let path = std::env::temp_dir().join(format!("chameleon-initrd-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let out = boot(with_cmdline("selftest=heap").arg("-initrd").arg(path.to_string_lossy()));
    let _ = std::fs::remove_file(&path);
    out.assert_exit(0);
    out.assert_line(&format!(
        "selftest heap: module 0: {} bytes, fnv1a64 {:016x}",
        data.len(),
        tests::fnv1a64(&data)
    ));
}

/// MSI, the fallback for devices without MSI-X, end to end on QEMU's `edu` device (the
/// one device here with MSI alone): the capability is programmed, the device's raised
/// interrupt arrives on its vector, on pc (ports) and q35 (ECAM).
#[test]
fn msi_delivers_on_pc_and_q35() {
    for machine in ["pc", "q35"] {
        let out = boot(with_cmdline("selftest=pci-msi").machine(machine).arg("-device").arg("edu"));
        out.assert_exit(0);
        out.assert_line("raised status 0x5a, delivered on vector 0x41 by MSI");
    }
    let out = boot(with_cmdline("selftest=pci-msi"));
    out.assert_exit(1);
    out.assert_line("selftest pci-msi: no edu device");
}

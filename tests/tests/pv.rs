//! pv-ops: detection, backends, call-site patching and time, on the real image.

use std::path::Path;
use std::time::Duration;

use tests::{Outcome, Running, Vm, run_to_exit};

fn hello(cmdline: &str) -> Vm {
    Vm::app("hello").cmdline(cmdline)
}

/// `(patched, total)` from the boot line.
fn patch_counts(out: &Outcome) -> (u32, u32) {
    let line = out.lines.iter().find(|l| l.text.contains(" patched=")).expect("pv boot line");
    let counts = line.text.split(" patched=").nth(1).unwrap().split(' ').next().unwrap();
    let (a, b) = counts.split_once('/').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn tcg_runs_native_with_every_site_patched() {
    let out = run_to_exit(hello(""));
    out.assert_exit(0);
    out.assert_line("pv: hypervisor=tcg backend=native patched=");
    let (patched, total) = patch_counts(&out);
    assert!(total > 0, "no call sites recorded");
    assert_eq!(patched, total, "{}", out.output());
    out.assert_line("hypervisor=tcg pv=native");
    // TCG promises no CPU of the guest's own.
    out.assert_line("idle: halts at once (the vCPU may share its CPU)");
}

#[test]
fn patching_can_be_turned_off() {
    let out = run_to_exit(hello("pv.patch=off"));
    out.assert_exit(0);
    let (patched, total) = patch_counts(&out);
    assert_eq!(patched, 0);
    assert!(total > 0);
}

#[test]
fn vmware_forced_on_tcg_with_vmport() {
    let out = run_to_exit(hello("pv=vmware selftest=clock").machine("pc,vmport=on"));
    out.assert_exit(0);
    out.assert_line("pv: hypervisor=tcg backend=vmware patched=");
    // QEMU answers GETHZ only when it knows the TSC rate (not under TCG): then the rate
    // comes from calibration.
    assert!(
        out.has_line("time: clock from vmware GETHZ") || out.has_line("time: clock from PIT calibration")
    );
    // QEMU 7.2's port does not implement GETTIMEFULL (its trace shows the commands it
    // registers: 10, 19, 20, 45, 68 and the mouse's), so the wall clock falls back to
    // the CMOS clock; where the port answers, the log names it.
    assert_wall_clock_near_the_host(&out);
}

/// The `selftest=clock` line's wall clock is within 10 s of the host's.
fn assert_wall_clock_near_the_host(out: &Outcome) {
    let line = out.lines.iter().find(|l| l.text.contains("wall clock")).unwrap();
    let guest: u64 =
        line.text.split("wall clock ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(guest.abs_diff(host) <= 10, "guest wall clock {guest}, host {host}");
}

#[test]
fn vmware_forced_is_refused_without_vmport() {
    let out = run_to_exit(hello("pv=vmware").machine("pc,vmport=off"));
    out.assert_exit(2);
    out.assert_line(
        "boot failed: pv: pv=vmware forced, but the VMware backdoor (I/O port 0x5658) does not answer",
    );
}

#[test]
fn kvm_forced_is_refused_on_tcg() {
    let out = run_to_exit(hello("pv=kvm"));
    out.assert_exit(2);
    out.assert_line("boot failed: pv: pv=kvm forced, but no KVM signature in CPUID");
}

#[test]
fn unknown_pv_value_warns_and_detects() {
    let out = run_to_exit(hello("pv=xen"));
    out.assert_exit(0);
    out.assert_line("`pv=xen` ignored: expected auto, native, kvm, vmware, xen_hvm or xen_pv");
    out.assert_line("backend=native");
}

#[test]
fn clock_is_monotonic_over_a_million_reads() {
    let out = run_to_exit(hello("selftest=clock"));
    out.assert_exit(0);
    out.assert_line("selftest clock: 1000000 reads monotonic");
    // The wall clock (CMOS RTC here; QEMU sets it from the host's UTC time).
    assert_wall_clock_near_the_host(&out);
}

/// The guest sleeps one second on its timer, three times; the host times the lines
/// around each sleep.
fn one_second_sleep(vm: Vm) {
    one_second_sleep_of(vm.spawn().expect("spawn QEMU"));
}

fn one_second_sleep_of(mut run: Running) {
    let (host, each) = run.one_second_sleeps().expect("the guest's sleeps");
    assert!(
        host >= Duration::from_millis(900) && host <= Duration::from_millis(1100),
        "a 1 s guest sleep took {host:?} of host time (median of {each:?})"
    );
    let out = run.wait_exit().expect("exit");
    out.assert_exit(0);
}

#[test]
fn one_second_sleep_takes_one_second() {
    one_second_sleep(hello("selftest=sleep"));
}

/// A machine without a PIT (UEFI does not promise one): the TSC is calibrated against
/// the ACPI PM timer the FADT names, and a 1 s sleep on the APIC timer still takes 1 s.
#[test]
fn one_second_sleep_without_a_pit() {
    let mut run = hello("selftest=sleep").machine("q35,pit=off").spawn().expect("spawn QEMU");
    run.wait_for("time: clock from ACPI PM timer calibration").expect("the PM timer calibrates the TSC");
    one_second_sleep_of(run);
}

/// QEMU's microvm has a PIT but not the port 0x61 gate channel 2 needs, and no ACPI PM
/// timer: the TSC is calibrated against channel 0 through latched reads.
#[test]
fn one_second_sleep_on_microvm() {
    let mut run = hello("selftest=sleep").machine("microvm").spawn().expect("spawn QEMU");
    run.wait_for("time: clock from PIT calibration").expect("the PIT calibrates the TSC");
    one_second_sleep_of(run);
}

#[test]
fn one_second_sleep_with_patching_off() {
    one_second_sleep(hello("selftest=sleep pv.patch=off"));
}

/// KVM runs here, but emulated and slowly: these boots stay short. Skipped, loudly,
/// where /dev/kvm is missing.
fn kvm(cmdline: &str) -> Option<Vm> {
    if !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: no /dev/kvm on this machine");
        return None;
    }
    // QEMU 7.2 aborts under KVM with `-cpu host` unless arch-capabilities is off.
    Some(
        hello(cmdline)
            .accel("kvm")
            .arg("-cpu")
            .arg("host,-arch-capabilities")
            .timeout(Duration::from_secs(120)),
    )
}

#[test]
fn kvm_detected_with_kvmclock() {
    let Some(vm) = kvm("log=debug") else { return };
    let out = run_to_exit(vm);
    out.assert_exit(0);
    out.assert_line("pv: hypervisor=kvm backend=kvm patched=");
    out.assert_line("time: clock from pvclock");
    out.assert_line("idle: halts at once (the vCPU may share its CPU)");
    // Every log line reads kvmclock: the stamps must move forward.
    let stamps = out.log_timestamps();
    assert!(
        stamps.len() >= 3 && stamps.windows(2).all(|w| w[0] <= w[1]) && stamps.last() > stamps.first(),
        "{stamps:?}"
    );
}

/// KVM's REALTIME hint (a physical CPU per vCPU) turns the idle loop's polling on, and
/// `haltpoll=` still has the last word.
#[test]
fn kvm_dedicated_cpu_hint_turns_idle_polling_on() {
    for (cmdline, line) in [
        ("", "idle: polls up to 400 us before halting (the vCPU has a CPU of its own)"),
        ("haltpoll=0", "idle: halts at once (haltpoll=)"),
    ] {
        let Some(vm) = kvm(cmdline) else { return };
        let out = run_to_exit(vm.arg("-cpu").arg("host,-arch-capabilities,kvm-hint-dedicated=on"));
        out.assert_exit(0);
        out.assert_line("pv: hypervisor=kvm backend=kvm patched=");
        out.assert_line(line);
    }
}

#[test]
fn kvm_with_native_forced() {
    let Some(vm) = kvm("pv=native") else { return };
    let out = run_to_exit(vm);
    out.assert_exit(0);
    out.assert_line("pv: hypervisor=kvm backend=native patched=");
}

#[test]
fn vmware_detected_behind_hidden_kvm() {
    // `kvm=off` hides KVM's CPUID leaves; the backdoor still answers, as on VMware.
    let Some(vm) = kvm("") else { return };
    let vm = vm.machine("pc,vmport=on").arg("-cpu").arg("host,-arch-capabilities,kvm=off");
    let out = run_to_exit(vm);
    out.assert_exit(0);
    out.assert_line("pv: hypervisor=vmware backend=vmware patched=");
}

#[test]
fn kvm_one_second_sleep_on_the_tsc_deadline_timer() {
    let Some(vm) = kvm("selftest=sleep") else { return };
    one_second_sleep(vm);
}

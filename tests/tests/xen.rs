//! The same hello image under Xen 4.17 (itself running under QEMU TCG), as a **PV dom0**
//! (ring-3 kernel, the xen_pv backend) and as a **PVH dom0** (the xen_hvm backend):
//! detection, console, Xen's clock and timer, traps, W^X, and the bad-input paths, each
//! ending in a shutdown that Xen reports.

use std::time::Duration;

use tests::{Dom0, Running, XEN_CRASHED, XEN_HALTED, build_app, xen_binary, xen_dom0};

/// Boots Xen with `hello args` as the dom0 module.
fn dom0(mode: Dom0, args: &str) -> Option<Running> {
    let Some(xen) = xen_binary() else {
        eprintln!("skipped: no Xen 4.17 binary (apt-get download xen-hypervisor-4.17-amd64 failed)");
        return None;
    };
    let vm = xen_dom0(&xen, mode, &build_app("hello"), args).timeout(Duration::from_secs(120));
    Some(vm.spawn().expect("spawn QEMU"))
}

/// `patched=N/M sites` with N == M > 0.
fn assert_all_patched(line: &str) {
    let counts = line.split("patched=").nth(1).and_then(|r| r.split_whitespace().next()).expect("counts");
    let (patched, total) = counts.split_once('/').expect("N/M");
    assert!(patched == total && total != "0", "not every site patched: {line}");
}

const HALTED: &str = XEN_HALTED;
const CRASHED: &str = XEN_CRASHED;

#[test]
fn hello_as_pv_dom0() {
    let Some(mut run) = dom0(Dom0::Pv, "") else { return };
    run.wait_for("booting as a Xen PV dom0").expect("the PV entry");
    let line = run.wait_for("pv: hypervisor=xen-pv backend=xen_pv patched=").expect("xen_pv backend");
    assert_all_patched(&line.text);
    let time = run.wait_for("time: clock from pvclock").expect("Xen's pvclock from shared_info");
    assert!(time.text.contains("timer Xen VIRQ_TIMER (one-shot)"), "Xen's timer: {}", time.text);
    let hello = run.wait_for("hello from chameleon: boot=xen-pv").expect("hello over console_io");
    assert!(hello.text.contains("exit=hypervisor"), "exit through Xen: {}", hello.text);
    run.wait_for("chameleon: exit code 0").expect("exit");
    run.wait_for(HALTED).expect("a poweroff shutdown reaches Xen");
}

#[test]
fn hello_as_pvh_dom0() {
    let Some(mut run) = dom0(Dom0::Pvh, "") else { return };
    let line = run.wait_for("pv: hypervisor=xen backend=xen_hvm patched=").expect("xen_hvm backend");
    assert_all_patched(&line.text);
    let time = run.wait_for("time: clock from pvclock").expect("Xen's pvclock from shared_info");
    assert!(
        time.text.contains("timer Xen VIRQ_TIMER (one-shot)"),
        "Xen's timer on the upcall vector: {}",
        time.text
    );
    run.wait_for("hello from chameleon: boot=pvh").expect("hello over console_io");
    run.wait_for("chameleon: exit code 0").expect("exit");
    run.wait_for(HALTED).expect("a poweroff shutdown reaches Xen");
}

fn panic_is_a_crash_shutdown(mode: Dom0) {
    let Some(mut run) = dom0(mode, "selftest=panic") else { return };
    run.wait_for("panic at kernel/src/selftest.rs").expect("the panic message");
    run.wait_for("chameleon: exit code 101").expect("exit code");
    run.wait_for(CRASHED).expect("a crash shutdown reaches Xen");
}

#[test]
fn panic_as_pv_dom0_is_a_crash_shutdown() {
    panic_is_a_crash_shutdown(Dom0::Pv);
}

#[test]
fn panic_as_pvh_dom0_is_a_crash_shutdown() {
    panic_is_a_crash_shutdown(Dom0::Pvh);
}

/// A 1 s sleep on Xen's one-shot timer takes 1 s of host time.
fn one_second_sleep(mode: Dom0) {
    let Some(mut run) = dom0(mode, "selftest=sleep") else { return };
    let (host, each) = run.one_second_sleeps().expect("the guest's sleeps");
    assert!(
        host >= Duration::from_millis(900) && host <= Duration::from_millis(1100),
        "a 1 s guest sleep took {host:?} of host time as a {mode:?} dom0 (median of {each:?})"
    );
    run.wait_for(HALTED).expect("shutdown");
}

#[test]
fn one_second_sleep_as_pv_dom0() {
    one_second_sleep(Dom0::Pv);
}

#[test]
fn one_second_sleep_as_pvh_dom0() {
    one_second_sleep(Dom0::Pvh);
}

fn page_fault_is_reported(mode: Dom0) {
    let Some(mut run) = dom0(mode, "selftest=page-fault") else { return };
    run.wait_for("page fault: read at address 0x00007fffdead0000: page not mapped")
        .expect("the fault report");
    run.wait_for("chameleon: exit code 102").expect("exit code");
    run.wait_for(CRASHED).expect("a crash shutdown reaches Xen");
}

#[test]
fn page_fault_as_pv_dom0_is_reported_through_the_trap_table() {
    page_fault_is_reported(Dom0::Pv);
}

#[test]
fn page_fault_as_pvh_dom0_is_reported() {
    page_fault_is_reported(Dom0::Pvh);
}

/// Under PV the image's rights are set through `mmu_update`: text is read-only and
/// rodata is not executable.
#[test]
fn w_xor_x_as_pv_dom0() {
    let Some(mut run) = dom0(Dom0::Pv, "selftest=write-text") else { return };
    let fault = run.wait_for("page fault: write at address").expect("a write to text faults");
    assert!(fault.text.ends_with("protection violation"), "{}", fault.text);
    run.wait_for(CRASHED).expect("crash shutdown");
    let Some(mut run) = dom0(Dom0::Pv, "selftest=exec-data") else { return };
    run.wait_for("page fault: instruction fetch at address").expect("executing rodata faults");
    run.wait_for(CRASHED).expect("crash shutdown");
}

/// A page-table change Xen refuses ends the run with the hypercall, the error and a
/// crash shutdown, not a silent spin.
#[test]
fn refused_mmu_update_as_pv_dom0_is_reported() {
    let Some(mut run) = dom0(Dom0::Pv, "selftest=xen-mmu-refused") else { return };
    run.wait_for("selftest xen-mmu-refused: asking").expect("the attempt");
    run.wait_for("Xen refused mmu_update: error -").expect("the refusal, named");
    run.wait_for("chameleon: exit code 101").expect("exit code");
    run.wait_for(CRASHED).expect("a crash shutdown reaches Xen");
}

/// An event on a channel nothing bound is reported and ends the run.
fn unclaimed_event_is_reported(mode: Dom0) {
    let Some(mut run) = dom0(mode, "selftest=xen-unclaimed-event") else { return };
    let raised = run.wait_for("selftest xen-unclaimed-event: raised an event on channel").expect("the event");
    let port = raised.text.rsplit(' ').next().expect("a port").to_string();
    run.wait_for(&format!("xen: an event arrived on channel {port}, which no handler is bound to"))
        .expect("the report");
    run.wait_for("chameleon: exit code 101").expect("exit code");
    run.wait_for(CRASHED).expect("a crash shutdown reaches Xen");
}

#[test]
fn unclaimed_event_as_pv_dom0_is_reported() {
    unclaimed_event_is_reported(Dom0::Pv);
}

#[test]
fn unclaimed_event_as_pvh_dom0_is_reported() {
    unclaimed_event_is_reported(Dom0::Pvh);
}

/// With the Xen backend refused (`pv=native`, as when Xen's hypercall leaf is missing),
/// the kernel still speaks, through Xen's debug port 0xE9 (printed as `(d0)`), and still
/// ends with a shutdown Xen sees: a crash for a panic.
#[test]
fn without_the_xen_backend_pvh_dom0_still_reports() {
    let Some(mut run) = dom0(Dom0::Pvh, "pv=native") else { return };
    let line = run.wait_for("pv: hypervisor=xen backend=native").expect("the boot line through port 0xE9");
    assert!(line.text.starts_with("(d0) "), "not through Xen's debug console: {}", line.text);
    run.wait_for("(d0) hello from chameleon: boot=pvh").expect("hello through port 0xE9");
    run.wait_for(HALTED).expect("a poweroff shutdown reaches Xen");
    let Some(mut run) = dom0(Dom0::Pvh, "pv=native selftest=panic") else { return };
    run.wait_for("(d0) chameleon: exit code 101").expect("the exit code through port 0xE9");
    run.wait_for(CRASHED).expect("a crash shutdown reaches Xen");
}

/// Xen's clock as a PV dom0: a million reads of the pvclock never go backwards, and the
/// wall clock from `shared_info` agrees with the host's within 10 s.
#[test]
fn clock_as_pv_dom0() {
    let Some(mut run) = dom0(Dom0::Pv, "selftest=clock") else { return };
    let line = run.wait_for("selftest clock: 1000000 reads monotonic").expect("monotonic reads");
    let guest: u64 =
        line.text.split("wall clock ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(guest.abs_diff(host) <= 10, "guest wall clock {guest}, host {host}");
    run.wait_for(HALTED).expect("shutdown");
}

/// httpd as a dom0 driving QEMU's virtio-net card itself; every site file comes back
/// byte-for-byte, and a missing one is a 404.
fn httpd_as_dom0_over_virtio_net(mode: Dom0, card: &str) {
    let Some(xen) = xen_binary() else {
        eprintln!("skipped: no Xen 4.17 binary (apt-get download xen-hypervisor-4.17-amd64 failed)");
        return;
    };
    let port = tests::site::free_port();
    let vm = tests::xen_dom0_sized(&xen, mode, &build_app("httpd"), "", 128)
        .memory_mib(1024)
        .net(tests::Net::User { host_port: port, guest_port: 80 })
        .nic_model(card)
        .timeout(Duration::from_secs(180));
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("net: virtio-net").expect("the card found on PCI");
    run.wait_for("httpd: listening on port 80").expect("httpd listens");
    run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("a DHCP lease over the card");
    tests::site::assert_served(port);
}

/// As a PV dom0: PCI through its I/O ports (Xen grants dom0 I/O privilege), the legacy
/// transport (modern BARs would need machine-address mappings), polled, and DMA
/// addresses through the p2m (the card sees machine addresses).
#[test]
fn httpd_as_pv_dom0_over_virtio_net() {
    httpd_as_dom0_over_virtio_net(Dom0::Pv, "virtio-net-pci");
}

/// As a PVH dom0: the modern transport with MSI-X (Xen's vPCI maps the BARs and the
/// vectors), and DMA through the IOMMU, which Xen fills with the dom0's p2m, so the card
/// must translate through it (`iommu_platform`; the driver accepts ACCESS_PLATFORM).
#[test]
fn httpd_as_pvh_dom0_over_virtio_net() {
    httpd_as_dom0_over_virtio_net(Dom0::Pvh, "virtio-net-pci,disable-legacy=on,iommu_platform=on,ats=on");
}

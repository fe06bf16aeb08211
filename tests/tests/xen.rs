//! The same hello image as a Xen 4.17 PVH dom0 (Xen itself running under QEMU TCG):
//! detection, the xen_hvm backend's console and shutdown, and a panic reaching Xen.

use std::time::Duration;

use tests::{Running, Vm, build_app, xen_binary};

/// Boots Xen with `image args` as the dom0 module; QEMU keeps running after Xen halts.
fn pvh_dom0(args: &str) -> Option<Running> {
    let Some(xen) = xen_binary() else {
        eprintln!("skipped: no Xen 4.17 binary (apt-get download xen-hypervisor-4.17-amd64 failed)");
        return None;
    };
    let image = build_app("hello");
    let vm = Vm::new(xen)
        .machine("q35,kernel-irqchip=split")
        .memory_mib(512)
        .debug_exit(false)
        .cmdline("console=com1 com1=115200,8n1 noreboot dom0_mem=64M dom0=pvh iommu=1")
        .arg("-cpu")
        .arg("max")
        .arg("-device")
        .arg("intel-iommu,intremap=on")
        .arg("-initrd")
        .arg(format!("{} {args}", image.display()))
        .timeout(Duration::from_secs(120));
    Some(vm.spawn().expect("spawn QEMU"))
}

#[test]
fn hello_as_pvh_dom0() {
    let Some(mut run) = pvh_dom0("") else { return };
    run.wait_for("pv: hypervisor=xen backend=xen_hvm patched=").expect("xen_hvm backend");
    run.wait_for("time: clock from pvclock").expect("Xen's pvclock from shared_info");
    run.wait_for("hello from chameleon: boot=pvh").expect("hello over console_io");
    run.wait_for("chameleon: exit code 0").expect("exit");
    run.wait_for("(XEN) Hardware Dom0 halted").expect("a poweroff shutdown reaches Xen");
}

#[test]
fn panic_as_pvh_dom0_is_a_crash_shutdown() {
    let Some(mut run) = pvh_dom0("selftest=panic") else { return };
    run.wait_for("panic at kernel/src/selftest.rs").expect("the panic message");
    run.wait_for("chameleon: exit code 101").expect("exit code");
    run.wait_for("(XEN) Hardware Dom0 crashed").expect("a crash shutdown reaches Xen");
}

#[test]
fn one_second_sleep_as_pvh_dom0() {
    let Some(mut run) = pvh_dom0("selftest=sleep") else { return };
    let start = run.wait_for("selftest sleep: start").expect("sleep start");
    let done = run.wait_for("selftest sleep: done").expect("sleep done");
    let host = done.at - start.at;
    assert!(
        host >= Duration::from_millis(900) && host <= Duration::from_millis(1100),
        "a 1 s guest sleep took {host:?} of host time under Xen"
    );
    run.wait_for("(XEN) Hardware Dom0 halted").expect("shutdown");
}

#[test]
fn page_fault_as_pvh_dom0_is_reported() {
    let Some(mut run) = pvh_dom0("selftest=page-fault") else { return };
    run.wait_for("page fault: read at address 0x00007fffdead0000: page not mapped")
        .expect("the fault report");
    run.wait_for("chameleon: exit code 102").expect("exit code");
    run.wait_for("(XEN) Hardware Dom0 crashed").expect("a crash shutdown reaches Xen");
}

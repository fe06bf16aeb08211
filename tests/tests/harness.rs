//! Tests of the harness itself, using the PVH floor stub instead of a
//! Chameleon kernel so they run before (and independently of) the kernel.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tests::{HarnessError, Vm, build_floor_stub, require_qemu, run_to_exit};

/// Builds the stub once per test process (tests run in parallel threads).
fn stub() -> PathBuf {
    static STUB: OnceLock<PathBuf> = OnceLock::new();
    STUB.get_or_init(|| {
        require_qemu();
        build_floor_stub(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("pvh-floor"))
    })
    .clone()
}

#[test]
fn floor_stub_exits_through_debug_exit() {
    let out = run_to_exit(Vm::new(stub()).timeout(Duration::from_secs(5)));
    assert_eq!(out.status, Some(1), "qemu stderr: {}", out.qemu_stderr);
    assert_eq!(out.guest_code(), Some(0));
    assert!(out.lines.is_empty(), "empty cmdline must print nothing: {:?}", out.output());
}

#[test]
fn serial_lines_and_ordered_wait_for() {
    // The stub echoes its command line, which also checks -append quoting.
    let vm = Vm::new(stub()).cmdline("alpha beta 'quoted'").timeout(Duration::from_secs(5));
    let mut run = vm.spawn().expect("spawn");
    let line = run.wait_for("beta").expect("echoed cmdline");
    assert_eq!(line.text, "alpha beta 'quoted'");
    assert!(line.at >= run.started);
    // The only line is consumed, so the same needle cannot match again.
    match run.wait_for("alpha") {
        Err(HarnessError::Exited { status, .. }) => assert_eq!(status, Some(1)),
        other => panic!("expected Exited, got {other:?}"),
    }
    let out = run.wait_exit().expect("exit");
    assert_eq!(out.guest_code(), Some(0));
    assert!(out.has_line("'quoted'"));
    assert_eq!(out.output(), "alpha beta 'quoted'");
}

#[test]
fn halting_guest_times_out_and_qemu_is_killed() {
    let vm = Vm::new(stub())
        .debug_exit(false) // the stub's exit write goes nowhere; it then halts forever
        .cmdline("still alive")
        .timeout(Duration::from_secs(3));
    let t0 = Instant::now();
    let mut run = vm.spawn().expect("spawn");
    let pid = run.pid();
    run.wait_for("still alive").expect("guest ran");
    let err = run.wait_exit().expect_err("must time out");
    let elapsed = t0.elapsed();
    assert!(matches!(err, HarnessError::Timeout { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("timed out") && msg.contains("still alive"), "{msg}");
    assert!(elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(!run.is_running(), "QEMU must be dead and reaped after a timeout");
    // Reaped means the pid is gone (barring an unlikely immediate reuse).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains("pvh-floor"), "QEMU pid {pid} still exists");
}

#[test]
fn drop_kills_qemu() {
    let vm = Vm::new(stub()).debug_exit(false).timeout(Duration::from_secs(30));
    let run = vm.spawn().expect("spawn");
    let pid = run.pid();
    drop(run);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains("pvh-floor"), "QEMU pid {pid} survived drop");
}

#[test]
fn qemu_errors_look_like_guest_code_zero() {
    // QEMU's own fatal errors exit with status 1, the same status as a guest
    // writing 0 to isa-debug-exit. This test pins that down so kernel tests
    // know to signal success with a non-zero code and/or check serial output.
    let out = run_to_exit(Vm::new("/nonexistent/kernel").timeout(Duration::from_secs(5)));
    assert_eq!(out.status, Some(1));
    assert_eq!(out.guest_code(), Some(0));
    assert!(out.qemu_stderr.contains("kernel"), "{}", out.qemu_stderr);
}

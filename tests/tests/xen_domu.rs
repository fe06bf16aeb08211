//! The hello image as a Xen 4.17 **domU**, PV and PVH, created with `xl` by a real Linux
//! dom0 (tests/src/xen_domu.rs): its console through xenconsoled, its end through
//! `xl list -v`. One dom0 boot serves the whole file; the domUs run side by side.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tests::build_app;
use tests::xen_domu::{DomainState, Domu, DomuType, Options, Testbed, TestbedError};

/// The file's testbed, booted by the first test that asks; `None` (the test prints
/// why and passes) when QEMU or the Debian packages cannot be had.
fn testbed() -> Option<&'static Testbed> {
    enum Booted {
        Up(Box<Testbed>),
        Skipped(String),
        Failed(String),
    }
    static TESTBED: OnceLock<Booted> = OnceLock::new();
    let booted = TESTBED.get_or_init(|| {
        let options =
            Options::new().image("hello", build_app("hello")).image("httpd", build_app("httpd")).linux_domu();
        match Testbed::boot(options) {
            Ok(testbed) => Booted::Up(Box::new(testbed)),
            Err(TestbedError::Unavailable(why)) => Booted::Skipped(why),
            Err(e) => Booted::Failed(e.to_string()),
        }
    });
    match booted {
        Booted::Up(testbed) => {
            testbed.kill_at_exit();
            Some(testbed)
        }
        Booted::Skipped(why) => {
            eprintln!("skipped: {why}");
            None
        }
        Booted::Failed(e) => panic!("{e}"),
    }
}

/// Creates `domu` and waits for it to end; prints how long each step took.
fn run_to_end(tb: &Testbed, domu: &Domu) -> DomainState {
    let t0 = Instant::now();
    tb.create(domu).unwrap_or_else(|e| panic!("{e}"));
    let created = t0.elapsed();
    let end = tb.wait_shutdown(domu.name(), Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{}: xl create {:.1} s, ended {:.1} s after the create returned: {end}",
        domu.name(),
        created.as_secs_f64(),
        (t0.elapsed() - created).as_secs_f64()
    );
    end
}

/// The console log, once it holds `needle`: xenconsoled may log the last lines a
/// little after the domain ended.
fn console_with(tb: &Testbed, name: &str, needle: &str) -> String {
    tb.wait_console(name, needle, Duration::from_secs(10)).unwrap_or_else(|e| {
        let dmesg = tb.xl_dmesg().unwrap_or_else(|e| e.to_string());
        panic!("{e}\n--- xl dmesg ---\n{dmesg}")
    })
}

fn hello_as_domu(name: &str, kind: DomuType, boot: &str) {
    let Some(tb) = testbed() else { return };
    let end = run_to_end(tb, &Domu::image(name, "hello", kind));
    assert_eq!((end.reason, end.flags.contains('s')), (Some(0), true), "a poweroff shutdown: {end}");
    let log = console_with(tb, name, "chameleon: exit code 0");
    assert!(log.contains(&format!("hello from chameleon: boot={boot}")), "{log}");
    assert!(log.contains("exit=hypervisor"), "{log}");
}

#[test]
fn hello_as_pv_domu() {
    hello_as_domu("hello-pv", DomuType::Pv, "xen-pv");
}

/// Needs the PVH console on the PV console ring: Xen drops `console_io` writes from a
/// domU, so until then xenconsoled logs nothing past the first lines.
#[test]
fn hello_as_pvh_domu() {
    hello_as_domu("hello-pvh", DomuType::Pvh, "pvh");
}

#[test]
fn panic_as_pv_domu_is_a_crash() {
    let Some(tb) = testbed() else { return };
    let name = "panic-pv";
    let end = run_to_end(tb, &Domu::image(name, "hello", DomuType::Pv).extra("selftest=panic"));
    assert_eq!((end.reason, end.flags.contains('c')), (Some(3), true), "a crash shutdown: {end}");
    let log = console_with(tb, name, "chameleon: exit code 101");
    assert!(log.contains("panic at kernel/src/selftest.rs"), "{log}");
}

/// The testbed's own check: Debian's Linux as a PV domU with netfront answers HTTP
/// from dom0, so netback, the bridge and the hotplug script work.
#[test]
fn linux_pv_domu_serves_http_to_dom0() {
    let Some(tb) = testbed() else { return };
    let t0 = Instant::now();
    tb.create(&Domu::linux("linux-pv", DomuType::Pv, "10.0.9.3/24")).unwrap_or_else(|e| panic!("{e}"));
    let created = t0.elapsed();
    let page = tb.wait_fetch("http://10.0.9.3/", "linux-pv", Duration::from_secs(120)).unwrap_or_else(|e| {
        panic!("{e}\n--- console ---\n{}", tb.console_log("linux-pv").unwrap_or_default())
    });
    eprintln!(
        "linux-pv: xl create {:.1} s, first page {:.1} s after it",
        created.as_secs_f64(),
        (t0.elapsed() - created).as_secs_f64()
    );
    assert!(page.contains("as a Xen PV domU at 10.0.9.3/24"), "{page}");
    tb.destroy("linux-pv").unwrap_or_else(|e| panic!("{e}"));
}

/// The image's own HTTP over netfront (issue 12), PV and PVH: dom0 fetches its page.
fn httpd_as_domu(name: &str, kind: DomuType) {
    let Some(tb) = testbed() else { return };
    let ip = if kind == DomuType::Pv { "10.0.9.2" } else { "10.0.9.4" };
    let domu = Domu::image(name, "httpd", kind).vif(true).extra(&format!("ip={ip}/24"));
    tb.create(&domu).unwrap_or_else(|e| panic!("{e}"));
    let page = tb
        .wait_fetch(&format!("http://{ip}/"), name, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n--- console ---\n{}", tb.console_log(name).unwrap_or_default()));
    assert!(page.contains("<h1>It works: Chameleon is serving</h1>"), "{page}");
    tb.destroy(name).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn httpd_as_pv_domu_serves_http() {
    httpd_as_domu("httpd-pv", DomuType::Pv);
}

#[test]
fn httpd_as_pvh_domu_serves_http() {
    httpd_as_domu("httpd-pvh", DomuType::Pvh);
}

/// The console protocol itself: a command longer than Xen's 128-byte input queue comes
/// back whole, statuses and output without a final newline pass through, and a command
/// that outlives its limit is stopped by dom0's `timeout`.
#[test]
fn dom0_commands_round_trip() {
    let Some(tb) = testbed() else { return };
    let words: Vec<String> = (0..60).map(|i| format!("w{i:02}")).collect();
    let long = words.join(" ");
    let out = tb.run(&format!("echo {long}; printf 'no newline'")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((out.status, out.text.as_str()), (0, format!("{long}\nno newline").as_str()));
    let out = tb.run("echo to stderr >&2; exit 7").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((out.status, out.text.as_str()), (7, "to stderr"));
    let t0 = Instant::now();
    let out = tb.run_for("sleep 30", Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, 143, "stopped by timeout's SIGTERM: {out:?}");
    assert!(t0.elapsed() < Duration::from_secs(15), "the limit did not stop it: {:?}", t0.elapsed());
    assert_eq!(tb.run("echo still here").unwrap_or_else(|e| panic!("{e}")).text, "still here");
    // 39 KB in one go, more than Xen's 16 KiB serial transmit buffer.
    let t0 = Instant::now();
    let out = tb.run("seq 1 8000").unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<String> = (1..=8000).map(|i| i.to_string()).collect();
    assert!(
        out.text == expected.join("\n"),
        "seq's output came back changed ({} lines)",
        out.text.lines().count()
    );
    eprintln!("39 KB of output in {:.1} s", t0.elapsed().as_secs_f64());
}

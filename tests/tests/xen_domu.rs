//! The hello image as a Xen 4.17 **domU**, PV and PVH, created with `xl` by a real Linux
//! dom0 (tests/src/xen_domu.rs): its console through xenconsoled, its end through
//! `xl list -v`. One dom0 boot serves the whole file; the domUs run side by side.

use std::path::Path;
use std::process::Command;
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
        let options = Options::new()
            .image("hello", build_app("hello"))
            .image("httpd", build_app("httpd"))
            .image("udp-echo", build_app("udp-echo"))
            .image("kv", build_app("kv"))
            .linux_domu();
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
    // Preserved domains keep their memory; the file's domUs share 750 MiB.
    tb.destroy(name).unwrap_or_else(|e| panic!("{e}"));
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
    tb.destroy(name).unwrap_or_else(|e| panic!("{e}"));
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

/// Creates `image` (with `args` after its address) as `name` at `ip` with a vif.
fn create_at(tb: &Testbed, name: &str, image: &str, kind: DomuType, ip: &str, args: &str) {
    let domu = Domu::image(name, image, kind).vif(true).extra(&format!("ip={ip}/24 {args}"));
    tb.create(&domu).unwrap_or_else(|e| panic!("{e}"));
}

/// The first page of httpd at `ip`, once it answers.
fn first_page(tb: &Testbed, name: &str, ip: &str) -> String {
    tb.wait_fetch(&format!("http://{ip}/"), name, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n--- console ---\n{}", tb.console_log(name).unwrap_or_default()))
}

fn ok(tb: &Testbed, cmd: &str) -> String {
    tb.ok(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Every file of apps/httpd/site, as a path relative to it.
fn site_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = format!("{prefix}{}", path.file_name().unwrap().to_str().unwrap());
        if path.is_dir() {
            site_files(&path, &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

/// The MD5 of a host file, from coreutils' md5sum (busybox's in dom0 gives the same).
fn host_md5(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum runs");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_owned()
}

/// Ends `name` with `xl shutdown` (a poweroff asked through xenstore, which the
/// image takes as its app ending well) or `xl reboot`, and checks the end Xen
/// records and the console's account of it.
fn ask_to_end(tb: &Testbed, name: &str, reboot: bool) {
    if reboot { tb.reboot(name) } else { tb.shutdown(name) }.unwrap_or_else(|e| panic!("{e}"));
    let end = tb.wait_shutdown(name, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    let (reason, letter, request, exit) = if reboot {
        (1, 'r', "Reboot", "chameleon: exit code 0, rebooting")
    } else {
        (0, '-', "PowerOff", "chameleon: exit code 0")
    };
    let shown = (end.reason, end.flags.contains('s'), end.flags.chars().nth(4));
    assert_eq!(shown, (Some(reason), true, Some(letter)), "shut down with reason {reason}: {end}");
    let log = console_with(tb, name, exit);
    assert!(log.contains(&format!("chameleon: the hypervisor asks for {request}")), "{log}");
    eprintln!("{name}: after xl {}: {end}", if reboot { "reboot" } else { "shutdown" });
    tb.destroy(name).unwrap_or_else(|e| panic!("{e}"));
}

/// httpd over netfront (issue 12), PV and PVH: every site file reaches dom0
/// byte-for-byte (MD5 in dom0 against the host's), a missing path is a 404, two
/// requests share one connection, and `xl shutdown` ends the domain cleanly.
fn httpd_as_domu(name: &str, kind: DomuType, ip: &str) {
    let Some(tb) = testbed() else { return };
    create_at(tb, name, "httpd", kind, ip, "");
    let page = first_page(tb, name, ip);
    assert!(page.contains("<h1>It works: Chameleon is serving</h1>"), "{page}");

    let site = tests::workspace_root().join("apps/httpd/site");
    let mut files = Vec::new();
    site_files(&site, "", &mut files);
    assert!(files.len() >= 4 && files.iter().any(|f| f.contains('/')), "the site: {files:?}");
    // One command for all: each is a console round trip.
    let sums = ok(
        tb,
        &format!(
            "for f in {}; do rm -f /tmp/got; wget -q -O /tmp/got http://{ip}/$f && \
             echo \"$(md5sum < /tmp/got | cut -d' ' -f1) $(wc -c < /tmp/got) $f\" || echo \"failed - $f\"; done",
            files.join(" ")
        ),
    );
    for file in &files {
        let expected =
            format!("{} {} {file}", host_md5(&site.join(file)), site.join(file).metadata().unwrap().len());
        assert!(sums.lines().any(|l| l == expected), "/{file}: expected {expected:?} in\n{sums}");
    }

    let status = ok(
        tb,
        &format!(
            "printf 'GET /no-such-file HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | \
             timeout 20 nc {ip} 80 | head -n 1 | tr -d '\\r'"
        ),
    );
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // busybox wget opens a connection per URL; nc sends both requests on one. The
    // second asks to close, so the answer ends.
    let both = ok(
        tb,
        &format!(
            "printf 'GET /style.css HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET /index.html HTTP/1.1\\r\\nHost: x\\r\\n\
             Connection: close\\r\\n\\r\\n' | timeout 20 nc {ip} 80 | tr -d '\\r'"
        ),
    );
    let statuses: Vec<&str> = both.lines().filter(|l| l.starts_with("HTTP/")).collect();
    assert_eq!(statuses, ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"], "{both}");
    let css = std::fs::read_to_string(site.join("style.css")).unwrap();
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let (at_css, at_index) = (both.find(css.trim_end()), both.find(index.trim_end()));
    assert!(at_css.is_some() && at_index.is_some() && at_css < at_index, "both bodies, in order:\n{both}");

    ask_to_end(tb, name, false);
}

#[test]
fn httpd_as_pv_domu_serves_the_site() {
    httpd_as_domu("httpd-pv", DomuType::Pv, "10.0.9.2");
}

#[test]
fn httpd_as_pvh_domu_serves_the_site() {
    httpd_as_domu("httpd-pvh", DomuType::Pvh, "10.0.9.4");
}

/// dom0 has no UDP client (busybox's nc is the small one, without -u), but its bash
/// opens `/dev/udp/HOST/PORT` as a connected socket, and dd moves one datagram per
/// read or write. Per port and size: send until the same bytes come back (UDP may
/// drop), up to 5 tries. Prints `PORT SIZE TRIES yes|no`.
const UDP_CLIENT: &str = r#"ip=$1; shift
for port in "$@"; do
  exec 3<>/dev/udp/$ip/$port || exit 9
  for n in 1 64 512 1472; do
    head -c $n /dev/urandom > /tmp/u.sent
    ok=no
    for try in 1 2 3 4 5; do
      dd if=/tmp/u.sent bs=$n count=1 2>/dev/null >&3
      timeout 2 dd bs=65536 count=1 2>/dev/null <&3 > /tmp/u.got
      if cmp -s /tmp/u.sent /tmp/u.got; then ok=yes; break; fi
    done
    echo "$port $n $try $ok"
  done
  exec 3<&-
done"#;

/// udp-echo over netfront on two ports (`port=N` arguments), then `xl reboot`: the
/// image reboots as asked, which the testbed's `on_reboot = "preserve"` turns into a
/// domain shut down with reason 1. Its vif joins the bridge through the testbed's lean
/// hotplug script (`vif-lean`), which `bench xen-http` uses; the httpd domUs use
/// Debian's vif-bridge.
fn udp_echo_as_domu(name: &str, kind: DomuType, ip: &str) {
    let Some(tb) = testbed() else { return };
    let domu = Domu::image(name, "udp-echo", kind)
        .vif(true)
        .vif_script("vif-lean")
        .extra(&format!("ip={ip}/24 -- port=7 port=5000"));
    tb.create(&domu).unwrap_or_else(|e| panic!("{e}"));
    console_with(tb, name, "udp-echo: listening on port 5000");
    tb.write_file("/run/tb/udp-client.sh", UDP_CLIENT).unwrap_or_else(|e| panic!("{e}"));
    let out = ok(tb, &format!("bash /run/tb/udp-client.sh {ip} 7 5000"));
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(rows.len(), 8, "{out}");
    for row in &rows {
        assert_eq!(row.get(3), Some(&"yes"), "port {} size {}: no echo\n{out}", row[0], row[1]);
    }
    eprintln!("{name}: tries per datagram {:?}", rows.iter().map(|r| r[2]).collect::<Vec<_>>());
    ask_to_end(tb, name, true);
}

#[test]
fn udp_echo_as_pv_domu() {
    udp_echo_as_domu("udp-pv", DomuType::Pv, "10.0.9.5");
}

#[test]
fn udp_echo_as_pvh_domu() {
    udp_echo_as_domu("udp-pvh", DomuType::Pvh, "10.0.9.6");
}

/// kv over netfront, PV and PVH, spoken to from dom0 with RESP and inline commands
/// through busybox nc (dom0 has no redis-cli): replies byte for byte, a pipeline of
/// 10,000 commands in one write, and a key that expires by the domU's Xen clock.
fn kv_as_domu(name: &str, kind: DomuType, ip: &str) {
    let Some(tb) = testbed() else { return };
    create_at(tb, name, "kv", kind, ip, "");
    console_with(tb, name, "kv: listening on port 6379");
    let session = |requests: &str| {
        // QUIT ends the session, so nc returns once the replies are in.
        ok(tb, &format!("printf '{requests}QUIT\\r\\n' | timeout 60 nc {ip} 6379 | tr -d '\\r'"))
    };
    let replies = session(
        "*3\\r\\n$3\\r\\nSET\\r\\n$4\\r\\nname\\r\\n$2\\r\\nkv\\r\\n\
         *2\\r\\n$3\\r\\nGET\\r\\n$4\\r\\nname\\r\\nPING\\r\\nINCR n\\r\\nINCRBY n 41\\r\\n\
         GET\\r\\nSET t v PX 1500\\r\\nEXISTS t\\r\\n",
    );
    assert_eq!(
        replies.lines().collect::<Vec<_>>(),
        [
            "+OK",
            "$2",
            "kv",
            "+PONG",
            ":1",
            ":42",
            "-ERR wrong number of arguments for 'get' command",
            "+OK",
            ":1",
            "+OK"
        ],
        "{replies}"
    );
    // 10,000 inline INCRs in one write: bash's printf repeats its format per argument.
    let counted = ok(
        tb,
        &format!(
            "printf 'INCR c\\r\\n%.0s' $(seq 10000) > /tmp/incr.txt; printf 'QUIT\\r\\n' >> /tmp/incr.txt; \
             timeout 120 nc {ip} 6379 < /tmp/incr.txt | tr -d '\\r' > /tmp/incr.out; \
             echo \"$(grep -c '^:' /tmp/incr.out) $(grep '^:' /tmp/incr.out | tail -n 1)\""
        ),
    );
    assert_eq!(counted, "10000 :10000", "replies to the pipeline, and the last");
    // `t` was set to expire 1.5 s after it was written.
    ok(tb, "sleep 2");
    assert_eq!(session("EXISTS t\\r\\nEXISTS name\\r\\n").lines().collect::<Vec<_>>(), [":0", ":1", "+OK"]);
    ask_to_end(tb, name, false);
}

#[test]
fn kv_as_pv_domu() {
    kv_as_domu("kv-pv", DomuType::Pv, "10.0.9.9");
}

#[test]
fn kv_as_pvh_domu() {
    kv_as_domu("kv-pvh", DomuType::Pvh, "10.0.9.10");
}

/// One client in dom0: fetches `$1` until /run/tb/load-on goes, or for 3 minutes at
/// most (a test that failed midway leaves it), each answer tallied in `$2`. `timeout`
/// bounds a fetch from a domain that vanished mid-answer.
const LOAD_LOOP: &str = r#"end=$(( $(cut -d. -f1 /proc/uptime) + 180 ))
while [ -e /run/tb/load-on ] && [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do
  if timeout 5 wget -q -O /dev/null "$1"; then echo ok; else echo fail; fi >> "$2"
done"#;

/// `xl destroy` of a domU that dom0 is fetching from: its vif goes from the bridge,
/// dom0's kernel reports no bug, dom0 takes commands, and a second domU loaded the
/// same way keeps answering.
#[test]
fn xl_destroy_under_load_leaves_dom0_healthy() {
    let Some(tb) = testbed() else { return };
    let (victim, survivor) = (("load-pv", "10.0.9.7"), ("load-pvh", "10.0.9.8"));
    create_at(tb, victim.0, "httpd", DomuType::Pv, victim.1, "");
    create_at(tb, survivor.0, "httpd", DomuType::Pvh, survivor.1, "");
    first_page(tb, victim.0, victim.1);
    first_page(tb, survivor.0, survivor.1);
    let id = tb.domain(victim.0).unwrap_or_else(|e| panic!("{e}")).expect("the victim runs").id;

    tb.write_file("/run/tb/load.sh", LOAD_LOOP).unwrap_or_else(|e| panic!("{e}"));
    let start = |url: &str, tally: &str| {
        format!("setsid sh /run/tb/load.sh {url} {tally} </dev/null >/dev/null 2>&1 &")
    };
    ok(
        tb,
        &format!(
            "rm -f /run/tb/tally-*; touch /run/tb/load-on; {} {} {}",
            start(&format!("http://{}/big.txt", victim.1), "/run/tb/tally-victim"),
            start(&format!("http://{}/", victim.1), "/run/tb/tally-victim"),
            start(&format!("http://{}/big.txt", survivor.1), "/run/tb/tally-survivor"),
        ),
    );
    let answered = |tally: &str| -> usize {
        ok(tb, &format!("grep -c ok /run/tb/tally-{tally} || true")).trim().parse().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered("victim") < 5 {
        assert!(Instant::now() < deadline, "the load never got going");
        std::thread::sleep(Duration::from_millis(500));
    }

    let t0 = Instant::now();
    tb.destroy(victim.0).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("xl destroy under load took {:.1} s", t0.elapsed().as_secs_f64());
    let (victim_before, survivor_at_destroy) = (answered("victim"), answered("survivor"));
    assert_eq!(tb.domain(victim.0).unwrap_or_else(|e| panic!("{e}")), None, "the victim is gone");
    // netback's side of the vif goes with the domain (its hotplug script runs after).
    let vif = format!("vif{id}.0");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok(tb, "ls /sys/class/net").split_whitespace().any(|n| n == vif) {
        assert!(Instant::now() < deadline, "{vif} still exists 30 s after xl destroy");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(answered("survivor") > survivor_at_destroy, "the survivor stopped answering the load");
    let page = tb.fetch(&format!("http://{}/", survivor.1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        page.is_some_and(|p| p.contains("<h1>It works: Chameleon is serving</h1>")),
        "the survivor's page"
    );
    ok(tb, "rm -f /run/tb/load-on");
    let bugs = ok(tb, "dmesg | grep -E 'BUG|Oops|WARNING|general protection|Call Trace' || true");
    assert_eq!(bugs, "", "dom0's kernel log after the destroy");
    assert!(ok(tb, "xl list").contains(survivor.0));
    eprintln!(
        "under load: the victim answered {victim_before} fetches before xl destroy; the survivor {} in all",
        answered("survivor")
    );
    tb.destroy(survivor.0).unwrap_or_else(|e| panic!("{e}"));
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

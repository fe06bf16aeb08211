//! Benchmarks for Chameleon.
//!
//! `bench boot [--runs N] [--image PATH]` compares the wall time from QEMU
//! spawn to QEMU exit of the `hello` app against a *floor*: a PVH stub that
//! exits immediately under the identical QEMU command line. Runs alternate
//! between the two so machine noise (thermal, other load) hits both equally.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;
use tests::{Vm, build_app, build_floor_stub, require_qemu};

fn usage() -> ExitCode {
    eprintln!("usage: bench boot [--runs N] [--image PATH]\n       bench pvops [--no-kvm]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        return usage();
    };
    if cmd == "pvops" {
        return match rest {
            [] => pvops(true),
            [flag] if flag == "--no-kvm" => pvops(false),
            _ => usage(),
        };
    }
    if cmd != "boot" {
        return usage();
    }
    let mut runs = 15usize;
    let mut image: Option<PathBuf> = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--runs", Some(n)) => match n.parse() {
                Ok(n) if n > 0 => runs = n,
                _ => return usage(),
            },
            ("--image", Some(p)) => image = Some(PathBuf::from(p)),
            _ => return usage(),
        }
    }
    boot(runs, image)
}

/// One timed boot, spawn to exit. Panics (with guest output) on failure so a
/// broken image never produces a plausible-looking number.
fn time_boot(image: &Path) -> f64 {
    let vm = Vm::new(image).verbose(false).timeout(Duration::from_secs(60));
    let mut run = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
    let out = run.wait_exit().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.guest_code().is_some(),
        "{} did not exit through isa-debug-exit (status {:?})\n{}\n{}",
        image.display(),
        out.status,
        out.output(),
        out.qemu_stderr
    );
    out.wall.as_secs_f64() * 1e3
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Stats { median, min: v[0], max: v[n - 1] }
}

/// Size of `image` after `strip --strip-all` (falls back to objcopy).
fn stripped_size(image: &Path, tmp: &Path) -> Option<u64> {
    let out = tmp.join("stripped");
    let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
    let done = ok(Command::new("strip").arg("--strip-all").arg("-o").arg(&out).arg(image))
        || ok(Command::new("objcopy").arg("--strip-all").arg(image).arg(&out));
    if !done {
        return None;
    }
    std::fs::metadata(&out).ok().map(|m| m.len())
}

fn boot(runs: usize, image: Option<PathBuf>) -> ExitCode {
    require_qemu();
    let tmp = std::env::temp_dir().join(format!("chameleon-bench-{}", std::process::id()));
    let floor = build_floor_stub(&tmp);

    let (hello_name, hello) = match image {
        Some(p) => (p.file_name().map_or("image".into(), |n| n.to_string_lossy().into_owned()), p),
        None => ("hello".to_owned(), build_app("hello")),
    };

    // Warm-up boot of each so page cache / first-exec costs are not measured.
    time_boot(&floor);
    time_boot(&hello);

    let (mut floor_ms, mut hello_ms) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate which goes first so neither always follows the other.
        let order = [true, false];
        let order = if i % 2 == 0 { order } else { [false, true] };
        for is_floor in order {
            if is_floor {
                floor_ms.push(time_boot(&floor));
            } else {
                hello_ms.push(time_boot(&hello));
            }
        }
    }

    println!(
        "boot: spawn -> exit wall time, {runs} interleaved runs, accel {}",
        Vm::new(&floor).accel_name()
    );
    println!("{:<24} {:>10} {:>10} {:>10}", "image", "median ms", "min ms", "max ms");
    let f = stats(floor_ms);
    println!("{:<24} {:>10.2} {:>10.2} {:>10.2}", "floor (pvh stub)", f.median, f.min, f.max);
    let h = stats(hello_ms);
    println!("{:<24} {:>10.2} {:>10.2} {:>10.2}", hello_name, h.median, h.min, h.max);
    println!("ratio median(hello)/median(floor): {:.3}", h.median / f.median);
    let raw = std::fs::metadata(&hello).map(|m| m.len()).unwrap_or(0);
    println!("image size unstripped: {raw} bytes ({:.1} KiB)", raw as f64 / 1024.0);
    match stripped_size(&hello, &tmp) {
        Some(s) => println!("image size stripped:   {s} bytes ({:.1} KiB)", s as f64 / 1024.0),
        None => println!("image size stripped:   unavailable (need strip or objcopy)"),
    }
    let _ = std::fs::remove_dir_all(&tmp);
    ExitCode::SUCCESS
}

/// One pvops row as the guest prints it: `pvbench: NAME site N bare M|-`.
struct OpTicks {
    name: String,
    site: u64,
    bare: Option<u64>,
}

/// Boots hello with `selftest=pvops-bench` and collects its rows.
fn pvops_run(vm: Vm) -> Vec<OpTicks> {
    let mut run = vm.verbose(false).spawn().unwrap_or_else(|e| panic!("{e}"));
    let out = run.wait_exit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.guest_code(), Some(0), "pvops bench failed:\n{}", out.output());
    out.lines
        .iter()
        .filter_map(|l| {
            let rest = l.text.strip_prefix("pvbench: ")?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                [name, "site", site, "bare", bare] => Some(OpTicks {
                    name: name.to_string(),
                    site: site.parse().ok()?,
                    bare: bare.parse().ok(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Cycles per hot pv op, patched vs unpatched vs the bare native instruction, for each
/// backend that runs here.
fn pvops(with_kvm: bool) -> ExitCode {
    require_qemu();
    let image = build_app("hello");
    let cmd = "log=warn selftest=pvops-bench";
    let mut backends: Vec<(&str, Vm, String)> = vec![
        ("native (TCG)", Vm::new(&image).accel("tcg"), cmd.to_string()),
        (
            "vmware (TCG, pv=vmware)",
            Vm::new(&image).accel("tcg").machine("pc,vmport=on"),
            format!("{cmd} pv=vmware"),
        ),
    ];
    if with_kvm && Path::new("/dev/kvm").exists() {
        let kvm = Vm::new(&image).accel("kvm").arg("-cpu").arg("host,-arch-capabilities");
        backends.push(("kvm (KVM)", kvm.timeout(Duration::from_secs(600)), cmd.to_string()));
    }
    println!("pvops: TSC ticks per call (median of 7 rounds x 20000 calls, empty-loop cost removed)");
    for (name, vm, cmdline) in backends {
        let patched = pvops_run(vm.clone().cmdline(cmdline.clone()));
        let indirect = pvops_run(vm.cmdline(format!("{cmdline} pv.patch=off")));
        println!("\n{name}");
        println!(
            "{:<14} {:>9} {:>11} {:>6} {:>16}",
            "op", "patched", "unpatched", "bare", "unpatched/patched"
        );
        for (p, u) in patched.iter().zip(&indirect) {
            let bare = p.bare.map_or("-".to_string(), |b| b.to_string());
            let ratio =
                if p.site == 0 { "-".to_string() } else { format!("{:.2}", u.site as f64 / p.site as f64) };
            println!("{:<14} {:>9} {:>11} {:>6} {:>16}", p.name, p.site, u.site, bare, ratio);
        }
    }
    ExitCode::SUCCESS
}

//! What `run.sh` hands its boots to, once the machine is set up:
//!
//! - `chameleon run [APP] [--] [QEMU_ARGS...]`: build APP (default httpd) and boot it in
//!   QEMU with the terminal as its serial console; exits with the app's exit code.
//! - `chameleon build [APP]`: build APP and print the image path.
//! - `chameleon image [APP] [--format iso|raw|qcow2]`: build APP and write a disk or CD
//!   image that boots it through GRUB on BIOS and UEFI ([`tests::image`]), with `CMDLINE`
//!   as its command line and `GRUB_TIMEOUT` seconds of menu (default 3); print its path
//!   and the QEMU commands that boot it.
//! - `chameleon xen pv|pvh [APP]`: APP (default hello) as a Xen 4.17 dom0, Xen under QEMU
//!   TCG; exits 0 when Xen reports the dom0 halted, 1 when it crashed.
//! - `chameleon xen domu pv|pvh [APP]`: APP (default httpd) as a Xen domU named
//!   `chameleon` with a vif, next to a Linux dom0 ([`tests::xen_domu`]); shows its
//!   console log, then gives the terminal dom0's shell.
//!
//! Environment, as README documents: `ACCEL`, `MEM`, `MACHINE`, `CMDLINE`, `PORT`, `NET`.
//! The command lines themselves are the library's ([`Vm`], [`xen_dom0_sized`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tests::image::{Firmware, Format, ImageSpec, build_image};
use tests::xen_domu::{Domu, DomuType, Options, Testbed};
use tests::{
    Dom0, Namespace, Net, Vm, XEN_CRASHED, XEN_HALTED, cpu_model, debug_exit_code, host_accel, try_build_app,
    workspace_root, xen_binary, xen_dom0_sized,
};

const USAGE: &str = "usage: chameleon run [APP] [--] [QEMU_ARGS...]\n       chameleon build [APP]\n       chameleon image [APP] [--format iso|raw|qcow2]\n       chameleon xen pv|pvh [APP]\n       chameleon xen domu pv|pvh [APP]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((cmd, rest)) if cmd == "run" => run(rest),
        Some((cmd, rest)) if cmd == "build" && rest.len() <= 1 => {
            build(rest.first().map_or("httpd", String::as_str)).map(|image| {
                println!("{}", image.display());
                ExitCode::SUCCESS
            })
        }
        Some((cmd, rest)) if cmd == "image" => image(rest),
        Some((cmd, rest)) if cmd == "xen" && rest.first().is_some_and(|m| m == "domu") && rest.len() <= 3 => {
            xen_domu(&rest[1..])
        }
        Some((cmd, rest)) if cmd == "xen" && rest.len() <= 2 => xen(rest),
        _ => Err(USAGE.to_owned()),
    };
    result.unwrap_or_else(|message| {
        eprintln!("chameleon: {message}");
        ExitCode::from(2)
    })
}

/// Builds workspace app `app`, first checking that there is one.
fn build(app: &str) -> Result<PathBuf, String> {
    let apps = workspace_root().join("apps");
    if !apps.join(app).is_dir() {
        let mut known: Vec<String> = std::fs::read_dir(&apps)
            .map_err(|e| format!("{}: {e}", apps.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        known.sort();
        return Err(format!("no app '{app}' (apps: {})", known.join(" ")));
    }
    try_build_app(app)
}

/// Writes APP's bootable image to `target/images/APP.EXT` and says how to boot it.
fn image(args: &[String]) -> Result<ExitCode, String> {
    let (mut app, mut format) = (None, Format::Iso);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--format" => format = it.next().ok_or("--format needs iso, raw or qcow2")?.parse()?,
            f if f.starts_with("--format=") => format = f["--format=".len()..].parse()?,
            f if f.starts_with('-') => return Err(format!("image: unknown option '{f}'\n{USAGE}")),
            name if app.is_none() => app = Some(name),
            _ => return Err(USAGE.to_owned()),
        }
    }
    let app = app.unwrap_or("httpd");
    let spec = ImageSpec {
        kernel: build(app)?,
        title: format!("Chameleon {app}"),
        cmdline: env("CMDLINE").unwrap_or_default(),
        menu_seconds: env_number("GRUB_TIMEOUT", 3)?,
        modules: Vec::new(),
    };
    let dir = workspace_root().join("target/images");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = build_image(&spec, format, &dir.join(format!("{app}.{}", format.extension())))?;
    let size = std::fs::metadata(&out).map_or(0, |m| m.len());
    println!("{}", out.display());
    eprintln!(
        "chameleon: {format} image of {app}, {:.1} MiB, command line {:?} (edit it in GRUB's menu with `e`)",
        size as f64 / (1024.0 * 1024.0),
        spec.cmdline
    );
    let mut vm = Vm::boot_image(&out, format).memory_mib(env_number("MEM", 64)?);
    match app {
        "httpd" => vm = vm.net(Net::User { host_port: env_number("PORT", 8080)?, guest_port: 80 }),
        "kv" => vm = vm.net(Net::User { host_port: env_number("PORT", 6379)?, guest_port: 6379 }),
        _ => {}
    }
    let bios = vm.clone().accel(host_accel()).command_line();
    let uefi = vm.firmware(Firmware::Ovmf).accel(host_accel()).command_line();
    eprintln!("chameleon: boot it on BIOS (SeaBIOS):\n  {bios}\nchameleon: or on UEFI (OVMF):\n  {uefi}");
    Ok(ExitCode::SUCCESS)
}

/// An environment variable, with an empty one taken as unset (as the shell's `${X:-}`).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_number<T: FromStr>(name: &str, default: T) -> Result<T, String> {
    match env(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{name}={v} is not a number")),
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let (app, mut qemu_args) = match args.split_first() {
        Some((first, rest)) if first != "--" => (first.as_str(), rest),
        _ => ("httpd", args),
    };
    if qemu_args.first().is_some_and(|a| a == "--") {
        qemu_args = &qemu_args[1..];
    }
    let accel = env("ACCEL").unwrap_or_else(|| host_accel().to_owned());
    let memory = env_number("MEM", 64)?;
    // The port the app serves, and the host port that reaches it by default.
    let (guest_port, default_port) = if app == "kv" { (6379, 6379) } else { (80, 8080) };
    let port = env_number("PORT", default_port)?;
    let mut cmdline = env("CMDLINE").unwrap_or_default();
    let namespace = match env("NET").as_deref().unwrap_or("user") {
        "user" => None,
        "tap" => Some(Namespace::persistent("chameleon").map_err(|e| format!("NET=tap: {e}"))?),
        _ => return Err("NET must be user or tap".to_owned()),
    };
    let nic = match env("NIC").as_deref().unwrap_or("virtio") {
        "virtio" => None,
        model @ ("vmxnet3" | "e1000" | "e1000e") => Some(model.to_owned()),
        other => return Err(format!("NIC must be virtio, vmxnet3, e1000 or e1000e, not {other}")),
    };
    let image = build(app)?;

    let mut vm = Vm::new(image)
        .accel(&accel)
        .cpu(cpu_model(&accel))
        .machine(env("MACHINE").unwrap_or_else(|| "pc".to_owned()))
        .memory_mib(memory);
    if let Some(model) = nic {
        vm = vm.nic_model(model);
    }
    let url = match &namespace {
        None => {
            vm = vm.net(Net::User { host_port: port, guest_port });
            match app {
                "kv" => format!("127.0.0.1:{port} (redis-cli -p {port})"),
                _ => format!("http://127.0.0.1:{port}/"),
            }
        }
        Some(ns) => {
            vm = ns.wrap(vm).net(Net::Tap);
            if !cmdline.split_whitespace().any(|w| w.starts_with("ip=")) {
                cmdline = format!("ip={}/24 {cmdline}", Namespace::GUEST_IP);
            }
            let ip = Namespace::GUEST_IP;
            match app {
                "kv" => {
                    format!("{ip}:6379 inside the namespace (ip netns exec {} redis-cli -h {ip})", ns.name())
                }
                _ => format!(
                    "http://{ip}/ inside the namespace (ip netns exec {} curl http://{ip}/)",
                    ns.name()
                ),
            }
        }
    };
    for arg in qemu_args {
        vm = vm.arg(arg);
    }
    let vm = vm.cmdline(cmdline.trim_end());

    eprintln!("$ {}", vm.command_line());
    if app == "httpd" || app == "kv" {
        eprintln!("chameleon: {app} will answer at {url} once it prints 'listening' (Ctrl-C stops QEMU)");
    }
    let mut qemu = vm.spawn_foreground().map_err(|e| e.to_string())?;
    leave_interrupt_to_qemu();
    let status = qemu.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    let code = match status.code() {
        // isa-debug-exit makes QEMU exit with (code << 1) | 1: hand the app's code back.
        Some(s) => debug_exit_code(s).map_or(s, |c| c as i32),
        // Killed by a signal: the shell's convention.
        None => 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
    };
    Ok(ExitCode::from(code as u8))
}

/// Ctrl-C reaches every process on the terminal. QEMU handles it by shutting down; this
/// process ignores it, as a shell does while it waits for a command, so that QEMU's
/// status still decides the exit code.
fn leave_interrupt_to_qemu() {
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIG_IGN: usize = 1;
    // SAFETY: libc's `signal` (std links libc) with SIG_IGN installs no handler, so no
    // code of ours ever runs in signal context.
    unsafe { signal(SIGINT, SIG_IGN) };
}

/// Boots APP as Xen's dom0 and watches the serial output for Xen's verdict: QEMU keeps
/// running after Xen halts.
fn xen(args: &[String]) -> Result<ExitCode, String> {
    let mode = match args.first().map(String::as_str) {
        None | Some("pv") => Dom0::Pv,
        Some("pvh") => Dom0::Pvh,
        Some(other) => return Err(format!("xen: expected pv or pvh, got '{other}'")),
    };
    let memory = env_number("MEM", 64)?;
    let image = build(args.get(1).map_or("hello", String::as_str))?;
    let xen = xen_binary().ok_or(
        "could not fetch Xen 4.17 (apt-get download xen-hypervisor-4.17-amd64; or set CHAMELEON_XEN to a Xen 4.17 binary)",
    )?;
    // No deadline a person would meet: Ctrl-C stops a dom0 that never halts.
    let vm = xen_dom0_sized(&xen, mode, &image, &env("CMDLINE").unwrap_or_default(), memory)
        .accel("tcg")
        .verbose(false)
        .timeout(Duration::from_secs(24 * 3600));
    eprintln!("$ {}", vm.command_line());
    let mut run = vm.spawn().map_err(|e| e.to_string())?;
    while let Some(line) = run.next_line() {
        println!("{}", line.text);
        if line.text.contains(XEN_HALTED) {
            return Ok(ExitCode::SUCCESS);
        }
        if line.text.contains(XEN_CRASHED) {
            return Ok(ExitCode::FAILURE);
        }
    }
    eprint!("{}", run.qemu_stderr());
    eprintln!("chameleon: QEMU ended before Xen reported the dom0 halted or crashed");
    Ok(ExitCode::FAILURE)
}

/// Boots the domU testbed with APP in dom0, creates it as domU `chameleon` (vif on
/// xenbr0, `ip=10.0.9.2/24` then `CMDLINE`), shows what its console printed in the first
/// seconds, then hands the terminal to a shell in dom0.
fn xen_domu(args: &[String]) -> Result<ExitCode, String> {
    let kind = match args.first().map(String::as_str) {
        None | Some("pv") => DomuType::Pv,
        Some("pvh") => DomuType::Pvh,
        Some(other) => return Err(format!("xen domu: expected pv or pvh, got '{other}'")),
    };
    let app = args.get(1).map_or("httpd", String::as_str);
    let image = build(app)?;
    let name = "chameleon";
    let extra = format!("ip=10.0.9.2/24 {}", env("CMDLINE").unwrap_or_default());
    eprintln!("chameleon: booting Xen 4.17 and a Linux dom0 under QEMU TCG (about 15 s)");
    // A person may leave the shell alone for long.
    let options = Options::new().image(app, &image).idle_poweroff(Duration::from_secs(7 * 24 * 3600));
    let tb = Testbed::boot(options).map_err(|e| e.to_string())?;
    let domu = Domu::image(name, app, kind).vif(true).extra(extra.trim_end());
    eprintln!("chameleon: xl create with: {}", domu.config(2).trim_end().replace('\n', "; "));
    tb.create(&domu).map_err(|e| e.to_string())?;
    // Until the app says it listens, or ends, or 20 s have passed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut state = None;
    while Instant::now() < deadline {
        state = tb.domain(name).map_err(|e| e.to_string())?;
        let log = tb.console_log(name).map_err(|e| e.to_string())?;
        if log.contains("listening") || state.as_ref().is_none_or(|s| s.has_ended()) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let log = tb.console_log(name).map_err(|e| e.to_string())?;
    println!("---- {name}'s console (xenconsoled's /var/log/xen/console/guest-{name}.log) ----");
    println!("{}", if log.is_empty() { "(empty)" } else { log.trim_end() });
    // What the guest wrote to Xen's debug port 0xE9 (PVH), and Xen's reports on it.
    if let Some(id) = state.as_ref().map(|s| s.id) {
        let dmesg = tb.xl_dmesg().map_err(|e| e.to_string())?;
        let own: Vec<&str> = dmesg
            .lines()
            .filter(|l| l.starts_with(&format!("(d{id})")) || l.contains(&format!("d{id}v")))
            .collect();
        if !own.is_empty() {
            println!("---- xl dmesg, the lines about d{id} ----\n{}", own.join("\n"));
        }
    }
    println!("---- {} ----", state.map_or_else(|| format!("no domain {name}"), |s| s.to_string()));
    println!(
        "chameleon: dom0's shell follows (dom0 is 10.0.9.1 on xenbr0). Try:\n\
         \x20 wget -q -O - http://10.0.9.2/   fetch the app's page\n\
         \x20 xl console {name}              its console, live (Ctrl-] leaves)\n\
         \x20 xl list -v; xl dmesg           domains with their shutdown reasons; Xen's log\n\
         \x20 xl shutdown {name}             or xl destroy {name}\n\
         \x20 poweroff -f                    ends the testbed (so do three Ctrl-]s)"
    );
    tb.attach_terminal().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

//! Host-side harness for booting Chameleon images under QEMU.
//!
//! Integration tests describe a VM with [`Vm`], start it with [`Vm::spawn`],
//! and then assert on the guest's serial output ([`Running::wait_for`]) and on
//! its exit code as reported through QEMU's `isa-debug-exit` device
//! ([`Outcome::guest_code`]). Everything is std-only so the crate builds fast
//! and has no supply chain.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod cpio;
pub mod image;
pub mod site;
pub mod xen_domu;

/// Target triple the kernel images are built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Source of the floor stub, embedded so the bench binary works from anywhere.
const FLOOR_ASM: &str = include_str!("../floor/pvh-floor.S");
/// Linker script of the floor stub (links it at 1 MiB with a PT_NOTE segment).
const FLOOR_LD: &str = include_str!("../floor/pvh-floor.ld");
/// The multiboot2 floor stub for GRUB's boots, and its linker script.
const MB2_FLOOR_ASM: &str = include_str!("../floor/mb2-floor.S");
const MB2_FLOOR_LD: &str = include_str!("../floor/mb2-floor.ld");

/// The cargo workspace root: this crate lives at `<root>/tests`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate must live inside the workspace root")
        .to_path_buf()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR` like cargo does.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir), // join keeps absolute paths as-is
        None => workspace_root().join("target"),
    }
}

/// Path of an app's release kernel image (whether or not it exists yet).
pub fn app_image_path(app: &str) -> PathBuf {
    target_dir().join(KERNEL_TARGET).join("release").join(app)
}

/// Builds the kernel image of workspace package `app` and returns its path, panicking
/// (with cargo's output above) when it cannot; see [`try_build_app`].
pub fn build_app(app: &str) -> PathBuf {
    try_build_app(app).unwrap_or_else(|e| panic!("{e}"))
}

/// Builds the kernel image of workspace package `app` and returns its path.
///
/// Each app is built at most once per process: tests run concurrently
/// and all want the same image, and cargo would serialise on its lock anyway.
/// Set `CHAMELEON_NO_BUILD=1` to use prebuilt images (e.g. in CI after a
/// separate build step).
pub fn try_build_app(app: &str) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    // Holding the lock across the build makes concurrent callers wait for the
    // first build instead of racing. A panicking caller poisons the lock; take
    // it anyway so later callers retry and report their own clear failure.
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(app) {
        return Ok(path.clone());
    }
    let path = app_image_path(app);
    if std::env::var("CHAMELEON_NO_BUILD").is_ok_and(|v| v == "1") {
        if !path.exists() {
            return Err(format!("CHAMELEON_NO_BUILD=1 but kernel image {} does not exist", path.display()));
        }
    } else {
        // `CARGO` is set when running under cargo; it pins the same toolchain.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let root = workspace_root();
        eprintln!("$ cargo build --release --target {KERNEL_TARGET} -p {app}  (in {})", root.display());
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args(["build", "--release", "--target", KERNEL_TARGET, "-p", app])
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit()) // so compile errors show in the test log
            .status()
            .map_err(|e| format!("failed to run {cargo:?}: {e}"))?;
        if !status.success() {
            return Err(format!("building app `{app}` failed ({status}); see cargo output above"));
        }
        if !path.exists() {
            return Err(format!("cargo built `{app}` but {} is missing", path.display()));
        }
    }
    built.insert(app.to_owned(), path.clone());
    Ok(path)
}

/// Assembles and links the PVH floor stub into `out_dir`; returns its path.
///
/// The stub is the cheapest possible PVH guest (see `floor/pvh-floor.S`): it
/// echoes a non-empty `-append` command line to COM1, then exits through
/// isa-debug-exit with value 0 (QEMU status 1). Needs `gcc` and `ld` (binutils).
pub fn build_floor_stub(out_dir: &Path) -> PathBuf {
    build_stub(out_dir, "pvh-floor", FLOOR_ASM, FLOOR_LD)
}

/// Assembles and links the multiboot2 floor stub (`floor/mb2-floor.S`: exits through
/// isa-debug-exit at once) into `out_dir`; returns its path.
pub fn build_multiboot2_floor_stub(out_dir: &Path) -> PathBuf {
    build_stub(out_dir, "mb2-floor", MB2_FLOOR_ASM, MB2_FLOOR_LD)
}

fn build_stub(out_dir: &Path, name: &str, asm_text: &str, ld_text: &str) -> PathBuf {
    std::fs::create_dir_all(out_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let asm = out_dir.join(format!("{name}.S"));
    let ld_script = out_dir.join(format!("{name}.ld"));
    let obj = out_dir.join(format!("{name}.o"));
    let image = out_dir.join(name);
    std::fs::write(&asm, asm_text).expect("write stub asm");
    std::fs::write(&ld_script, ld_text).expect("write stub linker script");
    run_tool(Command::new("gcc").arg("-m32").arg("-c").arg(&asm).arg("-o").arg(&obj));
    run_tool(
        Command::new("ld")
            .args(["-m", "elf_i386", "--build-id=none", "-z", "noexecstack", "-T"])
            .arg(&ld_script)
            .arg("-o")
            .arg(&image)
            .arg(&obj),
    );
    image
}

/// Runs a build tool, panicking with its command line if it fails.
fn run_tool(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(status.success(), "{shown} failed: {status}");
}

/// The QEMU binary: `QEMU` env var, else `qemu-system-x86_64` from PATH.
pub fn qemu_binary() -> String {
    std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".to_owned())
}

/// Panics with an actionable message if QEMU is not installed, so a missing
/// package is not mistaken for a kernel bug.
pub fn require_qemu() {
    let qemu = qemu_binary();
    match Command::new(&qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            panic!("{qemu} not found: apt-get install qemu-system-x86")
        }
        Err(e) => panic!("cannot run {qemu}: {e}"),
    }
}

/// The accelerator for a person's boot: KVM where `/dev/kvm` opens read-write and the
/// CPU advertises `vmx` or `svm`, else TCG. An emulated /dev/kvm without those flags (as
/// in some sandboxes) is far slower than TCG.
pub fn host_accel() -> &'static str {
    let kvm_opens = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    let hardware = std::fs::read_to_string("/proc/cpuinfo")
        .is_ok_and(|info| info.split_whitespace().any(|flag| flag == "vmx" || flag == "svm"));
    if kvm_opens && hardware { "kvm" } else { "tcg" }
}

/// The CPU model for `accel`: the host's under KVM, TCG's fullest model elsewhere.
pub fn cpu_model(accel: &str) -> &'static str {
    // QEMU 7.2's `-cpu host` aborts under KVM on MSR 0x10a unless arch-capabilities is off.
    if accel == "kvm" { "host,-arch-capabilities" } else { "max" }
}

/// Quotes an argument for display so the printed command can be pasted into a shell.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain =
        !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=,:+@%".contains(&b));
    if plain { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

/// Description of a QEMU run, set up through the builder methods.
#[derive(Clone, Debug)]
pub struct Vm {
    /// Kernel image passed with `-kernel` (a PVH ELF).
    image: PathBuf,
    /// Kernel command line; passed with `-append` only when non-empty. Raw bytes are
    /// allowed, so tests can hand the kernel a command line that is not UTF-8.
    cmdline: OsString,
    /// Guest RAM in MiB (`-m`).
    memory_mib: u32,
    /// QEMU machine type (`-M`).
    machine: String,
    /// Accelerator (`-accel`): env `ACCEL`, else `tcg` (works everywhere).
    accel: String,
    /// CPU model (`-cpu`); QEMU's default when `None`.
    cpu: Option<String>,
    /// The host side of a virtio-net card, if the VM has one.
    net: Option<Net>,
    /// Add the isa-debug-exit device at port 0x501 so the guest can report an exit code.
    debug_exit: bool,
    /// Extra QEMU arguments appended last.
    extra_args: Vec<String>,
    /// Overall deadline for the run, counted from spawn.
    timeout: Duration,
    /// Echo the command line and guest serial lines to stderr (the bench turns this off).
    verbose: bool,
    /// A command QEMU runs under (e.g. `ip netns exec NS`).
    wrapper: Vec<String>,
    /// Give QEMU a pipe as stdin, so [`Running::send`] can type on the serial console.
    input: bool,
    /// The card's QEMU model (`-device`), when not virtio-net.
    nic_model: Option<String>,
    /// A disk or CD image firmware boots from, instead of `-kernel`; see [`Vm::boot_image`].
    boot_image: Option<(PathBuf, image::Format)>,
    /// The firmware: QEMU's default (SeaBIOS), or OVMF.
    firmware: image::Firmware,
}

impl Vm {
    /// A VM booting `image` with the default settings.
    pub fn new(image: impl Into<PathBuf>) -> Vm {
        Vm {
            image: image.into(),
            cmdline: OsString::new(),
            memory_mib: 64,
            machine: "pc".to_owned(),
            accel: std::env::var("ACCEL").unwrap_or_else(|_| "tcg".to_owned()),
            cpu: None,
            net: None,
            nic_model: None,
            debug_exit: true,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(60),
            verbose: true,
            wrapper: Vec::new(),
            input: false,
            boot_image: None,
            firmware: image::Firmware::SeaBios,
        }
    }

    /// A VM whose firmware boots `path` (built by [`image::build_image`]): a CD for an
    /// ISO, a hard disk (opened with `snapshot=on`, so VMs can share it) otherwise. The
    /// command line is the image's; [`Vm::cmdline`] does not apply.
    pub fn boot_image(path: impl Into<PathBuf>, format: image::Format) -> Vm {
        let path = path.into();
        let mut vm = Vm::new(&path);
        vm.boot_image = Some((path, format));
        vm
    }

    /// Sets the firmware.
    pub fn firmware(mut self, firmware: image::Firmware) -> Vm {
        self.firmware = firmware;
        self
    }

    /// Runs QEMU under `prefix` (e.g. `["ip", "netns", "exec", "ns1"]`).
    pub fn inside(mut self, prefix: &[&str]) -> Vm {
        self.wrapper = prefix.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The accelerator this VM will use.
    pub fn accel_name(&self) -> &str {
        &self.accel
    }

    /// A VM booting workspace app `name` (built on first use, see [`build_app`]).
    pub fn app(name: &str) -> Vm {
        Vm::new(build_app(name))
    }

    /// Sets the kernel command line.
    pub fn cmdline(mut self, cmdline: impl Into<OsString>) -> Vm {
        self.cmdline = cmdline.into();
        self
    }

    /// Sets guest RAM in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Vm {
        self.memory_mib = mib;
        self
    }

    /// Sets the QEMU machine type.
    pub fn machine(mut self, machine: impl Into<String>) -> Vm {
        self.machine = machine.into();
        self
    }

    /// Sets the accelerator.
    pub fn accel(mut self, accel: impl Into<String>) -> Vm {
        self.accel = accel.into();
        self
    }

    /// Sets the CPU model (see [`cpu_model`]).
    pub fn cpu(mut self, model: impl Into<String>) -> Vm {
        self.cpu = Some(model.into());
        self
    }

    /// Gives the VM a virtio-net card on `net`.
    /// Gives the card of [`Vm::net`] another QEMU model (`vmxnet3`, `e1000`, `e1000e`).
    pub fn nic_model(mut self, model: impl Into<String>) -> Vm {
        self.nic_model = Some(model.into());
        self
    }

    pub fn net(mut self, net: Net) -> Vm {
        self.net = Some(net);
        self
    }

    /// Enables or disables the isa-debug-exit device.
    pub fn debug_exit(mut self, on: bool) -> Vm {
        self.debug_exit = on;
        self
    }

    /// Appends one extra QEMU argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Vm {
        self.extra_args.push(arg.into());
        self
    }

    /// Sets the overall deadline.
    pub fn timeout(mut self, timeout: Duration) -> Vm {
        self.timeout = timeout;
        self
    }

    /// Turns command/serial echo on or off.
    pub fn verbose(mut self, on: bool) -> Vm {
        self.verbose = on;
        self
    }

    /// Makes the serial console writable from the host ([`Running::send`]); without it
    /// QEMU's stdin is /dev/null.
    pub fn serial_input(mut self, on: bool) -> Vm {
        self.input = on;
        self
    }

    /// The QEMU argument vector (without the binary name).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-accel".into(), (&self.accel).into()];
        if let Some(cpu) = &self.cpu {
            args.extend(["-cpu".into(), cpu.into()]);
        }
        args.extend(
            [
                "-M",
                &self.machine,
                "-m",
                &self.memory_mib.to_string(),
                "-display",
                "none",
                "-nodefaults",
                "-no-reboot",
                "-serial",
                "stdio",
            ]
            .iter()
            .map(OsString::from),
        );
        if self.firmware == image::Firmware::Ovmf {
            args.extend(["-bios".into(), image::OVMF.into()]);
        }
        match &self.boot_image {
            None => {
                args.push("-kernel".into());
                args.push(self.image.clone().into_os_string());
                if !self.cmdline.is_empty() {
                    args.push("-append".into());
                    args.push(self.cmdline.clone());
                }
            }
            Some((path, image::Format::Iso)) => {
                args.push("-cdrom".into());
                args.push(path.clone().into_os_string());
            }
            Some((path, format)) => {
                let format = if *format == image::Format::Qcow2 { "qcow2" } else { "raw" };
                let mut drive = OsString::from("file=");
                // QEMU's option syntax doubles a comma inside a value.
                drive.push(path.to_string_lossy().replace(',', ",,"));
                drive.push(format!(",format={format},snapshot=on"));
                args.extend(["-drive".into(), drive]);
            }
        }
        if self.debug_exit {
            args.push("-device".into());
            args.push("isa-debug-exit,iobase=0x501,iosize=2".into());
        }
        if let Some(net) = &self.net {
            let backend = match net {
                Net::User { host_port, guest_port } => {
                    format!("user,id=net0,hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}")
                }
                Net::Tap => "tap,id=net0,ifname=tap0,script=no,downscript=no".to_owned(),
            };
            // microvm has no PCI bus: its card is virtio-mmio, found through ACPI's DSDT.
            let card = match &self.nic_model {
                Some(model) => model.as_str(),
                None if self.machine.starts_with("microvm") => "virtio-net-device",
                None => "virtio-net-pci",
            };
            args.extend([
                "-netdev".into(),
                backend.into(),
                "-device".into(),
                format!("{card},netdev=net0").into(),
            ]);
        }
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }

    /// The full command line, shell-quoted, for logs.
    pub fn command_line(&self) -> String {
        self.wrapper
            .iter()
            .map(OsString::from)
            .chain(std::iter::once(OsString::from(qemu_binary())))
            .chain(self.args())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// QEMU's command, under the wrapper if there is one.
    fn command(&self) -> Command {
        let mut command = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(qemu_binary());
                c
            }
            None => Command::new(qemu_binary()),
        };
        command.args(self.args());
        command
    }

    /// Starts QEMU with the caller's stdin, stdout and stderr, so the terminal is the
    /// guest's serial console; no deadline applies. Shows nothing: the caller prints
    /// [`Vm::command_line`] where it fits.
    pub fn spawn_foreground(&self) -> Result<Child, HarnessError> {
        self.command().spawn().map_err(|error| HarnessError::Spawn { program: qemu_binary(), error })
    }

    /// Starts QEMU. Serial output is collected by a reader thread so the guest
    /// can never block on a full pipe, whatever the test is doing.
    pub fn spawn(self) -> Result<Running, HarnessError> {
        let qemu = qemu_binary();
        if self.verbose {
            eprintln!("$ {}", self.command_line());
        }
        let started = Instant::now();
        let mut child = self
            .command()
            .stdin(if self.input { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| HarnessError::Spawn { program: qemu.clone(), error })?;

        let mut stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        let verbose = self.verbose;
        let passthrough = Arc::new(AtomicBool::new(false));
        let raw = Arc::clone(&passthrough);
        let stdout_thread = thread::spawn(move || {
            // Read in chunks, not lines: once the terminal is attached, a prompt with no
            // newline after it must show at once.
            let mut pending = Vec::new();
            let mut chunk = [0u8; 4096];
            let send = |mut bytes: Vec<u8>| {
                let at = Instant::now();
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                }
                let mut text = String::from_utf8_lossy(&bytes).into_owned();
                text.retain(|c| c != '\r');
                if verbose {
                    let t = at.duration_since(started).as_secs_f64();
                    eprintln!("[guest +{t:.3}s] {text}");
                }
                tx.send(Line { at, text }).is_ok()
            };
            loop {
                let n = match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => break, // EOF: QEMU exited (or closed the pipe)
                    Ok(n) => n,
                };
                pending.extend_from_slice(&chunk[..n]);
                if raw.load(Ordering::Relaxed) {
                    let mut out = io::stdout().lock();
                    let _ = out.write_all(&pending).and_then(|()| out.flush());
                    pending.clear();
                    continue;
                }
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let rest = pending.split_off(end + 1);
                    if !send(std::mem::replace(&mut pending, rest)) {
                        return; // Running was dropped; nobody is listening
                    }
                }
            }
            if !pending.is_empty() && !raw.load(Ordering::Relaxed) {
                send(pending);
            }
        });

        let mut stderr = child.stderr.take().expect("stderr is piped");
        let qemu_stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&qemu_stderr);
        let stderr_thread = thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut chunk = [0u8; 4096];
            // Append chunk by chunk so a timeout report can show partial stderr.
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                bytes.extend_from_slice(&chunk[..n]);
                *sink.lock().unwrap_or_else(|e| e.into_inner()) =
                    String::from_utf8_lossy(&bytes).into_owned();
            }
        });

        let child_stdin = child.stdin.take();
        Ok(Running {
            started,
            deadline: started + self.timeout,
            lines: Vec::new(),
            cursor: 0,
            child,
            status: None,
            rx,
            stdout_done: false,
            qemu_stderr,
            threads: vec![stdout_thread, stderr_thread],
            stdin: child_stdin,
            passthrough,
        })
    }
}

/// The host side of a VM's virtio-net card (virtio-net-pci, or virtio-net-device on
/// `microvm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net {
    /// QEMU's user network; the host's 127.0.0.1:`host_port` forwards to the guest's
    /// `guest_port`.
    User { host_port: u16, guest_port: u16 },
    /// `tap0` of the network namespace QEMU runs in (see [`Namespace`]).
    Tap,
}

/// A network namespace holding `tap0` at 10.0.3.1/24. QEMU runs inside it
/// ([`Namespace::wrap`]) with a [`Net::Tap`] card, the guest takes
/// [`Namespace::GUEST_IP`], and clients reach it with `ip netns exec NAME ...`: no user
/// network in between. Needs root and iproute2.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    /// Deleted on drop unless kept (see [`Namespace::persistent`]).
    keep: bool,
}

impl Namespace {
    /// The guest's address on the namespace's tap device.
    pub const GUEST_IP: &str = "10.0.3.2";

    /// Creates namespace `name`; it is deleted on drop.
    pub fn create(name: impl Into<String>) -> Result<Namespace, String> {
        let ns = Namespace { name: name.into(), keep: false };
        ns.set_up()?;
        Ok(ns)
    }

    /// Namespace `name`, created on first use and kept afterwards, so a person's clients
    /// find it between boots.
    pub fn persistent(name: impl Into<String>) -> Result<Namespace, String> {
        let ns = Namespace { name: name.into(), keep: true };
        ns.require_root()?;
        let listed = Command::new("ip").args(["netns", "list"]).output().map_err(|e| format!("ip: {e}"))?;
        let exists = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns.name.as_str()));
        if !exists {
            ns.set_up()?;
        }
        Ok(ns)
    }

    /// Making a namespace, and running in one, takes root.
    fn require_root(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        // /proc/self belongs to the process's effective user.
        match std::fs::metadata("/proc/self").map_err(|e| e.to_string())?.uid() {
            0 => Ok(()),
            _ => Err(format!("the network namespace {} needs root", self.name)),
        }
    }

    fn set_up(&self) -> Result<(), String> {
        self.require_root()?;
        let name = self.name.as_str();
        for args in [
            vec!["netns", "add", name],
            vec!["-n", name, "link", "set", "lo", "up"],
            vec!["-n", name, "tuntap", "add", "dev", "tap0", "mode", "tap"],
            vec!["-n", name, "addr", "add", "10.0.3.1/24", "dev", "tap0"],
            vec!["-n", name, "link", "set", "tap0", "up"],
        ] {
            let ok = Command::new("ip").args(&args).status().is_ok_and(|s| s.success());
            if !ok {
                return Err(format!("ip {} failed (iproute2 is needed)", args.join(" ")));
            }
        }
        Ok(())
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `vm` with QEMU started inside this namespace.
    pub fn wrap(&self, vm: Vm) -> Vm {
        vm.inside(&["ip", "netns", "exec", &self.name])
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if !self.keep {
            let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        }
    }
}

/// One line of guest serial output with the host time it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Host time at which the line was read from QEMU's stdout.
    pub at: Instant,
    /// The line without its `\n` and with `\r` removed (lossy UTF-8).
    pub text: String,
}

/// A running QEMU. Dropping it kills and reaps QEMU, so a failing test never
/// leaves a VM behind.
#[allow(missing_debug_implementations)] // holds a child process and threads
pub struct Running {
    /// When QEMU was spawned (just before `Command::spawn`).
    pub started: Instant,
    /// Spawn time plus the Vm's timeout; every wait stops here.
    pub deadline: Instant,
    /// Every serial line received so far, in order.
    pub lines: Vec<Line>,
    /// Index into `lines` of the first line not consumed by `wait_for`.
    cursor: usize,
    child: Child,
    status: Option<ExitStatus>,
    rx: Receiver<Line>,
    stdout_done: bool,
    qemu_stderr: Arc<Mutex<String>>,
    threads: Vec<JoinHandle<()>>,
    /// QEMU's stdin, when the Vm asked for [`Vm::serial_input`].
    stdin: Option<ChildStdin>,
    /// Set by [`Running::attach_terminal`]: the reader copies QEMU's output to our stdout.
    passthrough: Arc<AtomicBool>,
}

impl Running {
    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the QEMU process is still alive (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// The last `n` serial lines received so far, joined with `\n` (for a report when
    /// a guest stops answering).
    pub fn console_tail(&mut self, n: usize) -> String {
        self.drain_queued();
        join_lines(&self.lines[self.lines.len().saturating_sub(n)..])
    }

    /// QEMU's stderr collected so far.
    pub fn qemu_stderr(&self) -> String {
        self.qemu_stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Heap bytes from the newest `net: ... heap N bytes` line received so far (the
    /// network stack logs one at `log=debug` whenever a closed connection is reaped).
    pub fn heap_figure(&mut self) -> Option<u64> {
        self.drain_queued();
        self.lines.iter().rev().find_map(|l| {
            let rest = l.text.split("; heap ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
    }

    /// For `selftest=sleep`: the host time of each of the guest's three 1 s sleeps
    /// (between its console lines), and their median. A line held up by a busy host
    /// lengthens one interval and shortens the next; the median stays.
    pub fn one_second_sleeps(&mut self) -> Result<(Duration, Vec<Duration>), HarnessError> {
        let mut at = self.wait_for("selftest sleep: start")?.at;
        let mut intervals = Vec::new();
        for round in 1..=3 {
            let done = self.wait_for(&format!("selftest sleep: {round} done"))?.at;
            intervals.push(done - at);
            at = done;
        }
        let mut sorted = intervals.clone();
        sorted.sort();
        Ok((sorted[1], intervals))
    }

    /// Waits for a serial line containing `needle`, searching only lines after
    /// the previous successful match so that a sequence of `wait_for` calls
    /// checks ordering.
    pub fn wait_for(&mut self, needle: &str) -> Result<Line, HarnessError> {
        // Lines before `scan_from` are known not to match this needle; the
        // cursor itself only moves on success, so a failed wait consumes nothing.
        let mut scan_from = self.cursor;
        loop {
            if let Some(i) = self.lines[scan_from..].iter().position(|l| l.text.contains(needle)) {
                let idx = scan_from + i;
                self.cursor = idx + 1;
                return Ok(self.lines[idx].clone());
            }
            scan_from = self.lines.len();
            if self.stdout_done {
                // No more output can come; report how QEMU ended.
                let status = self.wait_reaped();
                return Err(HarnessError::Exited {
                    needle: needle.to_owned(),
                    status: status.and_then(|s| s.code()),
                    output: self.output(),
                    qemu_stderr: self.qemu_stderr(),
                });
            }
            if !self.recv_until_deadline() {
                return Err(self.timeout_error(format!("a line containing {needle:?}")));
            }
        }
    }

    /// The next serial line not yet consumed (by this or [`Running::wait_for`]); `None`
    /// once QEMU has closed its output, or at the deadline.
    pub fn next_line(&mut self) -> Option<Line> {
        while self.cursor == self.lines.len() {
            if self.stdout_done || !self.recv_until_deadline() {
                return None;
            }
        }
        self.cursor += 1;
        Some(self.lines[self.cursor - 1].clone())
    }

    /// [`Running::next_line`], giving up at `deadline` (or the run's own, if earlier).
    pub fn next_line_by(&mut self, deadline: Instant) -> Option<Line> {
        while self.cursor == self.lines.len() {
            if self.stdout_done || !self.recv_by(deadline) {
                return None;
            }
        }
        self.cursor += 1;
        Some(self.lines[self.cursor - 1].clone())
    }

    /// Types `bytes` on the guest's serial console (needs [`Vm::serial_input`]).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "QEMU was started without serial_input")
        })?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    /// Hands the serial console to the person at this terminal until QEMU exits: their
    /// keys go to the guest unchanged (the terminal in raw mode, so Ctrl-C reaches the
    /// guest too), its output comes to our stdout. [`ESCAPE`] pressed three times in a
    /// row kills QEMU. Lines received before the call stay in [`Running::lines`].
    pub fn attach_terminal(&mut self) -> io::Result<Option<ExitStatus>> {
        let mut stdin = self.stdin.take().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "QEMU was started without serial_input")
        })?;
        // What came in after the last consumed line is shown first, then everything raw.
        self.drain_queued();
        let mut out = io::stdout().lock();
        for line in &self.lines[self.cursor..] {
            writeln!(out, "{}", line.text)?;
        }
        out.flush()?;
        drop(out);
        self.cursor = self.lines.len();
        self.passthrough.store(true, Ordering::Relaxed);
        let terminal = RawTerminal::enter();
        let quit = Arc::new(AtomicBool::new(false));
        let quit_keys = Arc::clone(&quit);
        // Not joined: it blocks in read() until the next key, which may never come.
        thread::spawn(move || {
            let mut keys = io::stdin().lock();
            let mut buf = [0u8; 256];
            let mut escapes = 0;
            while let Ok(n) = keys.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    escapes = if b == ESCAPE { escapes + 1 } else { 0 };
                }
                if escapes >= 3 {
                    quit_keys.store(true, Ordering::Relaxed);
                    break;
                }
                if stdin.write_all(&buf[..n]).and_then(|()| stdin.flush()).is_err() {
                    break;
                }
            }
        });
        let status = loop {
            if quit.load(Ordering::Relaxed) {
                self.kill();
                break self.status;
            }
            if let Some(status) = self.poll_exit() {
                break Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        };
        drop(terminal);
        Ok(status)
    }

    /// Waits for QEMU to exit, collecting all remaining serial output. On the
    /// deadline QEMU is killed and `HarnessError::Timeout` is returned.
    pub fn wait_exit(&mut self) -> Result<Outcome, HarnessError> {
        while !self.stdout_done {
            if !self.recv_until_deadline() {
                self.kill();
                return Err(self.timeout_error("QEMU to exit".to_owned()));
            }
        }
        // Stdout closed means QEMU is exiting; poll briefly for its status but
        // still respect the deadline in case it hangs on the way out.
        let status = loop {
            if let Some(status) = self.poll_exit() {
                break status;
            }
            if Instant::now() >= self.deadline {
                self.kill();
                return Err(self.timeout_error("QEMU to exit (stdout closed)".to_owned()));
            }
            thread::sleep(Duration::from_micros(200));
        };
        let wall = self.started.elapsed();
        for t in self.threads.drain(..) {
            let _ = t.join(); // stderr fully collected once its thread ends
        }
        Ok(Outcome {
            status: status.code(),
            lines: self.lines.clone(),
            qemu_stderr: self.qemu_stderr(),
            wall,
        })
    }

    /// Kills QEMU (if still running) and reaps it.
    pub fn kill(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }

    /// Receives one line, or notes EOF. Returns false if the deadline passed.
    fn recv_until_deadline(&mut self) -> bool {
        self.recv_by(self.deadline)
    }

    /// [`Running::recv_until_deadline`] with an earlier deadline of the caller's.
    fn recv_by(&mut self, deadline: Instant) -> bool {
        let left = deadline.min(self.deadline).saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Still take anything already queued so error reports are complete.
            self.drain_queued();
            return false;
        }
        match self.rx.recv_timeout(left) {
            Ok(line) => {
                self.lines.push(line);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.stdout_done = true;
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// Moves already-received lines into `self.lines` without blocking.
    fn drain_queued(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.lines.push(line);
        }
    }

    /// Non-blocking reap; caches the status.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Reaps QEMU after stdout closed, killing it if it outlives the deadline.
    fn wait_reaped(&mut self) -> Option<ExitStatus> {
        while self.poll_exit().is_none() && Instant::now() < self.deadline {
            thread::sleep(Duration::from_millis(1));
        }
        if self.status.is_none() {
            self.kill();
        }
        self.status
    }

    fn output(&self) -> String {
        join_lines(&self.lines)
    }

    fn timeout_error(&mut self, waiting_for: String) -> HarnessError {
        self.drain_queued();
        HarnessError::Timeout {
            waiting_for,
            after: self.started.elapsed(),
            output: self.output(),
            qemu_stderr: self.qemu_stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
        // Threads end on their own once QEMU's pipes close; don't join here so
        // a panicking test unwinds promptly.
    }
}

/// The key that, pressed three times in a row, leaves [`Running::attach_terminal`]:
/// Ctrl-] (a single one still reaches the guest, where `xl console` takes it as detach).
pub const ESCAPE: u8 = 0x1d;

/// The terminal in raw mode while it lives (through `stty`, on our stdin); a no-op when
/// stdin is not a terminal.
struct RawTerminal {
    saved: Option<String>,
}

impl RawTerminal {
    fn enter() -> RawTerminal {
        let stty = |args: &[&str]| {
            Command::new("stty")
                .args(args)
                .stdin(Stdio::inherit())
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
        };
        let saved = stty(&["-g"]).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        if saved.is_some() {
            stty(&["raw", "-echo"]);
        }
        RawTerminal { saved }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = Command::new("stty").arg(saved).stdin(Stdio::inherit()).status();
        }
    }
}

fn join_lines(lines: &[Line]) -> String {
    lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
}

/// How a QEMU run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// QEMU's exit status; `None` if it was killed by a signal.
    pub status: Option<i32>,
    /// All serial lines of the run.
    pub lines: Vec<Line>,
    /// Everything QEMU wrote to its own stderr.
    pub qemu_stderr: String,
    /// Wall time from spawn to observed exit.
    pub wall: Duration,
}

impl Outcome {
    /// The value the guest wrote to isa-debug-exit (see [`debug_exit_code`]).
    pub fn guest_code(&self) -> Option<u32> {
        self.status.and_then(debug_exit_code)
    }

    /// All serial lines joined with `\n`.
    pub fn output(&self) -> String {
        join_lines(&self.lines)
    }

    /// Whether any serial line contains `needle`.
    pub fn has_line(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.text.contains(needle))
    }

    /// Panics, showing the output, unless a line contains `needle`.
    pub fn assert_line(&self, needle: &str) {
        assert!(self.has_line(needle), "expected a line containing {needle:?} in:\n{}", self.output());
    }

    /// Checks the guest's exit code both ways: isa-debug-exit's status (which QEMU's own
    /// errors can mimic for code 0) and the kernel's last line.
    pub fn assert_exit(&self, code: u32) {
        assert_eq!(self.guest_code(), Some(code), "{}", self.output());
        self.assert_line(&format!("chameleon: exit code {code}"));
    }

    /// The `[seconds.micros]` stamps of the kernel's log lines, in order.
    pub fn log_timestamps(&self) -> Vec<f64> {
        self.lines
            .iter()
            .filter(|l| l.text.starts_with('['))
            .filter_map(|l| l.text[1..l.text.find(']')?].trim().parse().ok())
            .collect()
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift64): a boot module whose every byte
/// matters, reproducible without a random-number crate.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The 64-bit FNV-1a hash `selftest=heap` prints for each boot module.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The value a guest wrote to isa-debug-exit, from QEMU's exit status `(v << 1) | 1`;
/// `None` for even statuses (0: power-off, or triple fault with -no-reboot).
pub fn debug_exit_code(status: i32) -> Option<u32> {
    (status & 1 == 1).then(|| (status as u32 - 1) / 2)
}

/// Harness failures. Messages include the guest output so a failing test's
/// panic message is enough to debug it.
#[derive(Debug)]
pub enum HarnessError {
    /// QEMU could not be started (not installed, not executable, ...).
    Spawn { program: String, error: io::Error },
    /// The deadline passed; QEMU was killed by `wait_exit` (or by drop).
    Timeout { waiting_for: String, after: Duration, output: String, qemu_stderr: String },
    /// QEMU exited before the awaited line appeared.
    Exited { needle: String, status: Option<i32>, output: String, qemu_stderr: String },
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dump = |f: &mut fmt::Formatter<'_>, output: &str, stderr: &str| {
            writeln!(f, "--- guest serial output ---")?;
            writeln!(f, "{output}")?;
            write!(f, "--- qemu stderr ---\n{stderr}")
        };
        match self {
            HarnessError::Spawn { program, error } => {
                write!(f, "failed to start {program}: {error}")?;
                if error.kind() == io::ErrorKind::NotFound {
                    write!(f, " (apt-get install qemu-system-x86)")?;
                }
                Ok(())
            }
            HarnessError::Timeout { waiting_for, after, output, qemu_stderr } => {
                writeln!(f, "timed out after {:.1}s waiting for {waiting_for}", after.as_secs_f64())?;
                dump(f, output, qemu_stderr)
            }
            HarnessError::Exited { needle, status, output, qemu_stderr } => {
                writeln!(f, "QEMU exited (status {status:?}) before a line containing {needle:?}")?;
                dump(f, output, qemu_stderr)
            }
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Spawn { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Spawns `vm` and waits for it to exit, panicking with the guest output on
/// failure. The common case for "boot, run, check exit code" tests.
pub fn run_to_exit(vm: Vm) -> Outcome {
    let mut running = vm.spawn().unwrap_or_else(|e| panic!("{e}"));
    running.wait_exit().unwrap_or_else(|e| panic!("{e}"))
}

/// The Xen 4.17 hypervisor binary for the Xen tests: `CHAMELEON_XEN`, else
/// `target/xen/xen-4.17`, fetched from Debian's `xen-hypervisor-4.17-amd64` package on
/// first use. `None` (the caller skips, loudly) when it can be neither found nor fetched.
pub fn xen_binary() -> Option<PathBuf> {
    static XEN: OnceLock<Option<PathBuf>> = OnceLock::new();
    XEN.get_or_init(|| {
        if let Some(path) = std::env::var_os("CHAMELEON_XEN") {
            return Some(PathBuf::from(path));
        }
        let dir = workspace_root().join("target/xen");
        let xen = dir.join("xen-4.17");
        if xen.exists() {
            return Some(xen);
        }
        std::fs::create_dir_all(&dir).ok()?;
        eprintln!("fetching Xen 4.17 into {} (apt-get download xen-hypervisor-4.17-amd64)", dir.display());
        // apt-get's stderr stays visible: it says why a download failed.
        let sh = "apt-get download xen-hypervisor-4.17-amd64 >/dev/null && \
                  dpkg -x xen-hypervisor-4.17-amd64_*.deb x && zcat x/boot/xen-4.17-amd64.gz > xen-4.17.tmp && \
                  mv xen-4.17.tmp xen-4.17 && rm -rf x ./*.deb";
        let ok = Command::new("sh").arg("-c").arg(sh).current_dir(&dir).status().is_ok_and(|s| s.success());
        ok.then_some(xen)
    })
    .clone()
}

/// How Xen starts the image as its dom0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dom0 {
    /// A PV dom0: ring 3, Xen's page tables, the xen_pv backend.
    Pv,
    /// A PVH dom0 (needs an IOMMU): the xen_hvm backend.
    Pvh,
}

/// A VM running Xen 4.17 under QEMU TCG with `image args` as its dom0 (64 MiB). QEMU
/// does not exit when Xen halts: wait for [`XEN_HALTED`] or [`XEN_CRASHED`].
pub fn xen_dom0(xen: &Path, mode: Dom0, image: &Path, args: &str) -> Vm {
    xen_dom0_sized(xen, mode, image, args, 64)
}

/// [`xen_dom0`] with `dom0_mib` MiB for the dom0.
pub fn xen_dom0_sized(xen: &Path, mode: Dom0, image: &Path, args: &str, dom0_mib: u32) -> Vm {
    let xen_args = format!("console=com1 com1=115200,8n1 noreboot guest_loglvl=all dom0_mem={dom0_mib}M");
    let vm = Vm::new(xen).memory_mib(512).debug_exit(false).cpu("max");
    let vm = match mode {
        Dom0::Pv => vm.cmdline(xen_args),
        // Xen 4.17 runs a PVH dom0 only with an IOMMU. QEMU's emulated VT-d beside TCG's
        // SVM cannot share the p2m's page tables (Xen's setup of every PCI device then
        // fails with ENOMEM), so the IOMMU keeps its own (`no-sharept`).
        Dom0::Pvh => vm
            .machine("q35,kernel-irqchip=split")
            .cmdline(format!("{xen_args} dom0=pvh iommu=1,no-sharept"))
            .arg("-device")
            .arg("intel-iommu,intremap=on"),
    };
    vm.arg("-initrd").arg(format!("{} {args}", image.display()))
}

/// What Xen prints when its dom0 powers off, and when it crashes.
pub const XEN_HALTED: &str = "(XEN) Hardware Dom0 halted";
pub const XEN_CRASHED: &str = "(XEN) Hardware Dom0 crashed";

#[cfg(test)]
mod unit {
    use super::*;

    fn outcome(status: Option<i32>) -> Outcome {
        Outcome { status, lines: Vec::new(), qemu_stderr: String::new(), wall: Duration::ZERO }
    }

    #[test]
    fn guest_code_decoding() {
        assert_eq!(outcome(Some(1)).guest_code(), Some(0));
        assert_eq!(outcome(Some(3)).guest_code(), Some(1));
        assert_eq!(outcome(Some(0x21)).guest_code(), Some(0x10));
        assert_eq!(outcome(Some(255)).guest_code(), Some(127));
        assert_eq!(outcome(Some(0)).guest_code(), None);
        assert_eq!(outcome(Some(2)).guest_code(), None);
        assert_eq!(outcome(None).guest_code(), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-m"), "-m");
        assert_eq!(
            shell_quote("isa-debug-exit,iobase=0x501,iosize=2"),
            "isa-debug-exit,iobase=0x501,iosize=2"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn args_shape() {
        let vm = Vm::new("/k").accel("tcg").cmdline("x y").arg("-smp").arg("2");
        let a = vm.args();
        let expect: Vec<&str> = vec![
            "-accel",
            "tcg",
            "-M",
            "pc",
            "-m",
            "64",
            "-display",
            "none",
            "-nodefaults",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
            "/k",
            "-append",
            "x y",
            "-device",
            "isa-debug-exit,iobase=0x501,iosize=2",
            "-smp",
            "2",
        ];
        assert_eq!(a, expect);
        let b = Vm::new("/k").debug_exit(false).args();
        assert!(!b.iter().any(|s| s == "-append" || s == "-device"));
    }

    #[test]
    fn cpu_and_network_card() {
        let a = Vm::new("/k").accel("kvm").cpu(cpu_model("kvm")).machine("microvm").net(Net::Tap).args();
        assert_eq!(a[..4], ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]);
        assert_eq!(
            a[a.len() - 4..],
            [
                "-netdev",
                "tap,id=net0,ifname=tap0,script=no,downscript=no",
                "-device",
                "virtio-net-device,netdev=net0"
            ]
        );
        let b = Vm::new("/k").net(Net::User { host_port: 8080, guest_port: 80 }).arg("-smp").arg("2").args();
        assert_eq!(
            b[b.len() - 6..],
            [
                "-netdev",
                "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80",
                "-device",
                "virtio-net-pci,netdev=net0",
                "-smp",
                "2"
            ]
        );
    }
}

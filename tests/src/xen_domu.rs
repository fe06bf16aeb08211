//! A Xen 4.17 host to run images as **domUs** next to a real Linux dom0, all inside one
//! QEMU (TCG): Xen, Debian's Linux 6.1 as a PV dom0 with the whole toolstack (xenstored,
//! xenconsoled, `xl`, netback, Debian's vif-bridge hotplug script) and a bridge `xenbr0`
//! at 10.0.9.1/24 that the domUs' vifs join. Everything comes from Debian packages
//! (`apt-get download`), unpacked and cached in `target/xen-domu/` on first use.
//!
//! One boot serves many domUs: dom0 runs a command loop on its console
//! (`tests/xen-domu/dom0-init.sh`) and [`Testbed::run`] types a command and returns its
//! output and exit status. The helpers build on it:
//!
//! ```no_run
//! use tests::xen_domu::{Domu, DomuType, Options, Testbed};
//! let tb = Testbed::boot(Options::new().image("hello", tests::build_app("hello"))).unwrap();
//! tb.create(&Domu::image("h", "hello", DomuType::Pv)).unwrap();
//! let end = tb.wait_shutdown("h", std::time::Duration::from_secs(60)).unwrap();
//! assert_eq!(end.reason, Some(0));
//! let log = tb.console_log("h").unwrap(); // what xenconsoled logged
//! ```
//!
//! Images travel in the initramfs (an overlay appended to the cached dom0 root at boot),
//! so they are named in [`Options::image`] before the boot.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cpio::Cpio;
use crate::{HarnessError, Running, Vm, shell_quote, target_dir, workspace_root, xen_binary};

/// dom0's /init: the toolstack, the bridge, then the command loop.
const DOM0_INIT: &str = include_str!("../xen-domu/dom0-init.sh");
/// /init of the Linux control domU ([`Domu::linux`]).
const LINUX_DOMU_INIT: &str = include_str!("../xen-domu/domu-linux-init.sh");
/// dom0's `/etc/xen/scripts/vif-lean`, the lean vif hotplug script ([`Domu::vif_script`]).
const VIF_LEAN: &str = include_str!("../xen-domu/vif-lean.sh");

/// Bump when the cache recipe below changes, so old caches are rebuilt.
const RECIPE: &str = "xen-domu cache 4";

/// The Debian packages of dom0's root, besides `linux-image-<version>`. Xen itself comes
/// from [`xen_binary`], shared with the dom0 tests. libxenctrl, libxenguest and
/// libxenlight are all in libxenmisc4.17.
const PACKAGES: &[&str] = &[
    "busybox-static",
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "libxenstore4",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenmisc4.17",
    "libxentoollog1",
    "libyajl2",
    "libxenhypfs1",
    "libxendevicemodel1",
    "libxentoolcore1",
];

/// The load generator for [`Options::load_generator`], fetched with the rest so that
/// its libraries come from the same host as dom0's (a libm newer than dom0's libc
/// would not load). Not in dom0's root: only the benchmark's boots carry it.
const WRK_PACKAGES: &[&str] = &["wrk", "libluajit-5.1-2", "libssl3"];

/// nginx for the Linux control domU ([`Options::linux_nginx`]), libssl3 aside.
const NGINX_PACKAGES: &[&str] = &["nginx", "libcrypt1", "libpcre2-8-0", "zlib1g"];

/// nginx's configuration in the Linux domU: one process serving httpd's site, with
/// keep-alive connections that last, as `benches/linux-guest.sh` runs it under QEMU.
const NGINX_CONF: &str = "\
daemon on;
master_process off;
worker_processes 1;
user root;
error_log stderr error;
pid /tmp/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    types { text/html html; text/css css; image/png png; text/plain txt; }
    server { listen 80; root /site; }
}
";

/// dom0's modules, under the kernel's `kernel/` directory (init loads them by name).
const MODULES: &[&str] = &[
    "net/llc/llc",
    "net/802/stp",
    "net/bridge/bridge",
    "drivers/xen/xen-privcmd",
    "drivers/xen/xenfs/xenfs",
    "drivers/xen/xen-evtchn",
    "drivers/xen/xen-gntdev",
    "drivers/xen/xen-gntalloc",
    "drivers/net/xen-netback/xen-netback",
];

/// The toolstack, from `/usr/lib/xen-4.17/bin` (`/usr/sbin/xl` and the like are
/// wrappers that look for the version in /sys first; this directory goes on PATH).
const XEN_TOOLS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xenconsole",
    "xen-init-dom0",
    "libxl-save-helper",
    "xenstore-control",
    "readnotes",
    "lsevtchn",
    "xenctx",
    "xen-diag",
];

/// Xen's command line. `bootscrub=0`: Xen would otherwise touch all free RAM at boot,
/// which costs seconds under TCG and makes QEMU's RSS the whole of `-m`.
fn xen_args(dom0_mib: u32) -> String {
    format!(
        "console=com1 com1=115200,8n1 noreboot guest_loglvl=all loglvl=all \
         dom0_mem={dom0_mib}M,max:{dom0_mib}M dom0_max_vcpus=1 dom0_vcpus_pin bootscrub=0"
    )
}

/// dom0 Linux's command line. `swiotlb=4096` (8 MiB): the PV default of 64 MiB of
/// bounce buffers, useless without DMA devices, leaves `xl` too little memory to load a
/// Linux domU, and the OOM killer takes it.
const DOM0_ARGS: &str = "console=hvc0 earlyprintk=xen loglevel=4 swiotlb=4096";

/// The parts of the cache a boot uses.
#[derive(Debug)]
struct Cache {
    xen: PathBuf,
    /// Debian's Linux, for dom0 and the control domU.
    kernel: PathBuf,
    dom0_root: PathBuf,
    busybox: PathBuf,
    netfront: PathBuf,
    /// wrk and the libraries dom0's root lacks, as a tree to overlay on it.
    wrk: PathBuf,
    /// nginx with every library and the loader, for the Linux domU's initramfs.
    nginx: PathBuf,
}

/// Failures of the testbed. [`TestbedError::Unavailable`] is the one a test may skip on.
#[derive(Debug)]
pub enum TestbedError {
    /// QEMU is not installed, or the Debian packages could not be fetched.
    Unavailable(String),
    /// The cache could not be built from the packages.
    Setup(String),
    /// dom0 did not come up, or QEMU is gone or was killed after a deadline.
    Boot(String),
    /// A command could not be run, or a helper's command failed; the message shows why.
    Command(String),
}

impl fmt::Display for TestbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestbedError::Unavailable(m) => write!(f, "xen-domu testbed unavailable: {m}"),
            TestbedError::Setup(m) => write!(f, "xen-domu testbed cache: {m}"),
            TestbedError::Boot(m) => write!(f, "xen-domu testbed: {m}"),
            TestbedError::Command(m) => write!(f, "xen-domu testbed: {m}"),
        }
    }
}

impl std::error::Error for TestbedError {}

type Result<T> = std::result::Result<T, TestbedError>;

fn setup_err(what: impl fmt::Display) -> TestbedError {
    TestbedError::Setup(what.to_string())
}

/// The cache in `target/xen-domu/`, built on first use (by one process at a time: a
/// lock file), and checked once per process.
fn cache() -> Result<&'static Cache> {
    static CACHE: OnceLock<std::result::Result<Cache, (bool, String)>> = OnceLock::new();
    let built = CACHE.get_or_init(|| {
        build_cache().map_err(|e| (matches!(e, TestbedError::Unavailable(_)), e.to_string()))
    });
    match built {
        Ok(cache) => Ok(cache),
        Err((true, m)) => Err(TestbedError::Unavailable(m.clone())),
        Err((false, m)) => Err(TestbedError::Setup(m.clone())),
    }
}

fn build_cache() -> Result<Cache> {
    let xen = xen_binary().ok_or_else(|| {
        TestbedError::Unavailable("no Xen 4.17 (apt-get download xen-hypervisor-4.17-amd64 failed)".into())
    })?;
    let dir = target_dir().join("xen-domu");
    fs::create_dir_all(&dir).map_err(|e| setup_err(format!("{}: {e}", dir.display())))?;
    let cache = Cache {
        xen,
        kernel: dir.join("vmlinux.gz"),
        dom0_root: dir.join("dom0-root.cpio"),
        busybox: dir.join("busybox"),
        netfront: dir.join("xen-netfront.ko"),
        wrk: dir.join("wrk"),
        nginx: dir.join("nginx"),
    };
    let lock = File::create(dir.join(".lock")).map_err(setup_err)?;
    lock.lock().map_err(setup_err)?;
    let stamp = dir.join(".stamp");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == RECIPE) {
        return Ok(cache);
    }
    let started = Instant::now();
    eprintln!("xen-domu: building the dom0 root in {} (once)", dir.display());
    let kernel = linux_version()?;
    let mut packages: Vec<String> =
        PACKAGES.iter().chain(WRK_PACKAGES).chain(NGINX_PACKAGES).map(|p| p.to_string()).collect();
    packages.push(format!("linux-image-{kernel}"));
    let debs = download(&dir.join("debs"), &packages)?;
    let unpacked = dir.join("unpacked");
    let _ = fs::remove_dir_all(&unpacked);
    for deb in &debs {
        tool(Command::new("dpkg").arg("-x").arg(deb).arg(&unpacked))?;
    }
    let tree = dir.join("dom0-root");
    let _ = fs::remove_dir_all(&tree);
    dom0_tree(&unpacked, &tree, &kernel)?;
    let _ = fs::remove_dir_all(&cache.wrk);
    wrk_tree(&unpacked, &cache.wrk, &tree)?;
    let _ = fs::remove_dir_all(&cache.nginx);
    nginx_tree(&unpacked, &cache.nginx)?;
    let mut out = BufWriter::new(File::create(dir.join("dom0-root.cpio.tmp")).map_err(setup_err)?);
    let mut cpio = Cpio::new(&mut out);
    cpio.tree(&tree, "").map_err(setup_err)?;
    cpio.finish().map_err(setup_err)?;
    out.flush().map_err(setup_err)?;
    drop(out);
    fs::rename(dir.join("dom0-root.cpio.tmp"), &cache.dom0_root).map_err(setup_err)?;
    let copy = |from: PathBuf, to: &Path| {
        fs::copy(&from, to).map(drop).map_err(|e| setup_err(format!("{}: {e}", from.display())))
    };
    regzip_kernel(&unpacked.join(format!("boot/vmlinuz-{kernel}")), &cache.kernel)?;
    copy(unpacked.join("bin/busybox"), &cache.busybox)?;
    copy(unpacked.join(format!("lib/modules/{kernel}/kernel/drivers/net/xen-netfront.ko")), &cache.netfront)?;
    // The unpacked packages are ~450 MiB; the .debs stay for a rebuild.
    let _ = fs::remove_dir_all(&unpacked);
    fs::write(&stamp, RECIPE).map_err(setup_err)?;
    eprintln!("xen-domu: cache built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(cache)
}

/// Writes the kernel of bzImage `bzimage` as a gzip'd ELF: Xen (for dom0) and libxc (for
/// a domU) take either, but Debian compresses the bzImage with xz, and unxz under TCG
/// takes Xen 4 s at each boot and `xl create` 5 s or more; gunzip a fraction of that.
fn regzip_kernel(bzimage: &Path, out: &Path) -> Result<()> {
    let image = fs::read(bzimage).map_err(|e| setup_err(format!("{}: {e}", bzimage.display())))?;
    let u32_at =
        |at: usize| image.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    // The boot protocol's header: "HdrS", then (2.08+) where the compressed kernel is.
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err(setup_err(format!("{} is not a bzImage", bzimage.display())));
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let (offset, length) = (u32_at(0x248).unwrap_or(0) as usize, u32_at(0x24c).unwrap_or(0) as usize);
    let start = (setup_sects + 1) * 512 + offset;
    let payload = image
        .get(start..start + length)
        .ok_or_else(|| setup_err(format!("{}: no payload at {start:#x}+{length:#x}", bzimage.display())))?;
    let tmp = out.with_extension("payload");
    fs::write(&tmp, payload).map_err(setup_err)?;
    if !payload.starts_with(b"\xfd7zXZ\0") {
        return Err(setup_err(format!("{}: the kernel is not xz-compressed", bzimage.display())));
    }
    let vmlinux = out.with_extension("");
    let elf = File::create(&vmlinux).map_err(setup_err)?;
    // --single-stream: the kernel's size follows the stream.
    let status = Command::new("xz").args(["-dc", "--single-stream"]).arg(&tmp).stdout(elf).status();
    let _ = fs::remove_file(&tmp);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(setup_err(format!("xz -d of the kernel: {s}"))),
        Err(e) => return Err(setup_err(format!("xz (apt-get install xz-utils): {e}"))),
    }
    let mut magic = [0u8; 4];
    File::open(&vmlinux).and_then(|mut f| io::Read::read_exact(&mut f, &mut magic)).map_err(setup_err)?;
    if &magic != b"\x7fELF" {
        return Err(setup_err(format!("{}: the payload is not an ELF kernel", bzimage.display())));
    }
    tool(Command::new("gzip").args(["-6", "-f", "-n"]).arg(&vmlinux))?;
    Ok(())
}

/// The kernel package Debian's `linux-image-amd64` points at today (6.1.0-NN-amd64).
fn linux_version() -> Result<String> {
    let ask = || {
        let out = Command::new("apt-cache").args(["depends", "linux-image-amd64"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: linux-image-").map(str::to_owned))
    };
    if let Some(version) = ask() {
        return Ok(version);
    }
    // An apt that never ran `apt-get update` knows no packages.
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    ask().ok_or_else(|| TestbedError::Unavailable("apt-cache knows no linux-image-amd64".into()))
}

/// `apt-get download`s the packages missing from `dir`; returns every .deb there.
fn download(dir: &Path, packages: &[String]) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(setup_err)?;
    let have =
        |p: &str| -> Option<PathBuf> {
            fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|path| {
                path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{p}_")))
            })
        };
    // A kernel Debian has since replaced, say: 70 MiB nothing needs.
    for entry in fs::read_dir(dir).map_err(setup_err)?.filter_map(|e| e.ok()) {
        let file = entry.file_name().to_string_lossy().into_owned();
        if !packages.iter().any(|p| file.starts_with(&format!("{p}_"))) {
            let _ = fs::remove_file(entry.path());
        }
    }
    let missing: Vec<&String> = packages.iter().filter(|p| have(p).is_none()).collect();
    if !missing.is_empty() {
        eprintln!(
            "xen-domu: apt-get download {}",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
        );
        let fetch = || {
            Command::new("apt-get")
                .args(["download", "-q"])
                .args(&missing)
                .current_dir(dir)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !fetch() {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            if !fetch() {
                return Err(TestbedError::Unavailable(
                    "apt-get download failed (see its errors above)".into(),
                ));
            }
        }
    }
    packages
        .iter()
        .map(|p| have(p).ok_or_else(|| TestbedError::Unavailable(format!("apt-get download gave no {p}"))))
        .collect()
}

/// Runs a build tool; its stderr stays visible.
fn tool(cmd: &mut Command) -> Result<Vec<u8>> {
    let shown = format!("{cmd:?}");
    let out = cmd.stderr(Stdio::inherit()).output().map_err(|e| setup_err(format!("{shown}: {e}")))?;
    if !out.status.success() {
        return Err(setup_err(format!("{shown} failed: {}", out.status)));
    }
    Ok(out.stdout)
}

/// Lays out dom0's root in `tree` from the packages unpacked in `pkgs`.
fn dom0_tree(pkgs: &Path, tree: &Path, kernel: &str) -> Result<()> {
    let err = |what: &dyn fmt::Display, e: io::Error| setup_err(format!("{what}: {e}"));
    for d in [
        "bin",
        "dev",
        "etc/xen",
        "lib64",
        "proc",
        "root",
        "run",
        "sys",
        "tmp",
        "usr/bin",
        "usr/lib/modules",
        "usr/lib/x86_64-linux-gnu",
        "var",
    ] {
        fs::create_dir_all(tree.join(d)).map_err(|e| err(&d, e))?;
    }
    // Merged /usr, as Debian has it, so the libraries' paths need no care.
    symlink("usr/lib", &tree.join("lib"))?;
    symlink("bin", &tree.join("sbin"))?;
    install(&pkgs.join("bin/busybox"), &tree.join("bin/busybox"))?;
    let list = tool(Command::new(tree.join("bin/busybox")).arg("--list"))?;
    for applet in String::from_utf8_lossy(&list).split_whitespace() {
        // init and linuxrc would shadow the /init script's role.
        if !["busybox", "init", "linuxrc"].contains(&applet) {
            symlink("busybox", &tree.join("bin").join(applet))?;
        }
    }
    let libs = [pkgs.join("usr/lib/x86_64-linux-gnu"), pkgs.join("usr/lib/xen-4.17/lib/x86_64-linux-gnu")];
    // Debian's hotplug scripts (vif-bridge) are bash scripts.
    copy_elf(Path::new("/bin/bash"), &tree.join("bin/bash"), pkgs, tree, &libs)?;
    install(Path::new("/lib64/ld-linux-x86-64.so.2"), &tree.join("lib64/ld-linux-x86-64.so.2"))?;
    // glibc dlopen()s libgcc_s for pthread_cancel, so ldd cannot list it; xl aborts
    // without it.
    install(
        Path::new("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
        &tree.join("usr/lib/x86_64-linux-gnu/libgcc_s.so.1"),
    )?;
    for name in XEN_TOOLS {
        let rel = format!("usr/lib/xen-4.17/bin/{name}");
        copy_elf(&pkgs.join(&rel), &tree.join(&rel), pkgs, tree, &libs)?;
    }
    copy_elf(&pkgs.join("usr/bin/xenstore"), &tree.join("usr/bin/xenstore"), pkgs, tree, &libs)?;
    for entry in fs::read_dir(pkgs.join("usr/bin")).map_err(|e| err(&"usr/bin", e))? {
        let name = entry.map_err(|e| err(&"usr/bin", e))?.file_name();
        if name.to_string_lossy().starts_with("xenstore-") {
            symlink("xenstore", &tree.join("usr/bin").join(name))?;
        }
    }
    for module in MODULES {
        let file = Path::new(module).file_name().expect("a module name");
        let from = pkgs.join(format!("lib/modules/{kernel}/kernel/{module}.ko"));
        install(&from, &tree.join("usr/lib/modules").join(file).with_extension("ko"))?;
    }
    copy_tree(&pkgs.join("etc/xen/scripts"), &tree.join("etc/xen/scripts"))?;
    let files: [(&str, &str); 4] = [
        ("etc/xen/xl.conf", "autoballoon=\"off\"\nrun_hotplug_scripts=1\nlockfile=\"/run/xl.lock\"\n"),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/ld.so.conf", "/usr/lib/x86_64-linux-gnu\n"),
    ];
    for (name, text) in files {
        fs::write(tree.join(name), text).map_err(|e| err(&name, e))?;
    }
    tool(Command::new("ldconfig").arg("-r").arg(tree))?;
    Ok(())
}

/// Lays out wrk in `out` with the libraries it needs that dom0's root `dom0` lacks
/// (libc and the loader must stay dom0's own).
fn wrk_tree(pkgs: &Path, out: &Path, dom0: &Path) -> Result<()> {
    let libs = [pkgs.join("usr/lib/x86_64-linux-gnu")];
    copy_elf(&pkgs.join("usr/bin/wrk"), &out.join("usr/bin/wrk"), pkgs, out, &libs)?;
    let dir = out.join("usr/lib/x86_64-linux-gnu");
    for entry in fs::read_dir(&dir).map_err(|e| setup_err(format!("{}: {e}", dir.display())))? {
        let name = entry.map_err(setup_err)?.file_name();
        if dom0.join("usr/lib/x86_64-linux-gnu").join(&name).exists() {
            fs::remove_file(dir.join(&name)).map_err(setup_err)?;
        }
    }
    Ok(())
}

/// Lays out nginx in `out` with everything it loads, the loader included: the Linux
/// domU's initramfs has no libraries of its own (its busybox is static).
fn nginx_tree(pkgs: &Path, out: &Path) -> Result<()> {
    let libs = [pkgs.join("usr/lib/x86_64-linux-gnu")];
    copy_elf(&pkgs.join("usr/sbin/nginx"), &out.join("usr/sbin/nginx"), pkgs, out, &libs)?;
    install(Path::new("/lib64/ld-linux-x86-64.so.2"), &out.join("lib64/ld-linux-x86-64.so.2"))?;
    fs::create_dir_all(out.join("etc")).map_err(setup_err)?;
    let files = [
        ("etc/nginx.conf", NGINX_CONF),
        ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
    ];
    for (name, text) in files {
        fs::write(out.join(name), text).map_err(|e| setup_err(format!("{name}: {e}")))?;
    }
    Ok(())
}

fn symlink(target: &str, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(|e| setup_err(format!("{}: {e}", link.display())))
}

/// Copies a file (through symlinks) with its permissions, creating parents.
fn install(from: &Path, to: &Path) -> Result<()> {
    let err = |e: io::Error| setup_err(format!("{} -> {}: {e}", from.display(), to.display()));
    fs::create_dir_all(to.parent().expect("a parent")).map_err(err)?;
    fs::copy(from, to).map(drop).map_err(err)
}

/// Copies a directory as it is, symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let err = |e: io::Error| setup_err(format!("{}: {e}", from.display()));
    fs::create_dir_all(to).map_err(err)?;
    for entry in fs::read_dir(from).map_err(err)? {
        let entry = entry.map_err(err)?;
        let kind = entry.file_type().map_err(err)?;
        let dest = to.join(entry.file_name());
        if kind.is_symlink() {
            symlink(&fs::read_link(entry.path()).map_err(err)?.to_string_lossy(), &dest)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            install(&entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Installs ELF `from` as `to` in `tree`, with every shared library `ldd` resolves for
/// it: the packages' own first (`libs`), else the host's (glibc and friends).
fn copy_elf(from: &Path, to: &Path, pkgs: &Path, tree: &Path, libs: &[PathBuf]) -> Result<()> {
    install(from, to)?;
    let path = std::env::join_paths(libs).map_err(setup_err)?;
    let out = tool(Command::new("ldd").arg(from).env("LD_LIBRARY_PATH", path))?;
    for line in String::from_utf8_lossy(&out).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let lib = match words.as_slice() {
            [_, "=>", "not", "found", ..] => {
                return Err(setup_err(format!("{}: {line}", from.display())));
            }
            [_, "=>", lib, ..] if lib.starts_with('/') => *lib,
            _ => continue, // the vDSO, and the loader (copied once, by dom0_tree)
        };
        let rel = Path::new(lib)
            .strip_prefix(pkgs)
            .map_or_else(|_| lib.to_owned(), |p| format!("/{}", p.display()));
        // Merged /usr: /lib/x is /usr/lib/x.
        let rel = rel.strip_prefix("/usr").unwrap_or(&rel).trim_start_matches('/');
        let dest = tree.join("usr").join(rel);
        if !dest.exists() {
            install(Path::new(lib), &dest)?;
        }
    }
    Ok(())
}

/// What a testbed boots with.
#[derive(Clone, Debug)]
pub struct Options {
    images: Vec<(String, PathBuf)>,
    linux: bool,
    nginx: bool,
    wrk: bool,
    boot_timeout: Duration,
    idle: Duration,
    dom0_mib: u32,
    memory_mib: u32,
    verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

impl Options {
    /// No images; 1 GiB for QEMU, 256 MiB of it for dom0; dom0 up within 240 s; dom0
    /// powers off after 300 s without a command.
    pub fn new() -> Options {
        Options {
            images: Vec::new(),
            linux: false,
            nginx: false,
            wrk: false,
            boot_timeout: Duration::from_secs(240),
            idle: Duration::from_secs(300),
            dom0_mib: 256,
            memory_mib: 1024,
            verbose: false,
        }
    }

    /// Puts the image at `path` in dom0 as `/testbed/images/NAME`, for [`Domu::image`].
    pub fn image(mut self, name: &str, path: impl Into<PathBuf>) -> Options {
        assert!(valid_name(name), "image name {name:?}: letters, digits, '-' and '_' only");
        self.images.push((name.to_owned(), path.into()));
        self
    }

    /// Puts the Linux control domU in dom0 (its kernel and initramfs, 9 MiB), for
    /// [`Domu::linux`].
    pub fn linux_domu(mut self) -> Options {
        self.linux = true;
        self
    }

    /// [`Options::linux_domu`], with nginx (Debian's, 9 MiB with its libraries) in the
    /// domU's initramfs, for [`Domu::linux_nginx`].
    pub fn linux_nginx(mut self) -> Options {
        self.linux = true;
        self.nginx = true;
        self
    }

    /// Puts wrk (Debian's, with its libraries; 7 MiB) in dom0 as `/usr/bin/wrk`, to load
    /// domUs' servers from dom0.
    pub fn load_generator(mut self) -> Options {
        self.wrk = true;
        self
    }

    /// How long dom0 may take to come up.
    pub fn boot_timeout(mut self, limit: Duration) -> Options {
        self.boot_timeout = limit;
        self
    }

    /// dom0 powers off (and QEMU exits) after this long without a command: a testbed
    /// whose process was killed does not run on.
    pub fn idle_poweroff(mut self, after: Duration) -> Options {
        self.idle = after;
        self
    }

    /// QEMU's memory and dom0's share of it, in MiB.
    pub fn memory_mib(mut self, qemu: u32, dom0: u32) -> Options {
        self.memory_mib = qemu;
        self.dom0_mib = dom0;
        self
    }

    /// Echo every serial line to stderr as it arrives.
    pub fn verbose(mut self, on: bool) -> Options {
        self.verbose = on;
        self
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How Xen runs a domU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomuType {
    /// `type = "pv"`: the Xen PV entry, ring 3.
    Pv,
    /// `type = "pvh"`: the PVH entry, in an HVM container.
    Pvh,
}

impl DomuType {
    /// The `type =` value of xl's config.
    pub fn as_str(self) -> &'static str {
        match self {
            DomuType::Pv => "pv",
            DomuType::Pvh => "pvh",
        }
    }
}

/// A domU to create with [`Testbed::create`].
#[derive(Clone, Debug)]
pub struct Domu {
    name: String,
    kernel: String,
    ramdisk: Option<String>,
    kind: DomuType,
    extra: String,
    vif: bool,
    /// The vif's hotplug script, if not Debian's vif-bridge.
    vif_script: Option<String>,
    memory_mib: u32,
    xl: Vec<String>,
}

impl Domu {
    /// Image `image` (see [`Options::image`]) as domain `name`: 128 MiB, one vCPU, no
    /// vif, empty command line.
    pub fn image(name: &str, image: &str, kind: DomuType) -> Domu {
        assert!(valid_name(image), "image {image:?}");
        Domu::new(name, format!("/testbed/images/{image}"), kind)
    }

    fn new(name: &str, kernel: String, kind: DomuType) -> Domu {
        assert!(valid_name(name), "domain {name:?}: letters, digits, '-' and '_' only");
        Domu {
            name: name.to_owned(),
            kernel,
            ramdisk: None,
            kind,
            extra: String::new(),
            vif: false,
            vif_script: None,
            memory_mib: 128,
            xl: Vec::new(),
        }
    }

    /// The control domU (needs [`Options::linux_domu`]): Debian's Linux with netfront
    /// and busybox httpd serving a one-line page on `ip` (`10.0.9.N/24`), from the same
    /// packages as dom0. It shows whether dom0's side of the network works on its own.
    /// Keep its memory above 64 MiB: the unpacked kernel alone is 58 MiB.
    pub fn linux(name: &str, kind: DomuType, ip: &str) -> Domu {
        let mut domu = Domu::new(name, "/testbed/linux/vmlinux.gz".to_owned(), kind);
        domu.ramdisk = Some("/testbed/linux/initrd".to_owned());
        domu.vif(true).extra(&format!("console=hvc0 loglevel=4 ip={ip}"))
    }

    /// [`Domu::linux`], but busybox httpd serves httpd's own site (`apps/httpd/site`)
    /// instead of the one-line page: the same files the image serves, for comparisons.
    pub fn linux_site(name: &str, kind: DomuType, ip: &str) -> Domu {
        let mut domu = Domu::linux(name, kind, ip);
        domu.extra.push_str(" site");
        domu
    }

    /// [`Domu::linux_site`] served by nginx (needs [`Options::linux_nginx`]): the
    /// Linux server built for throughput, where busybox httpd forks per connection and
    /// closes each after one answer.
    pub fn linux_nginx(name: &str, kind: DomuType, ip: &str) -> Domu {
        let mut domu = Domu::linux(name, kind, ip);
        domu.extra.push_str(" site nginx");
        domu
    }

    /// The kernel command line (`extra =`).
    pub fn extra(mut self, cmdline: &str) -> Domu {
        assert!(
            !cmdline.contains(['"', '\\', '\n']),
            "command line {cmdline:?}: no quotes, backslashes or newlines"
        );
        self.extra = cmdline.to_owned();
        self
    }

    /// A network card on `xenbr0` (netback in dom0, netfront in the guest).
    pub fn vif(mut self, on: bool) -> Domu {
        self.vif = on;
        self
    }

    /// The vif's hotplug script in dom0's `/etc/xen/scripts`: `vif-lean`
    /// (`tests/xen-domu/vif-lean.sh`) joins the bridge without what Debian's vif-bridge
    /// does besides, and takes about 2 s less of each `xl create` under TCG.
    pub fn vif_script(mut self, script: &str) -> Domu {
        assert!(valid_name(script), "script {script:?}");
        self.vif_script = Some(script.to_owned());
        self
    }

    /// Memory in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Domu {
        self.memory_mib = mib;
        self
    }

    /// One more line for xl's config, e.g. `maxmem = 256`.
    pub fn xl_line(mut self, line: &str) -> Domu {
        self.xl.push(line.to_owned());
        self
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// xl's config. `mac_index` keeps each vif's MAC unique on the bridge.
    pub fn config(&self, mac_index: u8) -> String {
        let mut lines = vec![
            format!("name = \"{}\"", self.name),
            format!("type = \"{}\"", self.kind.as_str()),
            format!("kernel = \"{}\"", self.kernel),
        ];
        if let Some(ramdisk) = &self.ramdisk {
            lines.push(format!("ramdisk = \"{ramdisk}\""));
        }
        lines.extend([
            format!("extra = \"{}\"", self.extra),
            format!("memory = {}", self.memory_mib),
            "vcpus = 1".to_owned(),
        ]);
        if self.vif {
            let script = self.vif_script.as_ref().map_or(String::new(), |s| format!(",script={s}"));
            lines.push(format!("vif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:{mac_index:02x}{script}' ]"));
        }
        lines.extend([
            // Keep the domain after it ends, so its state and reason can be read.
            "on_poweroff = \"preserve\"".to_owned(),
            "on_reboot = \"preserve\"".to_owned(),
            "on_crash = \"preserve\"".to_owned(),
            // TCG's SVM has no NRIPS and reports an intercepted RDTSCP as RDTSC;
            // Xen's default TSC mode intercepts it in HVM guests, fails the instruction
            // length check and crashes a PVH domU. Native mode does not intercept.
            "tsc_mode = \"native\"".to_owned(),
        ]);
        lines.extend(self.xl.iter().cloned());
        lines.join("\n") + "\n"
    }
}

/// One row of `xl list -v`.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainState {
    pub name: String,
    pub id: u32,
    /// xl's six state letters: `r b p s` or `-` each (running, blocked, paused, shut
    /// down), the shutdown reason's letter (`-` poweroff or none, `r` reboot, `s`
    /// suspend, `c` crash, `w` watchdog, `S` soft reset), then `d` (dying) or `-`.
    pub flags: String,
    pub cpu_seconds: f64,
    /// Xen's shutdown reason once shut down: 0 poweroff, 1 reboot, 2 suspend, 3 crash,
    /// 4 watchdog, 5 soft reset.
    pub reason: Option<u32>,
}

impl DomainState {
    /// Whether the domain has ended (shut down or crashed); with `preserve` it stays.
    pub fn has_ended(&self) -> bool {
        self.flags.contains('s') || self.flags.contains('c')
    }

    /// The reason's name, as xl's config names it.
    pub fn reason_name(&self) -> &'static str {
        match self.reason {
            None => "none (not shut down)",
            Some(0) => "poweroff",
            Some(1) => "reboot",
            Some(2) => "suspend",
            Some(3) => "crash",
            Some(4) => "watchdog",
            Some(5) => "soft_reset",
            Some(_) => "unknown",
        }
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (id {}): state {}, reason {} ({}), {:.1} s of CPU",
            self.name,
            self.id,
            self.flags,
            self.reason.map_or("-".to_owned(), |r| r.to_string()),
            self.reason_name(),
            self.cpu_seconds
        )
    }
}

/// Parses `xl list -v`: Name ID Mem VCPUs State Time(s) UUID Reason-Code Security-Label.
pub fn parse_xl_list(text: &str) -> Vec<DomainState> {
    text.lines()
        .filter_map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() < 8 || w[0] == "Name" {
                return None;
            }
            Some(DomainState {
                name: w[0].to_owned(),
                id: w[1].parse().ok()?,
                flags: w[4].to_owned(),
                cpu_seconds: w[5].parse().ok()?,
                reason: w[7].parse().ok(),
            })
        })
        .collect()
}

/// How soon a domU served, from the start of its `xl create` by dom0's clock
/// ([`Testbed::create_until_page`]; `/proc/uptime`, 10 ms steps).
#[derive(Clone, Copy, Debug)]
pub struct FirstPage {
    /// Until `xl create` returned (the domain built, its vif's hotplug script run).
    pub create: Duration,
    /// Until the first page came back.
    pub page: Duration,
}

/// What a command in dom0 gave.
#[derive(Clone, Debug)]
pub struct CommandOutput {
    /// Its exit status (`timeout` makes it 143 when the time ran out).
    pub status: i32,
    /// stdout and stderr, as dom0's console printed them: lines joined with `\n`, without
    /// Xen's own lines that share the serial line.
    pub text: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// The longest piece of a command in one line: with its header it stays within the
/// 128 bytes of serial input Xen queues for dom0.
const CHUNK: usize = 80;
/// Slack on top of a command's own limit, for the console's round trip.
const SLACK: Duration = Duration::from_secs(20);

/// A booted testbed: Xen and dom0 in QEMU, dom0 waiting for commands. Its methods may
/// be called from several threads; commands run one at a time, domUs side by side.
/// Dropping it kills QEMU; for one in a `static`, see [`Testbed::kill_at_exit`].
#[allow(missing_debug_implementations)] // holds a running QEMU
pub struct Testbed {
    inner: Mutex<Inner>,
    pid: u32,
    ready_after: Duration,
    run_dir: PathBuf,
}

struct Inner {
    running: Running,
    next_id: u64,
    next_mac: u8,
    /// Why the testbed is unusable, once it is.
    dead: Option<String>,
    log: BufWriter<File>,
    /// The index in `running.lines` of the first line not yet in `log`.
    logged: usize,
}

impl Inner {
    /// The next serial line by `deadline`, logged; `None` at the deadline or when QEMU
    /// has gone.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let line = self.running.next_line_by(deadline);
        self.flush_log();
        line.map(|l| l.text)
    }

    fn flush_log(&mut self) {
        let started = self.running.started;
        for line in &self.running.lines[self.logged..] {
            let _ =
                writeln!(self.log, "[{:8.3}] {}", line.at.duration_since(started).as_secs_f64(), line.text);
        }
        self.logged = self.running.lines.len();
        let _ = self.log.flush();
    }

    /// The last `n` serial lines, for error messages.
    fn tail(&self, n: usize) -> String {
        let lines = &self.running.lines;
        let from = lines.len().saturating_sub(n);
        lines[from..].iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
    }

    /// Marks the testbed unusable and kills QEMU; returns the error to give.
    fn die(&mut self, why: String) -> TestbedError {
        self.running.kill();
        self.flush_log();
        let message = format!("{why}\n--- last serial lines ---\n{}", self.tail(40));
        self.dead = Some(message.clone());
        TestbedError::Boot(message)
    }
}

/// The number after `marker ` in `text`, and the rest of the text after it.
fn after_marker<'a>(text: &'a str, marker: &str) -> Option<(u64, &'a str)> {
    let at = text.find(marker)? + marker.len();
    let rest = text[at..].strip_prefix(' ')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    Some((rest[..digits].parse().ok()?, &rest[digits..]))
}

impl Testbed {
    /// Builds the cache if needed, boots Xen and dom0 with `options`' images, and waits
    /// for dom0's command loop: the first command's answer shows that serial input
    /// reaches dom0.
    pub fn boot(options: Options) -> Result<Testbed> {
        let cache = cache()?;
        let runs = target_dir().join("xen-domu/runs");
        prune_runs(&runs, 10);
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let run_dir = runs.join(format!("{stamp}-{}", std::process::id()));
        fs::create_dir_all(&run_dir).map_err(setup_err)?;
        let initrd = run_dir.join("initrd");
        write_initrd(cache, &options, &initrd)?;

        let vm = Vm::new(&cache.xen)
            // A 256 MiB translation cache: TCG's default of 1 GiB is mostly RSS.
            .accel("tcg,tb-size=256")
            // Without SMAP: Xen 4.17 faults writing a PV dom0's exception frame under
            // TCG's SMAP, and dom0 dies before its first line.
            .cpu("max,-smap")
            .memory_mib(options.memory_mib)
            .debug_exit(false)
            .arg("-smp")
            .arg("2")
            .cmdline(xen_args(options.dom0_mib))
            .arg("-initrd")
            .arg(format!("{} {DOM0_ARGS},{}", cache.kernel.display(), initrd.display()))
            .serial_input(true)
            .verbose(options.verbose)
            // Deadlines are per step (boot, each command); this one only bounds a
            // testbed left running.
            .timeout(Duration::from_secs(7 * 24 * 3600));
        let _ = fs::write(run_dir.join("qemu-cmd.txt"), vm.command_line() + "\n");
        let running = match vm.spawn() {
            Ok(running) => running,
            Err(HarnessError::Spawn { program, error }) if error.kind() == io::ErrorKind::NotFound => {
                return Err(TestbedError::Unavailable(format!(
                    "{program} not found (apt-get install qemu-system-x86)"
                )));
            }
            Err(e) => return Err(TestbedError::Boot(e.to_string())),
        };
        let pid = running.pid();
        let log = BufWriter::new(File::create(run_dir.join("serial.log")).map_err(setup_err)?);
        let mut inner = Inner { running, next_id: 1, next_mac: 2, dead: None, log, logged: 0 };

        let deadline = Instant::now() + options.boot_timeout;
        let mut serial_to_dom0 = false;
        let mut marks = Vec::new();
        loop {
            let Some(text) = inner.next_line(deadline) else {
                let why = if inner.running.is_running() { "timed out" } else { "QEMU exited" };
                let stderr = inner.running.qemu_stderr();
                return Err(inner.die(format!(
                    "dom0 did not come up ({why} after {:.0} s; serial log {}){}",
                    inner.running.started.elapsed().as_secs_f64(),
                    run_dir.join("serial.log").display(),
                    if stderr.is_empty() { String::new() } else { format!("\nQEMU: {stderr}") }
                )));
            };
            let at = inner.running.started.elapsed();
            // QEMU loaded the initramfs before the first line: its copy can go.
            let _ = fs::remove_file(&initrd);
            if text.contains("*** Serial input to DOM0") {
                serial_to_dom0 = true;
            }
            if let Some(mark) = text.split("TB-MARK ").nth(1) {
                marks.push(format!("{} {:.1} s", mark.split(' ').next().unwrap_or(""), at.as_secs_f64()));
            }
            for fatal in ["TB-FATAL", "Panic on CPU", "Kernel panic", "(XEN) Hardware Dom0 crashed"] {
                if text.contains(fatal) {
                    return Err(inner.die(format!("dom0 failed: {text}")));
                }
            }
            if text.contains("TB-READY") {
                break;
            }
        }
        if !serial_to_dom0 {
            return Err(inner.die("Xen never said '*** Serial input to DOM0'".into()));
        }
        let ready_after = inner.running.started.elapsed();
        let testbed = Testbed { inner: Mutex::new(inner), pid, ready_after, run_dir };
        let probe = format!("tb-{pid}");
        let echo = testbed.run(&format!("echo {probe}; uname -r"))?;
        if !echo.success() || !echo.text.contains(&probe) {
            return Err(TestbedError::Boot(format!("dom0 did not echo {probe}: {echo:?}")));
        }
        eprintln!(
            "xen-domu: dom0 ready after {:.1} s ({}; Linux {}); serial log {}",
            ready_after.as_secs_f64(),
            marks.join(", "),
            echo.text.lines().last().unwrap_or("?"),
            testbed.run_dir.join("serial.log").display()
        );
        Ok(testbed)
    }

    /// From QEMU's start to dom0's command loop.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// This boot's directory: `serial.log` (every serial line, with host seconds since
    /// QEMU started) and `qemu-cmd.txt`.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked holding it left nothing half-done that matters here.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `cmd` with `sh -c` in dom0, within 60 s.
    pub fn run(&self, cmd: &str) -> Result<CommandOutput> {
        self.run_for(cmd, Duration::from_secs(60))
    }

    /// Runs `cmd` with `sh -c` in dom0 under `timeout limit` (stdin is /dev/null). It
    /// must be printable ASCII; its length is not limited. If the console does not
    /// answer within the limit and some slack, QEMU is killed and every later call fails.
    pub fn run_for(&self, cmd: &str, limit: Duration) -> Result<CommandOutput> {
        if cmd.is_empty() || !cmd.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(TestbedError::Command(format!("not a printable ASCII command: {cmd:?}")));
        }
        let mut inner = self.lock();
        if let Some(why) = &inner.dead {
            return Err(TestbedError::Boot(format!("testbed unusable: {why}")));
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let deadline = Instant::now() + limit + SLACK;
        let pieces: Vec<&str> =
            cmd.as_bytes().chunks(CHUNK).map(|c| std::str::from_utf8(c).expect("ASCII")).collect();
        let (last, first) = pieces.split_last().expect("not empty");
        let mut sent = 0;
        for piece in first {
            sent += piece.len();
            self.send(&mut inner, &format!("+{piece}\n"))?;
            loop {
                let Some(text) = inner.next_line(deadline) else {
                    return Err(inner.die(format!("no answer to part of command {id} ({cmd:?})")));
                };
                if text.contains("TB-GARBLED") {
                    return Err(TestbedError::Command(format!("dom0 got a garbled command: {text}")));
                }
                match after_marker(&text, "TB-ACK") {
                    Some((n, _)) if n == sent as u64 => break,
                    Some((n, _)) => {
                        return Err(TestbedError::Command(format!(
                            "dom0 has {n} bytes of command {id}, the host sent {sent} ({cmd:?})"
                        )));
                    }
                    None => {}
                }
            }
        }
        let secs = limit.as_secs().max(1);
        self.send(&mut inner, &format!("!{id} {secs} {} {last}\n", cmd.len()))?;
        let mut output: Option<Vec<String>> = None;
        loop {
            let Some(text) = inner.next_line(deadline) else {
                return Err(
                    inner.die(format!("command {id} did not end within {limit:?} + {SLACK:?}: {cmd:?}"))
                );
            };
            if text.contains("TB-GARBLED") {
                return Err(TestbedError::Command(format!("dom0 got a garbled command: {text}")));
            }
            if let Some((end, rest)) = after_marker(&text, "TB-END")
                && end == id
            {
                let status = rest.trim().parse().unwrap_or(-1);
                let lines = output.unwrap_or_default();
                return Ok(CommandOutput { status, text: lines.join("\n") });
            }
            match &mut output {
                None if after_marker(&text, "TB-BEGIN").is_some_and(|(n, _)| n == id) => {
                    output = Some(Vec::new())
                }
                Some(lines) => {
                    if let Some(out) = text.strip_prefix('|') {
                        lines.push(out.to_owned());
                    }
                }
                _ => {}
            }
        }
    }

    fn send(&self, inner: &mut Inner, line: &str) -> Result<()> {
        if let Err(e) = inner.running.send(line.as_bytes()) {
            return Err(inner.die(format!("writing to QEMU's serial input: {e}")));
        }
        Ok(())
    }

    /// [`Testbed::run`], but a non-zero status is an error showing the output.
    pub fn ok(&self, cmd: &str) -> Result<String> {
        let out = self.run(cmd)?;
        if out.success() {
            Ok(out.text)
        } else {
            Err(TestbedError::Command(format!("`{cmd}` exited with {} in dom0:\n{}", out.status, out.text)))
        }
    }

    /// Writes `text` (printable ASCII lines) to `path` in dom0.
    pub fn write_file(&self, path: &str, text: &str) -> Result<()> {
        let lines: Vec<String> = text.lines().map(shell_quote).collect();
        self.ok(&format!("printf '%s\\n' {} > {}", lines.join(" "), shell_quote(path))).map(drop)
    }

    /// Writes the domU's xl config to `/run/tb/NAME.cfg` and `xl create`s it. The
    /// image starts as soon as this returns.
    pub fn create(&self, domu: &Domu) -> Result<()> {
        let started = Instant::now();
        self.create_by(domu, |cfg| format!("xl create {cfg}"), Duration::from_secs(120))?;
        eprintln!("xen-domu: xl create {} took {:.1} s", domu.name, started.elapsed().as_secs_f64());
        Ok(())
    }

    /// [`Testbed::create`], then `wget`s `url` in dom0 until a page comes back (busybox
    /// wget fails on any status but 200), all in one dom0 command timed by dom0's own
    /// clock, so no console round trip is counted. Every 20 ms while the guest refuses;
    /// a guest that does not answer ARP yet costs dom0's ARP timeout per try (3 probes
    /// `retrans_time_ms` apart, 1 s by default).
    pub fn create_until_page(&self, domu: &Domu, url: &str, limit: Duration) -> Result<FirstPage> {
        let uptime = "$(cut -d' ' -f1 /proc/uptime)";
        let url = shell_quote(url);
        let out = self.create_by(
            domu,
            |cfg| {
                format!(
                    "s={uptime}; xl create {cfg} || exit; c={uptime}; \
                     until wget -q -O /dev/null {url} 2>/dev/null; do usleep 20000; done; echo \"$s $c {uptime}\""
                )
            },
            limit,
        )?;
        let times: Vec<f64> =
            out.text.lines().last().unwrap_or("").split(' ').filter_map(|t| t.parse().ok()).collect();
        match times[..] {
            [start, created, page] => Ok(FirstPage {
                create: Duration::from_secs_f64(created - start),
                page: Duration::from_secs_f64(page - start),
            }),
            _ => Err(TestbedError::Command(format!("no times from the create loop: {}", out.text))),
        }
    }

    /// Writes the domU's config to `/run/tb/NAME.cfg` and runs `command(cfg)`, which
    /// creates it; on failure the error holds xl's log and the hotplug log.
    fn create_by(
        &self,
        domu: &Domu,
        command: impl FnOnce(&str) -> String,
        limit: Duration,
    ) -> Result<CommandOutput> {
        let mac = {
            let mut inner = self.lock();
            inner.next_mac = inner.next_mac.wrapping_add(1);
            inner.next_mac - 1
        };
        let cfg = format!("/run/tb/{}.cfg", domu.name);
        self.write_file(&cfg, &domu.config(mac))?;
        let cmd = command(&cfg);
        let out = self.run_for(&cmd, limit)?;
        if out.success() {
            return Ok(out);
        }
        let logs = self
            .run(&format!("tail -n 30 /var/log/xen/xl-{}.log; cat /var/log/xen/xen-hotplug.log", domu.name))
            .map_or_else(|e| e.to_string(), |o| o.text);
        Err(TestbedError::Command(format!(
            "creating {} (`{cmd}`) exited with {}:\n{}\n--- xl's log and the hotplug log ---\n{logs}",
            domu.name, out.status, out.text
        )))
    }

    /// What xenconsoled has logged of the domain's console (its PV console ring) so far.
    pub fn console_log(&self, name: &str) -> Result<String> {
        Ok(self.run(&format!("cat /var/log/xen/console/guest-{name}.log 2>/dev/null; true"))?.text)
    }

    /// Polls [`Testbed::console_log`] until it contains `needle`; returns the log.
    pub fn wait_console(&self, name: &str, needle: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.console_log(name)?;
            if log.contains(needle) {
                return Ok(log);
            }
            if Instant::now() >= deadline {
                return Err(TestbedError::Command(format!(
                    "{name}'s console log has no {needle:?} after {limit:?}; it holds:\n{log}"
                )));
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// The domain's row of `xl list -v`; `None` when there is no such domain.
    pub fn domain(&self, name: &str) -> Result<Option<DomainState>> {
        let out = self.run(&format!("xl list -v {name}"))?;
        Ok(parse_xl_list(&out.text).into_iter().find(|d| d.name == name))
    }

    /// Polls `xl list -v` until the domain has ended (shut down or crashed).
    pub fn wait_shutdown(&self, name: &str, limit: Duration) -> Result<DomainState> {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.domain(name)?;
            match &state {
                Some(s) if s.has_ended() => return Ok(s.clone()),
                None => return Err(TestbedError::Command(format!("no domain {name}"))),
                Some(_) if Instant::now() >= deadline => {
                    return Err(TestbedError::Command(format!(
                        "{name} still runs after {limit:?}: {}",
                        state.expect("some")
                    )));
                }
                Some(_) => thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// One `wget` of `url` from dom0, within 8 s (busybox 1.35's `wget -T` crashes, so
    /// `timeout` bounds it); `None` when it failed.
    pub fn fetch(&self, url: &str) -> Result<Option<String>> {
        let out = self.run_for(&format!("wget -q -O - {}", shell_quote(url)), Duration::from_secs(8))?;
        Ok(out.success().then_some(out.text))
    }

    /// [`Testbed::fetch`] every 2 s until a page comes back, the domain `name` has
    /// ended, or `limit` passes; the error tells which, with the domain's state.
    pub fn wait_fetch(&self, url: &str, name: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(page) = self.fetch(url)? {
                return Ok(page);
            }
            let state = self.domain(name)?;
            let ended = state.as_ref().is_none_or(DomainState::has_ended);
            if ended || Instant::now() >= deadline {
                let why =
                    if ended { "the domain has ended".to_owned() } else { format!("none within {limit:?}") };
                let state = state.map_or_else(|| format!("no domain {name}"), |s| s.to_string());
                return Err(TestbedError::Command(format!("no page from {url}: {why}; {state}")));
            }
            thread::sleep(Duration::from_secs(2));
        }
    }

    /// `xl destroy NAME`.
    pub fn destroy(&self, name: &str) -> Result<()> {
        self.ok(&format!("xl destroy {name}")).map(drop)
    }

    /// `xl shutdown NAME`: asks the guest (through xenstore's `control/shutdown`) to
    /// power off, and returns without waiting; see [`Testbed::wait_shutdown`].
    pub fn shutdown(&self, name: &str) -> Result<()> {
        self.ok(&format!("xl shutdown {name}")).map(drop)
    }

    /// `xl reboot NAME`: as [`Testbed::shutdown`], asking for a reboot. With the
    /// testbed's `on_reboot = "preserve"` the domain then stays, shut down with reason 1.
    pub fn reboot(&self, name: &str) -> Result<()> {
        self.ok(&format!("xl reboot {name}")).map(drop)
    }

    /// Xen's message ring (`xl dmesg`): crash reports, and what HVM/PVH guests write to
    /// the debug port 0xE9, as `(dN) ...`.
    pub fn xl_dmesg(&self) -> Result<String> {
        self.ok("xl dmesg")
    }

    /// Hands dom0's console to the person at this terminal: a shell, with the terminal
    /// raw (Ctrl-C reaches dom0). Returns when QEMU exits (`poweroff -f` in dom0), or
    /// after Ctrl-] three times in a row, which kills QEMU.
    pub fn attach_terminal(self) -> Result<()> {
        let mut inner = self.lock();
        if let Some(why) = &inner.dead {
            return Err(TestbedError::Boot(format!("testbed unusable: {why}")));
        }
        self.send(&mut inner, "TB-SHELL\n")?;
        let result = inner.running.attach_terminal();
        inner.flush_log();
        result.map(drop).map_err(|e| TestbedError::Boot(format!("the terminal: {e}")))
    }

    /// For a testbed kept in a `static` (one boot for a whole test file), which Rust
    /// never drops: kills its QEMU when the process exits normally (calling it again is
    /// harmless). dom0's idle poweroff ([`Options::idle_poweroff`]) covers a process
    /// that was killed.
    pub fn kill_at_exit(&'static self) {
        static AT_EXIT: Mutex<Vec<&'static Testbed>> = Mutex::new(Vec::new());
        extern "C" fn kill_all() {
            for testbed in AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                testbed.stop();
            }
        }
        unsafe extern "C" {
            fn atexit(callback: extern "C" fn()) -> i32;
        }
        let mut list = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
        if list.is_empty() {
            // SAFETY: libc's atexit (std links libc) stores a function pointer to call at
            // exit; `kill_all` is a plain function that lives as long as the program.
            unsafe { atexit(kill_all) };
        }
        if !list.iter().any(|t| std::ptr::eq(*t, self)) {
            list.push(self);
        }
    }

    /// Kills QEMU now and removes the boot's initramfs copy.
    fn stop(&self) {
        match self.inner.try_lock() {
            Ok(mut inner) => {
                inner.running.kill();
                inner.flush_log();
            }
            // Held by a thread that will not let go: kill by PID, which is still ours
            // (the Running holding it has not reaped it).
            Err(_) => {
                unsafe extern "C" {
                    fn kill(pid: i32, signal: i32) -> i32;
                }
                const SIGKILL: i32 = 9;
                // SAFETY: libc's kill(2) on QEMU's PID touches no memory of ours.
                unsafe { kill(self.pid as i32, SIGKILL) };
            }
        }
        let _ = fs::remove_file(self.run_dir.join("initrd"));
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The dom0 root (cached) followed by this boot's overlay: /init, the parameters, the
/// images and, if asked for, the Linux control domU.
fn write_initrd(cache: &Cache, options: &Options, path: &Path) -> Result<()> {
    let err = |e: io::Error| setup_err(format!("{}: {e}", path.display()));
    fs::copy(&cache.dom0_root, path).map_err(err)?;
    let read = |p: &Path| fs::read(p).map_err(|e| setup_err(format!("{}: {e}", p.display())));
    let mut overlay = Cpio::new(Vec::new());
    overlay.file("init", 0o755, DOM0_INIT.as_bytes()).map_err(err)?;
    overlay.file("etc/xen/scripts/vif-lean", 0o755, VIF_LEAN.as_bytes()).map_err(err)?;
    overlay.dir("testbed", 0o755).map_err(err)?;
    let params = format!("TB_IDLE={}\n", options.idle.as_secs().max(1));
    overlay.file("testbed/params", 0o644, params.as_bytes()).map_err(err)?;
    overlay.dir("testbed/images", 0o755).map_err(err)?;
    for (name, image) in &options.images {
        overlay.file(&format!("testbed/images/{name}"), 0o644, &read(image)?).map_err(err)?;
    }
    if options.linux {
        overlay.dir("testbed/linux", 0o755).map_err(err)?;
        overlay.file("testbed/linux/vmlinux.gz", 0o644, &read(&cache.kernel)?).map_err(err)?;
        overlay
            .file("testbed/linux/initrd", 0o644, &linux_domu_initrd(cache, options.nginx)?)
            .map_err(err)?;
    }
    if options.wrk {
        overlay.tree(&cache.wrk, "").map_err(err)?;
    }
    let overlay = overlay.finish().map_err(err)?;
    let mut file = fs::OpenOptions::new().append(true).open(path).map_err(err)?;
    file.write_all(&overlay).map_err(err)
}

/// The control domU's initramfs: busybox, netfront, its /init, httpd's site (for
/// [`Domu::linux_site`]) and, if asked for, nginx.
fn linux_domu_initrd(cache: &Cache, nginx: bool) -> Result<Vec<u8>> {
    let read = |p: &Path| fs::read(p).map_err(|e| setup_err(format!("{}: {e}", p.display())));
    let mut cpio = Cpio::new(Vec::new());
    let build = |cpio: &mut Cpio<Vec<u8>>| -> io::Result<()> {
        for d in ["bin", "dev", "proc", "sys", "tmp"] {
            cpio.dir(d, 0o755)?;
        }
        cpio.file("bin/busybox", 0o755, &read(&cache.busybox).map_err(io::Error::other)?)?;
        for applet in ["sh", "mount", "insmod", "ip", "sleep", "cat", "mkdir", "echo", "httpd", "uname"] {
            cpio.symlink(&format!("bin/{applet}"), "busybox")?;
        }
        cpio.file("xen-netfront.ko", 0o644, &read(&cache.netfront).map_err(io::Error::other)?)?;
        cpio.dir("site", 0o755)?;
        cpio.tree(&workspace_root().join("apps/httpd/site"), "site/")?;
        if nginx {
            cpio.tree(&cache.nginx, "")?;
        }
        cpio.file("init", 0o755, LINUX_DOMU_INIT.as_bytes())
    };
    build(&mut cpio).map_err(setup_err)?;
    cpio.finish().map_err(setup_err)
}

/// Keeps the newest `keep` boot directories (each holds a serial log).
fn prune_runs(runs: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(runs) else { return };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    if dirs.len() > keep {
        for dir in &dirs[..dirs.len() - keep] {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn xl_list_rows() {
        let text = "\
Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label
Domain-0                                     0   256     1     r-----      12.3 00000000-0000-0000-0000-000000000000        -                -
hello-pv                                     1   128     1     ---s--       0.1 5d1c0f5e-8a5b-4a36-9f57-0e5e1f8a3c11        0                -
panic                                        2   128     1     ---sc-       0.2 6d1c0f5e-8a5b-4a36-9f57-0e5e1f8a3c11        3                -
";
        let rows = parse_xl_list(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].reason, None);
        assert!(!rows[0].has_ended());
        assert_eq!(rows[1].name, "hello-pv");
        assert_eq!((rows[1].id, rows[1].reason, rows[1].has_ended()), (1, Some(0), true));
        assert_eq!(rows[1].reason_name(), "poweroff");
        assert_eq!((rows[2].flags.as_str(), rows[2].reason_name()), ("---sc-", "crash"));
    }

    #[test]
    fn markers() {
        assert_eq!(after_marker("TB-END 12 0", "TB-END"), Some((12, " 0")));
        assert_eq!(after_marker("(XEN) x TB-END 3 127", "TB-END"), Some((3, " 127")));
        assert_eq!(after_marker("TB-END", "TB-END"), None);
        assert_eq!(after_marker("TB-ENDx 1", "TB-END"), None);
    }

    #[test]
    fn domu_config() {
        let cfg = Domu::image("web", "httpd", DomuType::Pvh).vif(true).extra("ip=10.0.9.2/24").config(2);
        assert!(
            cfg.contains("name = \"web\"\ntype = \"pvh\"\nkernel = \"/testbed/images/httpd\"\n"),
            "{cfg}"
        );
        assert!(cfg.contains("extra = \"ip=10.0.9.2/24\""), "{cfg}");
        assert!(cfg.contains("vif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:02' ]"), "{cfg}");
        assert!(cfg.contains("tsc_mode = \"native\""), "{cfg}");
        assert!(!Domu::image("a", "b", DomuType::Pv).config(2).contains("vif"));
        let lean = Domu::image("a", "b", DomuType::Pv).vif(true).vif_script("vif-lean").config(3);
        assert!(lean.contains("vif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:03,script=vif-lean' ]"), "{lean}");
        let linux = Domu::linux("l", DomuType::Pv, "10.0.9.3/24").config(3);
        assert!(linux.contains("ramdisk = \"/testbed/linux/initrd\""), "{linux}");
    }
}

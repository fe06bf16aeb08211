//! The app interface: all an app uses of the kernel.
//!
//! - Entry and exit: [`app!`](crate::app!) names the entry function, which gets
//!   [`Args`] and returns an [`AppResult`].
//! - Tasks: [`block_on`] runs the app's main future and [`spawn`]ed tasks; [`sleep`] and
//!   [`timeout`] wait on the executor's timers, so the network runs meanwhile.
//! - Network: [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`SocketAddr`], [`NetError`].
//! - Time: [`now`] (monotonic, since boot) and [`wall_clock`].
//! - Memory: [`heap`], the heap's figures, for an app that reports or limits its use.
//! - Console: [`println!`] and [`print!`].
//!
//! Interrupt vectors, drivers, the stack's configuration and the kernel's own clocks stay
//! inside the kernel.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use crate::executor::{Sleep, TimedOut, block_on, sleep, spawn, timeout};
pub use crate::memory::HeapStats;
pub use crate::net::{NetError, SocketAddr, TcpListener, TcpStream, UdpSocket};
pub use crate::time::{now, wall_clock};
pub use crate::{print, println};

/// The heap's figures now. `allocated` counts everyone's allocations (the kernel's, the
/// network's, the app's): what a server reports as its memory in use.
pub fn heap() -> HeapStats {
    crate::heap_stats()
}

/// Facts about this boot, for apps to report or act on.
#[derive(Debug, Clone)]
pub struct BootFacts {
    /// How the kernel was entered ("pvh" or "xen-pv").
    pub protocol: &'static str,
    pub start_info_version: u32,
    /// RAM the memory map reports.
    pub ram_bytes: u64,
    /// RAM left for the heap and drivers once the kernel was loaded.
    pub free_bytes: u64,
    pub cpu_brand: String,
    /// The hypervisor as detected ("kvm", "tcg", "vmware", "xen", "xen-pv", ...), or
    /// "none".
    pub hypervisor: &'static str,
    /// The pv-ops backend in use ("native", "kvm", "vmware", "xen_hvm", "xen_pv").
    pub pv_backend: &'static str,
    pub tsc_khz: u64,
    /// Where the clock's rate came from.
    pub tsc_source: &'static str,
    /// Whether pages can be made non-executable (W^X holds fully only then).
    pub nx: bool,
    /// How the kernel will leave: "hypervisor", "isa-debug-exit", "acpi-s5" or "halt".
    pub exit_method: &'static str,
    /// The boot modules (e.g. QEMU's `-initrd`), in the loader's order.
    pub modules: Vec<&'static [u8]>,
}

/// What an app gets at start.
#[derive(Debug)]
pub struct Args<'a> {
    pub(crate) cmdline: &'a str,
    pub(crate) app_args: &'a str,
    pub(crate) facts: &'a BootFacts,
}

impl<'a> Args<'a> {
    /// The whole kernel command line.
    pub fn cmdline(&self) -> &'a str {
        self.cmdline
    }

    /// The app's arguments: the words after ` -- ` on the command line.
    pub fn args(&self) -> impl Iterator<Item = &'a str> {
        self.app_args.split_ascii_whitespace()
    }

    pub fn facts(&self) -> &'a BootFacts {
        self.facts
    }
}

/// Why an app failed; printed by the kernel before it exits non-zero.
#[derive(Debug)]
pub struct AppError(String);

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AppError {
    fn from(s: &str) -> Self {
        AppError(s.into())
    }
}

impl From<String> for AppError {
    fn from(s: String) -> Self {
        AppError(s)
    }
}

impl From<fmt::Error> for AppError {
    fn from(_: fmt::Error) -> Self {
        AppError("formatting failed".into())
    }
}

pub type AppResult = Result<(), AppError>;

unsafe extern "Rust" {
    /// Defined by the app through [`app!`](crate::app!).
    fn __chameleon_app_main(args: &Args<'_>) -> AppResult;
}

pub(crate) fn run(args: &Args<'_>) -> AppResult {
    // SAFETY: every app binary defines this symbol through `app!`, with exactly this
    // signature; an app without it does not link.
    unsafe { __chameleon_app_main(args) }
}

/// Names the app's entry function: `fn(&kernel::app::Args) -> kernel::app::AppResult`.
#[macro_export]
macro_rules! app {
    ($main:path) => {
        #[allow(unsafe_code)] // `no_mangle` is how the kernel finds the entry.
        #[unsafe(no_mangle)]
        fn __chameleon_app_main(args: &$crate::app::Args<'_>) -> $crate::app::AppResult {
            $main(args)
        }
    };
}

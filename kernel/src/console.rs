//! Kernel output: one console device at a time (COM1 today; hypervisor consoles later),
//! and `print!`/`println!` over it.

use core::fmt::{self, Write};
use drivers::Console;
use drivers::uart16550::Uart16550;
use spin::{Mutex, Once};

use crate::arch::port::PortRange;

const COM1_BASE: u16 = 0x3f8;

static COM1: Once<Uart16550<PortRange>> = Once::new();
/// The console in use; the lock also keeps lines from different writers whole.
static CONSOLE: Mutex<Option<&'static dyn Console>> = Mutex::new(None);

/// Sets up COM1 as the console if a UART answers there. Under Xen, whose serial port is
/// Xen's own, nothing answers: then Xen's debug port 0xE9 carries the output (Xen prints
/// it as `(dN) ...` lines, with `guest_loglvl=all` on release builds) until the
/// hypervisor console takes over, so a boot that fails before that is not silent.
pub(crate) fn init_serial() {
    // SAFETY: 0x3f8..0x400 is COM1 on every PC platform, driven only by this handle.
    let ports = unsafe { PortRange::new(COM1_BASE, 8) };
    if let Some(uart) = Uart16550::init(ports) {
        let uart = COM1.call_once(|| uart);
        *CONSOLE.lock() = Some(uart);
    } else if pv::detect::hypervisor(&pv::Machine).is_some_and(|h| h.vendor == pv::detect::Vendor::Xen) {
        *CONSOLE.lock() = Some(XEN_DEBUG_PORT.call_once(|| {
            // SAFETY: Xen emulates port 0xE9 as its debug console in every HVM domain;
            // only this handle writes it.
            XenDebugPort(unsafe { PortRange::new(XEN_DEBUG_PORT_BASE, 1) })
        }));
    }
}

const XEN_DEBUG_PORT_BASE: u16 = 0xe9;

/// Xen's HVM debug console: one byte per OUT to port 0xE9.
struct XenDebugPort(PortRange);

impl Console for XenDebugPort {
    fn write(&self, bytes: &[u8]) {
        use drivers::Registers;
        for &b in bytes {
            self.0.write8(0, b);
        }
    }
}

static XEN_DEBUG_PORT: Once<XenDebugPort> = Once::new();

/// The hypervisor's console, through the pv-ops table.
struct HypervisorConsole;

impl Console for HypervisorConsole {
    fn write(&self, bytes: &[u8]) {
        (pv::ops::ops().console.write)(bytes.as_ptr(), bytes.len());
    }
}

static HYPERVISOR_CONSOLE: HypervisorConsole = HypervisorConsole;

/// Switches to the hypervisor's console when the pv-ops backend offers one (Xen owns
/// the serial port and hands its guests `console_io` instead).
pub(crate) fn prefer_hypervisor_console() {
    if (pv::ops::ops().console.available)() {
        *CONSOLE.lock() = Some(&HYPERVISOR_CONSOLE);
    }
}

struct Writer(Option<&'static dyn Console>);

impl Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(c) = self.0 {
            c.write(s.as_bytes());
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let console = CONSOLE.lock();
    let _ = Writer(*console).write_fmt(args);
}

/// Takes the console for a dying kernel: a lock held by the code that crashed must not
/// silence the crash report.
pub(crate) fn seize_for_crash() {
    if CONSOLE.is_locked() {
        // SAFETY: called only on the fatal path with interrupts off on the only CPU;
        // whoever held the lock will never run again.
        unsafe { CONSOLE.force_unlock() };
    }
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

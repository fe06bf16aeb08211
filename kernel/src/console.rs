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

/// Sets up COM1 as the console if a UART answers there.
pub(crate) fn init_serial() {
    // SAFETY: 0x3f8..0x400 is COM1 on every PC platform, driven only by this handle.
    let ports = unsafe { PortRange::new(COM1_BASE, 8) };
    if let Some(uart) = Uart16550::init(ports) {
        let uart = COM1.call_once(|| uart);
        *CONSOLE.lock() = Some(uart);
    }
}

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

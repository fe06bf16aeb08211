//! Kernel output: one console device at a time (COM1, a hypervisor's early console, or
//! the pv-ops console), and `print!`/`println!` over it.

use core::fmt::{self, Write};
use drivers::Console;
use drivers::uart16550::Uart16550;
use spin::{Mutex, Once};

use crate::arch::port::PortRange;

const COM1_BASE: u16 = 0x3f8;

static COM1: Once<Uart16550<PortRange>> = Once::new();
/// The console in use; the lock also keeps lines from different writers whole.
static CONSOLE: Mutex<Option<&'static dyn Console>> = Mutex::new(None);

/// Sets up COM1 as the console if a UART answers there. Where the serial port is the
/// hypervisor's own, nothing answers: then the hypervisor's early console, if it
/// has one, carries the output until the pv-ops console takes over, so a boot that fails
/// before that is not silent.
pub(crate) fn init_serial() {
    // SAFETY: 0x3f8..0x400 is COM1 on every PC platform; its registers cannot start DMA.
    if let Ok(ports) = unsafe { PortRange::claim(COM1_BASE, 8) }
        && let Some(uart) = Uart16550::init(ports)
    {
        let uart = COM1.call_once(|| uart);
        *CONSOLE.lock() = Some(uart);
    } else if let Some(write) = pv::detect::early(&pv::Machine).console {
        *CONSOLE.lock() = Some(EARLY_CONSOLE.call_once(|| EarlyConsole(write)));
    }
}

/// A hypervisor's console that works before (and without) its backend. What it carried
/// is kept (the first [`EARLY_KEPT`] bytes) and written again to the console that takes
/// over, which may be another place (a domU's early console is the hypervisor's log, its
/// console the ring `xl console` shows).
struct EarlyConsole(fn(&[u8]));

const EARLY_KEPT: usize = 2048;
static EARLY_LOG: Mutex<([u8; EARLY_KEPT], usize)> = Mutex::new(([0; EARLY_KEPT], 0));

impl Console for EarlyConsole {
    fn write(&self, bytes: &[u8]) {
        (self.0)(bytes);
        let mut log = EARLY_LOG.lock();
        let (buf, len) = &mut *log;
        let n = bytes.len().min(EARLY_KEPT - *len);
        buf[*len..*len + n].copy_from_slice(&bytes[..n]);
        *len += n;
    }
}

static EARLY_CONSOLE: Once<EarlyConsole> = Once::new();

/// The hypervisor's console, through the pv-ops table.
struct HypervisorConsole;

impl Console for HypervisorConsole {
    fn write(&self, bytes: &[u8]) {
        // SAFETY: `bytes` is a live slice of `len` readable bytes.
        unsafe { (pv::table::ops().console.write)(bytes.as_ptr(), bytes.len()) };
    }
}

static HYPERVISOR_CONSOLE: HypervisorConsole = HypervisorConsole;

/// Switches to the hypervisor's console when the pv-ops backend offers one (a
/// hypervisor that owns the serial port hands its guests a console of its own).
pub(crate) fn prefer_hypervisor_console() {
    if (pv::table::ops().console.available)() {
        let mut console = CONSOLE.lock();
        let early_in_use = EARLY_CONSOLE
            .get()
            .is_some_and(|early| console.is_some_and(|c| core::ptr::addr_eq(c as *const dyn Console, early)));
        if early_in_use {
            let (buf, len) = &*EARLY_LOG.lock();
            HYPERVISOR_CONSOLE.write(&buf[..*len]);
        }
        *console = Some(&HYPERVISOR_CONSOLE);
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

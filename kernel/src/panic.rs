//! A panic prints where and why, with a backtrace, and exits non-zero.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::{backtrace, cpu};
use crate::exit::{ExitCode, exit_with};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    cpu::disable_interrupts();
    crate::console::seize_for_crash();
    if PANICKING.swap(true, Ordering::SeqCst) {
        crate::println!("panic while panicking: {}", info.message());
        exit_with(ExitCode::Panic as u32);
    }
    match info.location() {
        Some(loc) => {
            crate::println!("panic at {}:{}:{}: {}", loc.file(), loc.line(), loc.column(), info.message())
        }
        None => crate::println!("panic: {}", info.message()),
    }
    backtrace::print_from(cpu::frame_pointer());
    exit_with(ExitCode::Panic as u32)
}

//! The `log` backend: `[seconds.micros] LEVEL target: message` on the console.

use bootinfo::cmdline::LogLevel;
use log::{LevelFilter, Log, Metadata, Record};

struct Logger;

static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = crate::time::since_boot_ns();
        crate::println!(
            "[{:4}.{:06}] {:<5} {}: {}",
            ns / 1_000_000_000,
            ns % 1_000_000_000 / 1000,
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

pub(crate) fn init(level: LogLevel) {
    // `set_logger` fails only if a logger is already set, which boot never does twice.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    });
}

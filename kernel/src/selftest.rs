//! Built-in checks, chosen with `selftest=NAME` on the command line of the same image
//! users boot. Most end the run on purpose through the kernel's fatal paths, which is
//! what the integration tests look at.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hint::black_box;

use crate::app::BootFacts;
use crate::exit::ExitCode;

/// An address nothing maps (canonical, far above any RAM).
const UNMAPPED: u64 = 0x0000_7fff_dead_0000;

pub(crate) const NAMES: &[&str] = &[
    "panic",
    "page-fault",
    "stack-overflow",
    "write-text",
    "exec-data",
    "heap",
    "clock",
    "sleep",
    "pvops-bench",
    "pci-msi",
];

pub(crate) fn run(name: &str, facts: &BootFacts, backend: &pv::Backend) -> ExitCode {
    log::info!("selftest: {name}");
    match name {
        "panic" => panic!("selftest: deliberate panic"),
        "page-fault" => {
            // SAFETY: none; this read faults on purpose, and the fault ends the run.
            let v = unsafe { (UNMAPPED as *const u64).read_volatile() };
            log::error!("read {v} from an unmapped address");
            ExitCode::AppFailed
        }
        "stack-overflow" => {
            let depth = recurse(black_box(0));
            log::error!("recursed {depth} frames without hitting the guard page");
            ExitCode::AppFailed
        }
        "write-text" => {
            let text = run as *const () as *mut u8;
            // SAFETY: none; text is mapped read-only and this write faults on purpose.
            unsafe { text.write_volatile(0xcc) };
            log::error!("wrote to kernel text at {text:p}");
            ExitCode::AppFailed
        }
        "exec-data" => {
            static RET: [u8; 1] = [0xc3]; // `ret`, in rodata
            // SAFETY: none; rodata is mapped no-execute and this call faults on purpose.
            let f: extern "C" fn() = unsafe { core::mem::transmute(RET.as_ptr()) };
            f();
            log::error!("executed rodata at {:p}", RET.as_ptr());
            ExitCode::AppFailed
        }
        "heap" => heap_stress(facts),
        "clock" => clock_monotonic(),
        "sleep" => sleep_one_second(),
        "pvops-bench" => {
            pv::bench::run(backend.privileged, |line| crate::println!("{line}"));
            crate::println!("pvbench: done (20000 calls x 7 rounds per op, median, TSC ticks)");
            ExitCode::Success
        }
        "pci-msi" => pci_msi(),
        _ => backend_selftest(name, backend),
    }
}

/// A check a pv-ops backend brings for its own error paths (a hypervisor's refusals).
fn backend_selftest(name: &str, backend: &pv::Backend) -> ExitCode {
    let Some(test) = backend.selftests.iter().find(|t| t.name == name) else {
        let owners: Vec<&str> = pv::detect::selftest(name).map(|(b, _)| b.name).collect();
        if owners.is_empty() {
            let backend_names = pv::detect::BACKENDS.iter().flat_map(|b| b.selftests).map(|t| t.name);
            let known: Vec<&str> = NAMES.iter().copied().chain(backend_names).collect();
            log::error!("unknown selftest `{name}`; known: {}", known.join(", "));
            return ExitCode::BootFailed;
        }
        log::error!("selftest {name} needs the {} backend, not {}", owners.join(" or "), backend.name);
        return ExitCode::AppFailed;
    };
    let mut print = |line: core::fmt::Arguments<'_>| crate::println!("{line}");
    let sleep_ms = |ms| crate::time::halt_for(core::time::Duration::from_millis(ms));
    let why = (test.run)(&mut pv::backend::SelfTestEnv { print: &mut print, sleep_ms: &sleep_ms });
    log::error!("selftest {name}: {why}");
    ExitCode::AppFailed
}

/// A million clock reads must never go backwards.
fn clock_monotonic() -> ExitCode {
    const READS: u32 = 1_000_000;
    let start = crate::time::since_boot_ns();
    let mut last = start;
    let mut max_step = 0;
    for i in 0..READS {
        let now = crate::time::since_boot_ns();
        if now < last {
            log::error!("clock went backwards at read {i}: {last} -> {now}");
            return ExitCode::AppFailed;
        }
        max_step = max_step.max(now - last);
        last = now;
    }
    crate::println!(
        "selftest clock: {READS} reads monotonic over {} us, {} ns per read, largest step {} ns, wall clock {} s since the epoch",
        (last - start) / 1000,
        (last - start) / u64::from(READS),
        max_step,
        crate::time::wall_clock_ns() / 1_000_000_000
    );
    ExitCode::Success
}

/// Prints a line, then sleeps one second on the timer three times, printing a line after
/// each: the host timestamps the lines and takes the median interval, which one line
/// held up on a busy host does not move.
fn sleep_one_second() -> ExitCode {
    crate::println!("selftest sleep: start");
    for round in 1..=3 {
        let before = crate::time::since_boot_ns();
        crate::time::halt_for(core::time::Duration::from_secs(1));
        let slept = crate::time::since_boot_ns() - before;
        crate::println!("selftest sleep: {round} done, {slept} ns by the guest clock");
    }
    ExitCode::Success
}

#[inline(never)]
#[allow(unconditional_recursion)] // overflowing the stack is the point
fn recurse(depth: u64) -> u64 {
    let mut pad = [depth as u8; 512];
    black_box(&mut pad);
    black_box(recurse(depth + 1)) + u64::from(pad[0])
}

/// FNV-1a, 64 bit: enough to tell whether a module's bytes survived.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Fills most of memory with allocations of mixed sizes, checks their contents, frees
/// them all, and does it again: the heap must return to its idle figure, later rounds
/// must get as much memory as the first, and the boot modules must be intact.
fn heap_stress(facts: &BootFacts) -> ExitCode {
    let idle = crate::heap_stats();
    let mut rounds = [0usize; 3];
    for (round, got) in rounds.iter_mut().enumerate() {
        let mut blocks: Vec<Box<[u8]>> = Vec::new();
        if blocks.try_reserve(1 << 16).is_err() {
            log::error!("heap: cannot allocate the block list");
            return ExitCode::AppFailed;
        }
        let sizes = [24usize, 4096, 100, 65536, 1 << 20, 7, 300_000];
        let mut i = 0;
        'fill: loop {
            let size = sizes[i % sizes.len()];
            // Once a size fails, smaller ones may still fit: try them before stopping.
            let mut size_try = size;
            let block = loop {
                let mut v: Vec<u8> = Vec::new();
                if v.try_reserve_exact(size_try).is_ok() {
                    v.resize(size_try, (i % 251) as u8);
                    break v.into_boxed_slice();
                }
                if size_try <= 64 {
                    break 'fill;
                }
                size_try /= 4;
            };
            *got += block.len();
            if blocks.len() == blocks.capacity() {
                break;
            }
            blocks.push(block);
            i += 1;
        }
        for (j, b) in blocks.iter().enumerate() {
            if b.iter().any(|&x| x != (j % 251) as u8) {
                log::error!("heap: block {j} was corrupted");
                return ExitCode::AppFailed;
            }
        }
        let full = crate::heap_stats();
        drop(blocks);
        let after = crate::heap_stats();
        crate::println!(
            "selftest heap: round {} allocated {} KiB in {} blocks (heap claimed {} KiB); after free: {} bytes in {} allocations",
            round + 1,
            *got / 1024,
            full.allocations,
            full.claimed / 1024,
            after.allocated,
            after.allocations
        );
        if after.allocated != idle.allocated || after.allocations != idle.allocations {
            log::error!("heap: {} bytes leaked", after.allocated as i64 - idle.allocated as i64);
            return ExitCode::AppFailed;
        }
    }
    if rounds[1] < rounds[0] * 95 / 100 || rounds[2] < rounds[0] * 95 / 100 {
        log::error!("heap: later rounds got less memory ({rounds:?}): fragmentation");
        return ExitCode::AppFailed;
    }
    // Boot modules are reserved: filling the heap must not have touched them.
    for (i, module) in facts.modules.iter().enumerate() {
        crate::println!(
            "selftest heap: module {i}: {} bytes, fnv1a64 {:016x}",
            module.len(),
            fnv1a64(module)
        );
    }
    let stats = crate::heap_stats();
    crate::println!(
        "selftest heap: ok, {} KiB per round, heap claimed {} KiB, frames free {} KiB",
        rounds[0] / 1024,
        stats.claimed / 1024,
        stats.frames_free / 1024
    );
    ExitCode::Success
}

/// The vector the `pci-msi` self-test's device signals on, and whether it arrived.
pub(crate) const MSI_TEST_VECTOR: u8 = 0x41;
static MSI_SEEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

pub(crate) fn on_msi_test_interrupt() {
    MSI_SEEN.store(true, core::sync::atomic::Ordering::Release);
}

/// MSI end to end on QEMU's `edu` teaching device (1234:11e8; `-device edu`), the one
/// QEMU device here that has MSI but not MSI-X: program its MSI capability, have it raise
/// an interrupt (register 0x60), and wait for the vector.
fn pci_msi() -> ExitCode {
    use core::sync::atomic::Ordering;
    use drivers::Registers;
    const EDU: (u16, u16) = (0x1234, 0x11e8);
    const STATUS: u16 = 0x24;
    const RAISE: u16 = 0x60;
    const ACK: u16 = 0x64;
    let Some(f) = crate::pci::functions().iter().find(|f| (f.vendor, f.device) == EDU) else {
        log::error!("selftest pci-msi: no edu device (QEMU: -device edu)");
        return ExitCode::AppFailed;
    };
    let Some(regs) = crate::pci::map_bar(f.bdf, 0, 0, 0x100) else {
        log::error!("selftest pci-msi: cannot map the edu device's BAR 0");
        return ExitCode::AppFailed;
    };
    let cfg = crate::pci::config();
    if !drivers::pci::msi_enable(cfg, f.bdf, pv::native::apic::id() as u8, MSI_TEST_VECTOR) {
        log::error!("selftest pci-msi: {} has no MSI capability", f.bdf);
        return ExitCode::AppFailed;
    }
    drivers::pci::enable(cfg, f.bdf, true);
    let start = crate::time::since_boot_ns();
    regs.write32(RAISE, 0x5a);
    while !MSI_SEEN.load(Ordering::Acquire) && crate::time::since_boot_ns() - start < 1_000_000_000 {
        crate::time::halt_until_ns(start + 1_000_000_000, || MSI_SEEN.load(Ordering::Acquire));
    }
    let status = regs.read32(STATUS);
    regs.write32(ACK, status);
    if !MSI_SEEN.load(Ordering::Acquire) {
        log::error!("selftest pci-msi: no interrupt within 1 s (device status {status:#x})");
        return ExitCode::AppFailed;
    }
    crate::println!(
        "selftest pci-msi: {} raised status {status:#x}, delivered on vector {MSI_TEST_VECTOR:#x} by MSI after {} us",
        f.bdf,
        (crate::time::since_boot_ns() - start) / 1000
    );
    ExitCode::Success
}

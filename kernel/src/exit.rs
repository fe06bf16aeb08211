//! Leaving the machine: the hypervisor's shutdown call when the pv-ops backend has one,
//! else QEMU's `isa-debug-exit` when present (the host sees the code), else ACPI
//! S5 power-off, else halt with interrupts off.

use bootinfo::acpi::{GenericAddress, PowerOff};
use drivers::acpi_pm;
use drivers::debug_exit::DebugExit;
use spin::Once;

use crate::arch::cpu;
use crate::arch::port::PortRange;

/// Exit codes the kernel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    Success = 0,
    /// The app returned an error.
    AppFailed = 1,
    /// The boot hand-over or the machine could not be used (bad start info, too little
    /// memory, bad command line).
    BootFailed = 2,
    Panic = 101,
    /// An unexpected CPU exception (page fault, double fault, ...).
    CpuException = 102,
}

static DEBUG_EXIT: Once<Option<DebugExit<PortRange>>> = Once::new();
static POWER_OFF: Once<PowerOff> = Once::new();

fn debug_exit() -> Option<&'static DebugExit<PortRange>> {
    DEBUG_EXIT
        .call_once(|| {
            // SAFETY: 0x501..0x505 is where QEMU puts isa-debug-exit; with nothing there
            // the probe read returns all ones and the port is never written.
            DebugExit::probe(unsafe { PortRange::claim(0x501, 4) }.ok()?)
        })
        .as_ref()
}

/// Remembers how to power off, found in the ACPI tables at boot.
pub(crate) fn set_power_off(how: PowerOff) {
    POWER_OFF.call_once(|| how);
}

/// How the machine will be left, for the boot banner.
pub(crate) fn method() -> &'static str {
    if (pv::table::ops().power.available)() {
        return "hypervisor";
    }
    match (debug_exit(), POWER_OFF.get()) {
        (Some(_), _) => "isa-debug-exit",
        (None, Some(_)) => "acpi-s5",
        (None, None) => "halt",
    }
}

/// The hypervisor's toolstack asked the guest to power off or reboot: the app ends
/// cleanly (exit code 0) and the guest goes as asked.
pub(crate) fn on_power_request(request: pv::bus::PowerRequest) -> ! {
    crate::println!("chameleon: the hypervisor asks for {request:?}");
    if request == pv::bus::PowerRequest::Reboot {
        crate::println!("chameleon: exit code 0, rebooting");
        (pv::table::ops().power.reboot)();
    }
    exit(ExitCode::Success)
}

/// Ends the run with `code`.
pub fn exit(code: ExitCode) -> ! {
    exit_with(code as u32)
}

pub(crate) fn exit_with(code: u32) -> ! {
    crate::println!("chameleon: exit code {code}");
    // A hypervisor that can end the guest itself does so.
    let power = pv::table::ops().power;
    (power.shutdown)(code);
    if !(power.available)()
        && let Some(shutdown) = pv::detect::early(&pv::Machine).shutdown
    {
        // The backend is not in use (forced off, or it could not start), but the
        // hypervisor still ends the guest when asked.
        shutdown(code);
    }
    if let Some(dev) = debug_exit() {
        dev.exit(code);
    }
    if let Some(how) = POWER_OFF.get() {
        power_off(how);
    }
    crate::println!("chameleon: no way to power off; halted");
    cpu::halt_forever()
}

fn power_off(how: &PowerOff) {
    match *how {
        PowerOff::Pm1 { pm1a_cnt, pm1b_cnt, slp_typ_a, slp_typ_b } => {
            // SAFETY: the FADT names these ports as the PM1 control blocks, which cannot
            // start DMA; the machine is going down.
            let claim = |port| unsafe { PortRange::claim(port, 2) }.ok();
            if let Some(a) = claim(pm1a_cnt) {
                acpi_pm::pm1_power_off(&a, pm1b_cnt.and_then(claim).as_ref(), slp_typ_a, slp_typ_b);
            }
        }
        PowerOff::SleepControl { reg: GenericAddress::Io(port), slp_typ } => {
            // SAFETY: the FADT names this port as the sleep control register.
            if let Ok(reg) = unsafe { PortRange::claim(port, 1) } {
                acpi_pm::sleep_control_power_off(&reg, slp_typ);
            }
        }
        PowerOff::SleepControl { reg: GenericAddress::Memory(addr), slp_typ } => {
            if crate::memory::map_device(addr, 1).is_ok()
                // SAFETY: the FADT names this byte as the sleep control register, and it
                // was just mapped uncached at its physical address.
                && let Ok(reg) = unsafe { crate::arch::mmio::MmioRange::claim(addr, 1) }
            {
                acpi_pm::sleep_control_power_off(&reg, slp_typ);
            }
        }
    }
    // Power-off is not instant on every platform; give it a moment.
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
}

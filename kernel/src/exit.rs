//! Leaving the machine: the hypervisor's shutdown call when the pv-ops backend has one
//! (Xen), else QEMU's `isa-debug-exit` when present (the host sees the code), else ACPI
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
            DebugExit::probe(unsafe { PortRange::new(0x501, 4) })
        })
        .as_ref()
}

/// Remembers how to power off, found in the ACPI tables at boot.
pub(crate) fn set_power_off(how: PowerOff) {
    POWER_OFF.call_once(|| how);
}

/// How the machine will be left, for the boot banner.
pub(crate) fn method() -> &'static str {
    if (pv::ops::ops().power.available)() {
        return "hypervisor";
    }
    match (debug_exit(), POWER_OFF.get()) {
        (Some(_), _) => "isa-debug-exit",
        (None, Some(_)) => "acpi-s5",
        (None, None) => "halt",
    }
}

/// Ends the run with `code`.
pub fn exit(code: ExitCode) -> ! {
    exit_with(code as u32)
}

pub(crate) fn exit_with(code: u32) -> ! {
    crate::println!("chameleon: exit code {code}");
    // A hypervisor that can end the guest itself does so (Xen: sched_op shutdown).
    let power = pv::ops::ops().power;
    (power.shutdown)(code);
    if !(power.available)()
        && pv::detect::hypervisor(&pv::Machine).is_some_and(|h| h.vendor == pv::detect::Vendor::Xen)
    {
        // Under Xen without its backend, Xen still takes the shutdown hypercall.
        pv::xen_hvm::shutdown_direct(code);
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
            // SAFETY: the FADT names these ports as the PM1 control blocks; nothing else
            // drives them, and the machine is going down.
            let (a, b) = unsafe { (PortRange::new(pm1a_cnt, 2), pm1b_cnt.map(|p| PortRange::new(p, 2))) };
            acpi_pm::pm1_power_off(&a, b.as_ref(), slp_typ_a, slp_typ_b);
        }
        PowerOff::SleepControl { reg: GenericAddress::Io(port), slp_typ } => {
            // SAFETY: the FADT names this port as the sleep control register.
            acpi_pm::sleep_control_power_off(&unsafe { PortRange::new(port, 1) }, slp_typ);
        }
        PowerOff::SleepControl { reg: GenericAddress::Memory(addr), slp_typ } => {
            if crate::memory::map_device(addr, 1).is_ok() {
                // SAFETY: the FADT names this byte as the sleep control register, and it
                // was just mapped uncached at its physical address.
                let reg = unsafe { crate::arch::mmio::MmioRange::new(addr, 1) };
                acpi_pm::sleep_control_power_off(&reg, slp_typ);
            }
        }
    }
    // Power-off is not instant on every platform; give it a moment.
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
}

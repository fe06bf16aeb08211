//! The ACPI tables the kernel reads at boot (RSDP, RSDT/XSDT, FADT for power-off and
//! the PM timer, DSDT for `_S5` and virtio-mmio devices, MADT, MCFG), from a guest memory image that is the fuzz input.
//!
//! Input: one byte of flags (bit 0: the image ends at the top of the address space
//! instead of lying at LOW_BASE; bit 1: repair the checksums of every table found, so
//! mutations reach past the checksum test), then the image, with the RSDP at its first
//! byte.
#![no_main]

use bootinfo::acpi;
use chameleon_fuzz::{GuestImage, Input, repair_acpi_checksums};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut bytes = input.rest().to_vec();
    if flags & 2 != 0 {
        repair_acpi_checksums(&mut bytes);
    }
    let mem = GuestImage::new(&bytes, flags & 1 != 0);
    let rsdp = mem.base;
    let show = |e: acpi::AcpiError| {
        let _ = e.to_string();
    };
    acpi::find_power_off(&mem, rsdp).map(drop).unwrap_or_else(show);
    match acpi::find_ecam(&mem, rsdp) {
        Ok(Some(ecam)) => {
            assert!(ecam.first_bus <= ecam.last_bus);
            assert!(ecam.base.checked_add(ecam.window_len()).is_some(), "{ecam:?}");
        }
        Ok(None) => {}
        Err(e) => show(e),
    }
    acpi::find_madt(&mem, rsdp).map(drop).unwrap_or_else(show);
    match acpi::find_pm_timer(&mem, rsdp) {
        Ok(Some(timer)) => assert_ne!(timer.port, 0, "port 0 is no timer"),
        Ok(None) => {}
        Err(e) => show(e),
    }
    match acpi::find_virtio_mmio(&mem, rsdp) {
        Ok((_, count)) => assert!(count <= acpi::MMIO_DEVICES_MAX),
        Err(e) => show(e),
    }
});

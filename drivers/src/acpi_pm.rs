//! ACPI power management registers: entering S5 (soft off).

use crate::Registers;

const SLP_EN_PM1: u16 = 1 << 13;
const SLP_EN_SLEEP_CONTROL: u8 = 1 << 5;

/// Fixed-hardware ACPI: PM1a (and PM1b, if the platform has it) control registers.
pub fn pm1_power_off(pm1a: &impl Registers, pm1b: Option<&impl Registers>, slp_typ_a: u8, slp_typ_b: u8) {
    let value = |typ: u8| (u16::from(typ & 7) << 10) | SLP_EN_PM1;
    // The preserved bits (SCI_EN and friends) are read back and kept.
    pm1a.write16(0, (pm1a.read16(0) & 0x0203) | value(slp_typ_a));
    if let Some(b) = pm1b {
        b.write16(0, (b.read16(0) & 0x0203) | value(slp_typ_b));
    }
}

/// Hardware-reduced ACPI: the FADT's sleep control register.
pub fn sleep_control_power_off(reg: &impl Registers, slp_typ: u8) {
    reg.write8(0, ((slp_typ & 7) << 2) | SLP_EN_SLEEP_CONTROL);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockRegisters;

    #[test]
    fn pm1_keeps_sci_en_and_sets_slp_en() {
        let a = MockRegisters::new(0x0001);
        pm1_power_off(&a, None::<&MockRegisters>, 5, 0);
        assert_eq!(*a.writes.borrow(), [(0, 0x0001 | (5 << 10) | (1 << 13), 2)]);
    }

    #[test]
    fn sleep_control_value() {
        let r = MockRegisters::new(0);
        sleep_control_power_off(&r, 5);
        assert_eq!(*r.writes.borrow(), [(0, (5 << 2) | (1 << 5), 1)]);
    }
}

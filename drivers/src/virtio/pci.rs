//! virtio over PCI: the modern transport (capabilities pointing into memory BARs) and
//! the legacy/transitional one (registers in I/O BAR0).

use core::cell::Cell;

use super::{Error, Transport};
use crate::Registers;

/// PCI vendor of virtio devices.
pub const VENDOR: u16 = 0x1af4;
/// Modern device IDs are 0x1040 + type; transitional ones 0x1000..=0x103f.
pub const DEVICE_NET_MODERN: u16 = 0x1041;
pub const DEVICE_NET_TRANSITIONAL: u16 = 0x1000;

/// virtio PCI capability types.
pub const CAP_COMMON: u8 = 1;
pub const CAP_NOTIFY: u8 = 2;
pub const CAP_ISR: u8 = 3;
pub const CAP_DEVICE: u8 = 4;

const NO_VECTOR: u16 = 0xffff;

// Common configuration offsets.
const DEVICE_FEATURE_SELECT: u16 = 0;
const DEVICE_FEATURE: u16 = 4;
const DRIVER_FEATURE_SELECT: u16 = 8;
const DRIVER_FEATURE: u16 = 12;
const CONFIG_MSIX_VECTOR: u16 = 16;
const DEVICE_STATUS: u16 = 20;
const QUEUE_SELECT: u16 = 22;
const QUEUE_SIZE: u16 = 24;
const QUEUE_MSIX_VECTOR: u16 = 26;
const QUEUE_ENABLE: u16 = 28;
const QUEUE_NOTIFY_OFF: u16 = 30;
const QUEUE_DESC: u16 = 32;
const QUEUE_DRIVER: u16 = 40;
const QUEUE_DEVICE: u16 = 48;

/// The modern transport: one register window per capability.
#[derive(Debug)]
pub struct ModernPci<R: Registers> {
    common: R,
    notify: R,
    /// Bytes in the notify window, to check each queue's register lies inside it.
    notify_len: u32,
    notify_multiplier: u32,
    isr: R,
    device: R,
    msix: bool,
    /// Each queue's offset in the notify window, read once at setup: reading it at
    /// every notification would cost two more register trips per packet sent.
    notify_offsets: [Cell<u16>; MAX_QUEUES],
}

/// The most queues a driver sets up (virtio-net without multiqueue uses two).
pub const MAX_QUEUES: usize = 4;

impl<R: Registers> ModernPci<R> {
    /// The transport over its four windows (`notify_len`: the notify window's length
    /// in bytes); `msix`: whether MSI-X is enabled.
    pub fn new(
        common: R,
        notify: R,
        notify_len: u32,
        notify_multiplier: u32,
        isr: R,
        device: R,
        msix: bool,
    ) -> Self {
        ModernPci {
            common,
            notify,
            notify_len,
            notify_multiplier,
            isr,
            device,
            msix,
            notify_offsets: Default::default(),
        }
    }

    /// Where queue `index`'s notify register lies: the device's queue offset times the
    /// capability's multiplier, both from the device, so checked against the window.
    fn notify_offset(&self, index: u16, queue_offset: u16) -> Result<u16, Error> {
        let outside = Error::NotifyOutsideWindow {
            queue: index,
            queue_offset,
            multiplier: self.notify_multiplier,
            window: self.notify_len,
        };
        let offset = u32::from(queue_offset).checked_mul(self.notify_multiplier).ok_or(outside)?;
        // The register is 16 bits wide.
        if offset.checked_add(2).is_none_or(|end| end > self.notify_len) {
            return Err(outside);
        }
        u16::try_from(offset).map_err(|_| outside)
    }
}

impl<R: Registers> Transport for ModernPci<R> {
    fn device_features(&self) -> u64 {
        super::read_features(&self.common, DEVICE_FEATURE_SELECT, DEVICE_FEATURE)
    }
    fn set_driver_features(&self, features: u64) {
        super::write_features(&self.common, DRIVER_FEATURE_SELECT, DRIVER_FEATURE, features);
        if self.msix {
            self.common.write16(CONFIG_MSIX_VECTOR, NO_VECTOR);
        }
    }
    fn status(&self) -> u8 {
        self.common.read8(DEVICE_STATUS)
    }
    fn set_status(&self, status: u8) {
        self.common.write8(DEVICE_STATUS, status);
    }
    fn max_queue_size(&self, index: u16) -> u16 {
        self.common.write16(QUEUE_SELECT, index);
        self.common.read16(QUEUE_SIZE)
    }
    fn legacy_layout(&self) -> bool {
        false
    }
    fn setup_queue(
        &self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
        msix: Option<u16>,
    ) -> Result<(), Error> {
        let Some(notify_offset) = self.notify_offsets.get(usize::from(index)) else {
            return Err(Error::NoQueue(index));
        };
        self.common.write16(QUEUE_SELECT, index);
        if self.common.read16(QUEUE_SIZE) == 0 {
            return Err(Error::NoQueue(index));
        }
        notify_offset.set(self.notify_offset(index, self.common.read16(QUEUE_NOTIFY_OFF))?);
        self.common.write16(QUEUE_SIZE, size);
        super::write64(&self.common, QUEUE_DESC, desc);
        super::write64(&self.common, QUEUE_DRIVER, avail);
        super::write64(&self.common, QUEUE_DEVICE, used);
        if self.msix {
            let vector = msix.unwrap_or(NO_VECTOR);
            self.common.write16(QUEUE_MSIX_VECTOR, vector);
            if self.common.read16(QUEUE_MSIX_VECTOR) != vector {
                return Err(Error::MsixRejected);
            }
        }
        self.common.write16(QUEUE_ENABLE, 1);
        Ok(())
    }
    fn notify(&self, index: u16) {
        // Only queues set up are notified, and setup refused indices past the cache.
        let off = self.notify_offsets[usize::from(index)].get();
        self.notify.write16(off, index);
    }
    fn interrupt_status(&self) -> u8 {
        self.isr.read8(0)
    }
    fn config_read8(&self, offset: u16) -> u8 {
        self.device.read8(offset)
    }
    fn config_read16(&self, offset: u16) -> u16 {
        self.device.read16(offset)
    }
}

// Legacy I/O BAR0 offsets.
const L_DEVICE_FEATURES: u16 = 0;
const L_DRIVER_FEATURES: u16 = 4;
const L_QUEUE_PFN: u16 = 8;
const L_QUEUE_SIZE: u16 = 12;
const L_QUEUE_SELECT: u16 = 14;
const L_QUEUE_NOTIFY: u16 = 16;
const L_STATUS: u16 = 18;
const L_ISR: u16 = 19;
const L_CONFIG_VECTOR: u16 = 20;
const L_QUEUE_VECTOR: u16 = 22;

/// The legacy (transitional) transport: everything in I/O BAR0. Queue sizes are fixed
/// by the device, and the device config moves 4 bytes up while MSI-X is on.
#[derive(Debug)]
pub struct LegacyPci<R: Registers> {
    pub io: R,
    pub msix: bool,
}

impl<R: Registers> LegacyPci<R> {
    fn config_base(&self) -> u16 {
        if self.msix { 24 } else { 20 }
    }
}

impl<R: Registers> Transport for LegacyPci<R> {
    fn device_features(&self) -> u64 {
        u64::from(self.io.read32(L_DEVICE_FEATURES))
    }
    fn set_driver_features(&self, features: u64) {
        self.io.write32(L_DRIVER_FEATURES, features as u32);
        if self.msix {
            self.io.write16(L_CONFIG_VECTOR, NO_VECTOR);
        }
    }
    fn status(&self) -> u8 {
        self.io.read8(L_STATUS)
    }
    fn set_status(&self, status: u8) {
        self.io.write8(L_STATUS, status);
    }
    fn max_queue_size(&self, index: u16) -> u16 {
        self.io.write16(L_QUEUE_SELECT, index);
        self.io.read16(L_QUEUE_SIZE)
    }
    fn legacy_layout(&self) -> bool {
        true
    }
    fn setup_queue(
        &self,
        index: u16,
        size: u16,
        desc: u64,
        _avail: u64,
        _used: u64,
        msix: Option<u16>,
    ) -> Result<(), Error> {
        self.io.write16(L_QUEUE_SELECT, index);
        if self.io.read16(L_QUEUE_SIZE) != size {
            return Err(Error::NoQueue(index));
        }
        if self.msix {
            let vector = msix.unwrap_or(NO_VECTOR);
            self.io.write16(L_QUEUE_VECTOR, vector);
            if self.io.read16(L_QUEUE_VECTOR) != vector {
                return Err(Error::MsixRejected);
            }
        }
        self.io.write32(L_QUEUE_PFN, (desc >> 12) as u32);
        Ok(())
    }
    fn notify(&self, index: u16) {
        self.io.write16(L_QUEUE_NOTIFY, index);
    }
    fn interrupt_status(&self) -> u8 {
        self.io.read8(L_ISR)
    }
    fn config_read8(&self, offset: u16) -> u8 {
        self.io.read8(self.config_base() + offset)
    }
    fn config_read16(&self, offset: u16) -> u16 {
        self.io.read16(self.config_base() + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockRegisters;

    fn transport(notify_len: u32, multiplier: u32, queue_notify_off: u16) -> ModernPci<MockRegisters> {
        let common = MockRegisters::new(0);
        common.reads.borrow_mut().insert(QUEUE_SIZE, 256);
        common.reads.borrow_mut().insert(QUEUE_NOTIFY_OFF, u32::from(queue_notify_off));
        let new = || MockRegisters::new(0);
        ModernPci::new(common, new(), notify_len, multiplier, new(), new(), false)
    }

    #[test]
    fn notify_register_inside_the_window_is_used() {
        let t = transport(0x1000, 4, 1);
        t.setup_queue(1, 256, 0x1000, 0x2000, 0x3000, None).unwrap();
        t.notify(1);
        assert_eq!(*t.notify.writes.borrow(), [(4, 1, 2)]);
        // The last register that fits.
        let t = transport(0x1000, 2, 0x7ff);
        assert!(t.setup_queue(0, 256, 0, 0, 0, None).is_ok());
    }

    #[test]
    fn notify_register_outside_the_window_is_refused() {
        for (len, mult, off) in [
            (0x1000, 4, 0x400),           // just past the window
            (0x1000, 2, 0x800),           // starts at its end
            (0x1000, 1, 0xfff),           // half inside
            (u32::MAX, 0x2_0000, 0xffff), // the product overflows 32 bits (wraps unchecked)
            (u32::MAX, 0x1_0000, 0xffff), // inside a huge window, beyond a 16-bit offset
        ] {
            let t = transport(len, mult, off);
            let err = t.setup_queue(0, 256, 0, 0, 0, None).unwrap_err();
            assert_eq!(
                err,
                Error::NotifyOutsideWindow { queue: 0, queue_offset: off, multiplier: mult, window: len }
            );
        }
        let text = alloc::format!("{}", transport(16, 4, 4).setup_queue(2, 256, 0, 0, 0, None).unwrap_err());
        assert!(text.contains("queue 2") && text.contains("16-byte notify window"), "{text}");
    }
}

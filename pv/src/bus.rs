//! The hypervisor's own device bus, beside PCI and virtio-mmio: the network card it
//! lists for this guest, and the power requests its toolstack sends. Under Xen that is
//! xenbus ([`crate::xen::bus`]); elsewhere there is nothing on it.

use drivers::net::{AnyNic, NicError, NicTypes};

pub use crate::xen::bus::{Handles, PowerRequest};

/// Gives the bus's drivers the kernel's monotonic clock and its wait (halt until an
/// event or a deadline on that clock). Call once, before the bus is used.
pub fn set_clock(now_ns: fn() -> u64, wait_until_ns: fn(u64)) {
    crate::xen::bus::set_clock(now_ns, wait_until_ns)
}

/// The first network card on the bus, started: `None` if the bus has none, else the card
/// or why it did not start. Its events end a halt (the hypervisor's upcall); the stack
/// polls it then.
pub fn probe_nic<K: NicTypes<HypervisorBus = Handles>>(
    alloc: &K::Dma,
) -> Option<Result<AnyNic<K>, NicError>> {
    crate::xen::bus::probe_nic(alloc)
}

/// A power request from the hypervisor's toolstack (`xl shutdown`, `xl reboot`), if one
/// came; cheap enough to ask on every wake-up.
pub fn power_request() -> Option<PowerRequest> {
    crate::xen::bus::power_request()
}

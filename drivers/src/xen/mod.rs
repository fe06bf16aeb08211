//! Xen's split-driver model, front-end side: the shared I/O ring (`ring`), the xenstore
//! client (`store`), the grant table (`grant`) and the network front end (`netfront`).
//!
//! The kernel provides what needs hypercalls or mappings through the small traits below
//! ([`SharedPage`], [`EventChannels`], [`Wait`], [`Shared`]), named once in a [`Xen`]
//! bundle; everything else is decided here, in safe code, and tested against a fake
//! xenstored and a fake back end.
//!
//! ABI facts are from Xen's public headers: `io/ring.h`, `io/netif.h`, `io/xs_wire.h`,
//! `io/xenbus.h`, `grant_table.h`, and `docs/misc/xenstore.txt`.

pub mod grant;
pub mod netfront;
pub mod ring;
pub mod store;

#[cfg(any(test, feature = "fakes"))]
pub mod fake;

/// A domain's id (`domid_t`).
pub type DomId = u16;

/// An event channel port (`evtchn_port_t`).
pub type Port = u32;

/// Xen's page size for rings, grants and the xenstore interface, whatever the guest's.
pub const PAGE_SIZE: usize = 4096;

/// A page (or run of pages) shared with another domain or with Xen and mapped by the
/// kernel: the xenstore interface page, the grant-table frames. The other side writes
/// it at any time, so every access is volatile; offsets are bytes, accesses naturally
/// aligned, and an access outside the mapping is a kernel bug (the kernel may panic).
pub trait SharedPage {
    /// Bytes mapped.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn read_u8(&self, offset: usize) -> u8;
    fn write_u8(&self, offset: usize, value: u8);
    fn read_u16(&self, offset: usize) -> u16;
    fn write_u16(&self, offset: usize, value: u16);
    fn read_u32(&self, offset: usize) -> u32;
    fn write_u32(&self, offset: usize, value: u32);
    /// Atomically (`lock cmpxchg`): if the u16 at `offset` is `current`, make it `new`.
    /// `Ok(current)` if it was replaced, else `Err(the value found)`. Grant entries need
    /// it: Xen sets their in-use bits while the guest tries to revoke them.
    fn compare_exchange_u16(&self, offset: usize, current: u16, new: u16) -> Result<u16, u16>;
}

/// Why the hypervisor refused an event-channel operation (its negative errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypercallError(pub i32);

impl core::fmt::Display for HypercallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "hypercall failed with {}", self.0)
    }
}

/// Event channels (`EVTCHNOP_*`). The kernel binds every port it hands out to its
/// interrupt path, so that an event on it wakes whatever [`Wait::wait_until`] or the
/// idle loop is halted in.
pub trait EventChannels {
    /// `EVTCHNOP_alloc_unbound`: a new port in this domain that `remote` may bind to.
    fn alloc_unbound(&self, remote: DomId) -> Result<Port, HypercallError>;
    /// `EVTCHNOP_send`.
    fn notify(&self, port: Port);
    /// `EVTCHNOP_close`.
    fn close(&self, port: Port);
}

/// Time, and waiting for the other side.
pub trait Wait {
    /// A monotonic clock, in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Halts until an event arrives or `deadline_ns` passes, whichever is first; it may
    /// return early (callers re-check what they wait for, and give up at the deadline).
    fn wait_until(&self, deadline_ns: u64);
}

/// A resource the kernel keeps in one place for the whole domain (the grant table, the
/// xenstore connection), lent to a driver for one operation at a time. The kernel
/// implements it on a handle to its lock; tests and single-threaded users on
/// `Rc<RefCell<T>>`.
pub trait Shared<T> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

impl<T> Shared<T> for alloc::rc::Rc<core::cell::RefCell<T>> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

/// Everything the Xen front ends take from the kernel, named once.
pub trait Xen {
    /// The grant-table frames, mapped (`GNTTABOP_setup_table` on PV,
    /// `XENMAPSPACE_grant_table` on HVM/PVH).
    type GrantFrames: SharedPage;
    /// The xenstore interface page (start info's `store_mfn`, or `HVM_PARAM_STORE_PFN`).
    type StorePage: SharedPage;
    /// Notifies xenstored (its event channel) and waits for it.
    type StoreSignal: StoreSignal;
    type Events: EventChannels;
    type Grants: Shared<grant::GrantTable<Self::GrantFrames>>;
    type Store: Shared<store::XenStore<Self::StorePage, Self::StoreSignal>>;
}

/// The xenstore connection's signalling: "kick the other end" (an `EVTCHNOP_send` on
/// the store's event channel) and [`Wait`] for its answer.
pub trait StoreSignal: Wait {
    fn notify(&self);
}

/// Stands for a Xen type in a kernel that has not wired Xen in yet: no value of it can
/// exist, so no code path reaches its methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {}

impl SharedPage for Absent {
    fn len(&self) -> usize {
        match *self {}
    }
    fn read_u8(&self, _: usize) -> u8 {
        match *self {}
    }
    fn write_u8(&self, _: usize, _: u8) {
        match *self {}
    }
    fn read_u16(&self, _: usize) -> u16 {
        match *self {}
    }
    fn write_u16(&self, _: usize, _: u16) {
        match *self {}
    }
    fn read_u32(&self, _: usize) -> u32 {
        match *self {}
    }
    fn write_u32(&self, _: usize, _: u32) {
        match *self {}
    }
    fn compare_exchange_u16(&self, _: usize, _: u16, _: u16) -> Result<u16, u16> {
        match *self {}
    }
}

impl EventChannels for Absent {
    fn alloc_unbound(&self, _: DomId) -> Result<Port, HypercallError> {
        match *self {}
    }
    fn notify(&self, _: Port) {
        match *self {}
    }
    fn close(&self, _: Port) {
        match *self {}
    }
}

impl Wait for Absent {
    fn now_ns(&self) -> u64 {
        match *self {}
    }
    fn wait_until(&self, _: u64) {
        match *self {}
    }
}

impl StoreSignal for Absent {
    fn notify(&self) {
        match *self {}
    }
}

impl<T> Shared<T> for Absent {
    fn with<R>(&self, _: impl FnOnce(&mut T) -> R) -> R {
        match *self {}
    }
}

impl Xen for Absent {
    type GrantFrames = Absent;
    type StorePage = Absent;
    type StoreSignal = Absent;
    type Events = Absent;
    type Grants = Absent;
    type Store = Absent;
}

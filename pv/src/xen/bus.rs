//! Xen's device bus for the kernel: what the drivers crate's Xen front ends take
//! ([`drivers::xen::Xen`]: mapped pages, event channels, the grant table and the xenstore
//! connection, each kept once for the domain), the network card xenstore lists, and the
//! toolstack's power requests (`control/shutdown`).

use core::sync::atomic::{AtomicU16, Ordering};

use drivers::net::{AnyNic, NicError, NicTypes};
use drivers::xen::grant::GrantTable;
use drivers::xen::netfront::{self, Config};
use drivers::xen::store::XenStore;
use drivers::xen::{DomId, EventChannels, HypercallError, Port, Shared, SharedPage, StoreSignal, Wait};
use spin::{Mutex, Once};

use super::{events, grant, store};

/// Pages mapped at their own addresses and shared with Xen or another domain.
#[derive(Debug)]
pub struct Page {
    addr: u64,
    len: usize,
}

impl Page {
    fn at(&self, offset: usize, width: usize) -> u64 {
        assert!(
            offset.checked_add(width).is_some_and(|end| end <= self.len),
            "offset {offset} past a shared page"
        );
        assert!(offset.is_multiple_of(width), "unaligned access to a shared page");
        self.addr + offset as u64
    }
}

// SAFETY (every access below): a `Page` is made only here, over the grant-table frames
// or the xenstore page, which stay mapped and are used through it alone; `at` keeps the
// access inside and aligned; volatile, because the other side writes at any time.
impl SharedPage for Page {
    fn len(&self) -> usize {
        self.len
    }
    fn read_u8(&self, offset: usize) -> u8 {
        // SAFETY: see above.
        unsafe { (self.at(offset, 1) as *const u8).read_volatile() }
    }
    fn write_u8(&self, offset: usize, value: u8) {
        // SAFETY: see above.
        unsafe { (self.at(offset, 1) as *mut u8).write_volatile(value) }
    }
    fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: see above.
        unsafe { (self.at(offset, 2) as *const u16).read_volatile() }
    }
    fn write_u16(&self, offset: usize, value: u16) {
        // SAFETY: see above.
        unsafe { (self.at(offset, 2) as *mut u16).write_volatile(value) }
    }
    fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: see above.
        unsafe { (self.at(offset, 4) as *const u32).read_volatile() }
    }
    fn write_u32(&self, offset: usize, value: u32) {
        // SAFETY: see above.
        unsafe { (self.at(offset, 4) as *mut u32).write_volatile(value) }
    }
    fn compare_exchange_u16(&self, offset: usize, current: u16, new: u16) -> Result<u16, u16> {
        // SAFETY: see above; the other side changes these words only with atomic
        // operations.
        let word = unsafe { AtomicU16::from_ptr(self.at(offset, 2) as *mut u16) };
        word.compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
    }
}

/// The kernel's clock and its halt (until an event or a deadline on that clock), which
/// the front ends wait with.
#[derive(Clone, Copy)]
struct Clock {
    now_ns: fn() -> u64,
    wait_until_ns: fn(u64),
}

static CLOCK: Once<Clock> = Once::new();

/// Gives the front ends the kernel's clock and its way to wait for an event.
pub fn set_clock(now_ns: fn() -> u64, wait_until_ns: fn(u64)) {
    CLOCK.call_once(|| Clock { now_ns, wait_until_ns });
}

fn clock() -> Clock {
    *CLOCK.get().expect("the kernel gives the Xen bus its clock before using the bus")
}

/// Event channels through hypercalls; every port handed out is accepted by the upcall
/// (its events end a halt; the waiter polls).
#[derive(Debug, Clone, Copy)]
pub struct Events;

impl EventChannels for Events {
    fn alloc_unbound(&self, remote: DomId) -> Result<Port, HypercallError> {
        events::alloc_unbound(remote).map_err(|e| HypercallError(e.errno as i32))
    }
    fn notify(&self, port: Port) {
        // A refused send is seen as a silent peer: the waiter times out and says so.
        let _ = events::send(port);
    }
    fn close(&self, port: Port) {
        let _ = events::close(port);
    }
}

/// xenstored's event channel, and the kernel's wait.
#[derive(Debug, Clone, Copy)]
pub struct StoreEvents {
    port: Port,
}

impl Wait for StoreEvents {
    fn now_ns(&self) -> u64 {
        (clock().now_ns)()
    }
    fn wait_until(&self, deadline_ns: u64) {
        (clock().wait_until_ns)(deadline_ns)
    }
}

impl StoreSignal for StoreEvents {
    fn notify(&self) {
        let _ = events::send(self.port);
    }
}

type Store = XenStore<Page, StoreEvents>;

static GRANTS: Once<Mutex<GrantTable<Page>>> = Once::new();
static STORE: Once<Mutex<Store>> = Once::new();

/// The domain's grant table, for the front ends.
#[derive(Debug, Clone, Copy)]
pub struct Grants;

impl Shared<GrantTable<Page>> for Grants {
    fn with<R>(&self, f: impl FnOnce(&mut GrantTable<Page>) -> R) -> R {
        f(&mut GRANTS.get().expect("the grant table is set up before a front end starts").lock())
    }
}

/// The domain's xenstore connection, for the front ends.
#[derive(Debug, Clone, Copy)]
pub struct StoreHandle;

impl Shared<Store> for StoreHandle {
    fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut STORE.get().expect("xenstore is connected before a front end starts").lock())
    }
}

/// The kernel's side of the Xen front ends.
#[derive(Debug)]
pub enum Handles {}

impl drivers::xen::Xen for Handles {
    type GrantFrames = Page;
    type StorePage = Page;
    type StoreSignal = StoreEvents;
    type Events = Events;
    type Grants = Grants;
    type Store = StoreHandle;
}

/// Connects xenstore, once; `None` for a domain without one (dom0 before its tools run).
fn connect_store() -> Option<()> {
    let (page, port) = store::ring()?;
    STORE.call_once(|| Mutex::new(XenStore::new(Page { addr: page, len: 4096 }, StoreEvents { port })));
    Some(())
}

/// The first network card xenstore lists for this domain, connected: `None` where there
/// is no xenstore or no card, else the card or why it did not start.
pub fn probe_nic<K: NicTypes<HypervisorBus = Handles>>(
    alloc: &K::Dma,
) -> Option<Result<AnyNic<K>, NicError>> {
    connect_store()?;
    if GRANTS.get().is_none() {
        match grant::table() {
            Ok((addr, entries)) => {
                GRANTS.call_once(|| Mutex::new(GrantTable::new(Page { addr, len: entries * 8 })));
            }
            Err(e) => {
                log::warn!("xen: no grant table, so no network card: {e}");
                return None;
            }
        }
    }
    let nic = netfront::probe::<K::Dma, Handles>(alloc, Grants, StoreHandle, Events, Config::default())?;
    Some(nic.map(AnyNic::Netfront).map_err(NicError::from))
}

/// What the toolstack asked of the domain through `control/shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerRequest {
    PowerOff,
    Reboot,
}

const SHUTDOWN_TOKEN: &str = "power";

/// A pending power request (`xl shutdown`, `xl reboot`), acknowledged; `None` if there
/// is none, or no xenstore. Watches `control/shutdown` from the first call.
pub fn power_request() -> Option<PowerRequest> {
    static WATCHING: Once<bool> = Once::new();
    connect_store()?;
    let store = STORE.get()?;
    let mut store = store.try_lock()?;
    if !*WATCHING.call_once(|| store.watch("control/shutdown", SHUTDOWN_TOKEN).is_ok()) {
        return None;
    }
    store.poll().ok()?;
    store.take_event(SHUTDOWN_TOKEN)?;
    let value = store.read("control/shutdown").ok()?;
    let request = match value.as_slice() {
        b"poweroff" | b"halt" => PowerRequest::PowerOff,
        b"reboot" => PowerRequest::Reboot,
        // Empty (our own acknowledgement, or the watch's first event), or a request this
        // kernel does not serve (suspend).
        _ => return None,
    };
    // Clearing the node tells the toolstack the request was seen.
    let _ = store.write("control/shutdown", b"");
    Some(request)
}

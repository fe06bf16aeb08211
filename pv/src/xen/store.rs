//! Where this domain's xenstore ring is: its page (mapped) and event channel, which the
//! domain builder sets up (PV: the start info; HVM and PVH: HVM params). The protocol on
//! the ring is the drivers crate's.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::events;

static RING: AtomicU64 = AtomicU64::new(0);
static EVTCHN: AtomicU32 = AtomicU32::new(0);

/// Records the ring and accepts (and unmasks) its events, which end a halt so a waiting
/// request can look at the ring again.
///
/// # Safety
/// `page` must be the address of the domain's xenstore ring page, mapped writable, used
/// by nothing else.
pub(crate) unsafe fn set_ring(page: u64, evtchn: u32) {
    EVTCHN.store(evtchn, Ordering::Relaxed);
    RING.store(page, Ordering::Release);
    events::expect(evtchn);
    // A refusal leaves the channel masked: requests then see replies on their next poll.
    let _ = events::unmask(evtchn);
}

/// The ring page's address and event channel, if this domain has a xenstore.
pub fn ring() -> Option<(u64, u32)> {
    let page = RING.load(Ordering::Acquire);
    (page != 0).then(|| (page, EVTCHN.load(Ordering::Relaxed)))
}

//! Xen's shared I/O ring (`io/ring.h`), front-end half: one page holding a 64-byte
//! header (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`, then padding) and a
//! power-of-two array of slots, each holding a request until the back end overwrites it
//! with the response. Indices are free-running `u32`s; a slot is `index & (size - 1)`.
//!
//! Notification hold-off: each side publishes the index at which it next wants to be
//! told (`req_event` from the back end, `rsp_event` from us); the producer notifies only
//! if its new producer index has passed that mark.

use core::sync::atomic::{Ordering, fence};

use crate::dma::DmaRing;

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// Slots start after the indices, four private bytes and 44 of padding.
pub const HEADER: usize = 64;

/// The back end broke the ring protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// It published more responses than there are requests outstanding.
    ResponseOverflow { rsp_prod: u32, rsp_cons: u32, req_prod: u32 },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::ResponseOverflow { rsp_prod, rsp_cons, req_prod } => write!(
                f,
                "back end published responses up to {rsp_prod} (consumed {rsp_cons}), but requests only up to {req_prod}"
            ),
        }
    }
}

/// The front end of one ring: we produce requests and consume responses.
#[derive(Debug)]
pub struct FrontRing<R: DmaRing> {
    mem: R,
    entry_size: usize,
    size: u32,
    /// Requests written but perhaps not yet published (`req_prod_pvt`).
    req_prod: u32,
    /// Responses consumed (`rsp_cons`).
    rsp_cons: u32,
}

impl<R: DmaRing> FrontRing<R> {
    /// How many slots of `entry_size` bytes fit in `bytes` of ring memory, rounded down
    /// to a power of two (as `__CONST_RING_SIZE`).
    pub fn slots(bytes: usize, entry_size: usize) -> u32 {
        let n = bytes.saturating_sub(HEADER) / entry_size.max(1);
        if n == 0 { 0 } else { 1 << n.ilog2().min(31) }
    }

    /// Initialises the shared header in `mem` (`bytes` long) and attaches to it, as
    /// `SHARED_RING_INIT` and `FRONT_RING_INIT` do. `None` if not even one slot fits.
    pub fn new(mem: R, bytes: usize, entry_size: usize) -> Option<Self> {
        let size = Self::slots(bytes, entry_size);
        if size == 0 {
            return None;
        }
        mem.write_u32(REQ_PROD, 0);
        mem.write_u32(RSP_PROD, 0);
        // "Tell me at the first one", for both directions.
        mem.write_u32(REQ_EVENT, 1);
        mem.write_u32(RSP_EVENT, 1);
        for off in (16..HEADER).step_by(4) {
            mem.write_u32(off, 0);
        }
        Some(FrontRing { mem, entry_size, size, req_prod: 0, rsp_cons: 0 })
    }

    /// Slots in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The device address of the ring memory.
    pub fn device_addr(&self) -> u64 {
        self.mem.device_addr()
    }

    /// The ring memory, to read and write slots.
    pub fn mem(&self) -> &R {
        &self.mem
    }

    /// Slots free for requests: every slot whose response we have consumed.
    pub fn free_requests(&self) -> u32 {
        self.size - self.req_prod.wrapping_sub(self.rsp_cons)
    }

    fn offset(&self, index: u32) -> usize {
        HEADER + (index & (self.size - 1)) as usize * self.entry_size
    }

    /// Claims the next request slot: its index and byte offset in the ring memory, for
    /// the caller to fill. Not visible to the back end until [`push_requests`](Self::push_requests).
    pub fn next_request(&mut self) -> Option<(u32, usize)> {
        if self.free_requests() == 0 {
            return None;
        }
        let index = self.req_prod;
        self.req_prod = index.wrapping_add(1);
        Some((index, self.offset(index)))
    }

    /// Publishes the requests written so far; whether the back end asked to be notified
    /// of them (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests(&mut self) -> bool {
        let old = self.mem.read_u32(REQ_PROD);
        let new = self.req_prod;
        // The back end must see the requests before the index that publishes them...
        fence(Ordering::Release);
        self.mem.write_u32(REQ_PROD, new);
        // ...and we must read its event mark only after it can see the new index, or we
        // could miss a mark it moved just before.
        fence(Ordering::SeqCst);
        let event = self.mem.read_u32(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Whether the back end has published responses we have not consumed (one read of
    /// shared memory: for polling).
    pub fn has_responses(&self) -> bool {
        self.mem.read_u32(RSP_PROD) != self.rsp_cons
    }

    /// The next response: its index and byte offset, consumed (the slot is ours again
    /// once the caller has read it). An error if the back end claims more responses than
    /// there are requests outstanding.
    pub fn next_response(&mut self) -> Result<Option<(u32, usize)>, RingError> {
        let rsp_prod = self.mem.read_u32(RSP_PROD);
        let ready = rsp_prod.wrapping_sub(self.rsp_cons);
        if ready == 0 {
            return Ok(None);
        }
        if ready > self.req_prod.wrapping_sub(self.rsp_cons) {
            return Err(RingError::ResponseOverflow {
                rsp_prod,
                rsp_cons: self.rsp_cons,
                req_prod: self.req_prod,
            });
        }
        // The response must be read after the index that published it.
        fence(Ordering::Acquire);
        let index = self.rsp_cons;
        self.rsp_cons = index.wrapping_add(1);
        Ok(Some((index, self.offset(index))))
    }

    /// Asks to be notified at the next response, then looks again: whether responses
    /// are waiting after all (`RING_FINAL_CHECK_FOR_RESPONSES`). Call before sleeping.
    pub fn arm_responses(&mut self) -> bool {
        self.mem.write_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        // The back end reads rsp_event after publishing rsp_prod; one full fence on our
        // side makes sure one of us sees the other's write.
        fence(Ordering::SeqCst);
        self.has_responses()
    }

    /// Asks not to be notified of responses (while the caller polls): the mark is put
    /// where the back end has already passed it, so no new response crosses it.
    pub fn quiet_responses(&mut self) {
        self.mem.write_u32(RSP_EVENT, self.rsp_cons);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::fake::FakeRing;
    use crate::xen::fake::BackRing;

    const ENTRY: usize = 8;

    fn ring() -> (FrontRing<FakeRing>, BackRing) {
        let mem = FakeRing::new(0x1000, 4096);
        let front = FrontRing::new(mem.clone(), 4096, ENTRY).unwrap();
        (front, BackRing::new(mem, ENTRY))
    }

    #[test]
    fn sizes_round_down_to_a_power_of_two() {
        assert_eq!(FrontRing::<FakeRing>::slots(4096, 12), 256, "netif tx: 336 fit");
        assert_eq!(FrontRing::<FakeRing>::slots(4096, 8), 256, "netif rx: 504 fit");
        assert_eq!(FrontRing::<FakeRing>::slots(64 + 3 * 8, 8), 2);
        assert_eq!(FrontRing::<FakeRing>::slots(64, 8), 0);
        assert!(FrontRing::new(FakeRing::new(0, 64), 64, 8).is_none());
    }

    #[test]
    fn init_writes_the_shared_header() {
        let mem = FakeRing::new(0, 4096);
        mem.mem.borrow_mut().fill(0xaa);
        let _front = FrontRing::new(mem.clone(), 4096, ENTRY).unwrap();
        use crate::dma::DmaRing;
        assert_eq!((mem.read_u32(0), mem.read_u32(4), mem.read_u32(8), mem.read_u32(12)), (0, 1, 0, 1));
        assert!(mem.mem.borrow()[16..64].iter().all(|&b| b == 0));
    }

    /// Requests and responses go round the ring many times; indices wrap past u32::MAX.
    #[test]
    fn wraps_around_many_times() {
        let (mut front, mut back) = ring();
        // Start near the top of the index space to cross the u32 wrap too.
        let start = u32::MAX - 300;
        front.req_prod = start;
        front.rsp_cons = start;
        back.set_indices(start);
        let mut next = 0u32;
        for round in 0..10u32 {
            let n = 1 + round * 37 % 256;
            for _ in 0..n {
                let (_, off) = front.next_request().unwrap();
                front.mem().write_u32(off, next);
                next += 1;
            }
            front.push_requests();
            let reqs = back.take_requests();
            assert_eq!(reqs.len() as u32, n);
            for off in reqs {
                let v = back.mem.read_u32(off);
                back.respond(|mem, o| mem.write_u32(o + 4, v * 2));
            }
            back.push_responses();
            let mut got = 0;
            while let Some((_, off)) = front.next_response().unwrap() {
                let v = front.mem().read_u32(off);
                assert_eq!(front.mem().read_u32(off + 4), v * 2);
                got += 1;
            }
            assert_eq!(got, n);
            assert_eq!(front.free_requests(), 256);
        }
    }

    #[test]
    fn a_full_ring_takes_no_more_requests() {
        let (mut front, mut back) = ring();
        for _ in 0..256 {
            front.next_request().unwrap();
        }
        assert!(front.next_request().is_none());
        front.push_requests();
        // One response frees one slot.
        assert_eq!(back.take_requests().len(), 256);
        back.respond(|_, _| {});
        back.push_responses();
        assert!(front.next_request().is_none(), "not until the response is consumed");
        front.next_response().unwrap().unwrap();
        assert!(front.next_request().is_some());
    }

    /// The back end asks to hear about the request at index 3: pushes that do not reach
    /// it need no notification, the one that does needs one.
    #[test]
    fn request_notification_follows_req_event() {
        let (mut front, back) = ring();
        assert!(!front.push_requests(), "nothing new");
        front.next_request().unwrap();
        assert!(front.push_requests(), "req_event starts at 1");
        back.mem.write_u32(REQ_EVENT, 3);
        front.next_request().unwrap();
        assert!(!front.push_requests(), "2 < 3");
        front.next_request().unwrap();
        front.next_request().unwrap();
        assert!(front.push_requests(), "2 -> 4 passes 3");
        front.next_request().unwrap();
        assert!(!front.push_requests(), "already past 3");
    }

    #[test]
    fn response_notification_marks() {
        let (mut front, mut back) = ring();
        for _ in 0..4 {
            front.next_request().unwrap();
        }
        front.push_requests();
        assert_eq!(back.take_requests().len(), 4);
        // Quiet: no response crosses the mark.
        front.quiet_responses();
        back.respond(|_, _| {});
        assert!(!back.push_responses(), "quiet");
        front.next_response().unwrap().unwrap();
        // Armed: the next response notifies; nothing is waiting yet.
        assert!(!front.arm_responses());
        back.respond(|_, _| {});
        assert!(back.push_responses(), "armed at rsp_cons + 1");
        // Armed while a response already waits: the check says so.
        assert!(front.arm_responses());
    }

    #[test]
    fn more_responses_than_requests_is_an_error() {
        let (mut front, back) = ring();
        front.next_request().unwrap();
        front.push_requests();
        back.mem.write_u32(RSP_PROD, 5);
        assert_eq!(
            front.next_response(),
            Err(RingError::ResponseOverflow { rsp_prod: 5, rsp_cons: 0, req_prod: 1 })
        );
        // A back end moving rsp_prod backwards is caught the same way.
        back.mem.write_u32(RSP_PROD, u32::MAX);
        assert!(front.next_response().is_err());
    }
}

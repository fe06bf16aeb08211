//! The Xen console: `console_io` for the initial domain (Xen's release builds drop it
//! from any other), and for a domU the console ring that xenconsoled reads, whose page
//! and event channel the domain builder hands over (PV: the start info; HVM and PVH: HVM
//! params).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{SCHEDOP_YIELD, events, sched_op};
use crate::pvclock::HostShared;

/// The ring page's address (mapped, ours alone), 0 until a domU's ring is in use.
static RING: AtomicU64 = AtomicU64::new(0);
static EVTCHN: AtomicU32 = AtomicU32::new(0);

// `xencons_interface`: 1 KiB of input, 2 KiB of output, then the four indices.
const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// Sends console output to the ring at `page` from now on, kicking `evtchn`.
///
/// # Safety
/// `page` must be the address of the domain's console ring page, mapped writable, and
/// used by nothing but this module from now on.
pub(crate) unsafe fn use_ring(page: u64, evtchn: u32) {
    EVTCHN.store(evtchn, Ordering::Relaxed);
    RING.store(page, Ordering::Release);
    // The console backend signals as it consumes output: expected, no handler needed.
    events::expect(evtchn);
}

fn ring() -> Option<&'static HostShared<4096>> {
    let page = RING.load(Ordering::Acquire);
    // SAFETY: `use_ring`'s contract: a mapped, page-aligned page this module alone uses,
    // for good; `HostShared` only touches it with volatile and atomic accesses.
    (page != 0).then(|| unsafe { &*(page as *const HostShared<4096>) })
}

/// The console op.
pub(crate) unsafe extern "C" fn write(bytes: *const u8, len: usize) {
    match ring() {
        // SAFETY: the op's contract: `len` readable bytes at `bytes`.
        Some(ring) => ring_write(ring, unsafe { core::slice::from_raw_parts(bytes, len) }),
        // SAFETY: the op's contract, passed on.
        None => unsafe { super::console_write(bytes, len) },
    }
}

/// Appends to the ring's output half and kicks the console backend; waits (yielding)
/// while the ring is full.
fn ring_write(ring: &HostShared<4096>, mut bytes: &[u8]) {
    let cons = ring.atomic_u32(OUT_CONS);
    let prod = ring.atomic_u32(OUT_PROD);
    while !bytes.is_empty() {
        let p = prod.load(Ordering::Relaxed);
        let used = p.wrapping_sub(cons.load(Ordering::Acquire));
        if used > OUT_SIZE {
            // The backend's index is nonsense: drop the output rather than overrun.
            return;
        }
        let room = OUT_SIZE - used;
        if room == 0 {
            notify();
            sched_op(SCHEDOP_YIELD);
            continue;
        }
        let n = (room as usize).min(bytes.len());
        for (i, &b) in bytes[..n].iter().enumerate() {
            let at = OUT + (p.wrapping_add(i as u32) % OUT_SIZE) as usize;
            ring.atomic_u8(at).store(b, Ordering::Relaxed);
        }
        prod.store(p.wrapping_add(n as u32), Ordering::Release);
        bytes = &bytes[n..];
    }
    notify();
}

fn notify() {
    // A refused kick has nowhere to be reported: this is the console.
    let _ = events::send(EVTCHN.load(Ordering::Relaxed));
}

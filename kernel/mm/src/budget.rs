//! The network's memory budget: how many TCP connections, and how many unfinished
//! handshakes, the memory free when the stack starts can hold at their worst, so that
//! no number of clients can run the heap dry (a failed allocation stops the kernel).

/// Limits derived from memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnBudget {
    /// Connections an app may hold at once: accepted ones and those still closing.
    pub max_conns: usize,
    /// Handshakes (and established connections not yet accepted) per listener.
    pub backlog: usize,
}

/// What one socket and one connection cost, and what is left for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    /// A socket's buffers and its slot in the socket table.
    pub socket_bytes: u64,
    /// What an app may allocate per connection on top (its task, read and write
    /// buffers).
    pub app_bytes: u64,
}

/// The share of free memory handshakes may take (as today's SYN-flood defence sized it).
const BACKLOG_SHARE: u64 = 8;
const BACKLOG_MIN: u64 = 16;
const BACKLOG_MAX: u64 = 1024;
/// Connections and handshakes together take at most three quarters of free memory: the
/// rest is for everything else the kernel and the app allocate (timers, DMA, the app's
/// own state), and for the heap's fragmentation.
const NETWORK_SHARE_NUM: u64 = 3;
const NETWORK_SHARE_DEN: u64 = 4;
/// Below this, serving is pointless; a guest this small still gets a few connections.
const MIN_CONNS: u64 = 4;
/// More than the 16-bit port space of one client address could open anyway.
const MAX_CONNS: u64 = 65_536;

impl ConnBudget {
    /// The budget for `free_bytes` of memory; `requested` (`max_conns=`) lowers the cap
    /// but cannot raise it past what memory holds. Also returns whether `requested` was
    /// cut down.
    pub fn from_memory(free_bytes: u64, costs: Costs, requested: Option<usize>) -> (ConnBudget, bool) {
        let socket = costs.socket_bytes.max(1);
        let conn = socket.saturating_add(costs.app_bytes);
        let backlog = (free_bytes / BACKLOG_SHARE / socket).clamp(BACKLOG_MIN, BACKLOG_MAX);
        let network = free_bytes / NETWORK_SHARE_DEN * NETWORK_SHARE_NUM;
        let for_conns = network.saturating_sub(backlog.saturating_mul(socket));
        let fits = (for_conns / conn).clamp(MIN_CONNS, MAX_CONNS);
        let (max_conns, cut) = match requested {
            Some(n) if n as u64 > fits => (fits, true),
            Some(n) => (n.max(1) as u64, false),
            None => (fits, false),
        };
        (ConnBudget { max_conns: max_conns as usize, backlog: backlog as usize }, cut)
    }

    /// Socket-table slots for this budget: every connection and handshake, the
    /// listening sockets, and `others` (DHCP, UDP).
    pub fn socket_slots(&self, listening: usize, others: usize) -> usize {
        self.max_conns + self.backlog + listening + others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COSTS: Costs = Costs { socket_bytes: 12 * 1024 + 640, app_bytes: 24 * 1024 };
    const MIB: u64 = 1 << 20;

    /// Worst-case bytes of a budget: every connection at its app allowance, every
    /// handshake slot taken.
    fn worst_case(b: ConnBudget) -> u64 {
        b.max_conns as u64 * (COSTS.socket_bytes + COSTS.app_bytes) + b.backlog as u64 * COSTS.socket_bytes
    }

    #[test]
    fn fits_in_three_quarters_of_memory() {
        for free in [2 * MIB, 3 * MIB, 56 * MIB, 120 * MIB, 1024 * MIB] {
            let (b, cut) = ConnBudget::from_memory(free, COSTS, None);
            assert!(!cut);
            assert!(worst_case(b) <= free / 4 * 3, "{free}: {b:?}");
            assert!(b.max_conns >= 4 && b.backlog >= 16, "{free}: {b:?}");
        }
    }

    #[test]
    fn sizes_grow_with_memory() {
        let (small, _) = ConnBudget::from_memory(2 * MIB, COSTS, None);
        let (mid, _) = ConnBudget::from_memory(56 * MIB, COSTS, None);
        let (big, _) = ConnBudget::from_memory(1024 * MIB, COSTS, None);
        assert!(small.max_conns < mid.max_conns && mid.max_conns < big.max_conns);
        // An eighth of memory in sockets, between 16 and 1024.
        assert_eq!((small.backlog, mid.backlog, big.backlog), (20, 567, 1024));
        // A 4 MiB guest (2 MiB free) still holds a few dozen connections.
        assert!((30..80).contains(&small.max_conns), "{small:?}");
    }

    #[test]
    fn max_conns_lowers_but_never_raises_the_cap() {
        let (fits, _) = ConnBudget::from_memory(56 * MIB, COSTS, None);
        let (asked, cut) = ConnBudget::from_memory(56 * MIB, COSTS, Some(100));
        assert_eq!((asked.max_conns, cut), (100, false));
        let (greedy, cut) = ConnBudget::from_memory(56 * MIB, COSTS, Some(1_000_000));
        assert_eq!((greedy.max_conns, cut), (fits.max_conns, true));
        assert_eq!(ConnBudget::from_memory(56 * MIB, COSTS, Some(0)).0.max_conns, 1);
    }

    #[test]
    fn no_memory_and_absurd_costs_do_not_overflow() {
        let (b, _) = ConnBudget::from_memory(0, COSTS, None);
        assert_eq!((b.max_conns, b.backlog), (4, 16));
        let huge = Costs { socket_bytes: u64::MAX, app_bytes: u64::MAX };
        let (b, _) = ConnBudget::from_memory(u64::MAX, huge, None);
        assert_eq!(b.backlog, 16);
        let (b, _) = ConnBudget::from_memory(u64::MAX, Costs { socket_bytes: 0, app_bytes: 0 }, None);
        assert_eq!((b.max_conns, b.backlog), (65_536, 1024));
        assert_eq!(b.socket_slots(4, 8), 65_536 + 1024 + 12);
    }
}

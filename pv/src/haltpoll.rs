//! When to poll instead of halting. Under a hypervisor a halt is expensive on both
//! ends: the vCPU exits, the host puts its thread to sleep, and the next interrupt must
//! wake that thread and inject. When work usually comes back within a short time, as
//! with a client waiting on each answer, spinning on the device for that long answers
//! sooner and spares the device model its interrupt. That holds only while the
//! spinning vCPU takes no time from the threads bringing the work: the kernel polls
//! where the hypervisor promises a physical CPU per vCPU, or when told to.
//!
//! The window adapts to how long idle periods turn out to be: it doubles while work
//! arrives within the longest window (polling would have caught it, or did), and halves
//! when an idle period outlasts it, so an idle guest stops spinning after a few wakes.

/// Windows below this are not worth a spin; the window drops to 0 instead.
const MIN_WINDOW_NS: u64 = 10_000;

/// How one idle period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Work arrived while polling.
    Polled,
    /// The CPU halted; `idle_ns` is the whole period, polling included.
    Halted { idle_ns: u64 },
}

/// The adaptive poll window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaltPoll {
    window_ns: u64,
    max_ns: u64,
}

impl HaltPoll {
    /// A policy that polls at most `max_ns` (0: never), starting at the maximum.
    pub const fn new(max_ns: u64) -> Self {
        HaltPoll { window_ns: max_ns, max_ns }
    }

    /// How long to poll before halting now.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// Adapts the window to how the last idle period ended.
    pub fn record(&mut self, idle: Idle) {
        let grow = match idle {
            Idle::Polled => true,
            Idle::Halted { idle_ns } => idle_ns <= self.max_ns,
        };
        self.window_ns = if grow {
            self.window_ns.saturating_mul(2).max(MIN_WINDOW_NS).min(self.max_ns)
        } else if self.window_ns / 2 < MIN_WINDOW_NS {
            0
        } else {
            self.window_ns / 2
        };
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// The window after each of `n` records of `idle`.
    fn trace(p: &mut HaltPoll, idle: Idle, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| {
                p.record(idle);
                p.window_ns()
            })
            .collect()
    }

    #[test]
    fn busy_keeps_the_window_and_idle_shrinks_it_to_nothing() {
        let mut p = HaltPoll::new(400_000);
        p.record(Idle::Polled);
        assert_eq!(p.window_ns(), 400_000);
        let windows = trace(&mut p, Idle::Halted { idle_ns: 5_000_000_000 }, 7);
        assert_eq!(windows, [200_000, 100_000, 50_000, 25_000, 12_500, 0, 0]);
    }

    #[test]
    fn work_soon_after_halting_grows_the_window_back() {
        let mut p = HaltPoll::new(400_000);
        trace(&mut p, Idle::Halted { idle_ns: 1_000_000_000 }, 10);
        assert_eq!(p.window_ns(), 0);
        // Work within the maximum: polling would have caught it.
        let windows = trace(&mut p, Idle::Halted { idle_ns: 150_000 }, 7);
        assert_eq!(windows, [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 400_000]);
    }

    #[test]
    fn zero_never_polls() {
        let mut p = HaltPoll::new(0);
        p.record(Idle::Polled);
        p.record(Idle::Halted { idle_ns: 0 });
        assert_eq!(p.window_ns(), 0);
    }
}

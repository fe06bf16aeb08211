//! A single-core async executor: tasks run when woken; between bursts the CPU may poll
//! the network card for a while (see [`pv::haltpoll`]), then halts until a device
//! interrupt or the next timer deadline. Apps reach it through [`crate::app`].
//!
//! Wakers carry only a task number and push it on the ready queue, so waking never
//! allocates. Interrupt handlers never wake tasks directly: they only end the halt,
//! after which the network is polled and timers fire.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use core::time::Duration;

use pv::haltpoll::{HaltPoll, Idle};
use spin::Mutex;

type Task = Pin<Box<dyn Future<Output = ()>>>;

static READY: Mutex<VecDeque<usize>> = Mutex::new(VecDeque::new());
static SPAWNED: TaskContext<Vec<Task>> = TaskContext(core::cell::RefCell::new(Vec::new()));

/// State used only from task context on the one CPU, never from interrupt handlers.
struct TaskContext<T>(core::cell::RefCell<T>);

// SAFETY: the kernel runs tasks on one CPU and interrupt handlers never touch this
// state, so no two borrows can overlap across threads of execution; tasks themselves
// need not be `Send`.
unsafe impl<T> Sync for TaskContext<T> {}
/// Deadline (kernel ns) → wakers; a counter keeps equal deadlines apart.
static TIMERS: Mutex<BTreeMap<(u64, u64), Waker>> = Mutex::new(BTreeMap::new());
static TIMER_SEQ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn waker(id: usize) -> Waker {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    fn clone(data: *const ()) -> RawWaker {
        RawWaker::new(data, &VTABLE)
    }
    fn wake(data: *const ()) {
        READY.lock().push_back(data as usize);
    }
    fn drop(_: *const ()) {}
    // SAFETY: the data pointer is a task number, never dereferenced; every vtable
    // function treats it as a number, and all of them are sound for any value.
    unsafe { Waker::from_raw(RawWaker::new(id as *const (), &VTABLE)) }
}

/// Starts a task that runs alongside the others.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    SPAWNED.0.borrow_mut().push(Box::pin(future));
}

/// Runs `main` and every task it spawns until `main` completes; returns its output.
pub fn block_on<T: 'static>(main: impl Future<Output = T> + 'static) -> T {
    let result = alloc::rc::Rc::new(core::cell::RefCell::new(None));
    let slot = result.clone();
    let mut tasks = Tasks::default();
    let main_id = tasks.insert(Box::pin(async move {
        *slot.borrow_mut() = Some(main.await);
    }));
    READY.lock().push_back(main_id);
    loop {
        let spawned = core::mem::take(&mut *SPAWNED.0.borrow_mut());
        for task in spawned {
            let id = tasks.insert(task);
            READY.lock().push_back(id);
        }
        let ready: Vec<usize> = READY.lock().drain(..).collect();
        for id in ready {
            let Some(task) = tasks.get_mut(id) else { continue };
            let w = waker(id);
            if task.as_mut().poll(&mut Context::from_waker(&w)).is_ready() {
                tasks.remove(id);
                if id == main_id {
                    let out = result.borrow_mut().take();
                    if let Some(out) = out {
                        return out;
                    }
                }
            }
        }
        tasks.shrink();
        let worked = crate::net::poll();
        fire_timers();
        if !worked && READY.lock().is_empty() && SPAWNED.0.borrow().is_empty() {
            idle();
        }
    }
}

/// Tasks by number (which their wakers carry). The lowest free number is reused first,
/// so after a burst of tasks the table's tail empties and its memory goes back to the
/// heap: a thousand clients leave no bookkeeping behind.
#[derive(Default)]
struct Tasks {
    slots: Vec<Option<Task>>,
    free: BTreeSet<usize>,
}

impl Tasks {
    fn insert(&mut self, task: Task) -> usize {
        match self.free.pop_first() {
            Some(id) => {
                self.slots[id] = Some(task);
                id
            }
            None => {
                self.slots.push(Some(task));
                self.slots.len() - 1
            }
        }
    }

    fn get_mut(&mut self, id: usize) -> Option<&mut Task> {
        self.slots.get_mut(id)?.as_mut()
    }

    fn remove(&mut self, id: usize) {
        self.slots[id] = None;
        if id + 1 == self.slots.len() {
            while let Some(None) = self.slots.last() {
                self.slots.pop();
                self.free.remove(&self.slots.len());
            }
        } else {
            self.free.insert(id);
        }
    }

    /// Gives back table and queue memory once load has fallen well below its peak.
    fn shrink(&mut self) {
        const KEEP: usize = 64;
        if self.slots.capacity() > KEEP && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to((self.slots.len() * 2).max(KEEP));
        }
        let mut ready = READY.lock();
        if ready.is_empty() && ready.capacity() > KEEP {
            ready.shrink_to(KEEP);
        }
    }
}

fn fire_timers() {
    let now = crate::time::since_boot_ns();
    let mut timers = TIMERS.lock();
    while let Some(entry) = timers.first_entry() {
        if entry.key().0 > now {
            break;
        }
        entry.remove().wake();
    }
}

/// The idle loop's polling policy (`haltpoll=` on the command line).
static HALT_POLL: Mutex<HaltPoll> = Mutex::new(HaltPoll::new(0));

/// Sets the longest the idle loop polls before halting.
pub(crate) fn set_halt_poll_us(us: u32) {
    *HALT_POLL.lock() = HaltPoll::new(u64::from(us) * 1000);
}

/// Waits for an interrupt or the next deadline (timer or network stack): first by
/// polling the card for the adaptive window, then by halting.
fn idle() {
    let start = crate::time::since_boot_ns();
    let next_timer = TIMERS.lock().first_key_value().map(|((at, _), _)| *at);
    let next_net = crate::net::poll_delay_ns().map(|d| start.saturating_add(d));
    let deadline = match (next_timer, next_net) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(u64::MAX),
    };
    let poll_until = start.saturating_add(HALT_POLL.lock().window_ns()).min(deadline);
    while crate::time::since_boot_ns() < poll_until {
        if crate::net::work_pending() {
            HALT_POLL.lock().record(Idle::Polled);
            return;
        }
        core::hint::spin_loop();
    }
    crate::net::set_interrupts(true);
    crate::time::halt_until_ns(deadline, crate::net::has_work);
    crate::net::set_interrupts(false);
    // What woke us may be the hypervisor's toolstack asking the guest to go.
    if let Some(request) = pv::bus::power_request() {
        crate::exit::on_power_request(request);
    }
    let idle_ns = crate::time::since_boot_ns().saturating_sub(start);
    HALT_POLL.lock().record(Idle::Halted { idle_ns });
}

/// A future that completes at `deadline_ns` (kernel clock).
#[derive(Debug)]
pub struct Sleep {
    deadline: u64,
    key: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::time::since_boot_ns() >= self.deadline {
            if let Some(key) = self.key.take() {
                TIMERS.lock().remove(&key);
            }
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let key = *self
            .key
            .get_or_insert_with(|| (deadline, TIMER_SEQ.fetch_add(1, core::sync::atomic::Ordering::Relaxed)));
        TIMERS.lock().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            TIMERS.lock().remove(&key);
        }
    }
}

/// Completes after `duration`.
pub fn sleep(duration: Duration) -> Sleep {
    let deadline =
        crate::time::since_boot_ns().saturating_add(duration.as_nanos().min(u128::from(u64::MAX)) as u64);
    Sleep { deadline, key: None }
}

/// `f`, or `Err(TimedOut)` if it takes longer than `duration`.
pub async fn timeout<F: Future>(duration: Duration, f: F) -> Result<F::Output, TimedOut> {
    let mut f = core::pin::pin!(f);
    let mut timer = core::pin::pin!(sleep(duration));
    core::future::poll_fn(|cx| {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A [`timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

//! A forward pass's threads, held for the whole pass: how the CPU engine's parallel regions reach
//! the pool's threads without a wake-up each.
//!
//! A decode step is about five parallel regions per layer (q/k/v, attention, the output
//! projection, gate/up, down): 150 for a 30-layer model, each a few tens of microseconds of work.
//! Through rayon alone, the other threads fall asleep between regions — in wasm at once, since
//! `yield_now` does nothing there — and each region then waits for a wake-up through
//! `Atomics.notify`, as long as the region's work itself. So [`lead`] runs a forward pass on one
//! of the pool's threads (the leader) and asks every other thread in as a member of its team: a
//! member spins on the team's state between regions, and a region is published by one atomic
//! store (llama.cpp's thread pool works so). A member that sees no region for a while sleeps on a
//! condition variable, so a leader busy elsewhere does not keep a core spinning.
//!
//! A region is `n` indices and one function. Each thread has a share of consecutive indices (as
//! rayon's halving gives, so each streams its own run of weight rows: indices claimed alternately
//! from one counter made SmolLM2's decode 10–20 % slower), claims its share's next index by a
//! compare-and-swap on the share's word (the region's epoch and the unclaimed range), and once
//! its share is done takes indices from the end of the others'. So an index runs once, on
//! whichever thread claims it, and the function never runs after the leader has returned. Which
//! thread runs an index changes nothing the index computes: results do not depend on the thread
//! count. Work inside a region's task runs serially (no nested regions).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// One region's task: called once for each index.
type Task<'a> = &'a (dyn Fn(usize) + Sync);

/// A share's word: the region's epoch (24 bits) · its first unclaimed index (20 bits) · one past
/// its last (20 bits).
const INDEX_BITS: u32 = 20;
const MAX_INDICES: usize = (1 << INDEX_BITS) - 1;
const INDEX_MASK: u64 = MAX_INDICES as u64;
const EPOCH_MASK: u64 = (1 << (64 - 2 * INDEX_BITS)) - 1;

/// Spins of an idle member before it sleeps: about 0.1–0.5 ms in wasm (where `spin_loop` is no
/// instruction) and a few ms natively (a `pause` each), far longer than the serial work between a
/// pass's regions, far shorter than a person notices on an idle core.
const SPINS_BEFORE_SLEEP: u32 = 1 << 18;

struct Team {
    /// The current region's number (wrapping within [`EPOCH_MASK`]), stored after its shares.
    epoch: AtomicU64,
    /// One per thread: the leader's first, then the members' in the order they joined.
    shares: Vec<AtomicU64>,
    joined: AtomicUsize,
    /// The current region's task (a `*const Task` on the leader's stack), valid while the region's
    /// indices are not all done.
    task: AtomicPtr<()>,
    done: AtomicUsize,
    panicked: AtomicBool,
    dismissed: AtomicBool,
    /// Sleeping members wait here; the leader notifies after publishing a region or dismissing.
    sleep: Mutex<()>,
    wake: Condvar,
    /// The leader's index in the pool (its own broadcast call is not a member).
    leader: usize,
}

thread_local! {
    /// The team this thread leads, while it runs a forward pass.
    static LEADS: RefCell<Option<Arc<Team>>> = const { RefCell::new(None) };
    /// Set while this thread runs a region's task: a region inside it runs serially.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

fn word(epoch: u64, front: usize, back: usize) -> u64 {
    (epoch << (2 * INDEX_BITS)) | ((front as u64) << INDEX_BITS) | back as u64
}
fn front(w: u64) -> usize {
    ((w >> INDEX_BITS) & INDEX_MASK) as usize
}
fn back(w: u64) -> usize {
    (w & INDEX_MASK) as usize
}

impl Team {
    fn new(leader: usize, threads: usize) -> Self {
        Team {
            epoch: AtomicU64::new(0),
            shares: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            joined: AtomicUsize::new(1),
            task: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            dismissed: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            leader,
        }
    }

    /// Claims the first unclaimed index of share `k` (`from_front`) or its last.
    fn claim_in(&self, k: usize, from_front: bool) -> Option<usize> {
        let share = &self.shares[k];
        let mut w = share.load(Ordering::Acquire);
        while front(w) < back(w) {
            let (claimed, next) = if from_front { (front(w), w + (1 << INDEX_BITS)) } else { (back(w) - 1, w - 1) };
            match share.compare_exchange_weak(w, next, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => return Some(claimed),
                Err(now) => w = now,
            }
        }
        None
    }

    /// Claims an index of the current region for the thread of share `own`: its own share's next,
    /// else the last of another's.
    fn claim(&self, own: usize) -> Option<usize> {
        let t = self.shares.len();
        self.claim_in(own, true).or_else(|| (1..t).find_map(|d| self.claim_in((own + d) % t, false)))
    }

    /// Runs claimed index `i` of the current region (claimed, so the region and its task live).
    fn run_claimed(&self, i: usize) {
        // SAFETY: the task pointer was stored before the shares that published index `i`
        // (Release, read by the claim's Acquire), and the leader keeps the task alive until every
        // claimed index has counted itself done below.
        let task: Task = unsafe { *(self.task.load(Ordering::Relaxed) as *const Task) };
        IN_TASK.with(|t| t.set(true));
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(i))).is_ok();
        IN_TASK.with(|t| t.set(false));
        if !ok {
            self.panicked.store(true, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Release);
    }

    /// A member's life: claim and run indices as regions appear, until the leader dismisses it.
    fn member(&self) {
        if rayon::current_thread_index() == Some(self.leader) {
            return;
        }
        let own = self.joined.fetch_add(1, Ordering::Relaxed) % self.shares.len();
        let mut idle = 0;
        while !self.dismissed.load(Ordering::Acquire) {
            if let Some(i) = self.claim(own) {
                self.run_claimed(i);
                idle = 0;
            } else if idle < SPINS_BEFORE_SLEEP {
                idle += 1;
                std::hint::spin_loop();
            } else {
                let seen = self.epoch.load(Ordering::Acquire);
                let mut guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
                while self.epoch.load(Ordering::Acquire) == seen && !self.dismissed.load(Ordering::Acquire) {
                    guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                idle = 0;
            }
        }
    }

    /// The leader's side of a region: publish it, run indices with the members, wait for all.
    fn region(&self, n: usize, task: Task) {
        let task_ptr: *const Task = &task;
        self.task.store(task_ptr as *mut (), Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        let epoch = (self.epoch.load(Ordering::Relaxed) + 1) & EPOCH_MASK;
        let t = self.shares.len();
        for (k, share) in self.shares.iter().enumerate() {
            share.store(word(epoch, k * n / t, (k + 1) * n / t), Ordering::Release);
        }
        self.epoch.store(epoch, Ordering::Release);
        // Members asleep (the pass's serial work ran long) are woken; one lock per region, taken
        // after the store so a member checking the epoch under it cannot miss it.
        drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.notify_all();
        while let Some(i) = self.claim(0) {
            self.run_claimed(i);
        }
        while self.done.load(Ordering::Acquire) < n {
            std::hint::spin_loop();
        }
        if self.panicked.swap(false, Ordering::Relaxed) {
            panic!("a task of a parallel region panicked");
        }
    }

    fn dismiss(&self) {
        self.dismissed.store(true, Ordering::Release);
        drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.notify_all();
    }
}

/// Runs `f` (a forward pass, already on one of the pool's threads) with the pool's other threads
/// held as its team for [`for_each_index`]'s regions.
pub fn lead<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let nested = IN_TASK.with(Cell::get) || LEADS.with(|l| l.borrow().is_some());
    let threads = rayon::current_num_threads();
    let Some(leader) = rayon::current_thread_index().filter(|_| !nested && threads > 1) else {
        return f();
    };
    let team = Arc::new(Team::new(leader, threads));
    let members = Arc::clone(&team);
    rayon::spawn_broadcast(move |_| members.member());
    LEADS.with(|l| *l.borrow_mut() = Some(Arc::clone(&team)));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    LEADS.with(|l| *l.borrow_mut() = None);
    team.dismiss();
    result.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Runs `task(i)` for each `i` in `0..n`, in parallel where threads exist: on the team this
/// thread leads, else on rayon's pool; serially inside another region's task.
pub fn for_each_index(n: usize, task: Task) {
    if n <= 1 || IN_TASK.with(Cell::get) {
        return (0..n).for_each(task);
    }
    if let Some(team) = LEADS.with(|l| l.borrow().clone()) {
        if n > MAX_INDICES {
            // Consecutive indices in groups, so a region's count fits the state word.
            let group = n.div_ceil(MAX_INDICES);
            return team.region(n.div_ceil(group), &|g| (g * group..n.min(g * group + group)).for_each(task));
        }
        return team.region(n, task);
    }
    use rayon::prelude::*;
    (0..n).into_par_iter().for_each(task);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn on_pool_of<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| lead(f))
    }

    #[test]
    fn every_index_of_every_region_runs_once() {
        for threads in [1, 2, 3, 5] {
            on_pool_of(threads, || {
                // Past MAX_INDICES, indices are grouped; the rest in one region each.
                for n in [0, 1, 2, 3, 7, 64, 1000, 1000, MAX_INDICES + 3] {
                    let runs: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                    for_each_index(n, &|i| {
                        runs[i].fetch_add(1, Ordering::Relaxed);
                    });
                    let wrong = runs.iter().position(|r| r.load(Ordering::Relaxed) != 1);
                    assert_eq!(wrong, None, "{threads} threads, {n} indices");
                }
            });
        }
    }

    #[test]
    fn the_team_s_threads_all_take_part() {
        let threads_seen = on_pool_of(3, || {
            let seen: Vec<AtomicU32> = (0..3).map(|_| AtomicU32::new(0)).collect();
            // 300 tasks of 1 ms: time for every member to join.
            for_each_index(300, &|_| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                seen[rayon::current_thread_index().unwrap()].fetch_add(1, Ordering::Relaxed);
            });
            seen.iter().filter(|s| s.load(Ordering::Relaxed) > 0).count()
        });
        assert_eq!(threads_seen, 3);
    }

    #[test]
    fn a_region_inside_a_task_runs_on_the_task_s_thread() {
        on_pool_of(2, || {
            for_each_index(8, &|_| {
                let outer = rayon::current_thread_index();
                for_each_index(16, &|_| assert_eq!(rayon::current_thread_index(), outer));
            });
        });
    }

    #[test]
    fn a_task_s_panic_reaches_the_leader_and_the_pool_goes_on() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let caught = pool.install(|| {
            std::panic::catch_unwind(|| {
                lead(|| for_each_index(64, &|i| assert_ne!(i, 40, "task 40 fails")));
            })
        });
        assert!(caught.is_err());
        let sum = AtomicUsize::new(0);
        pool.install(|| lead(|| for_each_index(64, &|i| _ = sum.fetch_add(i, Ordering::Relaxed))));
        assert_eq!(sum.into_inner(), 64 * 63 / 2);
    }
}

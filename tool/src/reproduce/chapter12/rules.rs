//! The rules, one per situation, over the figures as numbers: each says
//! what the figures must show for the row's choice to hold on a machine.

// ANCHOR: rules
/// Requests that wait: one loop within a fifth of a thread per waiting
/// request (its timer rounds each wait up to the next millisecond), and
/// well ahead of a small pool.
pub fn waiting(one_loop: f64, small_pool: f64, thread_each: f64) -> bool {
    one_loop >= 0.8 * thread_each && one_loop >= 2.0 * small_pool
}

/// Many idle connections: every loop under half of a thread's memory.
pub fn held(thread: f64, loops: &[f64]) -> bool {
    loops.iter().all(|&kib| kib < 0.5 * thread)
}

/// Many busy connections: every loop under a thread's memory, and the
/// leanest loop under a tenth of it (a busy loop's memory is its
/// buffers' choice).
pub fn busy(thread: f64, loops: &[f64]) -> bool {
    let leanest = loops.iter().copied().fold(f64::INFINITY, f64::min);
    loops.iter().all(|&kib| kib < thread) && leanest < 0.1 * thread
}

/// Slow clients: every loop's slowest answer under a tenth of the pool's.
pub fn slow(pool: f64, loops: &[f64]) -> bool {
    loops.iter().all(|&ms| ms < 0.1 * pool)
}

/// CPU among light requests: each threaded way's light p99 under half
/// of each loop's (one loop, work stealing).
pub fn cpu(loops: &[f64], threaded: &[f64]) -> bool {
    threaded.iter().all(|&t| loops.iter().all(|&l| t < 0.5 * l))
}

/// More CPU work than cores: a pool bounded to the cores finishes the
/// heavy requests no later, at the p99, than a thread each.
pub fn bounded(thread_each: f64, bounded: f64) -> bool {
    bounded <= thread_each
}

/// Every core: each model gains at least half of the ideal from 1 to
/// `workers` workers.
pub fn cores(workers: usize, gains: &[f64]) -> bool {
    let half_ideal = 1.0 + (workers.max(1) - 1) as f64 / 2.0;
    gains.iter().all(|&gain| gain >= half_ideal)
}

/// A fixed downstream: the two rates within 15 % of each other (either
/// will do for the rate), the pool's p99 over 5 × the loop's (it leaves
/// some clients out).
pub fn downstream(loop_rps: f64, pool_rps: f64, loop_p99: f64, pool_p99: f64) -> bool {
    (loop_rps - pool_rps).abs() <= 0.15 * loop_rps.max(pool_rps) && pool_p99 > 5.0 * loop_p99
}

/// Overload: a limit and a queue timeout each at least double the
/// goodput of no limit. (Their p99s are not compared: each follows the
/// wait its setting allows, not the mechanism.)
pub fn overload(none: f64, limit: f64, timeout: f64) -> bool {
    limit >= 2.0 * none && timeout >= 2.0 * none
}

/// Clients that give up: the loop finishes fewer than half as many of
/// the abandoned handlers as the threads do.
pub fn cancel(loop_finished: f64, threads_finished: f64) -> bool {
    2.0 * loop_finished < threads_finished
}

/// Small requests on completions: the io_uring loop (task work
/// deferred, a ring of buffers) within a fifth of the epoll loop's CPU
/// per request, the kernel's default (interrupted) above both, and the
/// ring holding less per idle connection than a buffer per read.
pub fn completion(
    epoll: f64,
    ring: f64,
    interrupted: f64,
    ring_kib: f64,
    per_read_kib: f64,
) -> bool {
    (ring - epoll).abs() <= 0.2 * epoll && interrupted > ring.max(epoll) && ring_kib < per_read_kib
}

/// Blocking code, many connections: a coroutine's idle connection
/// under half a thread's memory, and its hop within twice a task's.
pub fn coroutines(thread_kib: f64, coroutine_kib: f64, coroutine_hop: f64, task_hop: f64) -> bool {
    coroutine_kib < 0.5 * thread_kib && coroutine_hop <= 2.0 * task_hop
}

/// Switching: a thread's hop (less the baseline) costs more than a
/// task's, free and pinned: (thread, task) pairs.
pub fn switching(hops: &[(f64, f64)]) -> bool {
    hops.iter().all(|&(thread, task)| thread > task)
}
// ANCHOR_END: rules

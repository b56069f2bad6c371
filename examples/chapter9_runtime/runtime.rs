//! Chapter 9's async runtime, small enough to read: a reactor (epoll through
//! mio, and a heap of timers) that wakes tasks, an executor that polls the
//! woken ones, and futures for accept, read, write and sleep. The server in
//! `main.rs` and the brigade in `chapter9_switch.rs` run on it.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io::{self, ErrorKind, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use evt::report::{RuntimeReport, Step, TraceStep, WakeCause};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Token};

// ANCHOR: executor
/// A task: a future that returns nothing, pinned on the heap, since the
/// executor moves its list of tasks around but never the task itself.
type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The runtime: the tasks, the queue of those woken, and the reactor. It
/// lives on one thread (an `Rc`, in a thread-local), so `spawn`, `sleep` and
/// the I/O futures find it without being handed it.
pub struct Runtime {
    /// Task slots: a task's index is its id; `None` is a free slot (or the
    /// task being polled right now, taken out while it runs).
    tasks: RefCell<Vec<Option<Task>>>,
    free: RefCell<Vec<usize>>,
    /// Ids of woken tasks, in the order they were woken. Shared with the
    /// wakers, which another thread may call.
    queue: Arc<Mutex<VecDeque<usize>>>,
    reactor: RefCell<Reactor>,
    /// Wakes the loop out of epoll when a waker is called from another thread.
    remote: Arc<mio::Waker>,
    thread: ThreadId,
    /// The task being polled now, so a future knows whose waker it holds.
    current: Cell<usize>,
}

/// What a task's `Waker` does: put the task's id back on the queue.
struct TaskWaker {
    id: usize,
    queue: Arc<Mutex<VecDeque<usize>>>,
    remote: Arc<mio::Waker>,
    thread: ThreadId,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.push_back(self.id);
        }
        // On the loop's own thread the loop looks at the queue before it
        // sleeps again; from another thread it may be asleep in epoll.
        if std::thread::current().id() != self.thread {
            let _ = self.remote.wake();
        }
    }
}

thread_local! {
    static RUNTIME: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

/// The runtime of this thread (inside `block_on`).
fn runtime() -> Rc<Runtime> {
    RUNTIME.with(|current| {
        current
            .borrow()
            .clone()
            .expect("called inside Runtime::block_on")
    })
}

/// Starts `future` as a task of its own on this thread's runtime.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    runtime().spawn(Box::pin(future));
}

impl Runtime {
    pub fn new() -> io::Result<Rc<Runtime>> {
        let poll = mio::Poll::new()?;
        let remote = Arc::new(mio::Waker::new(poll.registry(), REMOTE)?);
        Ok(Rc::new(Runtime {
            tasks: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            queue: Arc::new(Mutex::new(VecDeque::new())),
            reactor: RefCell::new(Reactor::new(poll)),
            remote,
            thread: std::thread::current().id(),
            current: Cell::new(0),
        }))
    }

    fn spawn(&self, task: Task) {
        let id = match self.free.borrow_mut().pop() {
            Some(id) => {
                self.tasks.borrow_mut()[id] = Some(task);
                id
            }
            None => {
                let mut tasks = self.tasks.borrow_mut();
                tasks.push(Some(task));
                tasks.len() - 1
            }
        };
        if let Ok(mut queue) = self.queue.lock() {
            queue.push_back(id);
        }
        trace(Step::Spawned { task: id });
    }

    /// Runs `main` and every task it spawns until `main` returns.
    pub fn block_on(self: &Rc<Self>, main: impl Future<Output = ()> + 'static) {
        RUNTIME.with(|current| *current.borrow_mut() = Some(Rc::clone(self)));
        let done = Arc::new(Mutex::new(false));
        let finished = Arc::clone(&done);
        self.spawn(Box::pin(async move {
            main.await;
            if let Ok(mut done) = finished.lock() {
                *done = true;
            }
        }));
        while !done.lock().map(|done| *done).unwrap_or(true) {
            // Poll every task that was woken, in order.
            while let Some(id) = self.next_woken() {
                self.poll_task(id);
            }
            if done.lock().map(|done| *done).unwrap_or(true) {
                break;
            }
            // Nothing left to run: sleep in epoll until a socket is ready, a
            // timer is due or another thread wakes a task.
            if let Err(error) = self.reactor.borrow_mut().wait() {
                eprintln!("error: epoll failed: {error}");
                std::process::exit(1);
            }
        }
        RUNTIME.with(|current| *current.borrow_mut() = None);
    }

    fn next_woken(&self) -> Option<usize> {
        self.queue.lock().ok()?.pop_front()
    }

    /// Polls task `id` once, with a waker that puts it back on the queue.
    fn poll_task(&self, id: usize) {
        // Taken out of its slot while it runs, so it can spawn others.
        let Some(mut task) = self.tasks.borrow_mut().get_mut(id).and_then(Option::take) else {
            return; // Finished already: a wake-up that came late.
        };
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            queue: Arc::clone(&self.queue),
            remote: Arc::clone(&self.remote),
            thread: self.thread,
        }));
        let mut context = Context::from_waker(&waker);
        self.current.set(id);
        trace(Step::Poll { task: id });
        // A task that panics is dropped (its connection closes); the loop
        // and every other task go on.
        let polled = catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(&mut context)));
        let ready = !matches!(polled, Ok(Poll::Pending));
        trace(Step::Polled { task: id, ready });
        match ready {
            false => self.tasks.borrow_mut()[id] = Some(task),
            true => self.free.borrow_mut().push(id),
        }
    }
}
// ANCHOR_END: executor

// ANCHOR: reactor
/// The token of the waker another thread uses to interrupt epoll.
const REMOTE: Token = Token(usize::MAX);

/// Read or write: which of a socket's two waiting tasks to wake.
#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

/// A task that waits: its id (for the trace) and its waker.
type Waiter = (usize, Waker);

/// epoll and the timers: who waits for what.
struct Reactor {
    poll: mio::Poll,
    events: Events,
    /// Per registered socket (its token): the task waiting to read, and the
    /// one waiting to write (its id, for the trace, and its waker).
    waiting: Vec<Option<[Option<Waiter>; 2]>>,
    free: Vec<usize>,
    /// Sleeps, soonest first: (when, its number), and the task per number.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    sleepers: HashMap<u64, Waiter>,
    next_timer: u64,
}

impl Reactor {
    fn new(poll: mio::Poll) -> Reactor {
        Reactor {
            poll,
            events: Events::with_capacity(1024),
            waiting: Vec::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            sleepers: HashMap::new(),
            next_timer: 0,
        }
    }

    /// Sleeps in epoll until something is ready or the next timer is due,
    /// then wakes the tasks that wait on it.
    fn wait(&mut self) -> io::Result<()> {
        let timeout = self
            .timers
            .peek()
            .map(|Reverse((due, _))| due.saturating_duration_since(Instant::now()));
        let slept = Instant::now();
        match self.poll.poll(&mut self.events, timeout) {
            Err(error) if error.kind() != ErrorKind::Interrupted => return Err(error),
            _ => {}
        }
        trace(Step::Slept {
            timeout_ms: timeout.map(|t| t.as_micros().div_ceil(1000) as u64),
            events: self.events.iter().count(),
            slept_us: slept.elapsed().as_micros() as u64,
        });
        for event in self.events.iter() {
            let Some(Some(waiting)) = self.waiting.get_mut(event.token().0) else {
                continue; // The remote waker: its only job was to end the wait.
            };
            let closed = event.is_error() || event.is_read_closed() || event.is_write_closed();
            if event.is_readable() || closed {
                wake(waiting[0].take(), WakeCause::Readable);
            }
            if event.is_writable() || closed {
                wake(waiting[1].take(), WakeCause::Writable);
            }
        }
        let now = Instant::now();
        while let Some(Reverse((due, number))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            wake(self.sleepers.remove(&number), WakeCause::Timer);
        }
        Ok(())
    }

    /// Registers a socket for both directions; mio's epoll is edge-triggered,
    /// so it is registered once and tells only of *changes* in readiness.
    fn register(&mut self, source: &mut impl mio::event::Source) -> io::Result<usize> {
        let token = self.free.pop().unwrap_or_else(|| {
            self.waiting.push(None);
            self.waiting.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) = self
            .poll
            .registry()
            .register(source, Token(token), interest)
        {
            self.free.push(token);
            return Err(error);
        }
        self.waiting[token] = Some([None, None]);
        Ok(token)
    }

    fn deregister(&mut self, token: usize, source: &mut impl mio::event::Source) {
        let _ = self.poll.registry().deregister(source);
        self.waiting[token] = None;
        self.free.push(token);
    }

    /// Task `task` waits until socket `token` is ready for `direction`.
    fn wait_for(&mut self, token: usize, direction: Direction, task: usize, waker: &Waker) {
        if let Some(Some(waiting)) = self.waiting.get_mut(token) {
            waiting[direction as usize] = Some((task, waker.clone()));
        }
    }

    /// Task `task` waits until `due`; returns the timer's number.
    fn sleep_until(&mut self, due: Instant, task: usize, waker: &Waker) -> u64 {
        let number = self.next_timer;
        self.next_timer += 1;
        self.timers.push(Reverse((due, number)));
        self.sleepers.insert(number, (task, waker.clone()));
        number
    }
}

/// Wakes the task that waited, if one did.
fn wake(waiting: Option<Waiter>, by: WakeCause) {
    if let Some((task, waker)) = waiting {
        trace(Step::Woke { task, by });
        waker.wake();
    }
}
// ANCHOR_END: reactor

// ANCHOR: io
/// A mio socket registered with this thread's reactor.
pub struct Async<S: mio::event::Source> {
    source: S,
    token: usize,
}

impl<S: mio::event::Source> Async<S> {
    pub fn new(mut source: S) -> io::Result<Async<S>> {
        let token = runtime().reactor.borrow_mut().register(&mut source)?;
        Ok(Async { source, token })
    }

    /// Tries `operation`; if the socket is not ready, leaves the task's waker
    /// with the reactor and says `Pending`. Because epoll tells only of
    /// changes (edge-triggered), a task waits only after the system call
    /// itself said `WouldBlock`: then the next change wakes it.
    fn poll_io<T>(
        &self,
        context: &mut Context<'_>,
        direction: Direction,
        mut operation: impl FnMut(&S) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        match operation(&self.source) {
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                let runtime = runtime();
                let task = runtime.current.get();
                trace(Step::WouldBlock {
                    task,
                    write: matches!(direction, Direction::Write),
                });
                let mut reactor = runtime.reactor.borrow_mut();
                reactor.wait_for(self.token, direction, task, context.waker());
                Poll::Pending
            }
            done => Poll::Ready(done),
        }
    }
}

impl Async<TcpListener> {
    pub async fn accept(&self) -> io::Result<Async<TcpStream>> {
        let (stream, _peer) =
            poll_fn(|cx| self.poll_io(cx, Direction::Read, |listener| listener.accept())).await?;
        let _ = stream.set_nodelay(true);
        Async::new(stream)
    }
}

impl<S> Async<S>
where
    S: mio::event::Source,
    for<'a> &'a S: Read + Write,
{
    pub async fn read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_io(cx, Direction::Read, |mut stream| stream.read(buffer))).await
    }

    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let written =
                poll_fn(|cx| self.poll_io(cx, Direction::Write, |mut stream| stream.write(bytes)))
                    .await?;
            if written == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
            bytes = &bytes[written..];
        }
        Ok(())
    }
}

impl Async<TcpStream> {
    /// Says we are done writing, drops what the client still sends (unread
    /// bytes would turn the close into a reset), and closes.
    pub fn close(self) {
        let _ = self.source.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 1024];
        while let Ok(1..) = (&self.source).read(&mut sink) {}
    }
}

impl<S: mio::event::Source> Drop for Async<S> {
    fn drop(&mut self) {
        // Outside the runtime (its tasks dropped after `block_on`) there is
        // no reactor left to tell.
        RUNTIME.with(|current| {
            if let Some(runtime) = current.borrow().as_ref() {
                runtime
                    .reactor
                    .borrow_mut()
                    .deregister(self.token, &mut self.source);
            }
        });
    }
}

/// Waits `duration` without holding the thread: a timer in the reactor's heap.
pub async fn sleep(duration: Duration) {
    let due = Instant::now() + duration;
    let mut timer = None;
    poll_fn(|cx| {
        if Instant::now() >= due {
            return Poll::Ready(());
        }
        if timer.is_none() {
            let runtime = runtime();
            let task = runtime.current.get();
            trace(Step::Timer {
                task,
                ms: duration.as_millis() as u64,
            });
            timer = Some(
                runtime
                    .reactor
                    .borrow_mut()
                    .sleep_until(due, task, cx.waker()),
            );
        }
        Poll::Pending
    })
    .await
}
// ANCHOR_END: io

// ANCHOR: timeout
/// A future that did not finish in time.
#[derive(Debug, PartialEq, Eq)]
pub struct TimedOut;

/// `future`'s output, or `TimedOut` if `limit` passes first. Each time the
/// task is woken, both the future and a timer are polled; the first ready
/// wins, and the other is dropped with this future.
#[cfg_attr(not(test), allow(dead_code))]
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, TimedOut> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(sleep(limit));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        timer.as_mut().poll(cx).map(|()| Err(TimedOut))
    })
    .await
}
// ANCHOR_END: timeout

// ANCHOR: trace
/// The runtime's steps, kept (and printed to stderr) only after
/// [`trace_on`]; the rest of the time `trace` is one check of a flag.
struct Tracer {
    started: Instant,
    steps: Vec<TraceStep>,
}

thread_local! {
    static TRACER: RefCell<Option<Tracer>> = const { RefCell::new(None) };
}

/// From now on, keep and print every step of this thread's runtime.
pub fn trace_on() {
    TRACER.with(|tracer| {
        *tracer.borrow_mut() = Some(Tracer {
            started: Instant::now(),
            steps: Vec::new(),
        })
    });
}

fn trace(step: Step) {
    TRACER.with(|tracer| {
        if let Some(tracer) = tracer.borrow_mut().as_mut() {
            let at_us = tracer.started.elapsed().as_secs_f64() * 1e6;
            eprintln!("{:>12.1} µs  {step}", at_us);
            if tracer.steps.len() < RuntimeReport::TRACE_LIMIT {
                tracer.steps.push(TraceStep { at_us, step });
            }
        }
    });
}

/// The steps kept so far (none unless tracing is on).
pub fn traced() -> Vec<TraceStep> {
    TRACER.with(|tracer| {
        tracer
            .borrow()
            .as_ref()
            .map_or_else(Vec::new, |t| t.steps.clone())
    })
}
// ANCHOR_END: trace

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Runs `main` on a fresh runtime on a thread of its own; fails the test
    /// instead of hanging if it does not return within a few seconds.
    fn run(main: impl FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = Runtime::new().unwrap();
            runtime.block_on(main());
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("the runtime returned: no wake-up was lost");
    }

    #[test]
    fn a_waker_called_from_another_thread_wakes_the_task_sleeping_in_epoll() {
        run(|| {
            Box::pin(async {
                let mut handed_off = false;
                poll_fn(|cx| {
                    if handed_off {
                        return Poll::Ready(());
                    }
                    handed_off = true;
                    let waker = cx.waker().clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        waker.wake();
                    });
                    Poll::Pending
                })
                .await;
            })
        });
    }

    #[test]
    fn timers_fire_in_the_order_they_are_due() {
        run(|| {
            Box::pin(async {
                let order = Rc::new(RefCell::new(Vec::new()));
                // A hundred milliseconds apart: far more than a busy
                // machine delays one poll.
                for ms in [300u64, 100, 200] {
                    let order = Rc::clone(&order);
                    spawn(async move {
                        sleep(Duration::from_millis(ms)).await;
                        order.borrow_mut().push(ms);
                    });
                }
                let started = Instant::now();
                sleep(Duration::from_millis(600)).await;
                assert!(started.elapsed() >= Duration::from_millis(600));
                assert_eq!(*order.borrow(), [100, 200, 300]);
            })
        });
    }

    #[test]
    fn a_timeout_gives_up_on_a_slow_future_and_not_on_a_fast_one() {
        run(|| {
            Box::pin(async {
                let started = Instant::now();
                let slow = timeout(Duration::from_millis(50), sleep(Duration::from_secs(1))).await;
                assert_eq!(slow, Err(TimedOut));
                // It waited for its limit, and not for the slow sleep.
                assert!(started.elapsed() >= Duration::from_millis(50));
                assert!(started.elapsed() < Duration::from_secs(1));
                let fast = timeout(Duration::from_secs(3), async { 42 }).await;
                assert_eq!(fast, Ok(42));
            })
        });
    }

    #[test]
    fn a_task_that_panics_does_not_take_the_loop_down() {
        run(|| {
            Box::pin(async {
                let survived = Rc::new(Cell::new(false));
                spawn(async { panic!("a task's bug, injected by a test") });
                let flag = Rc::clone(&survived);
                spawn(async move {
                    sleep(Duration::from_millis(10)).await;
                    flag.set(true);
                });
                // Printing the panic (with a backtrace) takes a while: wait
                // for the other task rather than for a fixed time.
                for _ in 0..300 {
                    if survived.get() {
                        break;
                    }
                    sleep(Duration::from_millis(10)).await;
                }
                assert!(survived.get(), "the other task ran after the panic");
            })
        });
    }
}

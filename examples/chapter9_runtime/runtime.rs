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
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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

/// A task's name: its slot in the table, and which of the tasks that have
/// held that slot it is. A wake-up for an earlier holder of the slot (a
/// waker kept somewhere after its task ended) names an old generation and is
/// dropped, instead of polling whoever holds the slot now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TaskId {
    slot: usize,
    generation: u64,
}

/// One slot of the task table.
struct Slot {
    /// The task; `None` while it is being polled, or when the slot is free.
    future: Option<Task>,
    generation: u64,
    /// The task's one waker, made when it was spawned: every poll lends it
    /// out again (a reference count, not an allocation).
    waker: Arc<TaskWaker>,
}

/// The runtime: the tasks, the queue of those woken, and the reactor. It
/// lives on one thread (an `Rc`, in a thread-local), so `spawn`, `sleep` and
/// the I/O futures find it without being handed it.
pub struct Runtime {
    tasks: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    /// Woken tasks, in the order they were woken. Shared with the wakers,
    /// which another thread may call.
    queue: Arc<Mutex<VecDeque<TaskId>>>,
    reactor: RefCell<Reactor>,
    /// Wakes the loop out of epoll when a waker is called from another thread.
    remote: Arc<mio::Waker>,
    thread: ThreadId,
    /// The task being polled now, so a future knows whose waker it holds.
    current: Cell<usize>,
    /// Socket operations a task may make in one poll before its ready
    /// socket answers `Pending` anyway (`None`: no limit), and what is
    /// left of it in this poll.
    budget: Cell<Option<u32>>,
    left: Cell<u32>,
    /// Tasks that spent their budget: woken only after the reactor's next
    /// look, so what it wakes runs before they run again.
    deferred: RefCell<Vec<Waker>>,
}

/// Tasks polled in one turn before epoll and the timers get a look, even
/// if more are waiting: a task that wakes itself again and again cannot
/// keep the reactor (and so every socket and timer) waiting. tokio's
/// current-thread runtime uses the same number.
const TASKS_PER_TURN: usize = 61;

/// What a task's `Waker` does: put the task's id back on the queue, once.
struct TaskWaker {
    id: TaskId,
    /// On the queue already: a second wake before the poll adds nothing.
    queued: AtomicBool,
    queue: Arc<Mutex<VecDeque<TaskId>>>,
    remote: Arc<mio::Waker>,
    thread: ThreadId,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return; // Woken already, not yet polled: one poll serves both.
        }
        // A thread that panicked holding the lock left the queue whole.
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.push_back(self.id);
        drop(queue);
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
            .expect("spawn, sleep and Async must be used inside Runtime::block_on")
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
            budget: Cell::new(None),
            left: Cell::new(u32::MAX),
            deferred: RefCell::new(Vec::new()),
        }))
    }

    /// From now on, a task may make `operations` socket reads and writes
    /// in one poll; then a ready socket says `Pending` (and wakes the task
    /// again), so the others get the thread. `None`: no limit.
    #[cfg_attr(not(test), allow(dead_code))] // chapter9_budget and the tests
    pub fn set_budget(&self, operations: Option<u32>) {
        self.budget.set(operations);
        self.left.set(operations.unwrap_or(u32::MAX));
    }

    fn spawn(&self, future: Task) -> TaskId {
        let mut tasks = self.tasks.borrow_mut();
        let (slot, generation) = match self.free.borrow_mut().pop() {
            Some(slot) => (slot, tasks[slot].generation + 1),
            None => (tasks.len(), 0),
        };
        let id = TaskId { slot, generation };
        let waker = self.waker(id);
        let entry = Slot {
            future: Some(future),
            generation,
            waker: Arc::clone(&waker),
        };
        match tasks.get_mut(slot) {
            Some(free) => *free = entry,
            None => tasks.push(entry),
        }
        drop(tasks);
        trace(Step::Spawned { task: slot });
        waker.wake_by_ref(); // Its first poll.
        id
    }

    fn waker(&self, id: TaskId) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(false),
            queue: Arc::clone(&self.queue),
            remote: Arc::clone(&self.remote),
            thread: self.thread,
        })
    }

    /// Runs `main` and every task it spawns until `main` returns. If `main`
    /// panics, so does `block_on`; any other task that panics is dropped.
    pub fn block_on(self: &Rc<Self>, main: impl Future<Output = ()> + 'static) {
        RUNTIME.with(|current| *current.borrow_mut() = Some(Rc::clone(self)));
        let done = Rc::new(Cell::new(false));
        let finished = Rc::clone(&done);
        let main = self.spawn(Box::pin(async move {
            main.await;
            finished.set(true);
        }));
        while !done.get() {
            // Poll the tasks that were woken, in order, up to a turn's worth.
            for _ in 0..TASKS_PER_TURN {
                let Some(id) = self.next_woken() else { break };
                if let Err(panic) = self.poll_task(id) {
                    if id == main {
                        RUNTIME.with(|current| *current.borrow_mut() = None);
                        std::panic::resume_unwind(panic);
                    }
                }
            }
            if done.get() {
                break;
            }
            // Then the reactor: if tasks are still waiting to run, it only
            // looks (a timeout of zero); if none are, it sleeps in epoll until
            // a socket is ready, a timer is due or another thread wakes a task.
            let queued = !self.queue().is_empty();
            let deferred = self.deferred.take();
            let idle = !queued && deferred.is_empty();
            if let Err(error) = self.reactor.borrow_mut().wait(idle) {
                eprintln!("error: epoll failed: {error}");
                std::process::exit(1);
            }
            deferred.into_iter().for_each(Waker::wake);
        }
        RUNTIME.with(|current| *current.borrow_mut() = None);
    }

    fn next_woken(&self) -> Option<TaskId> {
        self.queue().pop_front()
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<TaskId>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Polls task `id` once, lending it its waker. A task that panics is
    /// dropped (its connection closes) and the panic handed back.
    fn poll_task(&self, id: TaskId) -> Result<(), Box<dyn std::any::Any + Send>> {
        // Taken out of its slot while it runs, so it can spawn others.
        let (mut task, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(slot) = tasks.get_mut(id.slot) else {
                return Ok(());
            };
            if slot.generation != id.generation {
                return Ok(()); // A wake-up for a task that has ended.
            }
            let Some(task) = slot.future.take() else {
                return Ok(());
            };
            (task, Arc::clone(&slot.waker))
        };
        // Off the queue now: a wake from here on queues it again. A swap,
        // not a store: it reads what a wake merged into this poll wrote
        // (Acquire), so the poll sees what that thread did before waking.
        waker.queued.swap(false, Ordering::AcqRel);
        let waker = Waker::from(waker);
        let mut context = Context::from_waker(&waker);
        self.current.set(id.slot);
        self.left.set(self.budget.get().unwrap_or(u32::MAX));
        trace(Step::Poll { task: id.slot });
        let polled = catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(&mut context)));
        let ready = !matches!(polled, Ok(Poll::Pending));
        trace(Step::Polled {
            task: id.slot,
            ready,
        });
        match ready {
            false => self.tasks.borrow_mut()[id.slot].future = Some(task),
            true => {
                // A destructor that panics is the task's bug too.
                let _ = catch_unwind(AssertUnwindSafe(|| drop(task)));
                self.free.borrow_mut().push(id.slot);
            }
        }
        polled.map(|_| ())
    }

    /// Spends one socket operation of this poll's budget; `false` when it
    /// is spent.
    fn spend(&self) -> bool {
        let left = self.left.get();
        self.left.set(left.saturating_sub(1));
        left > 0
    }
}
// ANCHOR_END: executor

// ANCHOR: reactor
/// The token of the waker another thread uses to interrupt epoll.
const REMOTE: Token = Token(usize::MAX);

/// Read or write: which of a socket's two lists of waiting tasks.
#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

/// A task that waits: its slot (for the trace) and its waker.
type Waiter = (usize, Waker);

/// epoll and the timers: who waits for what.
struct Reactor {
    poll: mio::Poll,
    events: Events,
    /// Per registered socket (its token): the tasks waiting to read, and
    /// those waiting to write. Two tasks may share a socket; each is woken.
    waiting: Vec<Option<[Vec<Waiter>; 2]>>,
    free: Vec<usize>,
    /// Sleeps, soonest first: (when, its number), and the task per number.
    /// A sleep dropped early leaves the map at once; its entry in the heap
    /// is skipped when it comes up, or swept out when the dead outnumber
    /// the living.
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

    /// Asks epoll what is ready (sleeping until something is or the next
    /// timer is due, if `block`; otherwise only looking), then wakes the
    /// tasks that wait on it.
    fn wait(&mut self, block: bool) -> io::Result<()> {
        while let Some(Reverse((_, number))) = self.timers.peek() {
            if self.sleepers.contains_key(number) {
                break;
            }
            self.timers.pop(); // A sleep that was dropped.
        }
        let timeout = match block {
            true => self
                .timers
                .peek()
                .map(|Reverse((due, _))| due.saturating_duration_since(Instant::now())),
            false => Some(Duration::ZERO),
        };
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
                wake_all(&mut waiting[0], WakeCause::Readable);
            }
            if event.is_writable() || closed {
                wake_all(&mut waiting[1], WakeCause::Writable);
            }
        }
        let now = Instant::now();
        while let Some(Reverse((due, number))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            if let Some(waiter) = self.sleepers.remove(&number) {
                wake(waiter, WakeCause::Timer);
            }
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
        self.waiting[token] = Some([Vec::new(), Vec::new()]);
        Ok(token)
    }

    fn deregister(&mut self, token: usize, source: &mut impl mio::event::Source) {
        let _ = self.poll.registry().deregister(source);
        self.waiting[token] = None;
        self.free.push(token);
    }

    /// Task `task` waits until socket `token` is ready for `direction`. A
    /// task that waits again before it was woken keeps one place in the
    /// list, with the waker of its latest poll.
    fn wait_for(&mut self, token: usize, direction: Direction, task: usize, waker: &Waker) {
        if let Some(Some(waiting)) = self.waiting.get_mut(token) {
            let list = &mut waiting[direction as usize];
            match list.iter_mut().find(|(_, w)| w.will_wake(waker)) {
                Some(waiter) => waiter.0 = task,
                None => list.push((task, waker.clone())),
            }
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

    /// The timer `number` wakes `waker` now: the one of the sleep's latest
    /// poll, which may be another task's than the first.
    fn wake_instead(&mut self, number: u64, task: usize, waker: &Waker) {
        if let Some(sleeper) = self.sleepers.get_mut(&number) {
            if !sleeper.1.will_wake(waker) {
                *sleeper = (task, waker.clone());
            }
        }
    }

    /// A sleep was dropped before its time: it wakes no one, and once the
    /// heap holds more dead timers than live ones, they are swept out.
    fn cancel(&mut self, number: u64) {
        self.sleepers.remove(&number);
        if self.timers.len() > 64 && self.timers.len() > 2 * self.sleepers.len() {
            let live = &self.sleepers;
            self.timers
                .retain(|Reverse((_, number))| live.contains_key(number));
        }
    }
}

/// Wakes every task in `waiting`, and empties it.
fn wake_all(waiting: &mut Vec<Waiter>, by: WakeCause) {
    for waiter in waiting.drain(..) {
        wake(waiter, by);
    }
}

fn wake((task, waker): Waiter, by: WakeCause) {
    trace(Step::Woke { task, by });
    waker.wake();
}
// ANCHOR_END: reactor

// ANCHOR: io
/// A mio socket registered with this thread's reactor.
/// It belongs to the runtime it was registered with (its token means
/// nothing to another), and stays on that runtime's thread: a `Weak`
/// reference to an `Rc` is not `Send`.
pub struct Async<S: mio::event::Source> {
    source: S,
    token: usize,
    owner: Weak<Runtime>,
}

impl<S: mio::event::Source> Async<S> {
    pub fn new(mut source: S) -> io::Result<Async<S>> {
        let runtime = runtime();
        let token = runtime.reactor.borrow_mut().register(&mut source)?;
        Ok(Async {
            source,
            token,
            owner: Rc::downgrade(&runtime),
        })
    }

    /// Tries `operation`; if the socket is not ready, leaves the task's waker
    /// with the reactor and says `Pending`. Because epoll tells only of
    /// changes (edge-triggered), a task waits only after the system call
    /// itself said `WouldBlock`: then the next change wakes it. With a
    /// budget set, a task that has spent it says `Pending` without trying,
    /// and is woken again after the reactor's next look.
    fn poll_io<T>(
        &self,
        context: &mut Context<'_>,
        direction: Direction,
        mut operation: impl FnMut(&S) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        let Some(runtime) = self.owner.upgrade() else {
            return Poll::Ready(Err(io::Error::other("its runtime has ended")));
        };
        if !runtime.spend() {
            runtime.deferred.borrow_mut().push(context.waker().clone());
            return Poll::Pending;
        }
        match operation(&self.source) {
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
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
        // Its own runtime's reactor; once that has ended (its tasks dropped
        // with it), there is none left to tell.
        if let Some(runtime) = self.owner.upgrade() {
            runtime
                .reactor
                .borrow_mut()
                .deregister(self.token, &mut self.source);
        }
    }
}

/// Waits `duration` without holding the thread: a timer in the reactor's heap.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        due: Instant::now() + duration,
        duration,
        timer: None,
    }
}

/// The future `sleep` returns.
pub struct Sleep {
    due: Instant,
    duration: Duration,
    /// The timer's number, and the runtime whose heap it is in, once the
    /// first poll has put it there.
    timer: Option<(u64, Weak<Runtime>)>,
}

impl Future for Sleep {
    type Output = ();

    /// The first poll puts a timer in the heap. Every later one hands the
    /// reactor the waker it was given this time, as the `Future` contract
    /// asks: a sleep may be polled from another task than the first.
    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.due {
            self.cancel();
            return Poll::Ready(());
        }
        match &self.timer {
            Some((number, owner)) => {
                if let Some(runtime) = owner.upgrade() {
                    let task = runtime.current.get();
                    let mut reactor = runtime.reactor.borrow_mut();
                    reactor.wake_instead(*number, task, context.waker());
                }
            }
            None => {
                let runtime = runtime();
                let task = runtime.current.get();
                trace(Step::Timer {
                    task,
                    ms: self.duration.as_millis() as u64,
                });
                let mut reactor = runtime.reactor.borrow_mut();
                let number = reactor.sleep_until(self.due, task, context.waker());
                drop(reactor);
                self.timer = Some((number, Rc::downgrade(&runtime)));
            }
        }
        Poll::Pending
    }
}

impl Sleep {
    fn cancel(&mut self) {
        // Once its runtime has ended there is no heap left to clean.
        if let Some((number, owner)) = self.timer.take()
            && let Some(runtime) = owner.upgrade()
        {
            runtime.reactor.borrow_mut().cancel(number);
        }
    }
}

/// Dropped before its time (a `timeout` that the future beat, a
/// connection closed while it slept): its timer wakes no one.
impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}
// ANCHOR_END: io

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

// The tests, in a file of their own so this one reads as the runtime.
#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;

//! The runtime's tests: each of the later ones failed on the runtime
//! before the fix it names, and holds the runtime to it now. They run with
//! `cargo test --release --example chapter9_runtime`.

use super::*;
use std::sync::mpsc::RecvTimeoutError;

/// Runs `main` on a fresh runtime on a thread of its own; fails the test
/// instead of hanging if it does not return within a few seconds.
fn run(main: impl FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = Runtime::new().unwrap();
        runtime.block_on(main());
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(5)) {
        Ok(()) => {}
        // `main` panicked (a failed assertion): the same panic here.
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(RecvTimeoutError::Timeout) => {
            panic!("the runtime did not return in 5 s: a wake-up was lost")
        }
    }
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

// ----- Each of these failed on the runtime before its fix -----

/// Polls `future` once in the current task and keeps it.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

#[test]
fn a_task_that_wakes_itself_forever_does_not_starve_the_timers() {
    run(|| {
        Box::pin(async {
            let due = Rc::new(Cell::new(false));
            let flag = Rc::clone(&due);
            spawn(async move {
                sleep(Duration::from_millis(20)).await;
                flag.set(true);
            });
            // Always ready to go on: it wakes itself and says `Pending`
            // until the timer above has fired.
            poll_fn(|cx| {
                if due.get() {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
        })
    });
}

#[test]
fn two_tasks_waiting_to_read_one_socket_are_both_woken() {
    run(|| {
        Box::pin(async {
            let (writer, reader) = mio::net::UnixStream::pair().unwrap();
            let reader = Rc::new(Async::new(reader).unwrap());
            let got = Rc::new(Cell::new(0));
            for _ in 0..2 {
                let (reader, got) = (Rc::clone(&reader), Rc::clone(&got));
                spawn(async move {
                    let mut byte = [0u8; 1];
                    if let Ok(1) = reader.read(&mut byte).await {
                        got.set(got.get() + 1);
                    }
                });
            }
            // Both wait now (the socket is empty); then two bytes come.
            sleep(Duration::from_millis(20)).await;
            (&writer).write_all(b"ab").unwrap();
            for _ in 0..100 {
                if got.get() == 2 {
                    break;
                }
                sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(got.get(), 2, "each waiting task read a byte");
        })
    });
}

#[test]
fn a_sleep_moved_to_another_task_wakes_that_task() {
    run(|| {
        Box::pin(async {
            let mut timer = Box::pin(sleep(Duration::from_millis(50)));
            // Polled once here: the timer has this task's waker.
            assert!(poll_once(&mut timer).await.is_pending());
            let done = Rc::new(Cell::new(false));
            let flag = Rc::clone(&done);
            spawn(async move {
                timer.await;
                flag.set(true);
            });
            for _ in 0..100 {
                if done.get() {
                    break;
                }
                sleep(Duration::from_millis(10)).await;
            }
            assert!(done.get(), "the task that awaited the sleep last was woken");
        })
    });
}

#[test]
fn a_dropped_sleep_does_not_wake_the_task_that_reuses_its_slot() {
    run(|| {
        Box::pin(async {
            // A task starts a 100 ms timer, drops it and ends: its slot
            // is free again.
            spawn(async {
                let mut timer = Box::pin(sleep(Duration::from_millis(100)));
                let _ = poll_once(&mut timer).await;
            });
            sleep(Duration::from_millis(10)).await;
            // The next task takes that slot and waits 300 ms: polled
            // once to start, once when its own timer is due.
            let polls = Rc::new(Cell::new(0));
            let counted = Rc::clone(&polls);
            spawn(async move {
                let mut timer = Box::pin(sleep(Duration::from_millis(300)));
                poll_fn(|cx| {
                    counted.set(counted.get() + 1);
                    timer.as_mut().poll(cx)
                })
                .await;
            });
            sleep(Duration::from_millis(500)).await;
            assert_eq!(polls.get(), 2, "no wake-up from the dropped timer");
        })
    });
}

#[test]
fn a_dropped_read_does_not_wake_the_task_that_reuses_its_slot() {
    run(|| {
        Box::pin(async {
            let (writer, reader) = mio::net::UnixStream::pair().unwrap();
            let reader = Rc::new(Async::new(reader).unwrap());
            // A task polls a read of the empty socket once (its waker
            // stays in the socket's list), drops the read and ends.
            let first = Rc::clone(&reader);
            spawn(async move {
                let mut byte = [0u8; 1];
                let mut read = std::pin::pin!(first.read(&mut byte));
                let _ = poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            });
            sleep(Duration::from_millis(10)).await;
            // The next task takes its slot and waits on a timer alone.
            let polls = Rc::new(Cell::new(0));
            let counted = Rc::clone(&polls);
            spawn(async move {
                let mut timer = Box::pin(sleep(Duration::from_millis(200)));
                poll_fn(|cx| {
                    counted.set(counted.get() + 1);
                    timer.as_mut().poll(cx)
                })
                .await;
            });
            sleep(Duration::from_millis(20)).await;
            // A byte wakes the first task's old waker: a stale name.
            (&writer).write_all(b"x").unwrap();
            sleep(Duration::from_millis(300)).await;
            assert_eq!(polls.get(), 2, "the stale wake-up polled no one");
        })
    });
}

#[test]
fn dropped_sleeps_do_not_pile_up_in_the_timer_heap() {
    run(|| {
        Box::pin(async {
            // What a server with a 10 s timeout on every request leaves
            // behind: 10,000 timers started and dropped at once.
            for _ in 0..10_000 {
                let mut timer = Box::pin(sleep(Duration::from_secs(10)));
                let _ = poll_once(&mut timer).await;
            }
            let left = runtime().reactor.borrow().timers.len();
            assert!(left < 1_000, "{left} dead timers still in the heap");
        })
    });
}

#[test]
fn a_task_woken_twice_before_it_runs_is_polled_once() {
    run(|| {
        Box::pin(async {
            let polls = Rc::new(Cell::new(0));
            let counted = Rc::clone(&polls);
            spawn(poll_fn(move |cx| {
                counted.set(counted.get() + 1);
                if counted.get() == 1 {
                    // Two wake-ups, as a socket readable and writable
                    // in one epoll event gives.
                    cx.waker().wake_by_ref();
                    cx.waker().wake_by_ref();
                }
                Poll::<()>::Pending
            }));
            sleep(Duration::from_millis(50)).await;
            assert_eq!(polls.get(), 2, "one poll to start, one for both wakes");
        })
    });
}

#[test]
fn with_a_budget_a_task_whose_socket_is_always_ready_gives_the_thread_up() {
    run(|| {
        Box::pin(async {
            runtime().set_budget(Some(128));
            let due = Rc::new(Cell::new(false));
            let flag = Rc::clone(&due);
            spawn(async move {
                sleep(Duration::from_millis(20)).await;
                flag.set(true);
            });
            // Its peer is closed, so every read answers at once (zero
            // bytes): without a budget the task would never say
            // `Pending`, and the timer above would never fire.
            let (_, reader) = mio::net::UnixStream::pair().unwrap();
            let reader = Async::new(reader).unwrap();
            let mut reads = 0u64;
            while !due.get() {
                let _ = reader.read(&mut [0u8; 1]).await;
                reads += 1;
            }
            // It spent its budget at least once before the timer ran.
            assert!(reads >= 128, "{reads} reads before the timer fired");
        })
    });
}

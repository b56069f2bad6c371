//! Tests of [`super`].

use super::*;

#[test]
fn interrupts_between_cores_sum_the_two_rows_over_every_core() {
    let text = "           CPU0       CPU1\n  0:         44          0   IO-APIC    2-edge      timer\nLOC:    2382944    2391567   Local timer interrupts\nRES:     513491     482584   Rescheduling interrupts\nCAL:       2217       2070   Function call interrupts\nTLB:     997244     998074   TLB shootdowns\n";
    assert_eq!(
        interrupts_between_cores(text),
        Some(513_491 + 482_584 + 2_217 + 2_070)
    );
    assert_eq!(interrupts_between_cores("LOC: 1 2 Local timer\n"), None);
}

#[test]
fn the_cpu_split_counts_this_process_spinning() {
    let Some(clock) = CpuClock::start() else {
        return; // not Linux
    };
    let until = Instant::now() + Duration::from_millis(60);
    let mut spins = 0u64;
    while Instant::now() < until {
        spins = std::hint::black_box(spins + 1);
    }
    let split = clock.finish().expect("read at the start, so at the end");
    // A thread spinning for 60 ms used at least some CPU, all of it
    // counted busy on the machine as well as ours (clock ticks are 10 ms).
    assert!(split.wall_ms >= 60);
    assert!(split.client_ms >= 10, "{split:?}");
    assert!(
        split.busy_ms >= split.client_ms.saturating_sub(20),
        "{split:?}"
    );
}

#[test]
fn a_thread_that_sleeps_switches_voluntarily() {
    // This thread's own counts: the process's sum drops when other
    // tests' threads end between the two readings.
    let me = || {
        switches_in(&std::fs::read_to_string("/proc/thread-self/status").expect("Linux has /proc"))
    };
    assert!(context_switches(std::process::id()).is_some());
    let before = me();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = me();
    // Each sleep gives the core up at least once.
    assert!(
        after.voluntary >= before.voluntary + 5,
        "{before:?} → {after:?}"
    );
}

#[test]
fn this_process_is_seen_with_its_threads_and_memory() {
    let Some(sampler) = Sampler::start(std::process::id()) else {
        eprintln!("no /proc here: nothing to sample");
        return;
    };
    let (stop, hold) = std::sync::mpsc::channel::<()>();
    let extra = std::thread::spawn(move || {
        let _ = hold.recv();
    });
    std::thread::sleep(EVERY * 3);
    let seen = sampler.finish();
    drop(stop);
    let _ = extra.join();
    // The test thread, the sampler and the extra thread at least.
    assert!(seen.peak_threads >= 3, "{seen:?}");
    assert!(seen.peak_rss_kib > 100, "{seen:?}");
    assert_eq!(seen.peak_processes, 1);
    assert!(seen.samples.len() >= 2);
}

#[test]
fn the_listen_overflow_counter_is_readable_on_linux() {
    if std::path::Path::new("/proc/net/netstat").exists() {
        assert!(listen_overflows().is_some());
    }
}

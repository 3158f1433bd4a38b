//! The randomized fault test of "Invalidation across processes" (contract):
//! seeded schedules over three worker processes (`chaos-worker`), each with
//! one `Cache` per schedule, in every mode, with random reads, writes then
//! invalidations, loads of random duration, invalidations whose message is
//! lost, and faults: connection resets, silent partitions and slow links
//! through a fault-injecting proxy per worker, Redis killed and restarted
//! empty, Redis frozen, subscribers dropped. It checks:
//!
//! * (a) a read on the invalidating instance that starts after its
//!   invalidation returned (`Ok` or `Err`) gets at least the version written
//!   before it;
//! * (b) a read anywhere that starts more than 1 s after an invalidation was
//!   confirmed (`Ok`, or a lost-message `INCR` Redis answered) gets at least
//!   its version; the second counts from the end of the last fault that cut
//!   the reader off from Redis meanwhile (while cut off it cannot know);
//! * (c) no cached call returns an error, panics or hangs.
//!
//! The CI slice runs a fixed seed for under a minute. `CHAOS_SEED=S`,
//! `CHAOS_SCHEDULES=N` (then no time limit unless `CHAOS_MAX_SECS`),
//! `CHAOS_BATCH=K` (schedules run at once) choose a longer run;
//! `CHAOS_REPORT_ONLY=1` prints the violations without failing. A violation
//! prints its seed, mode and the events around it: rerun with that seed
//! and `CHAOS_SCHEDULES` equal to the batch size to reproduce its schedule.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use integration_tests::chaos_plan::{
    self, batch_size, now_us, Event, Fault, FaultKind, Mode, BOUND_US,
};
use integration_tests::fault_proxy::FaultProxy;
use integration_tests::redis_harness::RedisServer;

const WORKERS: u64 = 3;
/// The CI slice's seed.
const CI_SEED: u64 = 0xC4A0_5EED;
/// The CI slice's number of schedules (and its time limit, below).
const CI_SCHEDULES: u64 = 200;
const CI_MAX_SECS: u64 = 50;
/// How long a batch may take before the test gives up on a worker.
const BATCH_TIMEOUT: Duration = Duration::from_secs(90);
/// How many violations of each kind are printed in full.
const EXCERPTS: usize = 4;
/// What the worker's messages about the database's own errors contain.
const DB_FAULT: &str = "db GET: ";
const DB_FAULT_INCR: &str = "db INCR: ";

// ---------------------------------------------------------------------------
// Workers

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn start(index: u64, proxy: &FaultProxy, direct: &str, db: &str) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chaos-worker"))
            .args([&index.to_string(), &proxy.redis_url(), direct, db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chaos-worker");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Worker {
            child,
            stdin,
            lines,
        }
    }

    /// The lines of one batch, up to its `done`.
    fn collect(&self, index: u64, deadline: Instant) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == "done" => return out,
                Ok(line) => out.push(line),
                Err(e) => panic!("chaos-worker {index} gave no `done` ({e}); got {out:?}"),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Faults

/// A fault as it happened: when it began and when the system was whole again.
#[derive(Debug, Clone)]
struct FaultWindow {
    kind: FaultKind,
    /// The worker cut off, or `None` for all (a server fault).
    worker: Option<u64>,
    start: u64,
    end: u64,
}

fn inject(
    plan: &[Fault],
    start_us: u64,
    server: &Mutex<RedisServer>,
    proxies: &[FaultProxy],
) -> Vec<FaultWindow> {
    let mut done = Vec::new();
    for fault in plan {
        let at = start_us + fault.at_ms * 1_000;
        thread::sleep(Duration::from_micros(at.saturating_sub(now_us())));
        let start = now_us();
        let proxy = &proxies[usize::try_from(fault.worker).unwrap_or(0)];
        match fault.kind {
            FaultKind::Reset => proxy.reset_all(),
            FaultKind::Blackhole { ms } => {
                proxy.blackhole();
                thread::sleep(Duration::from_millis(ms));
                proxy.heal();
            }
            FaultKind::Delay { delay_ms, ms } => {
                proxy.set_delay(Duration::from_millis(delay_ms));
                thread::sleep(Duration::from_millis(ms));
                proxy.set_delay(Duration::ZERO);
            }
            FaultKind::KillRestart => {
                let mut server = server.lock().unwrap_or_else(|p| p.into_inner());
                server.kill();
                server.restart();
            }
            FaultKind::Freeze { ms } => {
                let server = server.lock().unwrap_or_else(|p| p.into_inner());
                server.freeze();
                thread::sleep(Duration::from_millis(ms));
                server.thaw();
            }
            FaultKind::KillPubsub => {
                let server = server.lock().unwrap_or_else(|p| p.into_inner());
                server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
            }
        }
        done.push(FaultWindow {
            kind: fault.kind,
            worker: fault.kind.per_worker().then_some(fault.worker),
            start,
            end: now_us(),
        });
    }
    done
}

// ---------------------------------------------------------------------------
// The check

/// What one batch ran: its schedules' events and its faults.
struct Batch {
    first: u64,
    /// Schedules in the batch: seeds `first..first + count`.
    count: u64,
    start_us: u64,
    events: Vec<Event>,
    faults: Vec<FaultWindow>,
    setup: Vec<String>,
}

#[derive(Default)]
struct Tally {
    schedules: u64,
    reads: u64,
    writes: u64,
    externals: u64,
    a: u64,
    b: u64,
    /// Stale reads (b) would count but a fault that cut the reader off excuses.
    b_excused: u64,
    c: u64,
    /// Calls that failed because the database did (not a violation).
    db_errors: u64,
    worst_a_us: u64,
    worst_b_us: u64,
    excerpts: Vec<String>,
    /// (check, seed) pairs already excerpted: one excerpt per schedule.
    excerpted: std::collections::HashSet<(char, u64)>,
}

impl Tally {
    fn violations(&self) -> u64 {
        self.a + self.b + self.c
    }
}

/// An invalidation that a later read must not be older than.
struct Invalidation {
    worker: u64,
    item: u32,
    version: u64,
    end: u64,
    /// `Ok` from `invalidate_tags`, or an external `INCR` Redis answered.
    confirmed: bool,
    external: bool,
}

/// When `reader`'s second of grace after `from` starts: pushed past the end
/// of every fault that cut the reader off from Redis between `from` and
/// the read's start.
fn grace_start(faults: &[FaultWindow], reader: u64, from: u64, read_start: u64) -> u64 {
    let mut t = from;
    for f in faults {
        let hits = f.worker.is_none_or(|w| w == reader);
        if hits && f.start <= read_start && f.end >= t {
            t = t.max(f.end);
        }
    }
    t
}

fn ms(us: u64) -> String {
    format!("{:.1}ms", us as f64 / 1000.0)
}

/// The item's events from 300 ms before `from` to 100 ms after `to`.
fn excerpt(batch: &Batch, seed: u64, item: u32, headline: &str, from: u64, to: u64) -> String {
    let (lo, hi) = (from.saturating_sub(300_000), to + 100_000);
    let rel = |t: u64| ms(t.saturating_sub(batch.start_us));
    let mut out = format!(
        "{headline}\n  seed {seed} (mode {}, batch of seeds {}.., rerun: CHAOS_SEED={} CHAOS_SCHEDULES={} CHAOS_BATCH={})\n  faults:",
        Mode::of(seed),
        batch.first,
        batch.first,
        batch.count,
        batch.count
    );
    if batch.faults.is_empty() {
        out.push_str(" none");
    }
    for f in &batch.faults {
        let _ = write!(
            out,
            " [{:?} on {} {}..{}]",
            f.kind,
            f.worker
                .map_or("all".to_string(), |w| format!("worker {w}")),
            rel(f.start),
            rel(f.end)
        );
    }
    let _ = write!(
        out,
        "\n  events of item {item}, {}..{} (times from the batch start):",
        rel(lo),
        rel(hi)
    );
    let mut lines: Vec<(u64, String)> = batch
        .events
        .iter()
        .filter(|e| e.seed() == seed)
        .filter_map(|e| match *e {
            Event::Read {
                worker,
                item: i,
                start,
                end,
                value,
                ..
            } if i == item => Some((
                start,
                format!("read  w{worker} {}..{} -> {value}", rel(start), rel(end)),
            )),
            Event::Write {
                worker,
                item: i,
                version,
                end,
                ok,
                ..
            } if i == item => Some((
                end,
                format!(
                    "write w{worker} v{version} invalidated at {} ({})",
                    rel(end),
                    if ok { "Ok" } else { "Err" }
                ),
            )),
            Event::External {
                worker,
                item: i,
                version,
                end,
                ..
            } if i == item => Some((
                end,
                format!("lost-message write w{worker} v{version} at {}", rel(end)),
            )),
            _ => None,
        })
        .collect();
    lines.retain(|(t, _)| (lo..=hi).contains(t));
    lines.sort();
    for (_, line) in lines.iter().take(40) {
        let _ = write!(out, "\n    {line}");
    }
    if lines.len() > 40 {
        let _ = write!(out, "\n    ... {} more", lines.len() - 40);
    }
    out
}

/// Checks every schedule of a batch; adds to the per-mode tallies.
fn check(batch: &Batch, tallies: &mut BTreeMap<Mode, Tally>) {
    let mut by_seed: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for e in &batch.events {
        by_seed.entry(e.seed()).or_default().push(e);
    }
    for seed in batch.first..batch.first + batch.count {
        let mode = Mode::of(seed);
        let tally = tallies.entry(mode).or_default();
        tally.schedules += 1;
        let events = by_seed.get(&seed).map(Vec::as_slice).unwrap_or_default();
        let mut invalidations = Vec::new();
        let mut reads = Vec::new();
        for e in events {
            match **e {
                Event::Read {
                    worker,
                    item,
                    start,
                    value,
                    ..
                } => reads.push((worker, item, start, value)),
                Event::Write {
                    worker,
                    item,
                    version,
                    end,
                    ok,
                    ..
                } => invalidations.push(Invalidation {
                    worker,
                    item,
                    version,
                    end,
                    confirmed: ok,
                    external: false,
                }),
                Event::External {
                    worker,
                    item,
                    version,
                    end,
                    ..
                } => invalidations.push(Invalidation {
                    worker,
                    item,
                    version,
                    end,
                    confirmed: true,
                    external: true,
                }),
                // The database's own faults (a slow machine: it is never
                // faulted on purpose) are not the cache's: counted apart.
                Event::Failed { ref what, .. }
                    if what.contains(DB_FAULT) || what.contains(DB_FAULT_INCR) =>
                {
                    tally.db_errors += 1
                }
                Event::Failed { ref what, .. } => {
                    tally.c += 1;
                    if tally.excerpts.len() < EXCERPTS * 3 {
                        tally.excerpts.push(format!(
                            "(c) seed {seed} (mode {mode}, batch {}): {what}",
                            batch.first
                        ));
                    }
                }
            }
        }
        tally.reads += reads.len() as u64;
        tally.writes += invalidations.iter().filter(|i| !i.external).count() as u64;
        tally.externals += invalidations.iter().filter(|i| i.external).count() as u64;
        for &(reader, item, start, value) in &reads {
            // The worst invalidation this read broke, per check.
            let mut worst_a: Option<(&Invalidation, u64)> = None;
            let mut worst_b: Option<(&Invalidation, u64)> = None;
            let mut excused = false;
            for inv in invalidations.iter().filter(|i| i.item == item) {
                if value >= inv.version || inv.end >= start {
                    continue;
                }
                let late = start - inv.end;
                if inv.worker == reader && !inv.external {
                    if worst_a.is_none_or(|(_, l)| late > l) {
                        worst_a = Some((inv, late));
                    }
                } else if mode.shared() && inv.confirmed && late > BOUND_US {
                    let grace = grace_start(&batch.faults, reader, inv.end, start);
                    if start > grace + BOUND_US {
                        if worst_b.is_none_or(|(_, l)| late > l) {
                            worst_b = Some((inv, late));
                        }
                    } else {
                        excused = true;
                    }
                }
            }
            if let Some((inv, late)) = worst_a {
                tally.a += 1;
                tally.worst_a_us = tally.worst_a_us.max(late);
                if tally.excerpts.len() < EXCERPTS && tally.excerpted.insert(('a', seed)) {
                    let head = format!(
                        "(a) worker {reader} read item {item} = {value} {} after its own invalidation to v{} returned {}",
                        ms(late),
                        inv.version,
                        if inv.confirmed { "Ok" } else { "Err" }
                    );
                    tally
                        .excerpts
                        .push(excerpt(batch, seed, item, &head, inv.end, start));
                }
            } else if let Some((inv, late)) = worst_b {
                tally.b += 1;
                tally.worst_b_us = tally.worst_b_us.max(late);
                if tally.excerpts.len() < EXCERPTS * 2 && tally.excerpted.insert(('b', seed)) {
                    let head = format!(
                        "(b) worker {reader} read item {item} = {value} {} after worker {}'s {} to v{} was confirmed",
                        ms(late),
                        inv.worker,
                        if inv.external { "lost-message invalidation" } else { "invalidation" },
                        inv.version
                    );
                    tally
                        .excerpts
                        .push(excerpt(batch, seed, item, &head, inv.end, start));
                }
            } else if excused {
                tally.b_excused += 1;
            }
        }
    }
}

fn report(tallies: &BTreeMap<Mode, Tally>, seed: u64, elapsed: Duration) -> String {
    let mut out = String::new();
    for (mode, t) in tallies {
        for e in &t.excerpts {
            let _ = writeln!(out, "--- {mode}: {e}");
        }
    }
    let _ = writeln!(out, "chaos: seed {seed}, {elapsed:.1?}");
    let _ = writeln!(
        out,
        "{:<22}{:>6}{:>8}{:>7}{:>6}{:>6}{:>6}{:>9}{:>5}{:>11}{:>11}",
        "mode",
        "sched",
        "reads",
        "writes",
        "lost",
        "(a)",
        "(b)",
        "(b)excu",
        "(c)",
        "worst(a)",
        "worst(b)"
    );
    for (mode, t) in tallies {
        let _ = writeln!(
            out,
            "{:<22}{:>6}{:>8}{:>7}{:>6}{:>6}{:>6}{:>9}{:>5}{:>11}{:>11}{:>6}",
            mode.to_string(),
            t.schedules,
            t.reads,
            t.writes,
            t.externals,
            t.a,
            t.b,
            t.b_excused,
            t.c,
            ms(t.worst_a_us),
            ms(t.worst_b_us),
            t.db_errors
        );
    }
    out
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    };
    Some(parsed.unwrap_or_else(|| panic!("{name}={v:?} is not a number")))
}

#[test]
fn invalidation_survives_seeded_chaos() {
    let seed = env_u64("CHAOS_SEED").unwrap_or(CI_SEED);
    let explicit = env_u64("CHAOS_SCHEDULES");
    let schedules = explicit.unwrap_or(CI_SCHEDULES);
    let max_secs = env_u64("CHAOS_MAX_SECS").or(explicit.is_none().then_some(CI_MAX_SECS));
    let report_only = std::env::var("CHAOS_REPORT_ONLY").is_ok_and(|v| v == "1");
    let k = batch_size();

    let server = Mutex::new(RedisServer::start());
    let db = RedisServer::start();
    let (direct, port) = {
        let s = server.lock().unwrap_or_else(|p| p.into_inner());
        (s.url(), s.port())
    };
    let proxies: Vec<FaultProxy> = (0..WORKERS).map(|_| FaultProxy::to_port(port)).collect();
    let workers: Vec<Worker> = (0..WORKERS)
        .map(|i| Worker::start(i, &proxies[i as usize], &direct, &db.url()))
        .collect();

    let started = Instant::now();
    let mut tallies = BTreeMap::new();
    let mut setup = Vec::new();
    let mut first = seed;
    let mut batches = 0u64;
    while first < seed + schedules {
        if max_secs.is_some_and(|m| started.elapsed() > Duration::from_secs(m)) {
            break;
        }
        let start_us = now_us() + 400_000;
        for w in &workers {
            let mut stdin = &w.stdin;
            writeln!(stdin, "run {first} {k} {start_us}").expect("command a worker");
        }
        let plan = chaos_plan::faults(first, WORKERS);
        let deadline = Instant::now() + BATCH_TIMEOUT;
        let (faults, lines) = thread::scope(|s| {
            let injector = s.spawn(|| inject(&plan, start_us, &server, &proxies));
            let lines: Vec<String> = workers
                .iter()
                .enumerate()
                .flat_map(|(i, w)| w.collect(i as u64, deadline))
                .collect();
            (injector.join().expect("fault injector"), lines)
        });
        let mut batch = Batch {
            first,
            count: k,
            start_us,
            events: Vec::new(),
            faults,
            setup: Vec::new(),
        };
        for line in lines {
            match Event::parse(&line) {
                Some(e) => batch.events.push(e),
                None => batch.setup.push(line),
            }
        }
        check(&batch, &mut tallies);
        setup.extend(batch.setup.iter().take(5).cloned());
        first += k;
        batches += 1;
        if batches.is_multiple_of(50) {
            let done: u64 = tallies.values().map(|t| t.schedules).sum();
            let bad: u64 = tallies.values().map(Tally::violations).sum();
            eprintln!(
                "chaos: {done} schedules, {bad} violations, {:.0?}",
                started.elapsed()
            );
        }
    }
    let text = report(&tallies, seed, started.elapsed());
    println!("{text}");
    for line in setup.iter().take(10) {
        println!("setup: {line}");
    }
    let ran: u64 = tallies.values().map(|t| t.schedules).sum();
    let reads: u64 = tallies.values().map(|t| t.reads).sum();
    assert!(
        ran >= 3 * k && reads > ran * 10,
        "too little ran to mean anything: {ran} schedules, {reads} reads\n{text}"
    );
    let violations: u64 = tallies.values().map(Tally::violations).sum();
    if !report_only {
        assert_eq!(violations, 0, "chaos found violations\n{text}");
    }
}

// ---------------------------------------------------------------------------
// The test's own parts can fail

fn read(seed: u64, worker: u64, start: u64, value: u64) -> Event {
    Event::Read {
        seed,
        worker,
        item: 0,
        start,
        end: start + 10,
        value,
    }
}

fn write(seed: u64, worker: u64, version: u64, end: u64, ok: bool) -> Event {
    Event::Write {
        seed,
        worker,
        item: 0,
        version,
        end,
        ok,
    }
}

/// A seed of a shared mode, and one of memory mode.
fn seeds() -> (u64, u64) {
    let shared = (0..).find(|&s| Mode::of(s) == Mode::WriteThrough).unwrap();
    let memory = (0..).find(|&s| Mode::of(s) == Mode::Memory).unwrap();
    (shared, memory)
}

#[test]
fn the_checker_finds_each_kind_of_violation() {
    let (s, m) = seeds();
    let t = 1_000_000_000;
    // One schedule per batch here: the batch starts at its seed.
    let batch = |first: u64, events: Vec<Event>, faults: Vec<FaultWindow>| Batch {
        first,
        count: 1,
        start_us: t,
        events,
        faults,
        setup: vec![],
    };
    let run = |b: Batch| {
        let mut tallies = BTreeMap::new();
        check(&b, &mut tallies);
        tallies
    };
    // (a): own invalidation returned Err, later read got the old value.
    let got = run(batch(
        m,
        vec![write(m, 0, 2, t + 100, false), read(m, 0, t + 200, 1)],
        vec![],
    ));
    assert_eq!(got[&Mode::Memory].a, 1);
    // Memory mode: another worker's invalidation is not checked.
    let got = run(batch(
        m,
        vec![write(m, 1, 2, t + 100, true), read(m, 0, t + 2_000_000, 1)],
        vec![],
    ));
    assert_eq!(got[&Mode::Memory].violations(), 0);
    // (b): another worker, 1.5 s later, old value; but not 0.5 s later.
    let got = run(batch(
        s,
        vec![
            write(s, 1, 2, t, true),
            read(s, 0, t + 1_500_000, 1),
            read(s, 2, t + 500_000, 1),
            read(s, 2, t + 1_600_000, 2),
        ],
        vec![],
    ));
    assert_eq!(
        (got[&Mode::WriteThrough].b, got[&Mode::WriteThrough].a),
        (1, 0)
    );
    assert_eq!(got[&Mode::WriteThrough].worst_b_us, 1_500_000);
    // A partition of the reader until 0.8 s excuses a read at 1.5 s, not at 2.
    let cut = FaultWindow {
        kind: FaultKind::Blackhole { ms: 800 },
        worker: Some(0),
        start: t + 100_000,
        end: t + 800_000,
    };
    let got = run(batch(
        s,
        vec![
            write(s, 1, 2, t, true),
            read(s, 0, t + 1_500_000, 1),
            read(s, 0, t + 2_000_000, 1),
        ],
        vec![cut],
    ));
    assert_eq!(
        (
            got[&Mode::WriteThrough].b,
            got[&Mode::WriteThrough].b_excused
        ),
        (1, 1)
    );
    // (c): a failed call.
    let got = run(batch(
        s,
        vec![Event::Failed {
            seed: s,
            worker: 0,
            what: "boom".into(),
        }],
        vec![],
    ));
    assert_eq!(got[&Mode::WriteThrough].c, 1);
}

#[test]
fn the_fault_proxy_forwards_resets_blackholes_and_delays() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let client = redis::Client::open(proxy.redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let ping = |c: &mut redis::Connection| redis::cmd("PING").query::<String>(c);
    assert_eq!(ping(&mut conn).unwrap(), "PONG");
    assert_eq!(proxy.open_connections(), 1);

    proxy.reset_all();
    assert!(ping(&mut conn).is_err(), "a reset connection fails");
    let mut conn = client.get_connection().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(ping(&mut conn).unwrap(), "PONG", "new connections work");

    proxy.blackhole();
    assert!(ping(&mut conn).is_err(), "a blackhole answers nothing");
    proxy.heal();
    assert!(ping(&mut conn).is_err(), "healing closes what lost bytes");
    let mut conn = client.get_connection().unwrap();
    assert_eq!(ping(&mut conn).unwrap(), "PONG");

    proxy.set_delay(Duration::from_millis(60));
    let started = Instant::now();
    assert_eq!(ping(&mut conn).unwrap(), "PONG");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "both directions delayed: {:?}",
        started.elapsed()
    );
    proxy.set_delay(Duration::ZERO);
    assert!(proxy.accepted() >= 3);
}

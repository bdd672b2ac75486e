//! Scheduler tests with fake vertices that count their executions (BuildKit's scheduler_test).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seal_solver::*;

#[derive(Clone, Debug)]
struct Out(String);

impl ContentId for Out {
    fn content_id(&self) -> Id {
        blake3::hash(self.0.as_bytes()).into()
    }
}

/// Concatenates its inputs and its own text; `sleep` simulates work; `fail` makes it fail.
struct Fake {
    name: String,
    produce: Arc<dyn Fn() -> String + Send + Sync>,
    execs: Arc<AtomicUsize>,
    sleep_ms: u64,
    fail: bool,
    cached: bool,
    /// Read only the first this-many bytes of each input (a selector): its key covers them alone.
    reads_prefix: Option<usize>,
    /// Runs "elsewhere" ([`Vertex::offloaded`]).
    offloaded: bool,
}

impl Vertex for Fake {
    type Output = Out;
    type Error = std::io::Error;

    fn cache_map(&self) -> CacheMap {
        let digest = blake3::hash(self.name.as_bytes()).into();
        if self.cached {
            CacheMap::new(digest)
        } else {
            CacheMap::uncached(digest)
        }
    }

    fn offloaded(&self) -> bool {
        self.offloaded
    }

    async fn input_keys(&self, inputs: &[Out]) -> std::io::Result<Vec<Id>> {
        Ok(inputs
            .iter()
            .map(|o| match self.reads_prefix {
                Some(n) => blake3::hash(&o.0.as_bytes()[..n.min(o.0.len())]).into(),
                None => o.content_id(),
            })
            .collect())
    }

    async fn exec(&self, cx: &ExecContext, inputs: &[Out]) -> std::io::Result<Out> {
        self.execs.fetch_add(1, Ordering::SeqCst);
        if self.sleep_ms > 0 {
            for _ in 0..self.sleep_ms / 10 {
                if cx.is_cancelled() {
                    return Err(std::io::Error::other("cancelled"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if self.fail {
            return Err(std::io::Error::other(format!("{} failed", self.name)));
        }
        let mut s: String = inputs
            .iter()
            .map(|o| match self.reads_prefix {
                Some(n) => o.0[..n.min(o.0.len())].to_string(),
                None => o.0.clone(),
            })
            .collect();
        s.push_str(&(self.produce)());
        Ok(Out(s))
    }
}

struct Counter(Arc<AtomicUsize>);

fn fake(name: &str, counter: &Counter) -> Fake {
    let text = name.to_string();
    Fake {
        name: name.into(),
        produce: Arc::new(move || text.clone()),
        execs: counter.0.clone(),
        sleep_ms: 0,
        fail: false,
        cached: true,
        reads_prefix: None,
        offloaded: false,
    }
}

fn counter() -> Counter {
    Counter(Arc::new(AtomicUsize::new(0)))
}

fn run(
    graph: &Graph<Fake>,
    roots: &[NodeId],
    cache: &Arc<MemoryCache<Out>>,
    options: &SolveOptions,
) -> Result<Solved<Out>, SolveError<std::io::Error>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(solve(graph, roots, cache.clone(), options, None))
}

#[test]
fn second_solve_executes_nothing() {
    let c = counter();
    let mut b = GraphBuilder::new();
    let x = b.add(fake("x", &c), &[]);
    let y = b.add(fake("y", &c), &[x]);
    let g = b.build();
    let cache = Arc::new(MemoryCache::default());
    let first = run(&g, &[y], &cache, &SolveOptions::default()).unwrap();
    assert_eq!(first.outputs[&y].0, "xy");
    assert_eq!(c.0.load(Ordering::SeqCst), 2);
    let second = run(&g, &[y], &cache, &SolveOptions::default()).unwrap();
    assert_eq!(
        c.0.load(Ordering::SeqCst),
        2,
        "second solve executed something"
    );
    assert!(second.status.values().all(|s| *s == NodeStatus::Cached));
    assert_eq!(second.outputs[&y].0, "xy");
}

#[test]
fn identical_vertices_collapse() {
    let c = counter();
    let mut b = GraphBuilder::new();
    let x1 = b.add(fake("x", &c), &[]);
    let x2 = b.add(fake("x", &c), &[]);
    assert_eq!(x1, x2);
    let y = b.add(fake("y", &c), &[x1, x2]);
    let g = b.build();
    assert_eq!(g.len(), 2);
    let out = run(
        &g,
        &[y],
        &Arc::new(MemoryCache::default()),
        &SolveOptions::default(),
    )
    .unwrap();
    assert_eq!(out.outputs[&y].0, "xxy");
    assert_eq!(c.0.load(Ordering::SeqCst), 2);
}

#[test]
fn no_cache_reruns_everything() {
    let c = counter();
    let mut b = GraphBuilder::new();
    let x = b.add(fake("x", &c), &[]);
    let y = b.add(fake("y", &c), &[x]);
    let g = b.build();
    let cache = Arc::new(MemoryCache::default());
    run(&g, &[y], &cache, &SolveOptions::default()).unwrap();
    let opts = SolveOptions {
        no_cache: true,
        ..SolveOptions::default()
    };
    let again = run(&g, &[y], &cache, &opts).unwrap();
    assert_eq!(c.0.load(Ordering::SeqCst), 4);
    assert!(again.status.values().all(|s| *s == NodeStatus::Executed));
    let only_y = SolveOptions {
        no_cache_nodes: BTreeSet::from([y]),
        ..SolveOptions::default()
    };
    run(&g, &[y], &cache, &only_y).unwrap();
    assert_eq!(c.0.load(Ordering::SeqCst), 5);
}

#[test]
fn early_cutoff_keeps_dependents_cached() {
    // An uncached vertex re-runs every time but yields the same content: its dependent stays cached.
    let c = counter();
    let mut b = GraphBuilder::new();
    let mut scan = fake("scan", &c);
    scan.cached = false;
    let x = b.add(scan, &[]);
    let y = b.add(fake("copy", &c), &[x]);
    let g = b.build();
    let cache = Arc::new(MemoryCache::default());
    run(&g, &[y], &cache, &SolveOptions::default()).unwrap();
    let second = run(&g, &[y], &cache, &SolveOptions::default()).unwrap();
    assert_eq!(second.status[&x], NodeStatus::Executed);
    assert_eq!(second.status[&y], NodeStatus::Cached);
}

#[test]
fn changed_input_content_invalidates_dependent_only() {
    let c = counter();
    let value = Arc::new(std::sync::Mutex::new("v1".to_string()));
    let v2 = value.clone();
    let mut b = GraphBuilder::new();
    let scan = Fake {
        name: "scan".into(),
        produce: Arc::new(move || v2.lock().unwrap().clone()),
        execs: c.0.clone(),
        sleep_ms: 0,
        fail: false,
        cached: false,
        reads_prefix: None,
        offloaded: false,
    };
    let s = b.add(scan, &[]);
    let other = b.add(fake("other", &c), &[]);
    let y = b.add(fake("copy", &c), &[s]);
    let z = b.add(fake("merge", &c), &[other, y]);
    let g = b.build();
    let cache = Arc::new(MemoryCache::default());
    run(&g, &[z], &cache, &SolveOptions::default()).unwrap();
    *value.lock().unwrap() = "v2".into();
    let second = run(&g, &[z], &cache, &SolveOptions::default()).unwrap();
    assert_eq!(second.status[&other], NodeStatus::Cached);
    assert_eq!(second.status[&y], NodeStatus::Executed);
    assert_eq!(second.status[&z], NodeStatus::Executed);
    assert_eq!(second.outputs[&z].0, "otherv2copymerge");
}

#[test]
fn independent_vertices_run_in_parallel_within_the_limit() {
    let c = counter();
    let mut b = GraphBuilder::new();
    let mut leaves = Vec::new();
    for i in 0..4 {
        let mut f = fake(&format!("leaf{i}"), &c);
        f.sleep_ms = 200;
        leaves.push(b.add(f, &[]));
    }
    let root = b.add(fake("root", &c), &leaves);
    let g = b.build();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = SolveOptions {
        max_parallelism: 2,
        ..SolveOptions::default()
    };
    rt.block_on(solve(
        &g,
        &[root],
        Arc::new(MemoryCache::default()),
        &opts,
        Some(tx),
    ))
    .unwrap();
    // Replay the events: never more than 2 running at once, and 2 did overlap.
    let mut running = 0i32;
    let mut peak = 0;
    while let Ok(ev) = rx.try_recv() {
        match ev.kind {
            EventKind::Started => {
                running += 1;
                peak = peak.max(running);
            }
            EventKind::Done { .. } => running -= 1,
            _ => {}
        }
    }
    assert_eq!(peak, 2);
}

/// The peak number of vertices running at once, replayed from the progress events.
fn peak_running(rx: &mut tokio::sync::mpsc::UnboundedReceiver<seal_solver::ProgressEvent>) -> i32 {
    let (mut running, mut peak) = (0i32, 0);
    while let Ok(ev) = rx.try_recv() {
        match ev.kind {
            EventKind::Started => {
                running += 1;
                peak = peak.max(running);
            }
            EventKind::Done { .. } => running -= 1,
            _ => {}
        }
    }
    peak
}

#[test]
fn offloaded_vertices_are_bounded_by_their_own_limit_not_the_local_one() {
    // Issue 18: remote RUNs wait on another machine, so one local core must not serialise them.
    let c = counter();
    let mut b = GraphBuilder::new();
    let mut leaves = Vec::new();
    for i in 0..6 {
        let mut f = fake(&format!("remote{i}"), &c);
        f.sleep_ms = 200;
        f.offloaded = true;
        leaves.push(b.add(f, &[]));
    }
    let root = b.add(fake("root", &c), &leaves);
    let g = b.build();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = SolveOptions {
        max_parallelism: 1,
        max_offloaded: 4,
        ..SolveOptions::default()
    };
    rt.block_on(solve(
        &g,
        &[root],
        Arc::new(MemoryCache::default()),
        &opts,
        Some(tx),
    ))
    .unwrap();
    assert_eq!(peak_running(&mut rx), 4);
}

#[test]
fn failure_cancels_siblings_and_names_the_vertex() {
    let c = counter();
    let mut b = GraphBuilder::new();
    let mut slow = fake("slow", &c);
    slow.sleep_ms = 5_000;
    let mut bad = fake("bad", &c);
    bad.fail = true;
    let s = b.add(slow, &[]);
    let f = b.add(bad, &[]);
    let root = b.add(fake("root", &c), &[s, f]);
    let g = b.build();
    let started = std::time::Instant::now();
    let err = run(
        &g,
        &[root],
        &Arc::new(MemoryCache::default()),
        &SolveOptions::default(),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "sibling was not cancelled"
    );
    assert_eq!(err.node(), Some(f));
    assert_eq!(err.to_string(), "bad failed");
}

#[test]
fn only_reachable_vertices_are_solved() {
    let c = counter();
    let mut b = GraphBuilder::new();
    let x = b.add(fake("x", &c), &[]);
    let _unused = b.add(fake("unused", &c), &[]);
    let g = b.build();
    let out = run(
        &g,
        &[x],
        &Arc::new(MemoryCache::default()),
        &SolveOptions::default(),
    )
    .unwrap();
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
}

#[test]
fn a_selective_input_key_keeps_a_vertex_cached_when_the_rest_of_its_input_changes() {
    // The COPY-over-a-rootfs shape: the vertex reads one part of its input (here its first
    // byte), so an edit elsewhere in the input must not re-run it, and an edit of that part must.
    let c = counter();
    let value = Arc::new(std::sync::Mutex::new("ab".to_string()));
    let v2 = value.clone();
    let mut b = GraphBuilder::new();
    let rootfs = Fake {
        name: "rootfs".into(),
        produce: Arc::new(move || v2.lock().unwrap().clone()),
        execs: c.0.clone(),
        sleep_ms: 0,
        fail: false,
        cached: false,
        reads_prefix: None,
        offloaded: false,
    };
    let r = b.add(rootfs, &[]);
    let mut copy = fake("copy", &c);
    copy.reads_prefix = Some(1);
    let y = b.add(copy, &[r]);
    let g = b.build();
    let cache = Arc::new(MemoryCache::default());
    assert_eq!(
        run(&g, &[y], &cache, &SolveOptions::default())
            .unwrap()
            .outputs[&y]
            .0,
        "acopy"
    );
    *value.lock().unwrap() = "aZ".into();
    let second = run(&g, &[y], &cache, &SolveOptions::default()).unwrap();
    assert_eq!(
        second.status[&y],
        NodeStatus::Cached,
        "an unread part changed"
    );
    *value.lock().unwrap() = "bZ".into();
    let third = run(&g, &[y], &cache, &SolveOptions::default()).unwrap();
    assert_eq!(
        third.status[&y],
        NodeStatus::Executed,
        "the read part changed"
    );
    assert_eq!(third.outputs[&y].0, "bcopy");
}

/// A chain of 3,000 steps (500 COPYs over the rootfs below each, say) solves on the default
/// worker stacks: each node is driven by its own task, never polled through its dependents.
#[test]
fn a_deep_chain_does_not_recurse_through_its_dependents() {
    let c = counter();
    let mut b = GraphBuilder::new();
    let mut last = b.add(fake("n0", &c), &[]);
    for i in 1..3000 {
        let mut v = fake(&format!("n{i}"), &c);
        v.produce = Arc::new(String::new);
        last = b.add(v, &[last]);
    }
    let g = b.build();
    // A runtime with small worker stacks, where 3,000 nested polls would overflow.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(256 * 1024)
        .build()
        .unwrap();
    let cache = Arc::new(MemoryCache::default());
    let out = rt
        .block_on(solve(&g, &[last], cache, &SolveOptions::default(), None))
        .unwrap();
    assert_eq!(out.outputs[&last].0, "n0");
    assert_eq!(c.0.load(Ordering::SeqCst), 3000);
}

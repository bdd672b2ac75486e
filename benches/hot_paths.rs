//! Criterion micro-benchmarks for seal's hot paths: the context scan of a no-op rebuild (stat
//! walk + file-hash cache lookups), content hashing, layer tar + zstd, cache keys and lookups
//! of a 10,000-node graph solved from the cache, RocksDB record and batched file-hash lookups,
//! and opening the store. Run: `source scripts/env.sh && cargo bench --bench hot_paths`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use seal_engine::context;
use seal_engine::ignore::IgnoreMatcher;
use seal_engine::layer::{write_layer, LayerEntry, LayerEntryKind};
use seal_engine::llb::{Compression, LayerFormat};
use seal_solver::{
    solve, CacheMap, ContentId, ExecContext, GraphBuilder, Id, MemoryCache, SolveOptions, Vertex,
};
use seal_store::Store;

/// A deterministic pseudo-random generator (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `files` files of 1-8 KiB spread over 20 directories under `dir/ctx`.
fn make_context(dir: &Path, files: usize) {
    let mut rng = Rng(42);
    for i in 0..files {
        let d = dir.join("ctx").join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&d).unwrap();
        let size = 1024 + (rng.next() % 7168) as usize;
        std::fs::write(d.join(format!("f{i:05}")), rng.bytes(size)).unwrap();
    }
}

fn context_scan(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    make_context(tmp.path(), 2_000);
    let store = Store::open(&tmp.path().join("store"), &mut || {}).unwrap();
    let ignore = IgnoreMatcher::default();
    let include = vec!["ctx".to_string()];
    // Past the racy window, then one scan to fill the file-hash cache.
    std::thread::sleep(Duration::from_millis(2_100));
    context::scan(&store, tmp.path(), &include, &ignore).unwrap();
    let mut group = c.benchmark_group("context_scan");
    group.throughput(Throughput::Elements(2_000));
    group.bench_function("noop_2000_files", |b| {
        b.iter(|| {
            let sel = context::scan(&store, tmp.path(), &include, &ignore).unwrap();
            assert_eq!(sel.files_hashed, 0);
        })
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let data = Rng(7).bytes(8 << 20);
    let mut group = c.benchmark_group("hashing");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("blake3_8MiB", |b| b.iter(|| blake3::hash(&data)));
    group.bench_function("sha256_8MiB", |b| {
        b.iter(|| {
            use sha2::Digest;
            sha2::Sha256::digest(&data)
        })
    });
    group.finish();
}

fn layer(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    make_context(tmp.path(), 500);
    let store = Store::open(&tmp.path().join("store"), &mut || {}).unwrap();
    let mut entries = Vec::new();
    let mut total = 0u64;
    for d in 0..20 {
        entries.push(LayerEntry {
            path: format!("d{d:02}"),
            kind: LayerEntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            xattrs: Default::default(),
        });
    }
    for i in 0..500 {
        let path = tmp
            .path()
            .join("ctx")
            .join(format!("d{:02}", i % 20))
            .join(format!("f{i:05}"));
        let size = std::fs::metadata(&path).unwrap().len();
        total += size;
        let blake3 = seal_engine::layers::file_hash::hash_file(&path, size).unwrap();
        entries.push(LayerEntry {
            path: format!("d{:02}/f{i:05}", i % 20),
            kind: LayerEntryKind::File {
                source: path,
                size,
                blake3,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            xattrs: Default::default(),
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let cancel = AtomicBool::new(false);
    let mut group = c.benchmark_group("layer");
    group.throughput(Throughput::Bytes(total));
    for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
        let format = LayerFormat {
            compression,
            source_date_epoch: 0,
        };
        group.bench_with_input(
            BenchmarkId::new("tar_500_files", format!("{compression:?}")),
            &format,
            |b, f| b.iter(|| write_layer(store.blobs(), &entries, *f, &cancel).unwrap()),
        );
    }
    group.finish();
}

#[derive(Clone)]
struct Text(u64);

impl ContentId for Text {
    fn content_id(&self) -> Id {
        blake3::hash(&self.0.to_le_bytes()).into()
    }
}

struct Node(u64);

impl Vertex for Node {
    type Output = Text;
    type Error = std::io::Error;

    fn cache_map(&self) -> CacheMap {
        CacheMap::new(blake3::hash(&self.0.to_le_bytes()).into())
    }

    async fn exec(&self, _cx: &ExecContext, _inputs: &[Text]) -> std::io::Result<Text> {
        Ok(Text(self.0))
    }
}

fn solver(c: &mut Criterion) {
    // 10,000 nodes, each reading up to two earlier ones: a wide, deep DAG.
    let mut rng = Rng(3);
    let mut builder = GraphBuilder::new();
    let mut ids = Vec::new();
    for i in 0..10_000u64 {
        let inputs: Vec<_> = if ids.is_empty() {
            vec![]
        } else {
            (0..2)
                .map(|_| ids[(rng.next() % ids.len() as u64) as usize])
                .collect()
        };
        ids.push(builder.add(Node(i), &inputs));
    }
    let graph = builder.build();
    let cache = Arc::new(MemoryCache::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let roots: Vec<_> = ids.clone();
    rt.block_on(solve(
        &graph,
        &roots,
        cache.clone(),
        &SolveOptions::default(),
        None,
    ))
    .unwrap();
    c.bench_function("solve_10000_nodes_all_cached", |b| {
        b.iter(|| {
            rt.block_on(solve(
                &graph,
                &roots,
                cache.clone(),
                &SolveOptions::default(),
                None,
            ))
            .unwrap()
        })
    });
}

fn rocksdb_lookups(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), &mut || {}).unwrap();
    let keys: Vec<[u8; 32]> = (0..10_000u64)
        .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
        .collect();
    for k in &keys {
        store.cache_put(k, &[0u8; 200]).unwrap();
    }
    // The file-hash entries of a 10,000-file context, looked up in one batch as a no-op does.
    let paths: Vec<std::path::PathBuf> = (0..10_000)
        .map(|i| format!("/ctx/d{:03}/f{i:05}.dat", i / 50).into())
        .collect();
    let entries: Vec<_> = paths
        .iter()
        .map(|p| {
            let stat = seal_store::FileStat {
                dev: 1,
                ino: 2,
                size: 3,
                mtime_ns: 4,
                ctime_ns: 5,
            };
            let entry = seal_store::FileHashEntry {
                stat,
                hashed_at_ns: 6,
                blake3: [7; 32],
            };
            (p.clone(), entry)
        })
        .collect();
    store.put_file_hashes(&entries).unwrap();
    drop(store);
    // Reopened: the store reads through RocksDB's read-only instance, as a no-op build does.
    let store = Store::open(tmp.path(), &mut || {}).unwrap();
    let mut group = c.benchmark_group("rocksdb");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("cache_get_10000", |b| {
        b.iter(|| {
            for k in &keys {
                assert!(store.cache_get(k).unwrap().is_some());
            }
        })
    });
    group.bench_function("file_hashes_batch_10000", |b| {
        b.iter(|| {
            let found = store.file_hashes(&paths).unwrap();
            assert!(found.iter().all(Option::is_some));
        })
    });
    group.finish();
    drop(store);
    c.bench_function("store_open_close", |b| {
        b.iter(|| drop(Store::open(tmp.path(), &mut || {}).unwrap()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = context_scan, hashing, layer, solver, rocksdb_lookups
}
criterion_main!(benches);

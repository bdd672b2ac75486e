//! Prune tests: what each kind of record, blob, snapshot and object becomes.

use super::*;

fn d(n: u8) -> Digest {
    Digest::of(&[n])
}

#[test]
fn parses_only_layer_chains() {
    let json = format!(
        r#"{{"layers":[{{"diff_id":"{}","digest":"{}","size":3,"media_type":"x"}}],"base_config":"{}"}}"#,
        d(1),
        d(2),
        d(3)
    );
    let (blobs, diff_ids) = parse_cache_record(json.as_bytes()).unwrap();
    assert_eq!(blobs, vec![d(2), d(3)]);
    assert_eq!(diff_ids, vec![d(1)]);
    assert!(parse_cache_record(&[0u8; 200]).is_none());
    assert!(parse_cache_record(br#"{"base_config":null}"#).is_none());
}

#[test]
fn hits_of_a_build_that_writes_nothing_are_logged_then_folded() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = ([1u8; 32], [2u8; 32]);
    {
        let store = Store::open(tmp.path(), &mut || {}).unwrap();
        store.cache_put(&a, b"{}").unwrap();
        store.cache_put(&b, b"{}").unwrap();
    }
    let log = tmp.path().join(USED_LOG);
    let used = |store: &Store, k: &[u8; 32]| {
        let roots = store.roots().unwrap();
        roots.cache.iter().find(|r| &r.key == k).unwrap().last_used
    };
    // Reopened read-only: a touch goes to the log, and roots see it.
    let store = Store::open(tmp.path(), &mut || {}).unwrap();
    assert!(!store.db.is_writable_open());
    append_used_log(&log, &[a], u64::MAX - 1).unwrap();
    store.touch_cache(&[b]).unwrap();
    assert!(
        !store.db.is_writable_open(),
        "a touch alone opens no writer"
    );
    assert_eq!(used(&store, &a), u64::MAX - 1);
    assert!(used(&store, &b) >= now_unix() - 5);
    // A torn record is ignored.
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[9; 7]))
        .unwrap();
    assert_eq!(read_used_log(tmp.path()).len(), 2);
    // Once the writer is open, a touch writes to the database and folds the log in.
    store.cache_put(&[3u8; 32], b"{}").unwrap();
    assert!(store.db.is_writable_open());
    store.touch_cache(&[b]).unwrap();
    assert!(!log.exists());
    assert_eq!(used(&store, &a), u64::MAX - 1);
    drop(store);
    let store = Store::open(tmp.path(), &mut || {}).unwrap();
    assert_eq!(used(&store, &a), u64::MAX - 1);
}

#[test]
fn lru_drops_the_oldest_until_it_fits() {
    let rec = |n: u8, used: u64| CacheRoot {
        key: [n; 32],
        blobs: vec![d(n)],
        diff_ids: vec![],
        last_used: used,
        readable: true,
    };
    let (a, b, c) = (rec(1, 30), rec(2, 10), rec(3, 20));
    let mut inv = Inventory::default();
    for n in 1..=4 {
        inv.blobs.insert(d(n), 100);
    }
    let images: BTreeSet<Digest> = [d(4)].into();
    let none = BTreeSet::new();
    let kept = lru_fit(vec![&a, &b, &c], 300, &inv, &images, &none);
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|r| r.key != b.key), "the oldest goes first");
    let kept = lru_fit(vec![&a, &b, &c], 0, &inv, &images, &none);
    assert!(kept.is_empty(), "images alone exceed the limit");
    let kept = lru_fit(vec![&a, &b, &c], 400, &inv, &images, &none);
    assert_eq!(kept.len(), 3);
}

#[test]
fn prune_sweeps_garbage_and_keeps_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &mut || {}).unwrap();
    let layer = store.blobs().put(b"layer").unwrap();
    let garbage = store.blobs().put(b"garbage").unwrap();
    let record = format!(
        r#"{{"layers":[{{"diff_id":"{}","digest":"{layer}","size":5,"media_type":"x"}}]}}"#,
        d(9)
    );
    store.cache_put(&[7; 32], record.as_bytes()).unwrap();
    let snaps = dir.path().join("snapshots");
    fs::create_dir_all(snaps.join(d(9).hex())).unwrap();
    fs::create_dir_all(snaps.join(d(8).hex())).unwrap();
    fs::write(snaps.join(d(8).hex()).join("f"), b"12345").unwrap();
    fs::create_dir_all(snaps.join(".unpack-x")).unwrap();
    // Path indexes of a live and of a dead layer blob.
    let index = [
        ("a".to_string(), b"r".to_vec()),
        ("a/b".to_string(), b"s".to_vec()),
    ];
    store.put_layer_index(&layer, &index).unwrap();
    store.put_layer_index(&garbage, &index).unwrap();

    let dry = store
        .prune(&PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(dry.blobs, Amount { count: 1, bytes: 7 });
    assert_eq!(dry.snapshots, Amount { count: 1, bytes: 5 });
    assert_eq!(dry.temp.count, 1);
    assert!(store.blobs().contains(&garbage));

    let done = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(
        done,
        PruneReport {
            dry_run: false,
            ..dry
        }
    );
    assert!(!store.blobs().contains(&garbage));
    assert!(store.blobs().contains(&layer));
    assert!(store.layer_index_complete(&layer).unwrap());
    assert_eq!(
        store.layer_path(&layer, "a/b").unwrap().as_deref(),
        Some(&b"s"[..])
    );
    assert!(
        !store.layer_index_complete(&garbage).unwrap(),
        "dropped with its blob"
    );
    assert_eq!(store.layer_path(&garbage, "a").unwrap(), None);
    assert_eq!(store.layer_path(&garbage, "a/b").unwrap(), None);
    assert!(snaps.join(d(9).hex()).is_dir());
    assert!(!snaps.join(d(8).hex()).exists());
    assert!(!snaps.join(".unpack-x").exists());

    // Remote input trees survive a partial prune and go with `--all`.
    store.reapi_tree_put("chain:x", b"{}").unwrap();
    store.prune(&PruneOptions::default()).unwrap();
    assert!(store.reapi_tree_get("chain:x").unwrap().is_some());
    let all = store
        .prune(&PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(all.cache_records, 1);
    assert_eq!(all.blobs.count, 1);
    assert!(store.cache_get(&[7; 32]).unwrap().is_none());
    assert!(store.roots().unwrap().cache.is_empty());
    assert!(store.reapi_tree_get("chain:x").unwrap().is_none());
}

#[test]
fn prune_forgets_remote_blobs_nothing_needs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &mut || {}).unwrap();
    let remote = |n: u8| {
        (
            d(n),
            crate::RemoteBlob {
                size: 5,
                media_type: "x".into(),
                source: crate::RemoteSource::Registry {
                    repository: "127.0.0.1:5000/cache".into(),
                },
            },
        )
    };
    store.mark_remote(&[remote(5), remote(6)]).unwrap();
    // The remote executor's trees live apart: they are not remote blobs, and the prune of
    // one kind leaves the other alone.
    store.reapi_tree_put("chain:y", b"{}").unwrap();
    assert_eq!(store.db.scan_prefix(CF_REMOTE, b"").unwrap().len(), 2);
    let record = format!(
        r#"{{"layers":[{{"diff_id":"{}","digest":"{}","size":5,"media_type":"x"}}]}}"#,
        d(9),
        d(5)
    );
    store.cache_put(&[7; 32], record.as_bytes()).unwrap();
    store.prune(&PruneOptions::default()).unwrap();
    let left: Vec<Digest> = store
        .remote_blobs()
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(left, [d(5)], "the record's remote blob stays");
    assert!(store.reapi_tree_get("chain:y").unwrap().is_some());
    store
        .prune(&PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert!(store.remote_blobs().unwrap().is_empty());
}

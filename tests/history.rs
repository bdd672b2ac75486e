//! `seal history NAME`: each layer's size (the manifest's), the Kubefile line that made it
//! (the config's history) and when it was built (the store's step records), newest first.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Ctx, Seal};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn history_json(seal: &Seal, ctx: &Ctx, name: &str) -> Vec<serde_json::Value> {
    let out = seal.run_in(ctx.path(), &["history", "--format", "json", name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout))
        .as_array()
        .expect("an array")
        .clone()
}

#[test]
fn history_pairs_layers_with_their_lines_sizes_and_build_times() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    // Incompressible bytes, so the layer's size shows the file's.
    let mut big = vec![0u8; 200_000];
    blake3::Hasher::new().finalize_xof().fill(&mut big);
    ctx.kubefile("FROM scratch\nCOPY big.bin /\nENV MODE=fast\nCOPY small.txt /etc/\n")
        .file("big.bin", &big)
        .file("small.txt", "small\n");
    let started = now();
    seal.build_ok(ctx.path(), "app:1", &[]);
    let first_done = now();

    let inspect = seal.inspect("app:1");
    let layers = inspect["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let rows = history_json(&seal, &ctx, "app:1");
    let lines: Vec<&str> = rows
        .iter()
        .map(|r| r["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        ["COPY small.txt /etc/", "ENV MODE=fast", "COPY big.bin /"]
    );
    for (row, layer) in [(&rows[0], &layers[1]), (&rows[2], &layers[0])] {
        assert_eq!(row["layer"], layer["digest"], "{row}");
        assert_eq!(row["size"], layer["size"], "{row}");
        let built = row["built_at"].as_u64().expect("a build time");
        assert!((started..=first_done).contains(&built), "{row}");
    }
    assert_eq!(rows[1]["layer"], serde_json::Value::Null);
    assert_eq!(rows[1]["size"], 0);
    assert!(
        layers[0]["size"].as_u64().unwrap() > 100_000,
        "the big file's layer"
    );

    // A later build that changes one layer: only that layer's time moves.
    std::thread::sleep(Duration::from_millis(1100));
    ctx.file("small.txt", "small, edited\n");
    seal.build_ok(ctx.path(), "app:1", &[]);
    let again = history_json(&seal, &ctx, "app:1");
    assert_eq!(again[2]["built_at"], rows[2]["built_at"], "unchanged layer");
    assert!(
        again[0]["built_at"].as_u64().unwrap() > first_done,
        "{} after {first_done}",
        again[0]
    );

    let table = seal.run_in(ctx.path(), &["history", "app:1"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("LAYER") && lines[0].contains("CREATED BY"),
        "{}",
        table.stdout
    );
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    let short = &again[0]["layer"].as_str().unwrap()[..19];
    assert!(lines[1].starts_with(short), "{}", table.stdout);
    assert!(
        lines[1].ends_with("COPY small.txt /etc/") && lines[1].contains(" ago"),
        "{}",
        table.stdout
    );
    assert!(
        lines[2].starts_with("-  ") && lines[2].ends_with("ENV MODE=fast"),
        "{}",
        table.stdout
    );
}

#[test]
fn a_name_the_store_never_built_has_no_build_times() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY a.txt /\n")
        .file("a.txt", "a\n");
    seal.build_ok(ctx.path(), "app:1", &[]);
    let tag = seal.run_in(ctx.path(), &["tag", "app:1", "other:1"]);
    assert_eq!(tag.code, 0, "{}", tag.stderr);
    let rows = history_json(&seal, &ctx, "other:1");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["built_at"], serde_json::Value::Null);
    // The config's `created` is SOURCE_DATE_EPOCH: the epoch, which the table does not show
    // as a build time.
    assert_eq!(rows[0]["created"], "1970-01-01T00:00:00Z");
    let table = seal.run_in(ctx.path(), &["history", "other:1"]);
    let row = table.stdout.lines().nth(1).unwrap_or_default().to_string();
    let when: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&when[3..], ["-", "COPY", "a.txt", "/"], "{}", table.stdout);

    let missing = seal.run_in(ctx.path(), &["history", "nope:1"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no image named"),
        "{}",
        missing.stderr
    );
}

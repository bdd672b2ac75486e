//! Style checks that run with `cargo test` (STYLE.md): every source file of the workspace opens
//! with a `//!` paragraph, ARCHITECTURE.md names every crate, and nothing outside tests and
//! scripts reaches into `../shared/`.

use std::fs;
use std::path::{Path, PathBuf};

const CRATES: [&str; 5] = ["cli", "frontend", "engine", "solver", "store"];

#[test]
fn every_file_opens_with_a_module_doc() {
    let missing: Vec<String> = workspace_rust_files()
        .into_iter()
        .filter(|f| !fs::read_to_string(f).unwrap_or_default().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` first line: {missing:?}"
    );
}

#[test]
fn architecture_md_maps_every_crate() {
    let text = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for krate in CRATES {
        assert!(
            text.contains(&format!("### `{krate}/`")),
            "ARCHITECTURE.md has no section for {krate}/"
        );
    }
}

#[test]
fn product_code_does_not_depend_on_shared() {
    let offenders: Vec<String> = CRATES
        .iter()
        .flat_map(|c| rust_files(&root().join(c)))
        .filter(|f| !f.components().any(|c| c.as_os_str() == "tests"))
        .filter(|f| {
            fs::read_to_string(f)
                .unwrap_or_default()
                .contains("../shared")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "product code reads ../shared at run time: {offenders:?}"
    );
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in CRATES.iter().chain(&["tests", "benches"]) {
        files.extend(rust_files(&root().join(dir)));
    }
    files
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "test_data") {
                continue;
            }
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

//! Golden tests: every `test_data/ok/<case>.kubefile` parses and checks cleanly and its tree
//! matches `<case>.tree`; every `test_data/err/<case>.kubefile` has diagnostics, rendered as in
//! `<case>.err`. Run with `UPDATE_EXPECT=1` to (re)write the snapshots, then review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use seal_frontend::diagnostic::render_all;
use seal_frontend::dump::dump;
use seal_frontend::parse_checked;

#[test]
fn ok_cases_match_their_trees() {
    let mut failures = Vec::new();
    for case in cases("ok") {
        let source = read(&case);
        let parsed = parse_checked(&source);
        if !parsed.errors.is_empty() {
            failures.push(format!(
                "{}: expected no diagnostics, got:\n{}",
                case.display(),
                render_all(&parsed.errors, "Kubefile", &source)
            ));
            continue;
        }
        check_snapshot(
            &case.with_extension("tree"),
            &dump(&parsed.kubefile),
            &mut failures,
        );
    }
    report(failures);
}

#[test]
fn err_cases_match_their_diagnostics() {
    let mut failures = Vec::new();
    for case in cases("err") {
        let source = read(&case);
        let parsed = parse_checked(&source);
        if parsed.errors.is_empty() {
            failures.push(format!(
                "{}: expected diagnostics, got none",
                case.display()
            ));
            continue;
        }
        let rendered = render_all(&parsed.errors, "Kubefile", &source);
        check_snapshot(&case.with_extension("err"), &rendered, &mut failures);
    }
    report(failures);
}

/// The `*.kubefile` files of `test_data/<dir>`, sorted.
fn cases(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(dir);
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "kubefile"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn check_snapshot(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        fs::write(path, actual)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        return;
    }
    match fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs (UPDATE_EXPECT=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) => failures.push(format!(
            "{} is missing (UPDATE_EXPECT=1 writes it)\n--- actual\n{actual}",
            path.display()
        )),
    }
}

fn report(failures: Vec<String>) {
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

//! `seal fsck`: check the store; `--repair` drops what is broken. Exit 1 when problems remain.

use std::path::Path;

use seal_store::{temp_leftovers, FsckReport, Problem};

use crate::args::FsckArgs;
use crate::commands::{open_existing_store, open_store};
use crate::failure::Failure;
use crate::output::outln;
use seal_store::human_size;

/// Run `seal fsck`.
pub fn run(root: &Path, args: FsckArgs) -> Result<(), Failure> {
    if !args.repair {
        let report = open_existing_store(root)?.fsck()?;
        print_report(&report, &[])?;
        // Leftovers of a killed process are listed but are not damage: the store's invariants
        // hold with them, and the next build removes them.
        let damage = report.problems.iter().filter(|p| p.is_damage()).count();
        if damage == 0 {
            outln!("no problems found")?;
            return Ok(());
        }
        outln!("{damage} problems found (`seal fsck --repair` drops what is broken)")?;
        return Err(Failure::Reported);
    }
    // Opening for writing empties tmp/: list its leftovers first to say what was removed.
    if !root.join("db").exists() {
        // Repair never creates a store: fail as the read-only check does.
        open_existing_store(root)?;
    }
    let before = temp_leftovers(root);
    let store = open_store(root)?;
    let cleaned: Vec<Problem> = before
        .into_iter()
        .filter(|(path, _)| !root.join(path).exists())
        .map(|(path, bytes)| Problem::Leftover { path, bytes })
        .collect();
    let report = store.fsck()?;
    print_report(&report, &cleaned)?;
    for p in &cleaned {
        if let Problem::Leftover { path, .. } = p {
            outln!("repaired: removed leftover {}", path.display())?;
        }
    }
    for line in store.repair(&report)? {
        outln!("repaired: {line}")?;
    }
    let left = report
        .problems
        .iter()
        .filter(|p| matches!(p, Problem::UnreadableBlob { .. }))
        .count();
    if left > 0 {
        outln!("{left} problems could not be repaired")?;
        return Err(Failure::Reported);
    }
    let found = report.problems.len() + cleaned.len();
    if found == 0 {
        outln!("no problems found")?;
    } else {
        outln!("{found} problems found and repaired")?;
    }
    Ok(())
}

fn print_report(report: &FsckReport, extra: &[Problem]) -> Result<(), Failure> {
    outln!(
        "checked {} images, {} cache records, {} blobs, {} snapshot objects, {} snapshot images",
        report.images,
        report.cache_records,
        report.blobs,
        report.objects,
        report.images_checked
    )?;
    if report.remote_blobs > 0 {
        outln!(
            "{} remote blobs (named by a cache import, downloaded when needed; not missing)",
            report.remote_blobs
        )?;
    }
    for p in extra.iter().chain(&report.problems) {
        if p.is_damage() {
            outln!("problem: {p}")?;
        } else {
            outln!("{p} (an interrupted write; the next build or `--repair` removes it)")?;
        }
    }
    for o in &report.orphans {
        outln!("unreferenced: {o}")?;
    }
    if !report.orphans.is_empty() {
        let bytes: u64 = report
            .orphans
            .iter()
            .map(|o| match o {
                seal_store::Orphan::Blob { bytes, .. }
                | seal_store::Orphan::Snapshot { bytes, .. }
                | seal_store::Orphan::Object { bytes, .. } => *bytes,
            })
            .sum();
        outln!(
            "{} unreferenced blobs and snapshots ({}): `seal prune` frees them",
            report.orphans.len(),
            human_size(bytes)
        )?;
    }
    if !report.leftovers_checked {
        outln!("note: a build holds the store; temp leftovers were not checked")?;
    }
    Ok(())
}

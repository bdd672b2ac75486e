//! `seal prune`: mark and sweep. Keeps whatever an image name or a kept cache record reaches;
//! deletes every other blob, snapshot and temp leftover. `--all`, `--keep-duration` and
//! `--keep-storage` choose which cache records to drop first.

use std::path::Path;

use seal_store::{temp_leftovers, Amount, PruneOptions, PruneReport};

use crate::args::{FormatArg, PruneArgs};
use crate::commands::{open_existing_store, open_store};
use crate::failure::Failure;
use crate::output::outln;
use seal_store::human_size;

/// Run `seal prune`.
pub fn run(root: &Path, args: PruneArgs) -> Result<(), Failure> {
    let options = PruneOptions {
        all: args.all,
        keep_duration: args.keep_duration,
        keep_storage: args.keep_storage,
        dry_run: args.dry_run,
    };
    let report = if !root.join("db").exists() {
        PruneReport {
            dry_run: args.dry_run,
            ..PruneReport::default()
        }
    } else if args.dry_run {
        // A read-only view: opening for writing would already remove temp leftovers.
        open_existing_store(root)?.prune(&options)?
    } else {
        // Opening for writing removes temp leftovers: list them first to report them.
        let leftovers = temp_leftovers(root);
        let store = open_store(root)?;
        let mut removed = Amount::default();
        for (path, bytes) in leftovers {
            if !root.join(path).exists() {
                removed.add(bytes);
            }
        }
        let mut report = store.prune(&options)?;
        report.temp.count += removed.count;
        report.temp.bytes += removed.bytes;
        report
    };
    match args.format {
        FormatArg::Json => {
            let mut value = serde_json::to_value(&report)?;
            value["total_bytes"] = report.total_bytes().into();
            outln!("{value}")?;
        }
        FormatArg::Table => {
            let verb = if report.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            outln!("{verb} {} cache records", report.cache_records)?;
            for (what, amount) in [
                ("blobs", report.blobs),
                ("snapshots", report.snapshots),
                ("snapshot objects", report.objects),
                ("temp files", report.temp),
            ] {
                outln!(
                    "{verb} {} {what} ({})",
                    amount.count,
                    human_size(amount.bytes)
                )?;
            }
            let total = report.total_bytes();
            if report.dry_run {
                outln!(
                    "would free {} in total; nothing was deleted (--dry-run)",
                    human_size(total)
                )?;
            } else {
                outln!("freed {} in total", human_size(total))?;
            }
        }
    }
    Ok(())
}

//! `seal du`: the store's space by kind (the same classification `seal prune` sweeps by).

use std::path::Path;

use seal_store::Usage;

use crate::args::{DuArgs, FormatArg};
use crate::commands::open_existing_store;
use crate::failure::Failure;
use crate::output::{errln, outln};
use seal_store::human_size;

/// Run `seal du`.
pub fn run(root: &Path, args: DuArgs) -> Result<(), Failure> {
    let usage = if root.join("db").exists() {
        open_existing_store(root)?.usage()?
    } else {
        Usage::default()
    };
    for damaged in &usage.damaged_images {
        errln!("warning: image {damaged} (run `seal fsck`)");
    }
    match args.format {
        FormatArg::Json => {
            let mut value = serde_json::to_value(&usage)?;
            value["total_bytes"] = usage.total_bytes().into();
            outln!("{value}")?;
        }
        FormatArg::Table => {
            outln!("{:<20}  {:>7}  {:>10}", "KIND", "COUNT", "SIZE")?;
            for (kind, a) in [
                ("image blobs", usage.image_blobs),
                ("cache-only blobs", usage.cache_blobs),
                ("unreferenced blobs", usage.unreferenced_blobs),
                ("snapshots", usage.snapshots),
                ("snapshot objects", usage.objects),
                ("temp files", usage.temp),
                ("metadata", usage.metadata),
            ] {
                outln!("{kind:<20}  {:>7}  {:>10}", a.count, human_size(a.bytes))?;
            }
            if usage.remote_blobs.count > 0 {
                outln!(
                    "{:<20}  {:>7}  {:>10}  (not downloaded; not in the total)",
                    "remote blobs",
                    usage.remote_blobs.count,
                    human_size(usage.remote_blobs.bytes)
                )?;
            }
            outln!(
                "{:<20}  {:>7}  {:>10}",
                "total",
                "",
                human_size(usage.total_bytes())
            )?;
            outln!(
                "{} images, {} cache records; `seal prune` would free {} \
                 (`--all` also {} of cache-only blobs)",
                usage.images,
                usage.cache_records,
                human_size(usage.reclaimable),
                human_size(usage.cache_blobs.bytes)
            )?;
        }
    }
    Ok(())
}

//! `seal du`: the store's space by kind (the same classification `seal prune` sweeps by).

use std::path::Path;

use seal_store::{Amount, Usage};

use crate::args::{DuArgs, FormatArg};
use crate::commands::open_existing_store;
use crate::failure::Failure;
use seal_store::human_size;

/// Run `seal du`.
pub fn run(root: &Path, args: DuArgs) -> Result<(), Failure> {
    let usage = if root.join("db").exists() {
        open_existing_store(root)?.usage()?
    } else {
        Usage::default()
    };
    for damaged in &usage.damaged_images {
        eprintln!("warning: image {damaged} (run `seal fsck`)");
    }
    match args.format {
        FormatArg::Json => {
            let mut value = serde_json::to_value(&usage)?;
            value["total_bytes"] = usage.total_bytes().into();
            println!("{value}");
        }
        FormatArg::Table => {
            println!("{:<20}  {:>7}  {:>10}", "KIND", "COUNT", "SIZE");
            let row = |kind: &str, a: Amount| {
                println!("{kind:<20}  {:>7}  {:>10}", a.count, human_size(a.bytes));
            };
            row("image blobs", usage.image_blobs);
            row("cache-only blobs", usage.cache_blobs);
            row("unreferenced blobs", usage.unreferenced_blobs);
            row("snapshots", usage.snapshots);
            row("temp files", usage.temp);
            row("metadata", usage.metadata);
            println!(
                "{:<20}  {:>7}  {:>10}",
                "total",
                "",
                human_size(usage.total_bytes())
            );
            println!(
                "{} images, {} cache records; `seal prune` would free {} \
                 (`--all` also {} of cache-only blobs)",
                usage.images,
                usage.cache_records,
                human_size(usage.reclaimable),
                human_size(usage.cache_blobs.bytes)
            );
        }
    }
    Ok(())
}

//! `seal images`: the named images in the store, as a table or JSON.

use std::path::Path;

use seal_store::now_unix;

use crate::args::{FormatArg, ImagesArgs};
use crate::commands::open_existing_store;
use crate::failure::Failure;

/// Run `seal images`.
pub fn run(root: &Path, args: ImagesArgs) -> Result<(), Failure> {
    let rows = if root.join("db").exists() {
        let store = open_existing_store(root)?;
        let mut rows = Vec::new();
        for (name, record) in store.images()? {
            let size = store
                .manifest(&record.manifest)
                .map(|m| m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>())
                .unwrap_or(0);
            rows.push((name, record, size));
        }
        rows
    } else {
        Vec::new()
    };
    match args.format {
        FormatArg::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|(name, r, size)| serde_json::json!({ "name": name, "digest": r.manifest, "size": size, "tagged_at": r.tagged_at }))
                .collect();
            println!("{}", serde_json::Value::Array(items));
        }
        FormatArg::Table => {
            let width = rows
                .iter()
                .map(|(n, _, _)| n.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<width$}  {:<19}  {:>10}  TAGGED",
                "NAME", "DIGEST", "SIZE"
            );
            let now = now_unix();
            for (name, r, size) in rows {
                let short = format!("sha256:{}", &r.manifest.hex()[..12]);
                println!(
                    "{name:<width$}  {short:<19}  {:>10}  {} ago",
                    human_size(size),
                    human_age(now.saturating_sub(r.tagged_at))
                );
            }
        }
    }
    Ok(())
}

use seal_store::human_size;

fn human_age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

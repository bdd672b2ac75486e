//! `seal history NAME`: an image's layers, newest first, each with its size, the Kubefile
//! line that made it and when it was built.
//!
//! The lines come from the image config's history (an entry that is not `empty_layer` pairs
//! with the next layer, as every OCI tool pairs them). The time comes from what the store knows:
//! the step records of the name's builds (`seal_engine::explain`) say when each layer was
//! built. The config's own `created` is `SOURCE_DATE_EPOCH` (1970 unless set), so it is shown
//! only when it is not the epoch and the store knows nothing better.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use seal_store::{human_size, now_unix};

use crate::args::{FormatArg, HistoryArgs};
use crate::commands::images::human_age;
use crate::commands::{find_image, open_existing_store};
use crate::failure::Failure;
use crate::output::outln;

/// One history entry with what the store knows of its layer.
struct Row {
    /// The layer blob, for an entry that made one.
    layer: Option<(String, u64)>,
    line: String,
    /// The config's `created`.
    created: Option<String>,
    /// Unix seconds the store recorded for the layer's build.
    built: Option<u64>,
}

/// Run `seal history`.
pub fn run(root: &Path, args: HistoryArgs) -> Result<(), Failure> {
    let store = open_existing_store(root)?;
    let (name, record) = find_image(&store, &args.name)?;
    let manifest = store
        .manifest(&record.manifest)
        .context("reading the manifest")?;
    let config = store
        .config(&manifest.config.digest)
        .context("reading the config")?;
    let steps = seal_engine::explain::record::load(&store, &name)
        .with_context(|| format!("reading the build records of {name}"))?;
    let built: HashMap<&str, u64> = steps
        .values()
        .flat_map(|s| s.layers.iter().map(move |l| (l.as_str(), s.built_at)))
        .collect();

    let mut layers = manifest.layers.iter();
    let mut rows: Vec<Row> = Vec::new();
    for entry in &config.history {
        let layer = if entry.empty_layer {
            None
        } else {
            layers.next()
        };
        rows.push(Row {
            layer: layer.map(|l| (l.digest.to_string(), l.size)),
            line: one_line(entry.created_by.as_deref().unwrap_or("")),
            created: entry.created.clone(),
            built: layer.and_then(|l| built.get(l.digest.to_string().as_str()).copied()),
        });
    }
    // Layers the history does not account for (an image written by a tool that kept none).
    for l in layers {
        rows.push(Row {
            layer: Some((l.digest.to_string(), l.size)),
            line: String::new(),
            created: None,
            built: built.get(l.digest.to_string().as_str()).copied(),
        });
    }
    rows.reverse();
    match args.format {
        FormatArg::Json => print_json(&rows),
        FormatArg::Table => print_table(&rows),
    }
}

fn print_json(rows: &[Row]) -> Result<(), Failure> {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "layer": r.layer.as_ref().map(|(d, _)| d),
                "size": r.layer.as_ref().map_or(0, |(_, s)| *s),
                "created_by": r.line,
                "created": r.created,
                "built_at": r.built,
                "empty_layer": r.layer.is_none(),
            })
        })
        .collect();
    outln!("{}", serde_json::Value::Array(items))?;
    Ok(())
}

fn print_table(rows: &[Row]) -> Result<(), Failure> {
    outln!(
        "{:<19}  {:>10}  {:<20}  CREATED BY",
        "LAYER",
        "SIZE",
        "BUILT"
    )?;
    let now = now_unix();
    for r in rows {
        let (layer, size) = match &r.layer {
            Some((digest, size)) => (short(digest), human_size(*size)),
            None => ("-".to_string(), human_size(0)),
        };
        let when = match (r.built, &r.created) {
            (Some(at), _) => format!("{} ago", human_age(now.saturating_sub(at))),
            (None, Some(created)) if !created.starts_with("1970-01-01T00:00:00") => {
                created.replace('T', " ").trim_end_matches('Z').to_string()
            }
            _ => "-".into(),
        };
        outln!("{layer:<19}  {size:>10}  {when:<20}  {}", r.line)?;
    }
    Ok(())
}

/// `sha256:0123456789ab`.
fn short(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// A history line on one line (a heredoc's body joined with `⏎`).
fn one_line(text: &str) -> String {
    text.trim().lines().collect::<Vec<_>>().join(" ⏎ ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_digests_are_shortened_for_the_table() {
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab");
        assert_eq!(
            one_line("RUN <<EOF\necho hi\nEOF\n"),
            "RUN <<EOF ⏎ echo hi ⏎ EOF"
        );
    }
}

//! `seal images`: the named images in the store, as a table, JSON or names only (`-q`),
//! optionally only those of one repository or name.
//!
//! An image whose manifest cannot be read (a damaged store, or one this user may not read)
//! is listed without a size, and the command fails after the listing, naming the error.

use std::path::Path;

use anyhow::anyhow;
use seal_store::{human_size, now_unix, ImageRecord, Reference};

use crate::args::{FormatArg, ImagesArgs};
use crate::commands::{image_name, open_existing_store};
use crate::failure::{chain_text, Failure};
use crate::output::{errln, outln};

/// One listed image: its name, record, and size (or why it is unknown).
struct Row {
    name: String,
    record: ImageRecord,
    size: Result<u64, String>,
    /// Bytes of its layers that are remote (a cache import's, not downloaded).
    remote: u64,
    /// The platforms of a multi-platform image (empty for one image).
    platforms: Vec<String>,
}

/// What `images` shows of one image's blobs.
struct Sizes {
    /// The bytes of its distinct blobs (every platform's, for an index).
    total: u64,
    /// Of those, the bytes of layers that are remote.
    remote: u64,
    /// The platforms of an index.
    platforms: Vec<String>,
}

fn image_size(
    store: &seal_store::Store,
    digest: &seal_store::Digest,
) -> Result<Sizes, seal_store::StoreError> {
    let mut blobs = std::collections::BTreeMap::new();
    let mut layers = std::collections::BTreeMap::new();
    let mut platforms = Vec::new();
    for entry in store.image_manifests(digest)? {
        let m = store.manifest(&entry.digest)?;
        for d in std::iter::once(&m.config).chain(&m.layers) {
            blobs.insert(d.digest.clone(), d.size);
        }
        for l in &m.layers {
            layers.insert(l.digest.clone(), l.size);
        }
        platforms.extend(entry.platform.map(|p| p.to_string()));
    }
    let remote = layers
        .iter()
        .filter(|(d, _)| !store.blobs().contains(d))
        .filter(|(d, _)| store.remote_blob(d).ok().flatten().is_some())
        .map(|(_, size)| size)
        .sum();
    Ok(Sizes {
        total: blobs.values().sum(),
        remote,
        platforms,
    })
}

/// Run `seal images`.
pub fn run(root: &Path, args: ImagesArgs) -> Result<(), Failure> {
    let filter = args.name.as_deref().map(Filter::new).transpose()?;
    let mut rows = Vec::new();
    if root.join("db").exists() {
        let store = open_existing_store(root)?;
        for (name, record) in store.images()? {
            if filter.as_ref().is_some_and(|f| !f.matches(&name, &record)) {
                continue;
            }
            let (size, remote, platforms) = if args.quiet {
                (Ok(0), 0, Vec::new())
            } else {
                match image_size(&store, &record.manifest) {
                    Ok(s) => (Ok(s.total), s.remote, s.platforms),
                    Err(e) => (Err(chain_text(&anyhow::Error::new(e))), 0, Vec::new()),
                }
            };
            rows.push(Row {
                name,
                record,
                size,
                remote,
                platforms,
            });
        }
    }
    if args.quiet {
        for row in &rows {
            outln!("{}", row.name)?;
        }
        return Ok(());
    }
    match args.format {
        FormatArg::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r.name,
                        "digest": r.record.manifest,
                        "size": r.size.as_ref().ok(),
                        "remote_bytes": r.remote,
                        "tagged_at": r.record.tagged_at,
                        "platforms": r.platforms,
                    })
                })
                .collect();
            outln!("{}", serde_json::Value::Array(items))?;
        }
        FormatArg::Table => {
            let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
            outln!(
                "{:<width$}  {:<19}  {:>10}  TAGGED",
                "NAME",
                "DIGEST",
                "SIZE"
            )?;
            let now = now_unix();
            for r in &rows {
                let short = format!("sha256:{}", &r.record.manifest.hex()[..12]);
                let size = match &r.size {
                    Ok(size) => human_size(*size),
                    Err(_) => "?".into(),
                };
                let remote = match r.remote {
                    0 => String::new(),
                    n => format!("  ({} remote)", human_size(n)),
                };
                let platforms = if r.platforms.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.platforms.join(", "))
                };
                outln!(
                    "{:<width$}  {short:<19}  {size:>10}  {} ago{platforms}{remote}",
                    r.name,
                    human_age(now.saturating_sub(r.record.tagged_at))
                )?;
            }
        }
    }
    let unreadable: Vec<&Row> = rows.iter().filter(|r| r.size.is_err()).collect();
    if unreadable.is_empty() {
        return Ok(());
    }
    for r in &unreadable {
        if let Err(e) = &r.size {
            errln!("error: {}: {e}", r.name);
        }
    }
    Err(Failure::Error(anyhow!(
        "{} of {} images could not be read (see above; `seal fsck` checks a damaged store)",
        unreadable.len(),
        rows.len()
    )))
}

/// `seal images NAME`: a name with a tag matches that name only; without one, every tag of
/// the repository (as `docker images nginx` does); `@sha256:...` keeps the names pointing at
/// that manifest. Sealer's defaults apply.
struct Filter {
    reference: Reference,
    /// The input named a tag (`x:1`); names default to `:latest`, which must not narrow
    /// `seal images x` to `x:latest`.
    tagged: bool,
}

impl Filter {
    fn new(input: &str) -> Result<Filter, Failure> {
        let before_digest = input.split('@').next().unwrap_or_default();
        let tagged = before_digest
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        Ok(Filter {
            reference: image_name(input)?,
            tagged,
        })
    }

    fn matches(&self, stored: &str, record: &ImageRecord) -> bool {
        let Ok(stored) = Reference::parse_cluster_image(stored) else {
            return false;
        };
        let wanted = &self.reference;
        stored.repository() == wanted.repository()
            && (!self.tagged || stored.tag_or_latest() == wanted.tag_or_latest())
            && wanted.digest.as_ref().is_none_or(|d| d == &record.manifest)
    }
}

/// `42s`, `5m`, `3h`, `2d`.
pub(crate) fn human_age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

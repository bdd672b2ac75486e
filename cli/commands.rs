//! One file per subcommand, plus what they share.

pub mod bench;
pub mod build;
pub mod cloud;
pub mod du;
pub mod fsck;
pub mod history;
pub mod images;
pub mod inspect;
pub mod load;
pub mod manual;
pub mod prune;
pub mod registry;
pub mod rmi;
pub mod save;
pub mod scan;

use std::path::Path;

use anyhow::Context;
use seal_store::{ImageRecord, Reference, Store};

use crate::failure::Failure;
use crate::output::errln;

/// Open the store, telling the user when another process holds it.
pub fn open_store(root: &Path) -> anyhow::Result<Store> {
    Store::open(root, &mut || {
        errln!(
            "waiting for another seal process to release the store at {} ...",
            root.display()
        )
    })
    .with_context(|| format!("opening the store at {}", root.display()))
}

/// Open an existing store read-only, without waiting for a build that holds it (read-only
/// commands must neither create the store nor queue behind a build).
pub fn open_existing_store(root: &Path) -> Result<Store, Failure> {
    if !root.join("db").exists() {
        return Err(Failure::Error(anyhow::anyhow!(
            "no store at {} (build an image first, or pass --root)",
            root.display()
        )));
    }
    Ok(Store::open_read_only(root)
        .with_context(|| format!("opening the store at {}", root.display()))?)
}

/// Parse an image name given on the command line (a usage error when invalid).
pub fn image_name(name: &str) -> Result<Reference, Failure> {
    Reference::parse_cluster_image(name).map_err(|e| Failure::Usage(e.to_string()))
}

/// An image as the user names it on the command line: `NAME[:TAG]`, `NAME@sha256:...`, or a
/// manifest digest (`sha256:<hex>`) or a unique prefix of one (`3f9a2c`, at least 4 hex
/// digits when it could also be a name). Returns the image's name and record.
pub fn find_image(store: &Store, input: &str) -> Result<(String, ImageRecord), Failure> {
    let not_found = || Failure::Error(anyhow::anyhow!("no image {input} in the store"));
    if let Some(hex) = input.strip_prefix("sha256:").filter(|h| is_hex(h)) {
        return by_digest_prefix(store, input, hex)?.ok_or_else(not_found);
    }
    let name = match Reference::parse_cluster_image(input) {
        Ok(name) => name,
        Err(_) if is_hex(input) => {
            return by_digest_prefix(store, input, input)?.ok_or_else(not_found)
        }
        Err(e) => return Err(Failure::Usage(e.to_string())),
    };
    if let Some(digest) = &name.digest {
        // `NAME@sha256:...`: a name of that repository (and tag, when given) pointing there.
        for (stored, record) in store.images()? {
            let Ok(parsed) = Reference::parse_cluster_image(&stored) else {
                continue;
            };
            if parsed.repository() == name.repository()
                && (name.tag.is_none() || parsed.tag_or_latest() == name.tag_or_latest())
                && &record.manifest == digest
            {
                return Ok((stored, record));
            }
        }
        return Err(not_found());
    }
    if let Some(record) = store.image(&name)? {
        return Ok((name.to_string(), record));
    }
    if input.len() >= 4 && is_hex(input) {
        if let Some(found) = by_digest_prefix(store, input, input)? {
            return Ok(found);
        }
    }
    Err(Failure::Error(anyhow::anyhow!(
        "no image named {name} in the store"
    )))
}

/// The image whose manifest digest starts with `hex` (`None` when there is none; an error
/// when several manifests do).
fn by_digest_prefix(
    store: &Store,
    input: &str,
    hex: &str,
) -> Result<Option<(String, ImageRecord)>, Failure> {
    let hex = hex.to_ascii_lowercase();
    let matching: Vec<(String, ImageRecord)> = store
        .images()?
        .into_iter()
        .filter(|(_, r)| r.manifest.hex().starts_with(&hex))
        .collect();
    let mut digests: Vec<&seal_store::Digest> = matching.iter().map(|(_, r)| &r.manifest).collect();
    digests.sort();
    digests.dedup();
    if digests.len() > 1 {
        let list: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        return Err(Failure::Usage(format!(
            "`{input}` is the start of {} image digests: {}; give more digits",
            list.len(),
            list.join(", ")
        )));
    }
    Ok(matching.into_iter().next())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The store's spelling of a platform (the store depends on no crate of ours, so it has a
/// `Platform` type of its own: docs/decisions.md).
pub fn store_platform(p: &seal_engine::Platform) -> seal_store::Platform {
    seal_store::Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
    }
}

/// `--platform` values of `pull` and `save`, parsed as `build` parses them (aliases such as
/// `x86_64` normalised), in order, without repeats.
pub fn store_platforms(values: &[String]) -> Result<Vec<seal_store::Platform>, Failure> {
    let mut out: Vec<seal_store::Platform> = Vec::new();
    for value in values {
        let p = seal_engine::Platform::parse(value.trim())
            .map_err(|e| Failure::Usage(format!("--platform: {e}")))?;
        let p = store_platform(&p);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

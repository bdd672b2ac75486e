//! The parts of a layer chain that image collection reads, without unpacking the rest: the
//! directories it scans (`manifests/`, `application/apps/`, `charts/`) extracted into a
//! scratch directory, and the digests of the blobs already under `registry/` (so the build's
//! registry layer does not store them again).
//!
//! Each layer is read once as a tar stream; entries outside those directories are skipped
//! (their bytes are never written anywhere), entries inside are copied into a filtered tar
//! that [`crate::unpack::unpack`] applies with its usual refusals and whiteout rules. A kept
//! hardlink to a file outside them becomes a copy of that file (a second pass over the layer).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use seal_store::{Digest, Store};

use crate::layer::Layer;
use crate::unpack::{self, UnpackOptions, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::EngineError;

use seal_llb::collected::{clean, concerns_scan, join, under};
/// The directories of a rootfs that collection scans.
pub use seal_llb::collected::{concerns_collection, may_change, SCANNED_DIRS};
/// Where the distribution registry keeps blobs, inside a rootfs.
pub const REGISTRY_BLOBS: &str = "registry/docker/registry/v2/blobs/sha256";

/// What one layer does to the parts collection reads.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct LayerEffect {
    /// Entries kept for the scan (written to the filtered tar).
    kept: usize,
    /// Paths whose registry blobs this layer hides (whiteouts; opaque directories end in `/`).
    removed: Vec<String>,
    /// Registry blob files this layer adds.
    added: Vec<(String, Digest)>,
    /// The kept entries as an uncompressed tar blob (when `kept > 0`).
    #[serde(default)]
    filtered: Option<Digest>,
}

impl LayerEffect {
    /// Apply to the registry blobs of the layers below.
    fn apply(&self, registry: &mut BTreeMap<String, Digest>) {
        for dir in &self.removed {
            registry.retain(|p, _| !under(p, dir.trim_end_matches('/')));
        }
        registry.extend(self.added.iter().cloned());
    }
}

/// The scanned directories of `layers` (bottom to top) extracted into `dest`, and the blobs
/// the rootfs's `registry/` already holds. Each layer is decompressed at most once per store:
/// its effect on `registry/` is remembered by diffID, with the entries it holds for the scan
/// kept as a small uncompressed tar blob (a pruned blob means reading the layer again).
pub fn extract(
    store: &Store,
    layers: &[Layer],
    dest: &Path,
) -> Result<BTreeSet<Digest>, EngineError> {
    let blobs = store.blobs();
    // Registry blob files by path, so whiteouts can remove them again.
    let mut registry: BTreeMap<String, Digest> = BTreeMap::new();
    let options = UnpackOptions {
        apply_whiteouts: true,
        ..UnpackOptions::for_current_user()
    };
    for layer in layers.iter().filter(|l| !l.collect_free) {
        let memo = format!("layer:{}", layer.diff_id);
        let remembered = store
            .collect_get(&memo)?
            .and_then(|b| serde_json::from_slice::<LayerEffect>(&b).ok())
            .filter(|e| e.filtered.as_ref().is_none_or(|d| blobs.contains(d)));
        let effect = match remembered {
            Some(effect) => effect,
            None => {
                store.ensure_local(&layer.digest)?;
                let read_layer = || -> std::io::Result<Box<dyn std::io::Read>> {
                    let blob = blobs.open(&layer.digest).map_err(std::io::Error::other)?;
                    unpack::decompress(blob, &layer.media_type).map_err(std::io::Error::other)
                };
                let mut filtered = blobs.writer()?;
                // A layer that does not read is first suspected of corruption, which the
                // user can repair, before its bytes are blamed.
                let unreadable = |e: EngineError| match blobs.check(&layer.digest, Some(layer.size))
                {
                    Err(corrupt) => EngineError::from(corrupt),
                    Ok(()) => e,
                };
                let blob = blobs.open(&layer.digest)?;
                let decompressed =
                    unpack::decompress(blob, &layer.media_type).map_err(unreadable)?;
                let mut effect = filter_layer(decompressed, &mut filtered, read_layer)
                    .map_err(|e| EngineError::io("reading a layer of", Path::new("the rootfs"), e))
                    .map_err(unreadable)?;
                if effect.kept > 0 {
                    effect.filtered = Some(filtered.commit(None)?.0);
                }
                let bytes = serde_json::to_vec(&effect)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                store.collect_put(&memo, &bytes)?;
                effect
            }
        };
        effect.apply(&mut registry);
        if let Some(filtered) = &effect.filtered {
            let file = blobs.open(filtered)?;
            unpack::unpack(std::io::BufReader::new(file), dest, &options)?;
        }
    }
    Ok(registry.into_values().collect())
}

/// Copy the entries of one layer that concern the scanned directories into `out` (a tar),
/// and note what it does to `registry/`. A kept hardlink whose target is outside the scanned
/// directories (a RUN that linked `manifests/x.yaml` to an earlier name) becomes a copy of the
/// target's bytes, read by a second pass over the layer (`read_again`), needed only then.
fn filter_layer<R: std::io::Read>(
    reader: impl std::io::Read,
    out: &mut impl std::io::Write,
    read_again: impl FnOnce() -> std::io::Result<R>,
) -> std::io::Result<LayerEffect> {
    let mut archive = tar::Archive::new(reader);
    let mut builder = tar::Builder::new(out);
    let mut effect = LayerEffect::default();
    let mut kept_paths: HashSet<String> = HashSet::new();
    // Target path -> the kept links to it (their headers and raw names).
    let mut orphans: BTreeMap<String, Vec<(tar::Header, String)>> = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = clean(&raw);
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), path.clone()),
        };
        // What the entry affects: the hidden path of a whiteout, the directory of an opaque
        // marker, else itself. A layer's whiteouts never hide its own entries.
        let affected = if name == WHITEOUT_OPAQUE {
            if under(&parent, "registry") || under("registry", &parent) {
                effect.removed.push(format!("{parent}/"));
            }
            parent.clone()
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let hidden = join(&parent, hidden);
            if under(&hidden, "registry") || under("registry", &hidden) {
                effect.removed.push(hidden.clone());
            }
            hidden
        } else {
            if entry.header().entry_type().is_file() {
                if let Some(digest) = registry_blob(&path) {
                    effect.added.push((path.clone(), digest));
                }
            }
            path.clone()
        };
        if !concerns_scan(&affected) {
            continue;
        }
        let kind = entry.header().entry_type();
        let mut header = entry.header().clone();
        if kind.is_hard_link() || kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if kind.is_hard_link() && !kept_paths.contains(&clean(&target)) {
                orphans
                    .entry(clean(&target))
                    .or_default()
                    .push((header, raw));
                kept_paths.insert(path);
                effect.kept += 1;
                continue;
            }
            builder.append_link(&mut header, &raw, &target)?;
        } else {
            builder.append_data(&mut header, &raw, &mut entry)?;
        }
        kept_paths.insert(path);
        effect.kept += 1;
    }
    if !orphans.is_empty() {
        let mut again = tar::Archive::new(read_again()?);
        for entry in again.entries()? {
            let mut entry = entry?;
            let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            let Some(links) = orphans.remove(&path) else {
                continue;
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            // The first link gets the bytes, the others link to it.
            let mut first: Option<String> = None;
            for (mut header, raw) in links {
                match &first {
                    None => {
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(entry.size());
                        header.as_old_mut().linkname = [0; 100];
                        builder.append_data(&mut header, &raw, &mut entry)?;
                        first = Some(raw);
                    }
                    Some(first) => builder.append_link(&mut header, &raw, first)?,
                }
            }
            if orphans.is_empty() {
                break;
            }
        }
    }
    builder.finish()?;
    Ok(effect)
}

/// The digest of `registry/docker/registry/v2/blobs/sha256/xx/<hex>/data`.
fn registry_blob(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix(REGISTRY_BLOBS)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (prefix, hex, data) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || data != "data" || !hex.starts_with(prefix) || prefix.len() != 2 {
        return None;
    }
    format!("sha256:{hex}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::{CopySource, FileAction, Op};

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn keeps_scanned_dirs_and_lists_registry_blobs() {
        let hex = "a".repeat(64);
        let blob = format!("{REGISTRY_BLOBS}/aa/{hex}/data");
        let layer = tar_of(&[
            ("bin/", None),
            ("bin/kubelet", Some(b"big binary")),
            ("manifests/", None),
            ("manifests/a.yaml", Some(b"image: x")),
            ("application/", None),
            ("application/other", Some(b"not scanned")),
            ("application/apps/x/app.yaml", Some(b"y")),
            (&blob, Some(b"blob")),
        ]);
        let mut out = tempfile::tempfile().unwrap();
        let mut registry = BTreeMap::new();
        let effect = filter_layer(&layer[..], &mut out, || Ok(&layer[..])).unwrap();
        effect.apply(&mut registry);
        assert_eq!(
            effect.kept, 4,
            "manifests/, its file, application/ and the app file"
        );
        assert_eq!(
            registry.values().map(|d| d.to_string()).collect::<Vec<_>>(),
            vec![format!("sha256:{hex}")]
        );
        // A later layer removing the registry removes its blobs.
        let wh = tar_of(&[(".wh.registry", Some(b""))]);
        let mut out = tempfile::tempfile().unwrap();
        filter_layer(&wh[..], &mut out, || Ok(&wh[..]))
            .unwrap()
            .apply(&mut registry);
        assert!(registry.is_empty());
    }

    /// A RUN that hardlinks a manifest to a file outside the scanned directories writes the
    /// bytes under the first name in path order (`etc/…`) and a link under `manifests/`:
    /// collection still reads the manifest (issue 11 made RUN layers keep hardlinks).
    #[test]
    fn a_manifest_hardlinked_from_outside_the_scanned_dirs_is_read() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(8);
        b.append_data(&mut h, "etc/a.yaml", &b"image: x"[..])
            .unwrap();
        for name in ["manifests/a.yaml", "manifests/b.yaml"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_mode(0o644);
            h.set_size(0);
            b.append_link(&mut h, name, "etc/a.yaml").unwrap();
        }
        let layer = b.into_inner().unwrap();
        let mut out = Vec::new();
        let effect = filter_layer(&layer[..], &mut out, || Ok(&layer[..])).unwrap();
        assert_eq!(effect.kept, 2);
        let dest = tempfile::tempdir().unwrap();
        let options = UnpackOptions {
            privileged: false,
            apply_whiteouts: true,
        };
        unpack::unpack(&out[..], dest.path(), &options).unwrap();
        for name in ["manifests/a.yaml", "manifests/b.yaml"] {
            let text = std::fs::read_to_string(dest.path().join(name)).unwrap();
            assert_eq!(text, "image: x", "{name}");
        }
        assert!(!dest.path().join("etc").exists());
    }

    #[test]
    fn which_ops_may_change_what_collection_reads() {
        use crate::llb::{CopyAction, FileOp, LayerFormat};
        let copy = |patterns: &[&str], dest: &str| {
            Op::File(FileOp {
                actions: vec![FileAction::Copy(CopyAction {
                    sources: patterns
                        .iter()
                        .map(|p| CopySource {
                            pattern: p.trim_end_matches("/.").to_string(),
                            contents_only: p.ends_with("/."),
                        })
                        .collect(),
                    dest: dest.into(),
                    chmod: None,
                    chown: None,
                })],
                format: LayerFormat {
                    compression: crate::llb::Compression::Zstd,
                    source_date_epoch: 0,
                },
            })
        };
        assert!(!may_change(&copy(&["bin"], "")));
        assert!(!may_change(&copy(&["build/kubectl"], "usr/bin")));
        assert!(!may_change(&copy(&["etc/."], "etc")));
        assert!(may_change(&copy(&["manifests"], "")));
        assert!(may_change(&copy(&["imageList"], "manifests")));
        assert!(may_change(&copy(&["src/charts"], "")));
        assert!(
            may_change(&copy(&["bin/."], "")),
            "contents of a dir into the root"
        );
        assert!(may_change(&copy(&["*.yaml"], "")), "a glob into the root");
        assert!(may_change(&copy(&["app"], "application/apps")));
        assert!(!may_change(&copy(&["x"], "application")), "application/x");
        assert!(may_change(&copy(&["apps"], "application")));
        assert!(
            may_change(&copy(&["x/."], "application")),
            "contents: maybe apps/"
        );
        assert!(may_change(&copy(&["registry"], "")));
    }

    #[test]
    fn registry_blob_paths() {
        let hex = "0b".repeat(32);
        assert!(registry_blob(&format!("{REGISTRY_BLOBS}/0b/{hex}/data")).is_some());
        assert!(registry_blob(&format!("{REGISTRY_BLOBS}/0c/{hex}/data")).is_none());
        assert!(registry_blob(&format!("{REGISTRY_BLOBS}/0b/{hex}")).is_none());
        assert!(concerns_scan("application"));
        assert!(concerns_scan("charts/x/Chart.yaml"));
        assert!(!concerns_scan("chartsx"));
        assert!(!concerns_scan("registry/docker"));
        assert!(concerns_collection("registry/docker"));
        assert!(concerns_collection(".wh.manifests"));
        assert!(concerns_collection("charts/.wh..wh..opq"));
        assert!(!concerns_collection("bin/kubectl"));
        assert!(!concerns_collection("bin/.wh.kubectl"));
    }
}

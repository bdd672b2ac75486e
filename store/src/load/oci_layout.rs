//! Reading an OCI layout (archive or directory): image indexes followed down to the manifest
//! for this machine's platform, then the manifest, config and layers copied in; a
//! multi-platform image whose every platform is in the archive is copied in whole.

use std::collections::BTreeSet;

use super::verify::Import;
use super::{blob_path, invalid, Compression, Desc, IndexDoc, LoadError};
use crate::oci::{
    Descriptor, ImageConfig, Manifest, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use crate::Digest;

/// How deep indexes may nest (index.json -> image index -> manifest is depth 1).
const MAX_INDEX_DEPTH: usize = 4;

const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

impl Import<'_> {
    /// Read a blob of the layout (a small document), verifying size and digest.
    fn oci_document(&self, desc: &Desc, what: &str) -> Result<Vec<u8>, LoadError> {
        let rel = blob_path(&desc.digest);
        let size = self.source.lookup(&rel)?.ok_or_else(|| {
            invalid(format!(
                "{what} {} is missing from the archive (`{rel}`)",
                desc.digest
            ))
        })?;
        if size != desc.size {
            return Err(invalid(format!(
                "{what} {}: the archive holds {size} bytes, its descriptor says {}",
                desc.digest, desc.size
            )));
        }
        let bytes = self.source.document(&rel, what)?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(invalid(format!(
                "{what} {}: the content does not match its digest (it hashes to {actual}); \
                 refusing it",
                desc.digest
            )));
        }
        Ok(bytes)
    }

    /// Follow image indexes down to the manifest for this platform.
    pub(super) fn resolve(&self, desc: &Desc, depth: usize) -> Result<Desc, LoadError> {
        match desc.media_type.as_str() {
            MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => Ok(desc.clone()),
            MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(invalid(format!(
                        "image indexes nest more than {MAX_INDEX_DEPTH} deep"
                    )));
                }
                let bytes = self.oci_document(desc, "image index")?;
                let index: IndexDoc = serde_json::from_slice(&bytes).map_err(|e| {
                    invalid(format!(
                        "image index {} is not a valid image index: {e}",
                        desc.digest
                    ))
                })?;
                // A multi-platform image whose every platform is in the archive (as `seal
                // save` writes one) is loaded whole, under its own index.
                if depth == 0 && self.holds_every_platform(&index.manifests)? {
                    return Ok(desc.clone());
                }
                let chosen = choose_platform(&index.manifests)
                    .map_err(|e| invalid(format!("image index {}: {e}", desc.digest)))?;
                self.resolve(chosen, depth + 1)
            }
            "" => Err(invalid(format!(
                "descriptor {} has no mediaType",
                desc.digest
            ))),
            other => Err(invalid(format!(
                "{} has media type `{other}`, which is not an image manifest or index",
                desc.digest
            ))),
        }
    }

    /// Whether `entries` are two or more image manifests, each with a platform, all of them
    /// in the archive.
    fn holds_every_platform(&self, entries: &[Desc]) -> Result<bool, LoadError> {
        if entries.len() < 2 {
            return Ok(false);
        }
        for entry in entries {
            let manifest = matches!(
                entry.media_type.as_str(),
                MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST
            );
            if !manifest
                || entry.platform.is_none()
                || self.source.lookup(&blob_path(&entry.digest))?.is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Copy one image (manifest, config, layers) into the store, or each platform's image and
    /// then the index of a multi-platform one; returns the manifest's (or index's) digest.
    pub(super) fn oci_image(&mut self, desc: &Desc) -> Result<Digest, LoadError> {
        if matches!(
            desc.media_type.as_str(),
            MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST
        ) {
            let bytes = self.oci_document(desc, "image index")?;
            let index: IndexDoc = serde_json::from_slice(&bytes).map_err(|e| {
                invalid(format!(
                    "image index {} is not a valid image index: {e}",
                    desc.digest
                ))
            })?;
            for entry in &index.manifests {
                self.oci_image(entry)?;
            }
            return self.put_document(&bytes, &format!("image index {}", desc.digest));
        }
        let manifest_bytes = self.oci_document(desc, "manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            invalid(format!(
                "manifest {} is not a valid image manifest: {e}",
                desc.digest
            ))
        })?;
        if manifest.schema_version != 2 {
            return Err(invalid(format!(
                "manifest {} has schemaVersion {}, not 2",
                desc.digest, manifest.schema_version
            )));
        }
        let config_desc = desc_of(&manifest.config);
        if !matches!(
            config_desc.media_type.as_str(),
            MEDIA_TYPE_CONFIG | MEDIA_TYPE_DOCKER_CONFIG
        ) {
            return Err(invalid(format!(
                "manifest {}: config media type `{}` is not an image config (an artifact, not \
                 an image?)",
                desc.digest, config_desc.media_type
            )));
        }
        let config_bytes = self.oci_document(&config_desc, "config")?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            invalid(format!(
                "config {} is not a valid image config: {e}",
                config_desc.digest
            ))
        })?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(invalid(format!(
                "manifest {} has {} layers but its config lists {} diffIDs",
                desc.digest,
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        for (layer, want) in manifest.layers.iter().zip(diff_ids) {
            let compression = Compression::of_media_type(&layer.media_type).ok_or_else(|| {
                invalid(format!(
                    "layer {} has media type `{}`, which seal cannot unpack",
                    layer.digest, layer.media_type
                ))
            })?;
            self.copy_layer(
                &blob_path(&layer.digest),
                Some(&layer.digest),
                Some(layer.size),
                Some(compression),
                want,
                &format!("layer {}", layer.digest),
            )?;
        }
        self.put_document(&config_bytes, &format!("config {}", config_desc.digest))?;
        self.put_document(&manifest_bytes, &format!("manifest {}", desc.digest))
    }
}

/// A descriptor of our own types, as an index descriptor.
fn desc_of(d: &Descriptor) -> Desc {
    Desc {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: d.annotations.clone(),
        platform: None,
    }
}

/// `docker`/`oci` platform name of this machine's architecture.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The entry of an image index for this machine (linux and its architecture).
fn choose_platform(entries: &[Desc]) -> Result<&Desc, String> {
    if let [only] = entries {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let arch = host_architecture();
    let matching: Vec<&Desc> = entries
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .collect();
    let preferred = matching.iter().find(|d| {
        let variant = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        match arch {
            "arm64" => matches!(variant, None | Some("v8")),
            _ => variant.is_none(),
        }
    });
    match preferred.or(matching.first()) {
        Some(d) => Ok(d),
        None => {
            let available: BTreeSet<String> = entries
                .iter()
                .map(|d| match &d.platform {
                    Some(p) => match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    },
                    None => "unknown".into(),
                })
                .collect();
            Err(format!(
                "no manifest for linux/{arch} (it has: {})",
                available.into_iter().collect::<Vec<_>>().join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::load::Platform;

    fn desc(arch: &str, variant: Option<&str>) -> Desc {
        Desc {
            media_type: MEDIA_TYPE_MANIFEST.into(),
            digest: Digest::of(arch.as_bytes()),
            size: 1,
            annotations: BTreeMap::new(),
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    #[test]
    fn the_host_platform_is_chosen() {
        let host = host_architecture();
        let entries = vec![desc("s390x", None), desc(host, None), desc("riscv64", None)];
        assert_eq!(choose_platform(&entries).unwrap(), &entries[1]);
        let err = choose_platform(&entries[..1]).unwrap_err();
        assert!(err.contains("linux/s390x"), "{err}");
    }
}

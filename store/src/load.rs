//! `seal load`: importing images from OCI archives and layout directories, and from docker
//! archives (`docker save`, `skopeo copy ... docker-archive:`).
//!
//! An archive is untrusted input, and it is never extracted. One pass over the tar indexes its
//! entries (name, kind, where the data starts), refusing absolute names, names with `..`,
//! duplicate names and data that would run past the end of the file. Blobs are then read where
//! they lie (`pread`) and streamed into [`crate::BlobStore::writer`]: every blob is verified
//! against its digest before it is renamed into place, and every layer's decompressed stream
//! against its diffID (a diffID names a snapshot directory, so a lying one must never get in).
//! Links, devices and the like may sit in an archive (skopeo writes legacy `<id>/layer.tar`
//! symlinks) but are never followed: a document or blob that *is* one is refused.
//!
//! Image names are written last, after every blob of every image is stored: a failed load
//! leaves no new name, only verified blobs that nothing names (and the blob writer removes its
//! temp file). A compressed archive or a pipe is first copied (decompressed) into the store's
//! `tmp/`, which is the only place anything outside `blobs/` is written.

mod naming;
mod oci_layout;
mod source;
mod verify;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use serde::Deserialize;

use crate::oci::{
    to_canonical_json, Descriptor, Manifest, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD, MEDIA_TYPE_MANIFEST,
};
use crate::{Digest, Reference, Store, StoreError};
use naming::OciPlan;
use source::Source;
pub(crate) use verify::{HashSink, Import};

/// The largest JSON document (index, manifest, config, manifest.json) a load reads.
pub(crate) const MAX_DOCUMENT: u64 = 16 << 20;

pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
pub(crate) const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The input is not a valid image archive (or is a hostile one): nothing was named.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(reason: impl Into<String>) -> LoadError {
    LoadError::Invalid(reason.into())
}

/// One image a load named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub name: Reference,
    pub manifest: Digest,
}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// `oci` (archive or layout directory) or `docker-archive`.
    pub format: &'static str,
    pub images: Vec<LoadedImage>,
    /// Entries that were skipped (no name), for the user to see.
    pub warnings: Vec<String>,
    /// Blobs the images consist of, and their bytes.
    pub blobs: usize,
    pub bytes: u64,
}

impl Store {
    /// Import the images of an OCI archive, an OCI layout directory or a docker archive at
    /// `input` (`-` is stdin; a gzip or zstd compressed archive is decompressed first). With
    /// `name`, the input must hold exactly one image, which gets that name (and only that
    /// one); without, every image the input names is imported under its own name.
    pub fn load(&self, input: &Path, name: Option<&Reference>) -> Result<LoadReport, LoadError> {
        let source = Source::open(input, self.blobs().tmp_dir())?;
        let mut import = Import::new(self, &source);
        let has_index = source.lookup("index.json")?.is_some();
        let has_docker = source.lookup("manifest.json")?.is_some();
        let plan = if has_index {
            match import.plan_oci(name)? {
                // A docker archive that also carries an (unnamed) OCI index: use manifest.json.
                OciPlan::Unnamed(_) if has_docker => import.plan_docker(name)?,
                OciPlan::Unnamed(reason) => return Err(invalid(reason)),
                OciPlan::Images(plan) => plan,
            }
        } else if has_docker {
            import.plan_docker(name)?
        } else {
            return Err(invalid(
                "neither an OCI archive or layout (no index.json) nor a docker archive \
                 (no manifest.json)",
            ));
        };
        let mut report = LoadReport {
            format: plan.format,
            warnings: plan.warnings.clone(),
            ..LoadReport::default()
        };
        let mut manifests: BTreeMap<Planned, Digest> = BTreeMap::new();
        for (image_name, what) in &plan.images {
            let digest = match manifests.get(what) {
                Some(d) => d.clone(),
                None => {
                    let d = match what {
                        Planned::Oci(desc) => import.oci_image(desc)?,
                        Planned::Docker(i) => import.docker_image(&plan.docker[*i])?,
                    };
                    manifests.insert(what.clone(), d.clone());
                    d
                }
            };
            report.images.push(LoadedImage {
                name: image_name.clone(),
                manifest: digest,
            });
        }
        // Records only after every blob exists.
        let touched: Vec<(Digest, u64)> = import
            .touched
            .iter()
            .map(|(d, s)| (d.clone(), *s))
            .collect();
        self.touch_blobs(&touched)?;
        for image in &report.images {
            self.set_image(&image.name, &image.manifest)?;
        }
        report.blobs = touched.len();
        report.bytes = touched.iter().map(|(_, s)| s).sum();
        Ok(report)
    }
}

/// Which images a load will import, by name.
pub(crate) struct Plan {
    pub(crate) format: &'static str,
    pub(crate) images: Vec<(Reference, Planned)>,
    pub(crate) warnings: Vec<String>,
    /// The manifest.json entries `Planned::Docker` points into.
    pub(crate) docker: Vec<crate::oci::DockerEntry>,
}

/// The source of one image: a manifest descriptor of an OCI layout, or a manifest.json entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Planned {
    Oci(Desc),
    Docker(usize),
}

/// A descriptor as found in an index (with the platform our own `Descriptor` does not keep).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Desc {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc {
    schema_version: u32,
    #[serde(default)]
    manifests: Vec<Desc>,
}

/// Layer compression, from a media type or from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names (`None` for a media type that is not a layer
    /// seal can unpack).
    pub(crate) fn of_media_type(media_type: &str) -> Option<Compression> {
        if media_type.ends_with("+zstd") || media_type.ends_with(".tar.zstd") {
            Some(Compression::Zstd)
        } else if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if media_type.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// Sniff the first bytes of a layer.
    fn of_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type.
    fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_LAYER_TAR,
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
    }

    /// A reader of the uncompressed stream.
    pub(crate) fn decoder<'a, R: Read + 'a>(self, raw: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        })
    }
}

/// Clean a path found in an archive (or named by its manifest.json): `./` and empty
/// components dropped; absolute paths and `..` refused.
pub(crate) fn clean_path(raw: &str) -> Result<String, String> {
    if raw.starts_with('/') {
        return Err(format!("`{raw}`: it is an absolute path"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{raw}`: it leads outside the archive (`..`)")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The path of a blob in an OCI layout.
pub(crate) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The canonical bytes of an OCI manifest for `config` and `layers`.
pub(crate) fn oci_manifest(config: Descriptor, layers: Vec<Descriptor>) -> Vec<u8> {
    to_canonical_json(&Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.into(),
        config,
        layers,
        annotations: BTreeMap::new(),
    })
}

/// An OCI layer descriptor for a blob of this compression.
pub(crate) fn layer_descriptor(compression: Compression, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: compression.oci_media_type().into(),
        digest,
        size,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean_path("./index.json").unwrap(), "index.json");
        assert_eq!(clean_path("blobs//sha256/./x").unwrap(), "blobs/sha256/x");
        assert_eq!(clean_path("./").unwrap(), "");
        assert!(clean_path("/etc/passwd").is_err());
        assert!(clean_path("../x").is_err());
        assert!(clean_path("a/../../x").is_err());
    }

    #[test]
    fn media_types_and_magic() {
        assert_eq!(
            Compression::of_media_type(MEDIA_TYPE_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_media_type(MEDIA_TYPE_DOCKER_LAYER_TAR),
            Some(Compression::None)
        );
        assert_eq!(Compression::of_media_type("application/json"), None);
        assert_eq!(Compression::of_magic(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::of_magic(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::of_magic(b"ustar"), Compression::None);
    }
}

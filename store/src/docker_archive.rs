//! The `docker save` format: writing it (`seal save --format docker-archive`) and reading it
//! (`seal load`).
//!
//! **Writing.** What Docker 25+ writes: `manifest.json` (`Config`, `RepoTags`, `Layers`) whose
//! paths are blobs of an OCI layout in the same tar (`oci-layout`, `index.json`,
//! `blobs/sha256/`). Layers are *uncompressed* tars (what every `docker load` accepts): a zstd
//! or gzip blob is decompressed on the fly, so the layer file's digest is its diffID. The config
//! is the store's config blob, byte for byte (same digest; its diffIDs match the files). The
//! OCI manifest beside it is the store's manifest with each layer descriptor pointing at the
//! uncompressed file (annotations kept, so Sealer's metadata survives a docker-archive round
//! trip when seal loads it back). Entries: `blobs/`, the layers by diffID, the config and the
//! manifest by digest, then `index.json`, `manifest.json`, `oci-layout`; mtime 0, owner 0:0.
//! A layer's size is only known once it is decompressed, so its tar header is written after
//! its data (the archive is a temp file beside the target, renamed into place at the end).
//!
//! **Reading** (no `index.json`, or an index that names nothing): each `manifest.json` entry's
//! config is stored as is; each layer (tar, tar+gzip or tar+zstd, told apart by magic bytes)
//! is stored as is and its decompressed stream hashed; the hashes must equal the config's
//! diffIDs. An OCI manifest is written for them (no annotations: a docker archive has none).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::load::{
    blob_path, clean_path, layer_descriptor, oci_manifest, Compression, HashSink, Import,
    LoadError, Plan, Planned, MEDIA_TYPE_DOCKER_LAYER_TAR,
};
use crate::oci::{
    to_canonical_json, Descriptor, DockerEntry, ImageConfig, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_LAYER_TAR,
};
use crate::oci_dir::{layout_index, OCI_LAYOUT};
use crate::registry::Platform;
use crate::{Digest, Reference, Store, StoreError};

fn invalid(reason: impl Into<String>) -> LoadError {
    LoadError::Invalid(reason.into())
}

/// The digest a path names, when it is an OCI layout blob path (`blobs/sha256/<hex>`).
fn digest_of_blob_path(rel: &str) -> Option<Digest> {
    let hex = rel.strip_prefix("blobs/sha256/")?;
    format!("sha256:{hex}").parse().ok()
}

impl Import<'_> {
    /// Decide which entries of manifest.json to import, under which names.
    pub(crate) fn plan_docker(&self, name: Option<&Reference>) -> Result<Plan, LoadError> {
        let bytes = self.source.document("manifest.json", "manifest.json")?;
        let entries: Vec<DockerEntry> = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "manifest.json is not a docker archive manifest: {e}"
            ))
        })?;
        if entries.is_empty() {
            return Err(invalid("manifest.json lists no image"));
        }
        let mut plan = Plan {
            format: "docker-archive",
            images: Vec::new(),
            warnings: Vec::new(),
            docker: entries,
        };
        if let Some(name) = name {
            if plan.docker.len() != 1 {
                return Err(invalid(format!(
                    "the archive holds {} images; -t names exactly one, so load without -t",
                    plan.docker.len()
                )));
            }
            plan.images.push((name.clone(), Planned::Docker(0)));
            return Ok(plan);
        }
        let mut names: BTreeMap<Reference, usize> = BTreeMap::new();
        for (i, entry) in plan.docker.iter().enumerate() {
            let tags = entry.repo_tags.as_deref().unwrap_or_default();
            if tags.is_empty() {
                plan.warnings.push(format!(
                    "skipping the image with config `{}`: it has no RepoTags (load it alone \
                     with -t NAME)",
                    entry.config
                ));
            }
            for tag in tags {
                let image_name = Reference::parse_cluster_image(tag)
                    .map_err(|e| invalid(format!("manifest.json: {e}")))?;
                match names.get(&image_name) {
                    Some(j) if plan.docker[*j] != *entry => {
                        return Err(invalid(format!(
                            "manifest.json names two different images {image_name}"
                        )))
                    }
                    Some(_) => continue,
                    None => {}
                }
                names.insert(image_name.clone(), i);
                plan.images.push((image_name, Planned::Docker(i)));
            }
        }
        if plan.images.is_empty() {
            return Err(invalid(
                "no image in manifest.json has a name (RepoTags); give one with -t NAME",
            ));
        }
        Ok(plan)
    }

    /// Copy one manifest.json image into the store; returns the digest of its new manifest.
    pub(crate) fn docker_image(&mut self, entry: &DockerEntry) -> Result<Digest, LoadError> {
        let refused = |e: String| invalid(format!("manifest.json names {e}"));
        let config_path = clean_path(&entry.config).map_err(refused)?;
        let config_bytes = self.source.document(&config_path, "config")?;
        let config_digest = Digest::of(&config_bytes);
        let named = digest_of_blob_path(&config_path).or_else(|| {
            let hex = config_path.rsplit('/').next()?.strip_suffix(".json")?;
            format!("sha256:{hex}").parse().ok()
        });
        if let Some(named) = named {
            if named != config_digest {
                return Err(invalid(format!(
                    "config `{config_path}`: the content does not match its digest {named} (it \
                     hashes to {config_digest}); refusing it"
                )));
            }
        }
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            invalid(format!(
                "config `{config_path}` is not a valid image config: {e}"
            ))
        })?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(invalid(format!(
                "manifest.json lists {} layers but config `{config_path}` has {} diffIDs",
                entry.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (raw, want) in entry.layers.iter().zip(diff_ids) {
            let rel = clean_path(raw).map_err(refused)?;
            let what = format!("layer `{rel}`");
            let expected = digest_of_blob_path(&rel);
            let (digest, size, compression) =
                self.copy_layer(&rel, expected.as_ref(), None, None, want, &what)?;
            layers.push(layer_descriptor(compression, digest, size));
        }
        self.put_document(&config_bytes, &format!("config `{config_path}`"))?;
        let manifest = oci_manifest(
            Descriptor {
                media_type: MEDIA_TYPE_CONFIG.into(),
                digest: config_digest,
                size: config_bytes.len() as u64,
                annotations: BTreeMap::new(),
                platform: None,
            },
            layers,
        );
        self.put_document(&manifest, "the new manifest")
    }
}

impl Store {
    /// Write image `name` as a docker archive (`docker save` format) at `out` (a temp file
    /// beside it, renamed into place; mode 0666 less the umask).
    pub fn save_docker_archive(
        &self,
        name: &Reference,
        platforms: &[Platform],
        out: &Path,
    ) -> Result<(), StoreError> {
        let tmp = crate::oci_archive::archive_temp_beside(out)?;
        let io_err = |e: io::Error| StoreError::io("writing the archive", out, e);
        let file = self.docker_archive_into(name, platforms, tmp.reopen().map_err(io_err)?, out)?;
        file.sync_all().map_err(io_err)?;
        drop(file);
        tmp.persist(out)
            .map_err(|e| StoreError::io("renaming the archive into place", out, e.error))?;
        Ok(())
    }

    /// Stream image `name` as a docker archive into `sink` (`seal save -o -`). A layer's
    /// size is known only once it is decompressed, and its header comes first, so the archive
    /// is assembled in an unnamed temp file (`$TMPDIR`) and then copied out.
    pub fn write_docker_archive(
        &self,
        name: &Reference,
        platforms: &[Platform],
        sink: &mut dyn Write,
        shown: &Path,
    ) -> Result<(), StoreError> {
        let temp_dir = std::env::temp_dir();
        let file = tempfile::tempfile_in(&temp_dir)
            .map_err(|e| StoreError::io("creating a temp file in", &temp_dir, e))?;
        let mut file = self.docker_archive_into(name, platforms, file, shown)?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| StoreError::io("reading back", &temp_dir, e))?;
        io::copy(&mut file, sink)
            .and_then(|_| sink.flush())
            .map_err(|e| StoreError::io("writing the archive", shown, e))?;
        Ok(())
    }

    /// Write the docker archive of `name` into `file` from its start; the file, flushed.
    fn docker_archive_into(
        &self,
        name: &Reference,
        platforms: &[Platform],
        file: File,
        out: &Path,
    ) -> Result<File, StoreError> {
        let saved = self.saved_image(name, platforms)?;
        let [(manifest_digest, manifest_bytes, manifest)] = saved.manifests.as_slice() else {
            return Err(StoreError::NoPlatform(format!(
                "a docker archive holds one image, and {name} has {}: save one with --platform, \
                 or all of them as an OCI archive",
                saved.manifests.len()
            )));
        };
        let config_digest = &manifest.config.digest;
        let config_bytes = self.blobs().read(config_digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| StoreError::Corrupt(format!("config {config_digest}: {e}")))?;
        let diff_ids = config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(StoreError::Corrupt(format!(
                "manifest {manifest_digest} has {} layers, its config {} diffIDs",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let io_err = |e: io::Error| StoreError::io("writing the archive", out, e);
        let mut tar = TarOut {
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
        };
        tar.dir("blobs/").map_err(io_err)?;
        tar.dir("blobs/sha256/").map_err(io_err)?;

        // The layers, uncompressed, once each, by diffID.
        let mut order: Vec<(&Digest, &Descriptor)> =
            diff_ids.iter().zip(&manifest.layers).collect();
        order.sort_by(|a, b| a.0.cmp(b.0));
        order.dedup_by(|a, b| a.0 == b.0);
        let mut sizes: BTreeMap<&Digest, u64> = BTreeMap::new();
        for (diff_id, layer) in order {
            let compression = Compression::of_media_type(&layer.media_type).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "layer {} has media type `{}`, which seal cannot decompress",
                    layer.digest, layer.media_type
                ))
            })?;
            // The blob is verified too: a corrupt compressed stream can decompress to the
            // right diffID (trailing bytes) or fail with a decoder's error instead of ours.
            let mut blob = self.blobs().open_verified(&layer.digest, layer.size)?;
            let path = self.blobs().path(&layer.digest);
            let streamed = compression
                .decoder(&mut blob)
                .and_then(|mut decoded| tar.stream(&blob_path(diff_id), &mut decoded));
            // The verdict on the blob's bytes comes first: a corrupt zstd stream fails in the
            // decoder ("checksum mismatch") before the digest could say why.
            blob.finish()?;
            let (size, actual) =
                streamed.map_err(|e| StoreError::from_io("decompressing a layer", &path, e))?;
            if &actual != diff_id {
                return Err(StoreError::Corrupt(format!(
                    "layer {} decompresses to {actual}, but its config says diffID {diff_id}",
                    layer.digest
                )));
            }
            sizes.insert(diff_id, size);
        }

        // The manifest of those files: the store's own when its layers are plain tars already.
        let plain = manifest.layers.iter().zip(&diff_ids).all(|(l, d)| {
            &l.digest == d && Compression::of_media_type(&l.media_type) == Some(Compression::None)
        });
        let (out_digest, out_manifest) = if plain {
            (manifest_digest.clone(), manifest_bytes.clone())
        } else {
            let tar_type = if manifest.media_type == MEDIA_TYPE_DOCKER_MANIFEST {
                MEDIA_TYPE_DOCKER_LAYER_TAR
            } else {
                MEDIA_TYPE_LAYER_TAR
            };
            let mut m = manifest.clone();
            for (layer, diff_id) in m.layers.iter_mut().zip(&diff_ids) {
                layer.media_type = tar_type.into();
                layer.digest = diff_id.clone();
                layer.size = sizes[diff_id];
            }
            let bytes = to_canonical_json(&m);
            (Digest::of(&bytes), bytes)
        };
        let mut documents = [
            (config_digest.clone(), &config_bytes),
            (out_digest.clone(), &out_manifest),
        ];
        documents.sort_by(|a, b| a.0.cmp(&b.0));
        for (digest, bytes) in documents {
            if !sizes.contains_key(&digest) {
                tar.bytes(&blob_path(&digest), bytes).map_err(io_err)?;
            }
        }
        let index = layout_index(
            name,
            &out_digest,
            out_manifest.len() as u64,
            &manifest.media_type,
        );
        tar.bytes("index.json", &index).map_err(io_err)?;
        let docker_manifest = vec![DockerEntry {
            config: blob_path(config_digest),
            repo_tags: Some(vec![name.to_string()]),
            layers: diff_ids.iter().map(blob_path).collect(),
        }];
        tar.bytes("manifest.json", &to_canonical_json(&docker_manifest))
            .map_err(io_err)?;
        tar.bytes("oci-layout", OCI_LAYOUT).map_err(io_err)?;
        tar.finish().map_err(io_err)
    }
}

/// A tar being written to a seekable file, for entries whose size is known only afterwards.
struct TarOut {
    out: BufWriter<File>,
    pos: u64,
}

impl TarOut {
    fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> io::Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h.set_cksum();
        Ok(h)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rest = (512 - size % 512) % 512;
        self.write(&[0u8; 512][..rest as usize])
    }

    fn dir(&mut self, path: &str) -> io::Result<()> {
        let h = Self::header(path, tar::EntryType::Directory, 0o755, 0)?;
        self.write(h.as_bytes())
    }

    fn bytes(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let h = Self::header(path, tar::EntryType::Regular, 0o644, bytes.len() as u64)?;
        self.write(h.as_bytes())?;
        self.write(bytes)?;
        self.pad(bytes.len() as u64)
    }

    /// A file of unknown size: the data, then its header written in front of it. Returns the
    /// size and sha256 of the data.
    fn stream(&mut self, path: &str, data: &mut dyn Read) -> io::Result<(u64, Digest)> {
        let at = self.pos;
        self.write(&[0u8; 512])?;
        let mut hash = HashSink(Sha256::new());
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hash.write_all(&buf[..n])?;
            self.write(&buf[..n])?;
            size += n as u64;
        }
        self.pad(size)?;
        let h = Self::header(path, tar::EntryType::Regular, 0o644, size)?;
        self.out.seek(SeekFrom::Start(at))?;
        self.out.write_all(h.as_bytes())?;
        self.out.seek(SeekFrom::Start(self.pos))?;
        Ok((size, Digest::from_sha256(hash.0.finalize().into())))
    }

    /// The end-of-archive marker; the file, flushed.
    fn finish(mut self) -> io::Result<File> {
        self.write(&[0u8; 1024])?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

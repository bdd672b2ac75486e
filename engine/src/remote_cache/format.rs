//! The remote cache's format: an OCI image manifest whose config blob has seal's own media
//! type and lists the cache records, and whose layers are the records' result blobs (the same
//! blobs as the images, so a later push of an image mounts them).
//!
//! The config also carries the path index of each layer (`layer_index`), compressed: a COPY's
//! key covers where its destination resolves in the rootfs below, and the importer must compute
//! that key without downloading the layers. Everything read is checked here: sizes bounded,
//! every record's blobs listed in the manifest with the same digest and size.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use seal_store::oci::{Descriptor, Manifest, MEDIA_TYPE_MANIFEST};
use seal_store::Digest;
use serde::{Deserialize, Serialize};

use crate::output::LayerChain;

/// The media type of the config blob of a seal cache manifest.
pub const MEDIA_TYPE_CACHE_CONFIG: &str = "application/vnd.seal.cache.config.v1+json";
/// A cache config larger than this is refused.
pub const CONFIG_LIMIT: u64 = 64 << 20;
/// A cache manifest larger than this is refused (the distribution spec suggests 4 MiB).
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// A layer's path index, decompressed, larger than this is refused.
const INDEX_LIMIT: usize = 256 << 20;
const VERSION: u32 = 1;

/// Why a cache manifest or config is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

fn bad(message: impl Into<String>) -> FormatError {
    FormatError(message.into())
}

/// The config blob: the records, and the path indexes of their layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub version: u32,
    /// Sorted by key, unique.
    pub records: Vec<CacheRecord>,
    /// Layer blob digest → its path index ([`encode_index`]).
    #[serde(default)]
    pub indexes: BTreeMap<Digest, String>,
    /// Image collection's scan records (`scan:<hex>` → its JSON), so an importer collects
    /// without reading the rootfs's layers.
    #[serde(default)]
    pub collect: BTreeMap<String, String>,
}

/// One cache key and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRecord {
    /// The solver's cache key, hex.
    pub key: String,
    pub result: LayerChain,
}

impl CacheRecord {
    /// The key as bytes (checked by [`parse`]).
    pub fn key_bytes(&self) -> Option<[u8; 32]> {
        hex::decode(&self.key).ok()?.try_into().ok()
    }
}

/// A manifest and config that passed every check.
#[derive(Debug, Clone)]
pub struct CacheDocument {
    pub manifest: Manifest,
    pub config: CacheConfig,
}

/// The manifest (and the bytes of its config) for `records`, with `indexes`.
pub fn build(
    records: Vec<CacheRecord>,
    indexes: BTreeMap<Digest, String>,
    collect: BTreeMap<String, String>,
) -> Result<(Manifest, Vec<u8>), FormatError> {
    let mut records = records;
    records.sort_by(|a, b| a.key.cmp(&b.key));
    records.dedup_by(|a, b| a.key == b.key);
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut seen = BTreeSet::new();
    for record in &records {
        for layer in &record.result.layers {
            if seen.insert(layer.digest.clone()) {
                layers.push(Descriptor {
                    media_type: layer.media_type.clone(),
                    digest: layer.digest.clone(),
                    size: layer.size,
                    annotations: BTreeMap::new(),
                    platform: None,
                });
            }
        }
    }
    let config = CacheConfig {
        version: VERSION,
        records,
        indexes,
        collect,
    };
    let bytes = seal_store::oci::to_canonical_json(&config);
    if bytes.len() as u64 > CONFIG_LIMIT {
        return Err(bad(format!(
            "the cache config would be {} bytes, more than the {CONFIG_LIMIT} an importer accepts",
            bytes.len()
        )));
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.into(),
        config: Descriptor {
            media_type: MEDIA_TYPE_CACHE_CONFIG.into(),
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers,
        annotations: BTreeMap::new(),
    };
    Ok((manifest, bytes))
}

/// Check a manifest before its config is fetched: an OCI manifest with seal's config type and
/// a config within the limit.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, FormatError> {
    if bytes.len() as u64 > MANIFEST_LIMIT {
        return Err(bad(format!(
            "the manifest is larger than {MANIFEST_LIMIT} bytes"
        )));
    }
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("the manifest is not an OCI image manifest: {e}")))?;
    if !manifest.media_type.is_empty() && manifest.media_type != MEDIA_TYPE_MANIFEST {
        return Err(bad(format!(
            "the manifest has media type `{}`, not `{MEDIA_TYPE_MANIFEST}`",
            manifest.media_type
        )));
    }
    if manifest.config.media_type != MEDIA_TYPE_CACHE_CONFIG {
        return Err(bad(format!(
            "its config has media type `{}`, not seal's `{MEDIA_TYPE_CACHE_CONFIG}` (not a seal cache)",
            manifest.config.media_type
        )));
    }
    if manifest.config.size > CONFIG_LIMIT {
        return Err(bad(format!(
            "its config is {} bytes, more than the {CONFIG_LIMIT} accepted",
            manifest.config.size
        )));
    }
    Ok(manifest)
}

/// Check the config (already verified against the manifest's digest) and every record
/// against the manifest: each blob a record names must be a layer of the manifest with the
/// same digest, size and media type.
pub fn parse_config(manifest: Manifest, bytes: &[u8]) -> Result<CacheDocument, FormatError> {
    if bytes.len() as u64 != manifest.config.size {
        return Err(bad(format!(
            "the config has {} bytes, the manifest says {}",
            bytes.len(),
            manifest.config.size
        )));
    }
    let config: CacheConfig =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the config is malformed: {e}")))?;
    if config.version != VERSION {
        return Err(bad(format!(
            "the config is version {}, this seal reads version {VERSION}",
            config.version
        )));
    }
    let listed: BTreeMap<&Digest, &Descriptor> =
        manifest.layers.iter().map(|d| (&d.digest, d)).collect();
    for record in &config.records {
        if record.key_bytes().is_none() {
            return Err(bad(format!(
                "record key `{}` is not 64 hex digits",
                record.key
            )));
        }
        for layer in &record.result.layers {
            match listed.get(&layer.digest) {
                Some(d) if d.size == layer.size && d.media_type == layer.media_type => {}
                Some(d) => {
                    return Err(bad(format!(
                    "record {} names blob {} of {} bytes ({}), the manifest lists {} bytes ({})",
                    record.key, layer.digest, layer.size, layer.media_type, d.size, d.media_type
                )))
                }
                None => {
                    return Err(bad(format!(
                        "record {} names blob {}, which the manifest does not list",
                        record.key, layer.digest
                    )))
                }
            }
        }
    }
    for (key, value) in &config.collect {
        let hex = key.strip_prefix("scan:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("`{key}` is not an image collection scan key")));
        }
        if serde_json::from_str::<serde_json::Value>(value).is_err() {
            return Err(bad(format!("the scan record {key} is not JSON")));
        }
    }
    for digest in config.indexes.keys() {
        if !listed.contains_key(digest) {
            return Err(bad(format!(
                "the config has a path index for {digest}, which the manifest does not list"
            )));
        }
    }
    Ok(CacheDocument { manifest, config })
}

/// A layer's path index records, encoded for the config: length-prefixed path and record
/// pairs, zstd-compressed, base64.
pub fn encode_index(records: &[(String, Vec<u8>)]) -> String {
    let mut raw = Vec::new();
    for (path, record) in records {
        raw.extend_from_slice(&(path.len() as u32).to_le_bytes());
        raw.extend_from_slice(path.as_bytes());
        raw.extend_from_slice(&(record.len() as u32).to_le_bytes());
        raw.extend_from_slice(record);
    }
    // Compressing bytes in memory cannot fail but for allocation.
    let packed = zstd::bulk::compress(&raw, 3).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(packed)
}

/// The records of an index written by [`encode_index`].
pub fn decode_index(text: &str) -> Result<Vec<(String, Vec<u8>)>, FormatError> {
    let packed = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| bad(format!("a path index is not base64: {e}")))?;
    let raw = zstd::bulk::decompress(&packed, INDEX_LIMIT)
        .map_err(|e| bad(format!("a path index does not decompress: {e}")))?;
    let mut out = Vec::new();
    let mut rest = raw.as_slice();
    let take = |rest: &mut &[u8]| -> Result<Vec<u8>, FormatError> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("a path index is truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(bad("a path index is truncated"));
        }
        let (value, tail) = tail.split_at(len);
        *rest = tail;
        Ok(value.to_vec())
    };
    while !rest.is_empty() {
        let path = String::from_utf8(take(&mut rest)?)
            .map_err(|_| bad("a path index has a path that is not UTF-8"))?;
        let record = take(&mut rest)?;
        out.push((path, record));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;

    fn layer(n: u8, size: u64) -> Layer {
        Layer {
            diff_id: Digest::of(&[n, 0]),
            digest: Digest::of(&[n]),
            size,
            media_type: seal_store::oci::MEDIA_TYPE_LAYER_ZSTD.into(),
            collect_free: true,
        }
    }

    fn record(k: u8, layers: Vec<Layer>) -> CacheRecord {
        CacheRecord {
            key: hex::encode([k; 32]),
            result: LayerChain {
                layers,
                base_config: None,
            },
        }
    }

    fn check(records: Vec<CacheRecord>) -> Result<CacheDocument, FormatError> {
        let index = encode_index(&[("a/b".into(), vec![1, 2, 3])]);
        let first = records[0].result.layers[0].digest.clone();
        let (manifest, config) = build(records, [(first, index)].into(), BTreeMap::new())?;
        let bytes = seal_store::oci::to_canonical_json(&manifest);
        parse_config(parse_manifest(&bytes)?, &config)
    }

    #[test]
    fn a_built_cache_reads_back() {
        let doc = check(vec![
            record(2, vec![layer(1, 10), layer(2, 20)]),
            record(1, vec![layer(1, 10)]),
        ])
        .unwrap();
        assert_eq!(doc.manifest.layers.len(), 2, "each blob listed once");
        assert_eq!(doc.config.records[0].key, hex::encode([1; 32]), "sorted");
        let (_, text) = doc.config.indexes.iter().next().unwrap();
        assert_eq!(
            decode_index(text).unwrap(),
            vec![("a/b".to_string(), vec![1, 2, 3])]
        );
    }

    #[test]
    fn records_must_agree_with_the_manifest() {
        let (mut manifest, config) = build(
            vec![record(1, vec![layer(1, 10)])],
            BTreeMap::new(),
            BTreeMap::new(),
        )
        .unwrap();
        manifest.layers[0].size = 11;
        let err = parse_config(manifest.clone(), &config).unwrap_err();
        assert!(err.0.contains("the manifest lists 11 bytes"), "{err}");
        manifest.layers.clear();
        let err = parse_config(manifest, &config).unwrap_err();
        assert!(err.0.contains("does not list"), "{err}");
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert!(parse_manifest(b"{").is_err());
        let (mut manifest, config) = build(
            vec![record(1, vec![layer(1, 10)])],
            BTreeMap::new(),
            BTreeMap::new(),
        )
        .unwrap();
        assert!(parse_config(manifest.clone(), b"{\"version\": 1}").is_err());
        assert!(parse_config(manifest.clone(), &config[..config.len() - 1]).is_err());
        manifest.config.media_type = seal_store::oci::MEDIA_TYPE_CONFIG.into();
        let bytes = seal_store::oci::to_canonical_json(&manifest);
        assert!(parse_manifest(&bytes)
            .unwrap_err()
            .0
            .contains("not a seal cache"));
        manifest.config.media_type = MEDIA_TYPE_CACHE_CONFIG.into();
        manifest.config.size = CONFIG_LIMIT + 1;
        let bytes = seal_store::oci::to_canonical_json(&manifest);
        assert!(parse_manifest(&bytes).is_err());
        assert!(decode_index("!!").is_err());
        let (manifest, _) = build(
            vec![record(1, vec![layer(1, 10)])],
            BTreeMap::new(),
            BTreeMap::new(),
        )
        .unwrap();
        for (key, value) in [
            ("scan:xyz", "{}"),
            (&*format!("scan:{}", "a".repeat(64)), "{"),
        ] {
            let config = CacheConfig {
                version: VERSION,
                records: Vec::new(),
                indexes: BTreeMap::new(),
                collect: [(key.to_string(), value.to_string())].into(),
            };
            let bytes = seal_store::oci::to_canonical_json(&config);
            let mut m = manifest.clone();
            m.config.size = bytes.len() as u64;
            assert!(parse_config(m, &bytes).is_err(), "{key} {value}");
        }
        let truncated = base64::engine::general_purpose::STANDARD
            .encode(zstd::bulk::compress(&[9, 0, 0, 0, b'a'], 3).unwrap());
        assert!(decode_index(&truncated).is_err());
    }
}

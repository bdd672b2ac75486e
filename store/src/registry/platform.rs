//! Platform selection: the `OS/ARCH[/VARIANT]` to pull, and picking its manifest from an image
//! index (or saying which platforms the index has).

use super::RegistryError;
use crate::{Digest, Reference};

/// An OS/architecture(/variant) to pick from an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform seal runs on, in OCI's names (`linux/amd64`, `linux/arm64`).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Parse `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(format!(
                "invalid platform `{s}`: expected OS/ARCH[/VARIANT]"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// "no image for platform", with the platforms the index does have.
pub(super) fn no_platform(name: &Reference, platform: &Platform, index: &[u8]) -> RegistryError {
    let doc: serde_json::Value = serde_json::from_slice(index).unwrap_or_default();
    let mut present: Vec<String> = doc["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let p = &m["platform"];
            let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
            Some(match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            })
        })
        .collect();
    present.sort();
    present.dedup();
    let has = if present.is_empty() {
        "it lists no platform".to_string()
    } else {
        format!("it has {}", present.join(", "))
    };
    RegistryError::Invalid(format!(
        "{name} has no image for platform {platform} ({has})"
    ))
}

/// The manifest of an index for `platform`.
pub(super) fn pick_platform(index: &[u8], platform: &Platform) -> Option<Digest> {
    let doc: serde_json::Value = serde_json::from_slice(index).ok()?;
    let manifests = doc["manifests"].as_array()?;
    let matches = |m: &serde_json::Value, variant: bool| {
        let p = &m["platform"];
        p["os"].as_str() == Some(platform.os.as_str())
            && p["architecture"].as_str() == Some(platform.architecture.as_str())
            && (!variant
                || platform.variant.is_none()
                || p["variant"].as_str() == platform.variant.as_deref())
    };
    manifests
        .iter()
        .find(|m| matches(m, true))
        .or_else(|| {
            manifests
                .iter()
                .find(|m| matches(m, false) && platform.variant.is_none())
        })
        .and_then(|m| m["digest"].as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
    use crate::registry::transport::absolute;
    use crate::Digest;

    #[test]
    fn platforms_and_indexes() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(Platform::parse("linux").is_err());
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [
                {"mediaType": MEDIA_TYPE_MANIFEST, "digest": a.to_string(), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": MEDIA_TYPE_MANIFEST, "digest": b.to_string(), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            ]
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        assert_eq!(
            pick_platform(&bytes, &Platform::parse("linux/amd64").unwrap()),
            Some(a)
        );
        assert_eq!(
            pick_platform(&bytes, &Platform::parse("linux/arm64").unwrap()),
            Some(b)
        );
        assert_eq!(
            pick_platform(&bytes, &Platform::parse("linux/s390x").unwrap()),
            None
        );
        assert_eq!(absolute("http://h:1", "/v2/x?y"), "http://h:1/v2/x?y");
    }
}

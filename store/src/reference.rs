//! Image references and their normalisation.
//!
//! Cluster images use Sealer's defaults (`kubernetes:v1.19.8` ->
//! `docker.io/sealerio/kubernetes:v1.19.8`); container images use Docker's
//! (`nginx` -> `docker.io/library/nginx:latest`).

use std::fmt;

use crate::Digest;

/// A fully qualified image reference: domain, repository path, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image name `{input}`: {reason}")]
pub struct InvalidReference {
    pub input: String,
    pub reason: String,
}

const DEFAULT_DOMAIN: &str = "docker.io";

impl Reference {
    /// Parse a cluster-image name with Sealer's defaults (namespace `sealerio`).
    pub fn parse_cluster_image(input: &str) -> Result<Reference, InvalidReference> {
        parse(input, "sealerio")
    }

    /// Parse a container-image name with Docker's defaults (namespace `library`).
    pub fn parse_container_image(input: &str) -> Result<Reference, InvalidReference> {
        parse(input, "library")
    }

    /// `domain/path`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, or `latest` when the reference has neither tag nor digest.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn parse(input: &str, default_namespace: &str) -> Result<Reference, InvalidReference> {
    let bad = |reason: &str| InvalidReference {
        input: input.into(),
        reason: reason.into(),
    };
    if input.is_empty() {
        return Err(bad("the name is empty"));
    }
    if input.len() > 255 {
        return Err(bad("the name is longer than 255 characters"));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((name, digest)) => (
            name,
            Some(
                digest
                    .parse::<Digest>()
                    .map_err(|_| bad("the digest is not sha256:<64 hex digits>"))?,
            ),
        ),
        None => (input, None),
    };
    // A tag is after the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(bad(
                "a tag is 1-128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
            ));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    let has_domain = parts.len() > 1
        && (first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    let domain = if has_domain {
        let d = parts.remove(0);
        let valid = d.split(':').next().is_some_and(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        }) && d
            .split(':')
            .nth(1)
            .is_none_or(|port| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
        if !valid {
            return Err(bad("the registry host is not a valid host[:port]"));
        }
        if d == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            d.to_string()
        }
    } else {
        DEFAULT_DOMAIN.to_string()
    };
    for part in &parts {
        if !valid_path_component(part) {
            return Err(bad(&format!(
                "`{part}` is not a valid repository name component (lowercase letters, digits and single separators `.`, `_`, `__`, `-`)"
            )));
        }
    }
    if domain == DEFAULT_DOMAIN && parts.len() == 1 {
        parts.insert(0, default_namespace);
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, None) => Some("latest".to_string()),
        (None, Some(_)) => None,
    };
    Ok(Reference {
        domain,
        path: parts.join("/"),
        tag,
        digest,
    })
}

fn valid_path_component(part: &str) -> bool {
    let b = part.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__`, or any number of `-`.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &part[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
        if i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(s: &str) -> String {
        Reference::parse_cluster_image(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {}", e.reason))
    }

    fn container(s: &str) -> String {
        Reference::parse_container_image(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {}", e.reason))
    }

    #[test]
    fn sealer_normalisation() {
        assert_eq!(
            cluster("kubernetes:v1.19.8"),
            "docker.io/sealerio/kubernetes:v1.19.8"
        );
        assert_eq!(
            cluster("kubernetes"),
            "docker.io/sealerio/kubernetes:latest"
        );
        assert_eq!(cluster("my/app:1"), "docker.io/my/app:1");
        assert_eq!(cluster("reg.io:5000/x/y:2"), "reg.io:5000/x/y:2");
        assert_eq!(cluster("localhost/x"), "localhost/x:latest");
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(container("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            container("index.docker.io/foo/bar"),
            "docker.io/foo/bar:latest"
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            container(&format!("nginx@{d}")),
            format!("docker.io/library/nginx@{d}")
        );
        assert_eq!(
            container(&format!("nginx:1.2@{d}")),
            format!("docker.io/library/nginx:1.2@{d}")
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "a:",
            "a:-x",
            "-a",
            "a@sha256:zz",
            "a b",
            "a..b",
        ] {
            assert!(
                container(bad).starts_with("ERR"),
                "{bad} -> {}",
                container(bad)
            );
        }
    }
}

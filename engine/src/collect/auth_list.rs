//! `imageListWithAuth.yaml` (Sealer's file for images behind private registries): a YAML list
//! of `{registry, username, password, images}`. `registry` is the domain of the entry's short
//! names (`app:1` under `registry: harbor.local` is `harbor.local/app:1`); a name with a domain
//! of its own keeps it. The credentials are for the entry's images only.

use std::path::Path;

use seal_store::registry::Credentials;
use seal_store::Reference;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// The file Sealer reads from the build context.
pub const FILE_NAME: &str = "imageListWithAuth.yaml";

/// One entry: images and the credentials to pull them with.
#[derive(Debug, Clone)]
pub struct AuthSection {
    pub credentials: Credentials,
    /// Normalised references.
    pub images: Vec<Reference>,
}

/// A file that is not a valid image list with auth: `file:line: message`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct AuthListError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    registry: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(default)]
    images: Vec<Spanned<String>>,
}

/// Parse `text`, read from `file` (named in errors).
pub fn parse(text: &str, file: &Path) -> Result<Vec<AuthSection>, AuthListError> {
    let error = |line: u64, message: String| AuthListError {
        file: file.display().to_string(),
        line,
        message,
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<Spanned<Entry>> = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map_or(1, |l| l.line());
        let message = e.to_string();
        let first = message.lines().next().unwrap_or("invalid YAML").to_string();
        error(
            line,
            format!(
                "{first}\nhelp: write a list of entries, each with `registry`, `username`, \
                 `password` and `images` (a list of image names)"
            ),
        )
    })?;
    let mut sections = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = entry.defined.line();
        let e = entry.value;
        let (Some(username), Some(password)) = (e.username, e.password) else {
            return Err(error(
                line,
                "an entry without a `username` and a `password`: both are needed (an image \
                 that needs no credentials belongs in an imageList file)"
                    .into(),
            ));
        };
        let registry = e.registry.as_deref().map(str::trim).unwrap_or("");
        if registry.contains('/') || registry.contains("://") {
            return Err(error(
                line,
                format!("registry `{registry}`: write HOST or HOST:PORT, without a scheme or path"),
            ));
        }
        let mut images = Vec::with_capacity(e.images.len());
        for image in e.images {
            let name = with_domain(image.value.trim(), registry);
            let reference = Reference::parse_container_image(&name).map_err(|err| {
                error(
                    image.defined.line(),
                    format!("invalid image reference `{}`: {}", image.value, err.reason),
                )
            })?;
            images.push(reference);
        }
        sections.push(AuthSection {
            credentials: Credentials { username, password },
            images,
        });
    }
    Ok(sections)
}

/// `name` under `registry` when its first component is not a domain (Docker's rule: a `.` or
/// `:` in it, or `localhost`).
fn with_domain(name: &str, registry: &str) -> String {
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if registry.is_empty() || has_domain {
        name.to_string()
    } else {
        format!("{registry}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<AuthSection> {
        parse(text, Path::new("imageListWithAuth.yaml")).unwrap()
    }

    #[test]
    fn short_names_take_the_entry_registry() {
        let sections = parse_ok(
            "- registry: harbor.local:8443\n  username: u\n  password: p\n  images:\n    - app:1\n    - team/tool:2\n    - quay.io/org/x:3\n    - localhost/y:4\n",
        );
        let names: Vec<String> = sections[0].images.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            [
                "harbor.local:8443/app:1",
                "harbor.local:8443/team/tool:2",
                "quay.io/org/x:3",
                "localhost/y:4"
            ]
        );
        assert_eq!(sections[0].credentials.username, "u");
        // No registry: Docker's defaults.
        let sections = parse_ok("- username: u\n  password: p\n  images: [nginx]\n");
        assert_eq!(
            sections[0].images[0].to_string(),
            "docker.io/library/nginx:latest"
        );
    }

    #[test]
    fn missing_credentials_and_bad_names_are_errors_at_their_line() {
        let e = parse(
            "- registry: a.example\n  username: u\n  password: p\n  images: [x]\n- registry: b.example\n  username: u\n  images: [y]\n",
            Path::new("ctx/imageListWithAuth.yaml"),
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e
            .to_string()
            .starts_with("ctx/imageListWithAuth.yaml:5: an entry without"));
        let e = parse(
            "- registry: a.example\n  username: u\n  password: p\n  images:\n    - ok:1\n    - BAD:name\n",
            Path::new("f.yaml"),
        )
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        let e = parse("- registry: a\n  user: u\n", Path::new("f.yaml")).unwrap_err();
        assert!(e.message.contains("user"), "{e}");
        assert!(parse_ok("").is_empty());
    }

    #[test]
    fn a_password_is_never_printed() {
        let sections = parse_ok("- username: u\n  password: hunter2\n  images: [x]\n");
        assert!(!format!("{sections:?}").contains("hunter2"));
    }
}

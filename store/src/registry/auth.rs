//! Registry credentials (`auths.<registry>.auth` of Docker's `config.json`, Podman's
//! `auth.json`) and `WWW-Authenticate` challenges.
//!
//! A tiny parser rather than `docker_credential`: seal reads and writes only the `auths` map;
//! credential helpers (`credsStore`, `credHelpers`) are not consulted.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <secret>)", self.username)
    }
}

impl Credentials {
    /// The value of a `Authorization: Basic` header.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            base64_encode(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

/// The auth files read, in order: `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
/// `~/.docker/config.json`.
pub fn auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(p).join("config.json"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(home).join(".docker/config.json"));
    }
    out
}

/// The file `seal login` writes: the first of [`auth_files`].
pub fn auth_file_for_write() -> Option<PathBuf> {
    auth_files().into_iter().next()
}

/// The keys a registry may be stored under.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
    }
    keys
}

/// Stored credentials for `registry` (`host[:port]`), if any auth file has them.
pub fn lookup(registry: &str) -> Option<Credentials> {
    for file in auth_files() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            tracing::warn!("ignoring {}: not JSON", file.display());
            continue;
        };
        for key in keys_for(registry) {
            if let Some(auth) = doc["auths"][&key]["auth"].as_str() {
                if let Some(creds) = decode_auth(auth) {
                    return Some(creds);
                }
            }
        }
    }
    None
}

fn decode_auth(auth: &str) -> Option<Credentials> {
    let raw = base64_decode(auth.trim())?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.into(),
        password: p.into(),
    })
}

fn read_doc(file: &std::path::Path) -> std::io::Result<serde_json::Value> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(e),
    }
}

/// Write `doc` to `file` with mode 0600 (temp file + rename, so a crash leaves the old file).
fn write_doc(file: &std::path::Path, doc: &serde_json::Value) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".seal-auth-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(doc).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// Save credentials for `registry` in `file`, keeping everything else the file holds.
pub fn save(file: &std::path::Path, registry: &str, creds: &Credentials) -> std::io::Result<()> {
    let mut doc = read_doc(file)?;
    if !doc.is_object() {
        doc = serde_json::json!({});
    }
    if !doc["auths"].is_object() {
        doc["auths"] = serde_json::json!({});
    }
    doc["auths"][registry] = serde_json::json!({
        "auth": base64_encode(format!("{}:{}", creds.username, creds.password).as_bytes())
    });
    write_doc(file, &doc)
}

/// Remove `registry` from every auth file that has it; true when one had it.
pub fn remove(registry: &str) -> std::io::Result<bool> {
    let mut removed = false;
    for file in auth_files() {
        if !file.exists() {
            continue;
        }
        let mut doc = read_doc(&file)?;
        let mut changed = false;
        if let Some(auths) = doc.get_mut("auths").and_then(|a| a.as_object_mut()) {
            for key in keys_for(registry) {
                changed |= auths.remove(&key).is_some();
            }
        }
        if changed {
            write_doc(&file, &doc)?;
            removed = true;
        }
    }
    Ok(removed)
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse `Bearer realm="https://auth",service="reg",scope="repository:x:pull"`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.push((key.trim().to_string(), value.to_string()));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// Standard base64, padding optional when decoding (what Sprig and docker config files use).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    base64::Engine::encode(&BASE64, data)
}

/// Standard base64 (padding optional); None when malformed.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::Engine::decode(&BASE64, text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "user:pa:ss",
        ] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{s} -> {e}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("Registry Realm"));
    }
}

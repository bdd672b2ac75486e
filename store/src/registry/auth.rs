//! Registry credentials and `WWW-Authenticate` challenges.
//!
//! Credentials live in Docker's `config.json` (or Podman's `auth.json`): the `auths` map
//! (`auths.<registry>.auth` = base64 of `user:password`), or a credential helper — a program
//! `docker-credential-<name>` named by `credHelpers.<registry>` or `credsStore` and spoken to
//! with Docker's protocol (`get` / `store` / `erase`, the server on stdin, JSON on stdout).
//!
//! The files are read in order: `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
//! `~/.docker/config.json`. Within one file the order is Docker's: `credHelpers[registry]`,
//! then `credsStore`, then `auths`; the first file that yields credentials wins (a helper that
//! answers "credentials not found" yields none, so the next source is tried). A helper that is
//! missing or fails any other way is an error naming it, never silently anonymous.
//!
//! A helper answering the user name `<token>` hands out an identity (refresh) token instead of
//! a password. Seal sends it as the password of the Basic credentials of the Bearer token
//! request, which registries accepting refresh tokens take at minimum; the OAuth2
//! `grant_type=refresh_token` POST that Docker tries first is not implemented.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The user name with which a credential helper marks an identity token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

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

    /// True when `password` is an identity token handed out by a credential helper.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }
}

/// What can go wrong reading or writing credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("credential helper `{program}` ({origin}) could not {action} credentials for {registry}: {reason}")]
    Helper {
        program: String,
        /// Where the helper is configured: `credsStore in /root/.docker/config.json`.
        origin: String,
        action: &'static str,
        registry: String,
        reason: String,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nowhere to save credentials: set HOME, DOCKER_CONFIG or REGISTRY_AUTH_FILE")]
    NoAuthFile,
}

/// A credential helper configured for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// The `<name>` of `docker-credential-<name>`.
    pub name: String,
    /// The file that configures it.
    pub config: PathBuf,
    /// `credHelpers` or `credsStore`.
    pub key: &'static str,
}

/// Where `seal login` put credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Helper(Helper),
    File(PathBuf),
}

impl std::fmt::Display for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Saved::Helper(h) => write!(f, "credential helper {}", h.program()),
            Saved::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What a helper's `get` printed.
#[derive(serde::Deserialize)]
struct HelperCredentials {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl Helper {
    /// `docker-credential-<name>`.
    pub fn program(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    fn error(&self, action: &'static str, registry: &str, reason: String) -> AuthError {
        AuthError::Helper {
            program: self.program(),
            origin: format!("{} in {}", self.key, self.config.display()),
            action,
            registry: registry.into(),
            reason,
        }
    }

    /// Run `docker-credential-<name> <verb>` with `input` on stdin. `Ok(None)` when the
    /// helper says it has no credentials for the server.
    fn run(
        &self,
        verb: &'static str,
        registry: &str,
        input: &[u8],
    ) -> Result<Option<Vec<u8>>, AuthError> {
        // A name from a config file must not turn into a path.
        if self.name.is_empty() || self.name.contains('/') {
            return Err(self.error(verb, registry, "not a valid helper name".into()));
        }
        let program = self.program();
        let mut child = Command::new(&program)
            .arg(verb)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                let reason = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("`{program}` is not installed (not found on PATH)")
                } else {
                    format!("cannot run it: {e}")
                };
                self.error(verb, registry, reason)
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper may exit before reading; its exit status tells what happened.
            let _ = stdin.write_all(input);
        }
        let output = child
            .wait_with_output()
            .map_err(|e| self.error(verb, registry, format!("waiting for it: {e}")))?;
        if output.status.success() {
            return Ok(Some(output.stdout));
        }
        let said = String::from_utf8_lossy(&output.stdout).trim().to_string()
            + " "
            + String::from_utf8_lossy(&output.stderr).trim();
        let said = said.trim();
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        Err(self.error(
            verb,
            registry,
            format!(
                "it exited with {}{}",
                output.status,
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ),
        ))
    }

    /// The helper's credentials for `registry`, if it has some.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        let Some(out) = self.run("get", registry, server_url(registry).as_bytes())? else {
            return Ok(None);
        };
        let creds: HelperCredentials = serde_json::from_slice(&out)
            .map_err(|e| self.error("get", registry, format!("unreadable answer: {e}")))?;
        if creds.username.is_empty() && creds.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials {
            username: creds.username,
            password: creds.secret,
        }))
    }

    /// Give the helper credentials for `registry` to keep.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), AuthError> {
        let input = serde_json::json!({
            "ServerURL": server_url(registry),
            "Username": creds.username,
            "Secret": creds.password,
        });
        self.run("store", registry, input.to_string().as_bytes())?
            .map(|_| ())
            .ok_or_else(|| self.error("store", registry, "it answered \"not found\"".into()))
    }

    /// Make the helper forget `registry`; false when it had nothing.
    pub fn erase(&self, registry: &str) -> Result<bool, AuthError> {
        Ok(self
            .run("erase", registry, server_url(registry).as_bytes())?
            .is_some())
    }
}

/// The server a helper is asked about: the host, or Docker Hub's historical URL.
pub fn server_url(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.into()
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

/// The file `seal login` writes when no helper is configured: the first of [`auth_files`].
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

/// The auth files that exist and parse, with their documents.
fn documents() -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    for file in auth_files() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(doc) => out.push((file, doc)),
            Err(_) => tracing::warn!("ignoring {}: not JSON", file.display()),
        }
    }
    out
}

/// The helper one document configures for `registry`: `credHelpers` first, then `credsStore`.
fn helper_in(file: &Path, doc: &serde_json::Value, registry: &str) -> Option<Helper> {
    let per_registry = keys_for(registry)
        .iter()
        .find_map(|k| doc["credHelpers"][k].as_str().map(str::to_string));
    let (name, key) = match per_registry {
        Some(name) => (name, "credHelpers"),
        None => (doc["credsStore"].as_str()?.to_string(), "credsStore"),
    };
    (!name.is_empty()).then(|| Helper {
        name,
        config: file.to_path_buf(),
        key,
    })
}

fn auths_in(doc: &serde_json::Value, registry: &str) -> Option<Credentials> {
    keys_for(registry)
        .iter()
        .find_map(|k| doc["auths"][k]["auth"].as_str().and_then(decode_auth))
}

/// The credential helper `seal login` stores through for `registry`: the first one any auth
/// file configures for it.
pub fn helper_for(registry: &str) -> Option<Helper> {
    documents()
        .iter()
        .find_map(|(file, doc)| helper_in(file, doc, registry))
}

/// Stored credentials for `registry` (`host[:port]`), if any source has them.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, AuthError> {
    for (file, doc) in documents() {
        if let Some(helper) = helper_in(&file, &doc, registry) {
            if let Some(creds) = helper.get(registry)? {
                return Ok(Some(creds));
            }
        }
        if let Some(creds) = auths_in(&doc, registry) {
            return Ok(Some(creds));
        }
    }
    Ok(None)
}

/// Save credentials for `registry`: through its credential helper when one is configured,
/// else in the first auth file.
pub fn save_credentials(registry: &str, creds: &Credentials) -> Result<Saved, AuthError> {
    if let Some(helper) = helper_for(registry) {
        helper.store(registry, creds)?;
        return Ok(Saved::Helper(helper));
    }
    let file = auth_file_for_write().ok_or(AuthError::NoAuthFile)?;
    save(&file, registry, creds).map_err(|source| AuthError::Io {
        what: "saving credentials to",
        path: file.clone(),
        source,
    })?;
    Ok(Saved::File(file))
}

/// Forget `registry` everywhere: every helper configured for it, every auth file's `auths`.
/// True when some source had credentials.
pub fn erase(registry: &str) -> Result<bool, AuthError> {
    let mut removed = false;
    let mut asked = Vec::new();
    for (file, doc) in documents() {
        if let Some(helper) = helper_in(&file, &doc, registry) {
            if !asked.contains(&helper.name) {
                removed |= helper.erase(registry)?;
                asked.push(helper.name);
            }
        }
    }
    removed |= remove(registry)?;
    Ok(removed)
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

/// Remove `registry` from the `auths` of every auth file that has it; true when one had it.
pub fn remove(registry: &str) -> Result<bool, AuthError> {
    let mut removed = false;
    for file in auth_files() {
        if !file.exists() {
            continue;
        }
        let io = |source| AuthError::Io {
            what: "removing credentials from",
            path: file.clone(),
            source,
        };
        let mut doc = read_doc(&file).map_err(io)?;
        let mut changed = false;
        if let Some(auths) = doc.get_mut("auths").and_then(|a| a.as_object_mut()) {
            for key in keys_for(registry) {
                changed |= auths.remove(&key).is_some();
            }
        }
        if changed {
            write_doc(&file, &doc).map_err(io)?;
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
    fn cred_helpers_win_over_creds_store_which_wins_over_auths() {
        let file = Path::new("/c/config.json");
        let doc = serde_json::json!({
            "credsStore": "desktop",
            "credHelpers": { "https://reg.example:5000": "ecr-login" },
            "auths": { "reg.example:5000": { "auth": base64_encode(b"u:p") } },
        });
        let helper = helper_in(file, &doc, "reg.example:5000").unwrap();
        assert_eq!(helper.program(), "docker-credential-ecr-login");
        assert_eq!(helper.key, "credHelpers");
        let other = helper_in(file, &doc, "other.example").unwrap();
        assert_eq!((other.name.as_str(), other.key), ("desktop", "credsStore"));
        assert_eq!(
            auths_in(&doc, "reg.example:5000"),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        let plain = serde_json::json!({ "auths": {} , "credsStore": "" });
        assert_eq!(helper_in(file, &plain, "reg.example:5000"), None);
        assert_eq!(server_url("docker.io"), "https://index.docker.io/v1/");
    }

    #[test]
    fn a_helper_name_cannot_be_a_path() {
        let helper = Helper {
            name: "../../bin/sh".into(),
            config: PathBuf::from("/c/config.json"),
            key: "credsStore",
        };
        let err = helper.get("reg.example").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-../../bin/sh")
                && err.contains("not a valid helper name"),
            "{err}"
        );
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

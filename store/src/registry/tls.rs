//! Which certificates a registry's TLS is checked against, and which client certificate seal
//! shows it: the system's CA store, Docker's and containers' per-registry directories
//! (`/etc/docker/certs.d/<host[:port]>/`, `/etc/containers/certs.d/<host[:port]>/`: `*.crt`
//! are CA certificates, `*.cert` with the `*.key` of the same name a client certificate), and
//! `--registry-ca HOST=FILE`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::{RegistryError, RegistryOptions};

/// Where Docker and the containers tools (Podman, Buildah, CRI-O) keep per-registry TLS files.
pub const DEFAULT_CERT_DIRS: [&str; 2] = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// The TLS settings of one registry, and where they came from.
pub(super) struct RegistryTls {
    pub config: TlsConfig,
    /// The files that added CA certificates or a client certificate (for error messages).
    pub sources: Vec<PathBuf>,
}

/// The system's CA certificates, read once per process.
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system CA store: {e}");
        }
        found
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect()
    })
}

/// The TLS settings for `registry` (`host[:port]`, as the reference names it).
pub(super) fn for_registry(
    registry: &str,
    options: &RegistryOptions,
) -> Result<RegistryTls, RegistryError> {
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    let mut client: Option<ClientCert> = None;
    let mut sources = Vec::new();
    for base in &options.cert_dirs {
        let dir = base.join(registry);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in &files {
            match file.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    roots.extend(certificates(file)?);
                    sources.push(file.clone());
                }
                Some("cert") if client.is_none() => {
                    let key = file.with_extension("key");
                    if !key.exists() {
                        return Err(RegistryError::Invalid(format!(
                            "{}: a client certificate without its key (expected {})",
                            file.display(),
                            key.display()
                        )));
                    }
                    client = Some(ClientCert::new_with_certs(
                        &certificates(file)?,
                        private_key(&key)?,
                    ));
                    sources.push(file.clone());
                }
                _ => {}
            }
        }
    }
    for (host, file) in &options.registry_ca {
        if host == registry {
            roots.extend(certificates(file)?);
            sources.push(file.clone());
        }
    }
    let root_certs = if roots.is_empty() && system_roots().is_empty() {
        // No system store at all (a minimal container): Mozilla's roots, built in.
        RootCerts::WebPki
    } else {
        roots.extend(system_roots().iter().cloned());
        RootCerts::Specific(Arc::new(roots))
    };
    let config = TlsConfig::builder()
        .root_certs(root_certs)
        .client_cert(client)
        .build();
    Ok(RegistryTls { config, sources })
}

fn read(file: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(file)
        .map_err(|e| RegistryError::Invalid(format!("reading {}: {e}", file.display())))
}

/// Every certificate of a PEM file; none is an error.
fn certificates(file: &Path) -> Result<Vec<Certificate<'static>>, RegistryError> {
    let pem = read(file)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c.to_owned()),
            Ok(_) => {}
            Err(e) => return Err(pem_error(file, &e.to_string())),
        }
    }
    if certs.is_empty() {
        return Err(pem_error(file, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
fn private_key(file: &Path) -> Result<PrivateKey<'static>, RegistryError> {
    let pem = read(file)?;
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::PrivateKey(k)) => return Ok(k.to_owned()),
            Ok(_) => {}
            Err(e) => return Err(pem_error(file, &e.to_string())),
        }
    }
    Err(pem_error(file, "no PEM private key in it"))
}

fn pem_error(file: &Path, reason: &str) -> RegistryError {
    RegistryError::Invalid(format!("{}: {reason}", file.display()))
}

/// Whether `e` is a server certificate that did not verify (unknown CA, wrong name, expired).
pub(super) fn is_certificate_error(e: &ureq::Error) -> bool {
    let rustls = match e {
        ureq::Error::Rustls(r) => Some(r),
        // The handshake runs inside a read or write: rustls's error wrapped in an io::Error.
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(rustls, Some(rustls::Error::InvalidCertificate(_)))
}

/// What to do about a certificate error of `registry`.
pub(super) fn certificate_hint(registry: &str, sources: &[PathBuf]) -> String {
    let tried = if sources.is_empty() {
        "the system's CA store".to_string()
    } else {
        let files: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
        format!("the system's CA store and {}", files.join(", "))
    };
    format!(
        "\nhelp: the certificate of {registry} was checked against {tried}. If it comes from \
         your own CA, put the CA certificate in /etc/docker/certs.d/{registry}/ca.crt (or \
         /etc/containers/certs.d/{registry}/ca.crt), or pass `--registry-ca {registry}=CA.pem`; \
         a client certificate goes beside it as client.cert and client.key"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_needs_its_key_and_pem_must_parse() {
        let dirs = tempfile::TempDir::new().unwrap();
        let host = dirs.path().join("reg.example:5000");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("client.cert"), "not pem").unwrap();
        let options = RegistryOptions {
            cert_dirs: vec![dirs.path().to_path_buf()],
            ..RegistryOptions::default()
        };
        let Err(e) = for_registry("reg.example:5000", &options) else {
            panic!("a client certificate without a key was accepted")
        };
        assert!(e.to_string().contains("without its key"), "{e}");
        std::fs::write(host.join("client.key"), "not pem either").unwrap();
        let Err(e) = for_registry("reg.example:5000", &options) else {
            panic!("a file without PEM was accepted")
        };
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        // Another registry's directory is not read.
        assert!(for_registry("other.example", &options).is_ok());
    }
}

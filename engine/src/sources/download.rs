//! `http(s)://` sources of ADD: the file name a URL lands under, `--checksum` values, and the
//! download itself (blocking, over rustls; redirects followed; proxies from the environment).
//!
//! A download streams into a private file in the caller's scratch directory while it is hashed
//! twice: sha256 for `--checksum`, blake3 for the layer writer's own verification. A non-2xx
//! answer, a transport error or a checksum mismatch fails the step naming the URL.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::EngineError;

pub use seal_llb::url::{is_url, parse_checksum, url_file_name};

/// A finished download.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The file in the scratch directory.
    pub path: PathBuf,
    pub size: u64,
    pub blake3: [u8; 32],
}

/// Download `url` into a new file in `dir`, verifying `checksum` (`sha256:<hex>`) when given.
pub fn fetch(
    url: &str,
    checksum: Option<&str>,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<Downloaded, EngineError> {
    let fail = |reason: String| EngineError::Download {
        url: url.to_string(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .user_agent(format!("seal/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(
            format!(
                "the server answered {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        ));
    }
    let (mut file, path) = tempfile::Builder::new()
        .prefix("download-")
        .tempfile_in(dir)
        .map_err(|e| EngineError::io("creating a download in", dir, e))?
        .keep()
        .map_err(|e| EngineError::io("creating a download in", dir, e.error))?;
    let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut sha = Sha256::new();
    let mut blake = blake3::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("the transfer failed: {e}"))),
        };
        sha.update(&buf[..n]);
        blake.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| EngineError::io("writing", &path, e))?;
        size += n as u64;
    }
    file.flush()
        .map_err(|e| EngineError::io("writing", &path, e))?;
    if let Some(expected) = checksum {
        let actual = format!("sha256:{}", hex::encode(sha.finalize()));
        if actual != expected {
            return Err(EngineError::ChecksumMismatch {
                url: url.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(Downloaded {
        path,
        size,
        blake3: *blake.finalize().as_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_of_urls() {
        let name = |u: &str| url_file_name(u);
        assert_eq!(
            name("https://example.com/a/b/kubectl").as_deref(),
            Some("kubectl")
        );
        assert_eq!(
            name("HTTP://h:8080/x.tar.gz?sig=1#frag").as_deref(),
            Some("x.tar.gz")
        );
        assert_eq!(name("http://h/a%20b").as_deref(), Some("a b"));
        assert_eq!(name("http://h/bad%zz").as_deref(), Some("bad%zz"));
        assert_eq!(name("http://h/"), None);
        assert_eq!(name("http://h"), None);
        assert_eq!(name("http:///x"), None);
        assert_eq!(name("http://h/a/.."), None);
        assert_eq!(name("http://h/a%2Fb"), None);
        assert_eq!(name("ftp://h/x"), None);
        assert!(is_url("https://h/x") && !is_url("httpx") && !is_url("local/x"));
    }

    #[test]
    fn checksums() {
        let hex = "AB".repeat(32);
        assert_eq!(
            parse_checksum(&format!("sha256:{hex}")).unwrap(),
            format!("sha256:{}", "ab".repeat(32))
        );
        assert!(parse_checksum("sha512:00")
            .unwrap_err()
            .contains("only sha256"));
        assert!(parse_checksum("sha256:00").unwrap_err().contains("64 hex"));
        assert!(parse_checksum("00").is_err());
    }
}

//! A small S3 client for the remote cache: GET, HEAD and PUT of objects through URLs presigned
//! with SigV4 by `rusty-s3` (sans-IO), sent with the same `ureq` agent setup as the registry
//! client (rustls with ring), so S3 adds no second HTTP or TLS stack.
//!
//! Credentials as the AWS tools find them: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, else the profile `AWS_PROFILE` (default `default`) of
//! `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`) or `AWS_CONFIG_FILE`
//! (`~/.aws/config`); none at all sends unsigned requests (a public bucket). The endpoint is
//! `endpoint_url`, else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else AWS's regional one;
//! a custom endpoint is addressed path-style (MinIO, moto), AWS virtual-host style.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::{Digest, Store, StoreError};

/// How long a presigned URL is valid: the time one request may take to start.
const SIGNED_FOR: Duration = Duration::from_secs(3600);
const TRIES: u32 = 3;

/// What can go wrong talking to S3.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("bad S3 location: {0}")]
    Location(String),
    #[error("{what} {url}: {reason}")]
    Transport {
        what: String,
        url: String,
        reason: String,
    },
    #[error("{what}: S3 answered {status}{detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("reading the AWS credentials in {}: {reason}", path.display())]
    Credentials { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a blob is in a cache bucket: `<prefix>blobs/sha256/<hex>`.
pub fn blob_key(prefix: &str, digest: &Digest) -> String {
    format!("{prefix}blobs/sha256/{}", digest.hex())
}

/// A bucket and the credentials to reach it.
pub struct S3Client {
    agent: ureq::Agent,
    bucket: Bucket,
    credentials: Option<Credentials>,
}

impl S3Client {
    /// A client for `bucket` in `region`, at `endpoint_url` when given.
    pub fn new(
        bucket: &str,
        region: &str,
        endpoint_url: Option<&str>,
    ) -> Result<S3Client, S3Error> {
        let from_env = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok()
            .filter(|v| !v.trim().is_empty());
        let custom = endpoint_url.map(str::to_string).or(from_env);
        let (endpoint, style) = match &custom {
            Some(url) => (url.clone(), UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                UrlStyle::VirtualHost,
            ),
        };
        let endpoint = url::Url::parse(&endpoint)
            .map_err(|e| S3Error::Location(format!("endpoint {endpoint}: {e}")))?;
        let bucket = Bucket::new(endpoint, style, bucket.to_string(), region.to_string())
            .map_err(|e| S3Error::Location(format!("bucket {bucket}: {e}")))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .user_agent(format!("seal/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(S3Client {
            agent,
            bucket,
            credentials: credentials()?,
        })
    }

    /// The object's bytes, at most `limit`; `None` when there is no such object.
    pub fn get(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, S3Error> {
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), key)
            .sign(SIGNED_FOR);
        let mut response = self.send("GET", url.as_str(), Body::Empty)?;
        let what = format!("fetching s3 object {key}");
        match check(&what, &mut response) {
            // No such key: nothing there. A missing bucket stays an error that says so.
            Err(S3Error::Status {
                status: 404,
                detail,
                ..
            }) if !detail.contains("NoSuchBucket") => return Ok(None),
            other => other?,
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| S3Error::Transport {
                what: format!("reading (at most {limit} bytes)"),
                url: key.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Some(bytes))
    }

    /// The object's size; `None` when there is no such object.
    pub fn head(&self, key: &str) -> Result<Option<u64>, S3Error> {
        let url = self
            .bucket
            .head_object(self.credentials.as_ref(), key)
            .sign(SIGNED_FOR);
        let mut response = self.send("HEAD", url.as_str(), Body::Empty)?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        check(&format!("looking up s3 object {key}"), &mut response)?;
        Ok(response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// Write `bytes` as the object `key` (S3 replaces an object whole: a reader sees the old
    /// bytes or the new, never a mix).
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), S3Error> {
        let url = self
            .bucket
            .put_object(self.credentials.as_ref(), key)
            .sign(SIGNED_FOR);
        let mut response = self.send("PUT", url.as_str(), Body::Bytes(bytes))?;
        check(&format!("writing s3 object {key}"), &mut response)
    }

    /// Write the file at `path` as the object `key`.
    pub fn put_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        let url = self
            .bucket
            .put_object(self.credentials.as_ref(), key)
            .sign(SIGNED_FOR);
        let mut response = self.send("PUT", url.as_str(), Body::File(path))?;
        check(&format!("writing s3 object {key}"), &mut response)
    }

    /// Stream the object `key` into `store` as the blob `digest` of `size` bytes, verified:
    /// other bytes are refused and nothing is stored.
    pub fn download_blob(
        &self,
        store: &Store,
        key: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), S3Error> {
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), key)
            .sign(SIGNED_FOR);
        let mut response = self.send("GET", url.as_str(), Body::Empty)?;
        check(&format!("fetching s3 object {key}"), &mut response)?;
        let mut writer = store.blobs().writer()?;
        let mut reader = response.body_mut().with_config().limit(size + 1).reader();
        std::io::copy(&mut reader, &mut writer).map_err(|e| S3Error::Transport {
            what: "reading".into(),
            url: key.to_string(),
            reason: e.to_string(),
        })?;
        if writer.size() != size {
            return Err(S3Error::Transport {
                what: "reading".into(),
                url: key.to_string(),
                reason: format!("it has {} bytes, not {size}", writer.size()),
            });
        }
        writer.commit(Some(digest))?;
        Ok(())
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        body: Body<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, S3Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let builder = ureq::http::Request::builder().method(method).uri(url);
            let invalid = |e: ureq::http::Error| S3Error::Location(format!("{url}: {e}"));
            let result = match body {
                Body::Empty => self.agent.run(builder.body(()).map_err(invalid)?),
                Body::Bytes(b) => self.agent.run(builder.body(b).map_err(invalid)?),
                Body::File(path) => {
                    let file = std::fs::File::open(path)
                        .map_err(|e| StoreError::io("opening a blob", path, e))?;
                    let len = file.metadata().map(|m| m.len()).unwrap_or(0).to_string();
                    let builder = builder.header("Content-Length", len);
                    let mut file = file;
                    let body = ureq::SendBody::from_reader(&mut file);
                    self.agent.run(builder.body(body).map_err(invalid)?)
                }
            };
            let retry = match &result {
                Ok(r) => r.status().is_server_error(),
                Err(_) => true,
            };
            if retry && attempt < TRIES {
                std::thread::sleep(Duration::from_millis(250 << attempt));
                continue;
            }
            // The presigned query (the signature) stays out of messages.
            let shown = url.split('?').next().unwrap_or(url).to_string();
            return result.map_err(|e| S3Error::Transport {
                what: "cannot reach".into(),
                url: shown,
                reason: e.to_string(),
            });
        }
    }
}

#[derive(Clone, Copy)]
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A failure status as an error, with the start of S3's XML answer (its `Code` and message).
fn check(what: &str, response: &mut ureq::http::Response<ureq::Body>) -> Result<(), S3Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut text = String::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(2048)
        .read_to_string(&mut text);
    let code = between(&text, "<Code>", "</Code>");
    let message = between(&text, "<Message>", "</Message>");
    let detail = match (code, message) {
        (Some(c), Some(m)) => format!(": {c}: {m}"),
        (Some(c), None) => format!(": {c}"),
        _ => String::new(),
    };
    Err(S3Error::Status {
        what: what.to_string(),
        status: status.as_u16(),
        detail,
    })
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

/// The credentials the AWS tools would use, if any (also EC2's, for `--cloud-provider aws`).
pub fn credentials() -> Result<Option<Credentials>, S3Error> {
    if let Some(c) = Credentials::from_env() {
        return Ok(Some(c));
    }
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    // The credentials file names sections by profile; the config file `profile NAME`
    // (but `default` as is).
    let sources = [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            profile.clone(),
        ),
        (
            file("AWS_CONFIG_FILE", ".aws/config"),
            if profile == "default" {
                profile.clone()
            } else {
                format!("profile {profile}")
            },
        ),
    ];
    for (path, section) in sources {
        let Some(path) = path else { continue };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(S3Error::Credentials {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        let values = ini_section(&text, &section);
        let get = |k: &str| values.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let (Some(key), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key"))
        {
            return Ok(Some(match get("aws_session_token") {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            }));
        }
    }
    Ok(None)
}

/// The `key = value` lines of `[section]` in an INI text.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_as_the_aws_tools_read_them() {
        let text = "[default]\naws_access_key_id = A\n# note\n[profile ci]\nAWS_Access_Key_Id=B\naws_secret_access_key = S\n";
        assert_eq!(
            ini_section(text, "default"),
            [("aws_access_key_id".into(), "A".into())]
        );
        assert_eq!(
            ini_section(text, "profile ci"),
            [
                ("aws_access_key_id".to_string(), "B".to_string()),
                ("aws_secret_access_key".to_string(), "S".to_string())
            ]
        );
        assert!(ini_section(text, "other").is_empty());
        assert_eq!(
            between("<Code>NoSuchBucket</Code>", "<Code>", "</Code>"),
            Some("NoSuchBucket")
        );
    }
}

//! What every `--cloud-provider` shares: the build's id and tags, the keys and cloud-config
//! ([`userdata`]), the pinned ssh access ([`access`]), the caller's address, Ctrl-C checks,
//! and [`Provisioned`], the guard that deletes a provider's resources when it is dropped
//! (success, failure, Ctrl-C). Providers (aws.rs, alicloud.rs) make the API calls.

pub mod access;
pub mod time;
pub mod userdata;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use time::{iso8601, now, parse_duration, parse_iso8601};

/// The tag every resource seal creates carries: its build's id.
pub const BUILD_TAG: &str = "seal-build";
/// When a resource may be deleted by `seal cloud gc` (ISO 8601, UTC).
pub const EXPIRES_TAG: &str = "seal-expires";

/// What the `--cloud-*` flags say about the host to create, whichever the provider.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// `--cloud-region`; `None`: the provider's configured or default region.
    pub region: Option<String>,
    /// `--cloud-instance-type`; `None`: the provider's default.
    pub instance_type: Option<String>,
    /// `--cloud-image`; `None`: the newest Ubuntu 24.04 image the provider offers.
    pub image: Option<String>,
    /// `--cloud-endpoint`: the provider's API (all of its services) at this URL.
    pub endpoint: Option<String>,
    /// `--cloud-allow-from`; `None`: this machine's public address.
    pub allow_from: Option<String>,
    /// `--cloud-ttl`: how long after creation `seal cloud gc` may delete the host.
    pub ttl: Duration,
    /// `--cloud-ssh-config`: included first in the ssh_config seal writes.
    pub ssh_config: Option<PathBuf>,
    /// How long to wait for each resource, the instance and SSH.
    pub wait: Duration,
}

/// What went wrong provisioning a host, apart from the provider's API.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{0}")]
    Setup(String),
    #[error("interrupted while {0}")]
    Interrupted(String),
    #[error("instance {id} {what}")]
    Instance { id: String, what: String },
}

/// `Ok` when not interrupted.
pub fn check(interrupted: &AtomicBool, doing: &str) -> Result<(), ProvisionError> {
    if interrupted.load(Ordering::SeqCst) {
        return Err(ProvisionError::Interrupted(doing.to_string()));
    }
    Ok(())
}

/// Sleep `total` in small steps, stopping early on Ctrl-C.
pub fn nap(total: Duration, interrupted: &AtomicBool) {
    let end = Instant::now() + total;
    while Instant::now() < end && !interrupted.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh build id: 12 hex digits from /dev/urandom.
pub fn random_id() -> Result<String, ProvisionError> {
    let mut bytes = [0u8; 6];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| ProvisionError::Setup(format!("reading /dev/urandom: {e}")))?;
    Ok(hex::encode(bytes))
}

/// The tags of a build's resources: its id, its expiry (`ttl` from now) and a `Name`.
pub fn build_tags(build_id: &str, ttl: Duration) -> Vec<(String, String)> {
    vec![
        (BUILD_TAG.to_string(), build_id.to_string()),
        (EXPIRES_TAG.to_string(), iso8601(now() + ttl.as_secs())),
        ("Name".to_string(), format!("seal-{build_id}")),
    ]
}

/// A tag lookup over `(key, value)` pairs.
pub fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The caller's address as a provider sees it (an echo service), as a one-address CIDR.
pub fn caller_cidr() -> Result<String, ProvisionError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let text = agent
        .get("https://checkip.amazonaws.com/")
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| {
            ProvisionError::Setup(format!(
                "finding this machine's public address (checkip.amazonaws.com): {e}; \
                 give it with --cloud-allow-from CIDR"
            ))
        })?;
    let ip: std::net::IpAddr = text.trim().parse().map_err(|_| {
        ProvisionError::Setup(format!("checkip.amazonaws.com answered {:?}", text.trim()))
    })?;
    Ok(match ip {
        std::net::IpAddr::V4(v4) => format!("{v4}/32"),
        std::net::IpAddr::V6(v6) => format!("{v6}/128"),
    })
}

/// One build's leftover resource, as `seal cloud ls` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    pub build_id: String,
    pub kind: &'static str,
    pub id: String,
    pub state: String,
    pub expires: String,
    pub expired: bool,
}

impl Leftover {
    /// A leftover of `kind` described by its tags; expired when its `seal-expires` is past
    /// (or missing or unreadable).
    pub fn from_tags(
        kind: &'static str,
        id: String,
        state: String,
        tags: &[(String, String)],
    ) -> Leftover {
        let expires = tag(tags, EXPIRES_TAG);
        Leftover {
            build_id: tag(tags, BUILD_TAG).unwrap_or_default().to_string(),
            kind,
            expired: expires.and_then(parse_iso8601).is_none_or(|t| t <= now()),
            expires: expires.unwrap_or("-").to_string(),
            id,
            state,
        }
    }
}

/// What a provider created for one build, and how to delete it (`Send`: the build's first
/// cloud RUN creates it on a worker thread).
pub trait Resources: Send {
    /// `aws`, `alicloud`: the prefix of messages.
    fn provider(&self) -> &'static str;
    /// Something is left to delete.
    fn pending(&self) -> bool;
    /// Delete everything created, in dependency order, waiting for the provider as needed;
    /// idempotent (what was deleted is forgotten).
    fn delete(&mut self, say: &dyn Fn(&str)) -> Result<(), String>;
}

/// A host seal created: the ssh settings that reach it, and what to delete.
pub struct Provisioned {
    pub build_id: String,
    resources: Box<dyn Resources>,
    /// Keys, known_hosts and ssh_config; removed with the host.
    access: Option<access::Access>,
    /// What the build's ssh uses: `ssh -F ssh_config root@<ssh_host>`.
    pub ssh_config: PathBuf,
    pub ssh_host: String,
}

impl std::fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioned")
            .field("provider", &self.resources.provider())
            .field("build_id", &self.build_id)
            .field("ssh_host", &self.ssh_host)
            .finish()
    }
}

impl Provisioned {
    /// The guard over `resources` (delete on drop) and the host's `access`, which
    /// [`access::Access::route`] has pointed at the host.
    pub fn new(
        build_id: String,
        resources: Box<dyn Resources>,
        access: access::Access,
    ) -> Provisioned {
        Provisioned {
            build_id,
            ssh_config: access.ssh_config(),
            ssh_host: access.name.clone().unwrap_or_default(),
            resources,
            access: Some(access),
        }
    }

    /// The `-o` options every ssh to this host gets (they win over any config file).
    pub fn ssh_options(&self) -> Vec<String> {
        self.access
            .as_ref()
            .map(access::Access::pinned_options)
            .unwrap_or_default()
    }

    /// Delete the host and everything made for it, and the keys. Idempotent.
    pub fn delete(&mut self, say: &dyn Fn(&str)) -> Result<(), String> {
        self.access = None;
        self.resources.delete(say)
    }
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        if self.resources.pending() {
            if let Err(e) = self.delete(&|m| tracing::warn!("{m}")) {
                tracing::error!(
                    "{}: deleting build {}'s resources failed: {e}; `seal cloud gc` deletes them after they expire",
                    self.resources.provider(),
                    self.build_id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    struct Counted(Arc<AtomicU32>, bool);

    impl Resources for Counted {
        fn provider(&self) -> &'static str {
            "test"
        }
        fn pending(&self) -> bool {
            self.1
        }
        fn delete(&mut self, _: &dyn Fn(&str)) -> Result<(), String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1 = false;
            Ok(())
        }
    }

    #[test]
    fn a_dropped_host_is_deleted_once() {
        let deletes = Arc::new(AtomicU32::new(0));
        let mut access = access::Access::create("t").unwrap();
        access.route("i-9", "192.0.2.1", None).unwrap();
        let dir = access.dir().to_path_buf();
        let host = Provisioned::new("t".into(), Box::new(Counted(deletes.clone(), true)), access);
        assert_eq!(host.ssh_host, "i-9");
        assert!(host.ssh_options().contains(&"HostKeyAlias=i-9".to_string()));
        drop(host);
        assert_eq!(deletes.load(Ordering::SeqCst), 1);
        assert!(!dir.exists(), "the keys go with the host");
    }

    #[test]
    fn leftovers_expire_by_their_tag() {
        let tags = build_tags("b", Duration::from_secs(3600));
        let l = Leftover::from_tags("instance", "i-1".into(), "Running".into(), &tags);
        assert_eq!((l.build_id.as_str(), l.expired), ("b", false));
        let past = vec![(EXPIRES_TAG.to_string(), iso8601(now() - 1))];
        assert!(Leftover::from_tags("vpc", "v".into(), "-".into(), &past).expired);
        assert!(Leftover::from_tags("vpc", "v".into(), "-".into(), &[]).expired);
    }
}

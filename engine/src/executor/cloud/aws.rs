//! `--cloud-provider aws`: a host seal creates on EC2 for one build and always deletes.
//!
//! [`provision`] makes a key pair and a host key (ssh-keygen), a security group admitting
//! port 22 from the caller's address only, and one instance whose cloud-config carries both
//! keys; everything is tagged `seal-build=<id>` and `seal-expires=<time>`. seal then pins
//! the host key it made in a known_hosts file of its own, so the first connection is
//! checked. [`Provisioned`] deletes what it made when dropped (success, failure, Ctrl-C);
//! [`list`] and [`gc`] find what a killed build left, by tag.

pub mod ec2;
pub mod userdata;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ec2::{tag, Ec2, Ec2Error};

/// The tag every resource seal creates carries: its build's id.
pub const BUILD_TAG: &str = "seal-build";
/// When a resource may be deleted by `seal cloud gc` (ISO 8601, UTC).
pub const EXPIRES_TAG: &str = "seal-expires";

/// What went wrong provisioning or deleting a host.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(transparent)]
    Ec2(#[from] Ec2Error),
    #[error("{0}")]
    Setup(String),
    #[error("interrupted while {0}")]
    Interrupted(String),
    #[error("instance {id} {what}")]
    Instance { id: String, what: String },
}

/// What `--cloud-*` flags say about the host to create.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// `--cloud-region`; `None`: the AWS configuration's (ec2::Ec2::new).
    pub region: Option<String>,
    pub instance_type: String,
    /// `--cloud-image`; `None`: the newest Ubuntu 24.04 LTS (amd64) from Canonical.
    pub image: Option<String>,
    pub endpoint: Option<String>,
    /// `--cloud-allow-from`; `None`: this machine's public address (checkip.amazonaws.com).
    pub allow_from: Option<String>,
    /// `--cloud-ttl`: how long after creation `seal cloud gc` may delete the host.
    pub ttl: Duration,
    /// `--cloud-ssh-config`: included first in the ssh_config seal writes.
    pub ssh_config: Option<PathBuf>,
    /// How long to wait for the instance and for SSH.
    pub wait: Duration,
}

/// A host seal created: the ssh settings that reach it, and what to delete.
pub struct Provisioned {
    ec2: Ec2,
    pub build_id: String,
    pub instance_id: Option<String>,
    pub group_id: Option<String>,
    /// Key, known_hosts and ssh_config; removed with the host.
    dir: Option<tempfile::TempDir>,
    /// What the build's ssh uses: `ssh -F config root@<instance id>`.
    pub ssh_config: PathBuf,
    pub ssh_host: String,
}

impl std::fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioned")
            .field("build_id", &self.build_id)
            .field("instance_id", &self.instance_id)
            .field("group_id", &self.group_id)
            .finish()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_id() -> Result<String, AwsError> {
    let mut bytes = [0u8; 6];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| AwsError::Setup(format!("reading /dev/urandom: {e}")))?;
    Ok(hex::encode(bytes))
}

/// The caller's address as EC2 sees it, from AWS's own echo service.
fn caller_cidr() -> Result<String, AwsError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let text = agent
        .get("https://checkip.amazonaws.com/")
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| {
            AwsError::Setup(format!(
                "finding this machine's public address (checkip.amazonaws.com): {e}; \
                 give it with --cloud-allow-from CIDR"
            ))
        })?;
    let ip: std::net::IpAddr = text.trim().parse().map_err(|_| {
        AwsError::Setup(format!("checkip.amazonaws.com answered {:?}", text.trim()))
    })?;
    Ok(match ip {
        std::net::IpAddr::V4(v4) => format!("{v4}/32"),
        std::net::IpAddr::V6(v6) => format!("{v6}/128"),
    })
}

/// `Ok` when not interrupted.
fn check(interrupted: &AtomicBool, doing: &str) -> Result<(), AwsError> {
    if interrupted.load(Ordering::SeqCst) {
        return Err(AwsError::Interrupted(doing.to_string()));
    }
    Ok(())
}

/// Sleep `total` in small steps, stopping early on Ctrl-C.
fn nap(total: Duration, interrupted: &AtomicBool) {
    let end = Instant::now() + total;
    while Instant::now() < end && !interrupted.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Create the host, wait until SSH answers with the key seal made, and return it. Whatever
/// was created is deleted again when this fails (the error says what was created).
pub fn provision(
    options: &AwsOptions,
    interrupted: &AtomicBool,
    say: &dyn Fn(&str),
) -> Result<Provisioned, AwsError> {
    let ec2 = Ec2::new(options.region.as_deref(), options.endpoint.as_deref())?;
    let build_id = random_id()?;
    let dir = tempfile::Builder::new()
        .prefix("seal-aws-")
        .tempdir()
        .map_err(|e| AwsError::Setup(format!("temporary directory: {e}")))?;
    let mut host = Provisioned {
        ec2,
        build_id,
        instance_id: None,
        group_id: None,
        ssh_config: dir.path().join("ssh_config"),
        ssh_host: String::new(),
        dir: Some(dir),
    };
    match create(&mut host, options, interrupted, say) {
        Ok(()) => Ok(host),
        Err(e) => {
            let cleanup = host.delete(say);
            match cleanup {
                Ok(()) => Err(e),
                Err(c) => Err(AwsError::Setup(format!("{e}; and deleting: {c}"))),
            }
        }
    }
}

fn create(
    host: &mut Provisioned,
    options: &AwsOptions,
    interrupted: &AtomicBool,
    say: &dyn Fn(&str),
) -> Result<(), AwsError> {
    let dir = host
        .dir
        .as_ref()
        .map(|d| d.path().to_path_buf())
        .ok_or_else(|| AwsError::Setup("no key directory".into()))?;
    let id = host.build_id.clone();
    let client =
        userdata::keygen(&dir.join("id"), &format!("seal-{id}")).map_err(AwsError::Setup)?;
    let host_key =
        userdata::keygen(&dir.join("host_key"), &format!("seal-{id}")).map_err(AwsError::Setup)?;
    let host_private = std::fs::read_to_string(&host_key.private_path)
        .map_err(|e| AwsError::Setup(format!("reading the host key: {e}")))?;
    // seal keeps only the host key's public half.
    let _ = std::fs::remove_file(&host_key.private_path);
    let cidr = match &options.allow_from {
        Some(c) => c.clone(),
        None => caller_cidr()?,
    };
    let image = match &options.image {
        Some(i) => i.clone(),
        None => host
            .ec2
            .newest_image(
                "099720109477",
                "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
            )?
            .ok_or_else(|| {
                AwsError::Setup(format!(
                    "no Ubuntu 24.04 image from Canonical in {}; give one with --cloud-image",
                    host.ec2.region()
                ))
            })?,
    };
    let tags = vec![
        (BUILD_TAG.to_string(), id.clone()),
        (
            EXPIRES_TAG.to_string(),
            ec2::iso8601(now() + options.ttl.as_secs()),
        ),
        ("Name".to_string(), format!("seal-{id}")),
    ];
    check(interrupted, "creating the security group")?;
    let group = host.ec2.create_security_group(
        &format!("seal-{id}"),
        "seal build host: SSH from the builder only",
        &tags,
    )?;
    host.group_id = Some(group.clone());
    host.ec2.authorize_ssh(&group, &cidr)?;
    check(interrupted, "starting the instance")?;
    let config = userdata::cloud_config(&host_private, &host_key.public, &client.public);
    use base64::Engine as _;
    let user_data = base64::engine::general_purpose::STANDARD.encode(config);
    let instance =
        host.ec2
            .run_instance(&image, &options.instance_type, &group, &user_data, &tags)?;
    host.instance_id = Some(instance.clone());
    say(&format!(
        "aws: started {instance} ({}, {image}) in {}, SSH from {cidr}",
        options.instance_type,
        host.ec2.region()
    ));
    // Wait for an address.
    let deadline = Instant::now() + options.wait;
    let address = loop {
        check(interrupted, "waiting for the instance")?;
        let found = host.ec2.describe_instances(&[("instance-id", &instance)])?;
        let state = found.first().map(|i| i.state.clone()).unwrap_or_default();
        if let Some(ip) = found.first().and_then(|i| i.public_ip.clone()) {
            if state == "running" {
                break ip;
            }
        }
        if matches!(state.as_str(), "shutting-down" | "terminated" | "stopped") {
            return Err(AwsError::Instance {
                id: instance,
                what: format!("is {state} before it ran"),
            });
        }
        if Instant::now() > deadline {
            return Err(AwsError::Instance {
                id: instance,
                what: format!(
                    "has no public address after {}s (state {state:?})",
                    options.wait.as_secs()
                ),
            });
        }
        nap(Duration::from_secs(2), interrupted);
    };
    // known_hosts pins the key seal made, under the instance's id (HostKeyAlias), so the
    // check does not depend on where ssh_config routes the connection.
    std::fs::write(
        dir.join("known_hosts"),
        format!("{instance} {}\n", host_key.public),
    )
    .map_err(|e| AwsError::Setup(format!("writing known_hosts: {e}")))?;
    let include = options
        .ssh_config
        .as_ref()
        .map(|p| format!("Include {}\n", absolute(p).display()))
        .unwrap_or_default();
    // The user's file comes first: its HostName/Port/ProxyJump for the instance win; the
    // identity and the host key check are seal's.
    let config = format!(
        "{include}Host {instance}\n  HostName {address}\n  User root\n  IdentityFile {d}/id\n  \
         IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
         HostKeyAlias {instance}\n  StrictHostKeyChecking yes\n  ConnectTimeout 10\n",
        d = dir.display()
    );
    std::fs::write(&host.ssh_config, config)
        .map_err(|e| AwsError::Setup(format!("writing ssh_config: {e}")))?;
    host.ssh_host = instance.clone();
    say(&format!(
        "aws: {instance} is running at {address}; waiting for SSH"
    ));
    wait_for_ssh(host, &dir, &instance, deadline, interrupted)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The ssh options that hold whatever the user's config says: seal's key and known_hosts.
pub fn pinned_options(dir: &Path, instance: &str) -> Vec<String> {
    vec![
        format!("IdentityFile={}/id", dir.display()),
        "IdentitiesOnly=yes".into(),
        format!("UserKnownHostsFile={}/known_hosts", dir.display()),
        "GlobalKnownHostsFile=/dev/null".into(),
        format!("HostKeyAlias={instance}"),
    ]
}

impl Provisioned {
    /// The `-o` options every ssh to this host gets (they win over any config file).
    pub fn ssh_options(&self) -> Vec<String> {
        match (&self.dir, &self.instance_id) {
            (Some(d), Some(i)) => pinned_options(d.path(), i),
            _ => Vec::new(),
        }
    }

    /// Terminate the instance, wait until it is gone, delete the security group and the
    /// keys. Idempotent.
    pub fn delete(&mut self, say: &dyn Fn(&str)) -> Result<(), AwsError> {
        let result = delete_resources(
            &self.ec2,
            self.instance_id.as_deref(),
            self.group_id.as_deref(),
            say,
        );
        if result.is_ok() {
            self.instance_id = None;
            self.group_id = None;
        }
        self.dir = None;
        result
    }
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        if self.instance_id.is_some() || self.group_id.is_some() {
            if let Err(e) = self.delete(&|m| tracing::warn!("{m}")) {
                tracing::error!(
                    "aws: deleting build {}'s resources failed: {e}; `seal cloud gc` deletes them after they expire",
                    self.build_id
                );
            }
        }
    }
}

fn wait_for_ssh(
    host: &Provisioned,
    dir: &Path,
    instance: &str,
    deadline: Instant,
    interrupted: &AtomicBool,
) -> Result<(), AwsError> {
    let mut last = String::new();
    loop {
        check(interrupted, "waiting for SSH")?;
        let mut command = std::process::Command::new("ssh");
        command.arg("-F").arg(&host.ssh_config);
        for o in pinned_options(dir, instance) {
            command.arg("-o").arg(o);
        }
        let out = command
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=10",
                "-T",
                "--",
                instance,
                "command -v runc >/dev/null || echo 'runc is missing' >&2; command -v runc >/dev/null",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| AwsError::Setup(format!("running ssh: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or(&last)
            .to_string();
        if Instant::now() > deadline {
            return Err(AwsError::Instance {
                id: instance.to_string(),
                what: format!("does not answer SSH with seal's host key and client key: {last}"),
            });
        }
        nap(Duration::from_secs(3), interrupted);
    }
}

fn delete_resources(
    ec2: &Ec2,
    instance: Option<&str>,
    group: Option<&str>,
    say: &dyn Fn(&str),
) -> Result<(), AwsError> {
    if let Some(id) = instance {
        ec2.terminate_instances(&[id.to_string()])?;
        say(&format!("aws: terminated {id}"));
    }
    if let Some(group) = group {
        // The group stays in use until its instance is terminated.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match ec2.delete_security_group(group) {
                Ok(()) => break,
                Err(Ec2Error::Api { code, .. }) if code == "InvalidGroup.NotFound" => break,
                Err(Ec2Error::Api { code, .. })
                    if code == "DependencyViolation" && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_secs(5))
                }
                Err(e) => return Err(e.into()),
            }
        }
        say(&format!("aws: deleted security group {group}"));
    }
    Ok(())
}

/// One build's leftovers, as `seal cloud ls` shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    pub build_id: String,
    pub kind: &'static str,
    pub id: String,
    pub state: String,
    pub expires: String,
    pub expired: bool,
}

/// Everything tagged `seal-build` that still exists (terminated instances are gone).
pub fn list(ec2: &Ec2) -> Result<Vec<Leftover>, AwsError> {
    let now = now();
    let expired = |tags: &[(String, String)]| {
        tag(tags, EXPIRES_TAG)
            .and_then(ec2::parse_iso8601)
            .is_none_or(|t| t <= now)
    };
    let mut found = Vec::new();
    for i in ec2.describe_instances(&[("tag-key", BUILD_TAG)])? {
        if i.state == "terminated" {
            continue;
        }
        found.push(Leftover {
            build_id: tag(&i.tags, BUILD_TAG).unwrap_or_default().to_string(),
            kind: "instance",
            expired: expired(&i.tags),
            expires: tag(&i.tags, EXPIRES_TAG).unwrap_or("-").to_string(),
            id: i.id,
            state: i.state,
        });
    }
    for g in ec2.describe_security_groups(&[("tag-key", BUILD_TAG)])? {
        found.push(Leftover {
            build_id: tag(&g.tags, BUILD_TAG).unwrap_or_default().to_string(),
            kind: "security-group",
            expired: expired(&g.tags),
            expires: tag(&g.tags, EXPIRES_TAG).unwrap_or("-").to_string(),
            id: g.id,
            state: "-".into(),
        });
    }
    Ok(found)
}

/// Delete every expired leftover (instances first, then their groups); what was deleted.
pub fn gc(ec2: &Ec2, say: &dyn Fn(&str)) -> Result<Vec<Leftover>, AwsError> {
    let expired: Vec<Leftover> = list(ec2)?.into_iter().filter(|l| l.expired).collect();
    for l in expired.iter().filter(|l| l.kind == "instance") {
        delete_resources(ec2, Some(&l.id), None, say)?;
    }
    for l in expired.iter().filter(|l| l.kind == "security-group") {
        delete_resources(ec2, None, Some(&l.id), say)?;
    }
    Ok(expired)
}

/// `30s`, `20m`, `6h`, `2d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30m, 6h"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{text}`: unit must be s, m, h or d")),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert!(parse_duration("6x").is_err());
        assert!(parse_duration("h").is_err());
    }
}

//! How seal reaches a host it provisioned: a private directory with the client key, a
//! known_hosts that pins the host key seal made (under the instance's id, `HostKeyAlias`),
//! and an ssh_config that `Include`s `--cloud-ssh-config` first; then the wait until SSH
//! answers with that key.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::userdata::{cloud_config, keygen};
use super::{check, nap, ProvisionError};

/// The key directory of one provisioned host (removed when dropped).
pub struct Access {
    dir: tempfile::TempDir,
    /// The cloud-config user-data: the host key's private half, the client's public key.
    pub user_data: String,
    host_public: String,
    /// `Host <name>` in [`Access::ssh_config`], set by [`Access::route`].
    pub name: Option<String>,
}

impl Access {
    /// A client key and a host key (ssh-keygen) in a new private directory; only the host
    /// key's public half stays on disk.
    pub fn create(build_id: &str) -> Result<Access, ProvisionError> {
        let setup = ProvisionError::Setup;
        let dir = tempfile::Builder::new()
            .prefix("seal-cloud-")
            .tempdir()
            .map_err(|e| setup(format!("temporary directory: {e}")))?;
        let comment = format!("seal-{build_id}");
        let client = keygen(&dir.path().join("id"), &comment).map_err(setup)?;
        let host = keygen(&dir.path().join("host_key"), &comment).map_err(setup)?;
        let host_private = std::fs::read_to_string(&host.private_path)
            .map_err(|e| setup(format!("reading the host key: {e}")))?;
        let _ = std::fs::remove_file(&host.private_path);
        Ok(Access {
            user_data: cloud_config(&host_private, &host.public, &client.public),
            host_public: host.public,
            dir,
            name: None,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The ssh_config the build's ssh uses (`ssh -F`).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir().join("ssh_config")
    }

    /// Pin the host key under `name` (the instance's id) and route `name` to `address`; the
    /// user's `--cloud-ssh-config` comes first, so its HostName/Port/ProxyJump win.
    pub fn route(
        &mut self,
        name: &str,
        address: &str,
        user_config: Option<&Path>,
    ) -> Result<(), ProvisionError> {
        let setup = ProvisionError::Setup;
        let d = self.dir().to_path_buf();
        std::fs::write(
            d.join("known_hosts"),
            format!("{name} {}\n", self.host_public),
        )
        .map_err(|e| setup(format!("writing known_hosts: {e}")))?;
        let include = user_config
            .map(|p| {
                let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                format!("Include {}\n", p.display())
            })
            .unwrap_or_default();
        let config = format!(
            "{include}Host {name}\n  HostName {address}\n  User root\n  IdentityFile {d}/id\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
             HostKeyAlias {name}\n  StrictHostKeyChecking yes\n  ConnectTimeout 10\n",
            d = d.display()
        );
        std::fs::write(self.ssh_config(), config)
            .map_err(|e| setup(format!("writing ssh_config: {e}")))?;
        self.name = Some(name.to_string());
        Ok(())
    }

    /// The `-o` options every ssh to the host gets: they win over any config file.
    pub fn pinned_options(&self) -> Vec<String> {
        let Some(name) = &self.name else {
            return Vec::new();
        };
        pinned_options(self.dir(), name)
    }

    /// Wait until the host answers SSH with seal's host key, admits seal's client key and
    /// has runc (cloud-config installs it before it admits the key).
    pub fn wait_for_ssh(
        &self,
        deadline: Instant,
        interrupted: &AtomicBool,
    ) -> Result<(), ProvisionError> {
        let name = self
            .name
            .clone()
            .ok_or_else(|| ProvisionError::Setup("no route to the host".into()))?;
        let mut last = String::new();
        loop {
            check(interrupted, "waiting for SSH")?;
            let mut command = std::process::Command::new("ssh");
            command.arg("-F").arg(self.ssh_config());
            for o in self.pinned_options() {
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
                    &name,
                    "command -v runc >/dev/null || echo 'runc is missing' >&2; command -v runc >/dev/null",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| ProvisionError::Setup(format!("running ssh: {e}")))?;
            if out.status.success() {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or(&last)
                .to_string();
            if Instant::now() > deadline {
                return Err(ProvisionError::Instance {
                    id: name,
                    what: format!(
                        "does not answer SSH with seal's host key and client key: {last}"
                    ),
                });
            }
            nap(Duration::from_secs(3), interrupted);
        }
    }
}

/// The ssh options that hold whatever the user's config says: seal's key and known_hosts.
pub fn pinned_options(dir: &Path, name: &str) -> Vec<String> {
    vec![
        format!("IdentityFile={}/id", dir.display()),
        "IdentitiesOnly=yes".into(),
        format!("UserKnownHostsFile={}/known_hosts", dir.display()),
        "GlobalKnownHostsFile=/dev/null".into(),
        format!("HostKeyAlias={name}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_pins_the_host_key_under_the_instance_name() {
        let mut access = Access::create("b1").unwrap();
        assert!(access.user_data.starts_with("#cloud-config\n"));
        assert!(!access.dir().join("host_key").exists(), "private half kept");
        access
            .route("i-1", "203.0.113.9", Some(Path::new("/etc/user.conf")))
            .unwrap();
        let known = std::fs::read_to_string(access.dir().join("known_hosts")).unwrap();
        assert!(known.starts_with("i-1 ssh-ed25519 "), "{known}");
        let config = std::fs::read_to_string(access.ssh_config()).unwrap();
        assert!(config.starts_with("Include /etc/user.conf\nHost i-1\n  HostName 203.0.113.9\n"));
        assert!(access
            .pinned_options()
            .contains(&"HostKeyAlias=i-1".to_string()));
    }
}

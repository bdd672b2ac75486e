//! The key pairs seal makes for a provisioned host (ssh-keygen) and the cloud-config that
//! hands the host its host key and admits the client key: seal knows the host key before
//! the machine boots, so the first connection is checked, not trusted (docs/decisions.md).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A key pair ssh-keygen wrote: `path` (private) and `path.pub`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private_path: PathBuf,
    /// `ssh-ed25519 AAAA...` (no comment).
    pub public: String,
}

/// A fresh ed25519 key pair at `path`, without a passphrase.
pub fn keygen(path: &Path, comment: &str) -> Result<KeyPair, String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .map_err(|e| format!("running ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .map_err(|e| format!("reading {}.pub: {e}", path.display()))?;
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(KeyPair {
        private_path: path.to_path_buf(),
        public,
    })
}

/// The cloud-config: the host key (replacing the image's), runc, and — last, so that a
/// login succeeds only once the host is ready — the client key in root's authorized_keys.
pub fn cloud_config(host_private: &str, host_public: &str, client_public: &str) -> String {
    let indented: String = host_private.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "#cloud-config\n\
         ssh_deletekeys: true\n\
         ssh_genkeytypes: []\n\
         ssh_keys:\n  ed25519_private: |\n{indented}  ed25519_public: {host_public}\n\
         package_update: true\n\
         packages: [runc]\n\
         runcmd:\n  \
         - [sh, -c, \"install -d -m 700 /root/.ssh && echo '{client_public}' >> /root/.ssh/authorized_keys\"]\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_config_carries_both_keys() {
        let text = cloud_config(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
            "ssh-ed25519 HOST",
            "ssh-ed25519 CLIENT",
        );
        assert!(text.starts_with("#cloud-config\n"));
        assert!(text
            .contains("  ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    abc\n"));
        assert!(text.contains("  ed25519_public: ssh-ed25519 HOST\n"));
        assert!(text.contains("echo 'ssh-ed25519 CLIENT' >> /root/.ssh/authorized_keys"));
    }

    #[test]
    fn keygen_writes_a_pair() {
        let dir = tempfile::tempdir().unwrap();
        let pair = keygen(&dir.path().join("k"), "seal").unwrap();
        assert!(pair.public.starts_with("ssh-ed25519 "), "{}", pair.public);
        assert!(pair.private_path.is_file());
    }
}

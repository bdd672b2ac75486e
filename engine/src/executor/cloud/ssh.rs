//! The SSH side of cloud mode: `ssh://USER@HOST[:PORT]` addresses, the system OpenSSH client
//! (the user's config, agent, `ProxyJump` and `known_hosts` apply; host keys are checked
//! strictly unless the user accepts new ones), and the bootstrap that finds — or copies over
//! and sha256-checks — the same seal binary on the host and starts its server in one session.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::serve::SERVE_ARG;
use crate::EngineError;

/// A `--cloud-host` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudHost {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl CloudHost {
    /// Parse `ssh://[USER@]HOST[:PORT]` (an IPv6 address in brackets).
    pub fn parse(text: &str) -> Result<CloudHost, String> {
        let rest = text
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("`{text}`: expected ssh://USER@HOST[:PORT]"))?;
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((user, hp)) if !user.is_empty() => (Some(user.to_string()), hp),
            Some(_) => return Err(format!("`{text}`: empty user name")),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, tail) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: unclosed `[`"))?;
            (host, tail.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{text}`: bad port `{p}`"))
            })
            .transpose()?;
        let bad = |c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"';
        if host.is_empty() || host.starts_with('-') || host.contains(bad) {
            return Err(format!("`{text}`: bad host name `{host}`"));
        }
        if user
            .as_deref()
            .is_some_and(|u| u.starts_with('-') || u.contains(bad))
        {
            return Err(format!("`{text}`: bad user name"));
        }
        Ok(CloudHost {
            user,
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for CloudHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// How to reach the host.
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub host: CloudHost,
    /// `--cloud-ssh-config`: `ssh -F FILE`.
    pub config: Option<PathBuf>,
    /// `--cloud-accept-new-host-key`: trust an unknown host's key on first use (a changed
    /// key is still refused).
    pub accept_new_host_key: bool,
    /// `-o` options that win over any config file (a provisioned host's pinned key).
    pub extra_options: Vec<String>,
}

impl SshOptions {
    /// The `ssh` command that runs `remote` on the host, without a terminal.
    pub fn command(&self, remote: &str) -> Command {
        let mut command = Command::new("ssh");
        if let Some(config) = &self.config {
            command.arg("-F").arg(config);
        }
        let strict = if self.accept_new_host_key {
            "StrictHostKeyChecking=accept-new"
        } else {
            "StrictHostKeyChecking=yes"
        };
        command.args([
            "-T",
            "-e",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            strict,
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]);
        for option in &self.extra_options {
            command.arg("-o").arg(option);
        }
        if let Some(port) = self.host.port {
            command.arg("-p").arg(port.to_string());
        }
        if let Some(user) = &self.host.user {
            command.arg("-l").arg(user);
        }
        command.arg("--").arg(&self.host.host).arg(remote);
        command
    }
}

/// The binary the host must run: this seal, or `--cloud-seal-binary`.
#[derive(Debug, Clone)]
pub struct SealBinary {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// `uname -m` of the machine it runs on, from its ELF header (None: unknown).
    pub arch: Option<&'static str>,
}

impl SealBinary {
    /// Hash and identify `path`.
    pub fn read(path: &Path) -> Result<SealBinary, EngineError> {
        let bytes = std::fs::read(path).map_err(|e| EngineError::io("reading", path, e))?;
        Ok(SealBinary {
            path: path.to_path_buf(),
            sha256: hex(&Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            arch: elf_arch(&bytes),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `uname -m` for an ELF file's machine (little-endian `e_machine` at offset 18).
fn elf_arch(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return None;
    }
    let machine = u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]);
    Some(match machine {
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv64",
        21 => "ppc64le",
        22 => "s390x",
        258 => "loongarch64",
        _ => return None,
    })
}

/// The host side of the bootstrap (POSIX sh; no single quotes): report the architecture,
/// take the binary from stdin when `seal-<sha256>` is missing or does not have that sha256
/// (a damaged copy), check it, mark it used, delete copies (and interrupted uploads) no
/// build has used for 7 days, start the server.
const BOOTSTRAP: &str = r#"set -e
sha=$1; size=$2
d="${XDG_CACHE_HOME:-$HOME/.cache}/seal/bin"; f="$d/seal-$sha"
echo "seal-cloud arch $(uname -m)"
if [ ! -x "$f" ] || ! echo "$sha  $f" | sha256sum -c --status 2>/dev/null; then
  echo "seal-cloud need"
  mkdir -p "$d"; t="$f.tmp.$$"
  head -c "$size" > "$t"
  if echo "$sha  $t" | sha256sum -c --status; then chmod 755 "$t"; mv -f "$t" "$f"
  else rm -f "$t"; echo "seal-cloud badsum"; exit 1; fi
fi
touch "$f" 2>/dev/null || :
find "$d" -type f -name "seal-*" ! -name "seal-$sha" -mtime +7 -exec rm -f {} + 2>/dev/null || :
echo "seal-cloud ready"
exec "$f" "#;

/// A running `seal __seal-cloud-serve` on the host, over one SSH session.
pub struct Connection {
    pub child: Child,
    /// Taken (closed) when the connection is dropped.
    stdin: Option<ChildStdin>,
    pub stdout: std::io::BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
    pub host: CloudHost,
}

/// How much of ssh's stderr an error quotes.
const STDERR_TAIL: usize = 2048;

impl Connection {
    /// Connect, make sure the host runs `binary`, and start its server.
    pub fn open(options: &SshOptions, binary: &SealBinary) -> Result<Connection, EngineError> {
        let remote = format!(
            "sh -c '{BOOTSTRAP}{SERVE_ARG}' seal-cloud {} {}",
            binary.sha256, binary.size
        );
        let mut child = options
            .command(&remote)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::Spawn {
                what: "ssh".into(),
                reason: format!(
                    "{e} (cloud mode uses the OpenSSH client: apt-get install openssh-client)"
                ),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(EngineError::Internal("ssh without pipes".into()));
        };
        let tail = Arc::new(Mutex::new(String::new()));
        let sink = tail.clone();
        std::thread::spawn(move || collect_stderr(stderr, &sink));
        let mut connection = Connection {
            child,
            stdin: Some(stdin),
            stdout: std::io::BufReader::new(stdout),
            stderr: tail,
            host: options.host.clone(),
        };
        match connection.bootstrap(binary) {
            Ok(()) => Ok(connection),
            Err(reason) => {
                connection.kill();
                Err(connection.error(&reason))
            }
        }
    }

    fn bootstrap(&mut self, binary: &SealBinary) -> Result<(), String> {
        loop {
            let line = self.status_line()?;
            if let Some(arch) = line.strip_prefix("arch ") {
                if let Some(ours) = binary.arch.filter(|ours| *ours != arch) {
                    return Err(format!(
                        "the host is {arch} and {} is built for {ours}; pass \
                         --cloud-seal-binary PATH with a seal built for {arch}",
                        binary.path.display()
                    ));
                }
            } else if line == "need" {
                let mut file = std::fs::File::open(&binary.path)
                    .map_err(|e| format!("reading {}: {e}", binary.path.display()))?;
                let input = self.input().map_err(|e| e.to_string())?;
                std::io::copy(&mut file, input)
                    .and_then(|_| input.flush())
                    .map_err(|e| format!("copying seal to the host: {e}"))?;
            } else if line == "badsum" {
                return Err("the copy of seal on the host does not have its sha256".into());
            } else if line == "ready" {
                return Ok(());
            }
        }
    }

    /// The next `seal-cloud ...` line of the bootstrap (login banners are skipped).
    fn status_line(&mut self) -> Result<String, String> {
        for _ in 0..1000 {
            let mut line = String::new();
            let n = (&mut self.stdout)
                .take(4096)
                .read_line(&mut line)
                .map_err(|e| format!("reading from ssh: {e}"))?;
            if n == 0 {
                return Err("ssh ended before seal started on the host".into());
            }
            if let Some(status) = line.trim_end().strip_prefix("seal-cloud ") {
                return Ok(status.to_string());
            }
        }
        Err("the host printed too much before seal started".into())
    }

    /// The server's stdin.
    pub fn input(&mut self) -> std::io::Result<&mut ChildStdin> {
        self.stdin
            .as_mut()
            .ok_or_else(|| std::io::ErrorKind::BrokenPipe.into())
    }

    /// Stop the session (and with it the server and any step it runs).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id of ssh, for killing it from another thread.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error about this host, with what ssh said (after it ended, so it said everything).
    pub fn error(&mut self, reason: &str) -> EngineError {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        // The stderr reader ends at ssh's exit; give it a moment to take the last lines.
        for _ in 0..50 {
            if Arc::strong_count(&self.stderr) == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let all = self
            .stderr
            .lock()
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let said = last_lines(&all, 3);
        let mut text = reason.to_string();
        if !said.is_empty() {
            text.push_str(&format!("; ssh said: {said}"));
        } else if let Some(status) = status.filter(|s| !s.success()) {
            text.push_str(&format!("; ssh {status}"));
        }
        if let Some(hint) = hint(&all) {
            text.push_str(&format!("\nhint: {hint}"));
        }
        EngineError::Cloud {
            host: self.host.to_string(),
            reason: text,
        }
    }
}

/// How long a build's end waits for the host's server to finish after its stdin closed.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for Connection {
    /// Close the server's stdin and wait (a little) for it and ssh to end, so a build that
    /// returns leaves nothing running on the host; then kill ssh.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        self.kill();
    }
}

fn collect_stderr(mut stderr: std::process::ChildStderr, sink: &Arc<Mutex<String>>) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stderr.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Ok(mut text) = sink.lock() {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.len() > STDERR_TAIL {
                let cut = text.len() - STDERR_TAIL;
                let cut = (cut..text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.drain(..cut);
            }
        }
    }
}

/// The last `n` non-empty lines of `text`, joined by newlines: ssh's verdict follows its
/// banners.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What to do about the common ways ssh fails.
fn hint(said: &str) -> Option<&'static str> {
    if said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        Some("the host's key is not the one known_hosts has for it; if it changed for a good reason, remove the old one with `ssh-keygen -R HOST`")
    } else if said.contains("Host key verification failed")
        || said.contains("No ED25519 host key")
        || said.contains("host key for")
    {
        Some("the host's key is not in known_hosts; add it (ssh-keyscan, or from the provider), or pass --cloud-accept-new-host-key to trust it on first use")
    } else if said.contains("Permission denied") {
        Some("the host refused every key ssh offered: check the user name, the agent (ssh-add -l) and IdentityFile")
    } else if said.contains("Connection refused")
        || said.contains("timed out")
        || said.contains("No route to host")
        || said.contains("Could not resolve")
    {
        Some("the host is unreachable: check the address, the port and that sshd runs")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let h = CloudHost::parse("ssh://root@10.0.0.1:2222").unwrap();
        assert_eq!(h.user.as_deref(), Some("root"));
        assert_eq!((h.host.as_str(), h.port), ("10.0.0.1", Some(2222)));
        assert_eq!(h.to_string(), "root@10.0.0.1:2222");
        let h = CloudHost::parse("ssh://builder").unwrap();
        assert_eq!((h.user, h.port), (None, None));
        let h = CloudHost::parse("ssh://u@[::1]:22").unwrap();
        assert_eq!(
            (h.host.as_str(), h.to_string().as_str()),
            ("::1", "u@[::1]:22")
        );
        for bad in [
            "root@host",
            "ssh://",
            "ssh://@h",
            "ssh://h:0",
            "ssh://h:x",
            "ssh://-oProxyCommand=x",
            "ssh://a b",
            "ssh://h'",
        ] {
            assert!(CloudHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_checks_host_keys_unless_told() {
        let mut options = SshOptions {
            host: CloudHost::parse("ssh://u@h:2").unwrap(),
            config: Some("cfg".into()),
            accept_new_host_key: false,
            extra_options: Vec::new(),
        };
        let args = |o: &SshOptions| -> Vec<String> {
            o.command("x")
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let a = args(&options);
        assert_eq!(&a[..2], ["-F", "cfg"]);
        assert!(a.contains(&"StrictHostKeyChecking=yes".to_string()));
        assert!(a.contains(&"BatchMode=yes".to_string()));
        assert_eq!(&a[a.len() - 3..], ["--", "h", "x"]);
        options.accept_new_host_key = true;
        assert!(args(&options).contains(&"StrictHostKeyChecking=accept-new".to_string()));
    }

    #[test]
    fn elf_machines_name_architectures() {
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(20, 0);
        elf[18] = 183;
        assert_eq!(elf_arch(&elf), Some("aarch64"));
        assert_eq!(elf_arch(b"#!/bin/sh"), None);
        let me = std::env::current_exe().unwrap();
        let ours = SealBinary::read(&me).unwrap();
        assert_eq!(ours.arch, Some(std::env::consts::ARCH));
        assert_eq!(ours.sha256.len(), 64);
    }

    #[test]
    fn errors_quote_sshs_last_lines_and_hint() {
        let said = "@@@\nWARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\n\nOffending key\nHost key verification failed.\n";
        assert_eq!(
            last_lines(said, 2),
            "Offending key\nHost key verification failed."
        );
        assert!(hint(said).unwrap().contains("ssh-keygen -R"));
        assert!(hint("Host key verification failed.")
            .unwrap()
            .contains("--cloud-accept-new-host-key"));
        assert!(hint("root@h: Permission denied (publickey).")
            .unwrap()
            .contains("refused"));
        assert!(hint("connect to host h port 1: Connection refused")
            .unwrap()
            .contains("unreachable"));
        assert_eq!(hint("something else"), None);
    }

    #[test]
    fn the_bootstrap_has_no_single_quote() {
        assert!(!BOOTSTRAP.contains('\''));
    }
}

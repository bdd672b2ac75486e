//! A real OpenSSH server (Debian `openssh-server`) as the "cloud host" of tests/cloud.rs: it
//! runs in a mount namespace of its own where root's `HOME` (`/root`), `/var/lib/seal` and
//! `/tmp` are directories of the test, so the host shares no store, binary or file with the
//! build's seal; it listens on a 127.0.0.x address of its own. The client side is an
//! ssh_config file (key, known_hosts) for `--cloud-ssh-config`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running sshd and the files a client needs.
pub struct Sshd {
    dir: TempDir,
    pub address: String,
    pub port: u16,
    child: Option<Child>,
    options: HostOptions,
}

/// What the host lacks.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// `/usr/sbin/runc` is an empty, non-executable file.
    pub no_runc: bool,
    /// `/var/lib/seal` is a tmpfs of this size (e.g. `8m`) instead of a test directory.
    pub store_size: Option<&'static str>,
}

impl Sshd {
    /// Start a server with fresh host and client keys; the client's known_hosts has its key.
    pub fn start() -> Sshd {
        Sshd::start_with(HostOptions::default())
    }

    /// Start a server on a host that lacks what `options` say.
    pub fn start_with(options: HostOptions) -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "openssh-server is installed (scripts/install-system-packages.sh)"
        );
        // Not under /tmp or /root: the server's namespace covers both.
        std::fs::create_dir_all("/var/tmp").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("seal-sshd-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path();
        for sub in ["home/.ssh", "varlib", "tmp", "etc", "client"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        keygen(&d.join("etc/host_key"));
        keygen(&d.join("client/id"));
        std::fs::copy(d.join("client/id.pub"), d.join("home/.ssh/authorized_keys")).unwrap();
        let last = 2 + (std::process::id() % 250) as u8;
        let address = format!("127.0.0.{last}");
        let port = free_port(&address);
        let mut sshd = Sshd {
            dir,
            address,
            port,
            child: None,
            options,
        };
        sshd.write_known_hosts(&sshd.host_key());
        sshd.write_client_config();
        sshd.restart();
        sshd
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    /// `ssh://root@ADDRESS:PORT`.
    pub fn url(&self) -> String {
        format!("ssh://root@{}:{}", self.address, self.port)
    }

    /// The client's ssh_config (`--cloud-ssh-config`).
    pub fn config(&self) -> PathBuf {
        self.d().join("client/config")
    }

    /// The host's `/var/lib/seal`.
    pub fn remote_store(&self) -> PathBuf {
        self.d().join("varlib")
    }

    /// The host's root HOME.
    pub fn remote_home(&self) -> PathBuf {
        self.d().join("home")
    }

    /// The server's public host key line (`ssh-ed25519 AAAA...`).
    pub fn host_key(&self) -> String {
        let line = std::fs::read_to_string(self.d().join("etc/host_key.pub")).unwrap();
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Make the client's known_hosts say `key` for this server (empty: know nothing).
    pub fn write_known_hosts(&self, key: &str) {
        let text = if key.is_empty() {
            String::new()
        } else {
            format!("[{}]:{} {key}\n", self.address, self.port)
        };
        std::fs::write(self.d().join("client/known_hosts"), text).unwrap();
    }

    /// A key that is not the server's.
    pub fn other_key(&self) -> String {
        let path = self.d().join("client/other");
        if !path.exists() {
            keygen(&path);
        }
        let line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn write_client_config(&self) {
        let d = self.d().display();
        let config = format!(
            "Host *\n  IdentityFile {d}/client/id\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {d}/client/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
             ConnectTimeout 10\n"
        );
        std::fs::write(self.config(), config).unwrap();
    }

    /// Play cloud-init for a provisioned instance: the host key and root's authorized key are
    /// the ones its user-data carries; the server restarts with them.
    pub fn become_instance(&mut self, host_private: &str, host_public: &str, authorized: &str) {
        use std::os::unix::fs::PermissionsExt;
        let key = self.d().join("etc/host_key");
        std::fs::write(&key, host_private).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(key.with_extension("pub"), format!("{host_public}\n")).unwrap();
        std::fs::write(
            self.d().join("home/.ssh/authorized_keys"),
            format!("{authorized}\n"),
        )
        .unwrap();
        self.restart();
    }

    /// The server's private host key file.
    pub fn host_key_path(&self) -> PathBuf {
        self.d().join("etc/host_key")
    }

    /// An ssh_config that routes every host name to this server (`HostName`, `Port`), and
    /// says nothing else.
    pub fn routing_config(&self) -> PathBuf {
        let path = self.d().join("client/route");
        std::fs::write(
            &path,
            format!(
                "Host *\n  HostName {}\n  Port {}\n",
                self.address, self.port
            ),
        )
        .unwrap();
        path
    }

    /// Start the server (again), and wait until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let d = self.d().display().to_string();
        let config = format!(
            "ListenAddress {}:{}\nHostKey {d}/etc/host_key\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPidFile none\nPrintMotd no\nLogLevel ERROR\n",
            self.address, self.port
        );
        std::fs::write(self.d().join("etc/sshd_config"), config).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        std::fs::create_dir_all("/var/lib/seal").unwrap();
        let store = match self.options.store_size {
            Some(size) => format!("mount -t tmpfs -o size={size} tmpfs /var/lib/seal"),
            None => format!("mount --bind {d}/varlib /var/lib/seal"),
        };
        let runc = if self.options.no_runc {
            std::fs::write(self.d().join("etc/no-runc"), "").unwrap();
            format!("mount --bind {d}/etc/no-runc /usr/sbin/runc;")
        } else {
            String::new()
        };
        let setup = format!(
            "set -e; mount --make-rprivate /; mount --bind {d}/home /root; \
             {store}; mount --bind {d}/tmp /tmp; {runc} \
             exec /usr/sbin/sshd -D -e -f {d}/etc/sshd_config"
        );
        let child = Command::new("unshare")
            .args(["--mount", "--", "sh", "-c", &setup])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect((self.address.as_str(), self.port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill the listening sshd and every process below it (the sessions, and the seal
    /// server they run), as a host that dies does.
    pub fn kill_all(&mut self) {
        if let Some(child) = &self.child {
            // Freeze the tree first (a stopped process forks nothing), until a walk finds no
            // process it had not stopped; then kill every one of them.
            let signal = |sig: &str, pids: &[u32]| {
                if !pids.is_empty() {
                    let _ = Command::new("kill")
                        .arg(sig)
                        .args(pids.iter().map(u32::to_string))
                        .stderr(Stdio::null())
                        .status();
                }
            };
            let mut frozen = vec![child.id()];
            signal("-STOP", &frozen);
            loop {
                let new: Vec<u32> = descendants(child.id())
                    .into_iter()
                    .filter(|p| !frozen.contains(p))
                    .collect();
                if new.is_empty() {
                    break;
                }
                signal("-STOP", &new);
                frozen.extend(new);
            }
            signal("-KILL", &frozen);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The sshd session processes below the listener right now.
    pub fn sessions(&self) -> Vec<u32> {
        self.child
            .as_ref()
            .map(|c| descendants(c.id()))
            .unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill_all();
        // Whatever the server's seal left mounted is in its own namespace, gone with it.
    }
}

/// Processes whose parent chain reaches `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after the last `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
}

fn free_port(address: &str) -> u16 {
    let listener = std::net::TcpListener::bind((address, 0)).expect("a port on 127.0.0.x");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

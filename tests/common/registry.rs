//! A Debian `docker-registry` (the CNCF distribution registry) for the tests: started on a
//! free 127.0.0.1 port with plain HTTP, its access log (one Apache-style line per request)
//! captured, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Out, Seal};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// The user of the test registries with htpasswd auth.
pub const USER: &str = "sealer";
/// Their password.
pub const PASSWORD: &str = "s3cret-pass";
/// bcrypt (cost 4) of PASSWORD, as `htpasswd -B` would write it.
pub const PASSWORD_BCRYPT: &str = "$2b$04$tkHDsPJUGXTYMWQGz4qTwOrCKOI4DEInvLR4Eg6qrZ5BHhP4U1KoO";

/// The `auth:` config section of a registry that checks [`USER`] and [`PASSWORD`] (Basic).
pub fn htpasswd_auth(dir: &Path) -> String {
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, format!("{USER}:{PASSWORD_BCRYPT}\n")).expect("writing htpasswd");
    format!(
        "auth:\n  htpasswd:\n    realm: seal-test\n    path: {}\n",
        htpasswd.display()
    )
}

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Holds the config, the access log and (unless another root was given) the storage.
    pub dir: TempDir,
}

impl Registry {
    /// Start one storing in its own temp dir, or serving `root` read-only, with what `extra`
    /// returns appended to its config (an `auth:` section, say; it gets the registry's own
    /// directory for files such a section names). A missing binary fails the test, naming
    /// it: a test that cannot run its registry must not pass. (Always `Some`; the `Option`
    /// keeps the callers' `let Some(..) else` shape.)
    pub fn start(root: Option<&Path>, extra: impl FnOnce(&Path) -> String) -> Option<Registry> {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: scripts/test.sh installs it (apt-get install docker-registry)"
        );
        let dir = TempDir::new().expect("registry temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let data: PathBuf = root.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
        let extra = extra(dir.path());
        let readonly = if root.is_some() {
            "  maintenance:\n    readonly:\n      enabled: true\n"
        } else {
            ""
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n{readonly}http:\n  addr: {host}\n{extra}",
            data.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("writing the registry config");
        let log = std::fs::File::create(dir.path().join("access.log")).expect("access log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let registry = Registry { child, host, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&registry.host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    /// The access log's lines so far.
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `seal <args>` (in `cwd`, when given) with `auth_file` as its only credentials and no
/// inherited registry settings; `env` is added on top.
pub fn run_seal(
    seal: &Seal,
    cwd: Option<&Path>,
    auth_file: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Out {
    let mut cmd = seal.command();
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.args(args)
        .env("REGISTRY_AUTH_FILE", auth_file)
        .env_remove("DOCKER_CONFIG")
        .env_remove("SEAL_INSECURE_REGISTRIES")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Out::from_command(cmd)
}

/// The trimmed stdout of a command that must have succeeded.
pub fn ok(out: &Out, what: &str) -> String {
    assert_eq!(out.code, 0, "{what} failed:\n{}", out.stderr);
    out.stdout.trim().to_string()
}

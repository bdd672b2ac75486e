//! Shared helpers for the end-to-end tests: run the `seal` binary against a private store and
//! throw-away build contexts, and read what it prints.
//!
//! Every test file includes this module with `mod common;` and uses only part of it.
#![allow(dead_code)]

pub mod cloud_init;
pub mod reapi;
pub mod registry;
pub mod s3;
pub mod sshd;
pub mod tree_report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

/// An old timestamp (2020-09-13) to age context files with, so the racy-stat rule does not apply.
pub const OLD: i64 = 1_600_000_000;

/// The `seal` binary with a private store. The store directory does not exist until a build
/// creates it.
pub struct Seal {
    dir: TempDir,
    root: PathBuf,
    /// Set on every command (after the clean-up of [`Seal::command`]).
    env: Vec<(String, String)>,
}

impl Default for Seal {
    fn default() -> Self {
        Self::new()
    }
}

impl Seal {
    /// A fresh, not yet existing store.
    pub fn new() -> Seal {
        let dir = TempDir::new().expect("temp dir for the store");
        let root = dir.path().join("store");
        Seal {
            dir,
            root,
            env: Vec::new(),
        }
    }

    /// The same, with `key=value` in the environment of every command.
    pub fn with_env(mut self, key: &str, value: &str) -> Seal {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The `--root` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `seal --root <root>` with a clean environment for the variables seal reads.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seal"));
        cmd.arg("--root").arg(&self.root);
        cmd.env_remove("SOURCE_DATE_EPOCH")
            .env_remove("SEAL_ROOT")
            .env_remove("SEAL_LOG")
            .env_remove("SEAL_SNAPSHOT_FORMAT");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Run `seal --root <root> <args>` in `cwd`.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Out {
        let mut cmd = self.command();
        cmd.current_dir(cwd).args(args);
        Out::from_command(cmd)
    }

    /// `seal build --progress plain -t <tag> <extra...> .`, run inside the context directory (so
    /// diagnostics name `Kubefile:L:C`).
    pub fn build(&self, ctx: &Path, tag: &str, extra: &[&str]) -> Out {
        self.build_env(ctx, tag, extra, &[])
    }

    /// Like [`Seal::build`], with extra environment variables.
    pub fn build_env(&self, ctx: &Path, tag: &str, extra: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command();
        cmd.current_dir(ctx)
            .args(["build", "--progress", "plain", "-t", tag])
            .args(extra)
            .arg(".");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Out::from_command(cmd)
    }

    /// Build, require success, and return the build's output (its stdout is the digest).
    pub fn build_ok(&self, ctx: &Path, tag: &str, extra: &[&str]) -> Out {
        let out = self.build(ctx, tag, extra);
        out.assert_built();
        out
    }

    /// Build, require success, and return the manifest digest.
    pub fn digest(&self, ctx: &Path, tag: &str, extra: &[&str]) -> String {
        self.build_ok(ctx, tag, extra).digest()
    }

    /// `seal inspect NAME` as JSON.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.run_in(self.dir.path(), &["inspect", name]);
        assert_eq!(out.code, 0, "seal inspect {name} failed:\n{}", out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("inspect output is not JSON ({e}):\n{}", out.stdout))
    }

    /// `seal save -o FILE NAME`.
    pub fn save(&self, name: &str, file: &Path) {
        let out = self.run_in(
            self.dir.path(),
            &["save", "-o", file.to_str().expect("utf-8 path"), name],
        );
        assert_eq!(out.code, 0, "seal save {name} failed:\n{}", out.stderr);
        assert!(file.is_file(), "seal save wrote no {}", file.display());
    }
}

/// What one invocation printed.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn from_command(mut cmd: Command) -> Out {
        let output = cmd.output().expect("running seal");
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Require a successful build whose stdout is exactly one digest line.
    pub fn assert_built(&self) {
        assert_eq!(
            self.code, 0,
            "build failed (exit {}):\n{}",
            self.code, self.stderr
        );
        self.digest();
    }

    /// The manifest digest on stdout (`sha256:<64 hex>`, alone on one line).
    pub fn digest(&self) -> String {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stdout should be one digest line, got:\n{}",
            self.stdout
        );
        let d = lines[0];
        let hex = d
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("not a sha256 digest: {d}"));
        assert!(
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "not a sha256 digest: {d}"
        );
        d.to_string()
    }

    /// The steps of a `--progress plain` build, by description (`[2/3] COPY dir1 a`).
    pub fn steps(&self) -> BTreeMap<String, Step> {
        parse_plain(&self.stderr)
    }

    /// The status of the one step whose description contains `needle`.
    pub fn step(&self, needle: &str) -> Step {
        let steps = self.steps();
        let hits: Vec<_> = steps.iter().filter(|(d, _)| d.contains(needle)).collect();
        assert_eq!(
            hits.len(),
            1,
            "expected one step matching `{needle}` in:\n{}",
            self.stderr
        );
        *hits[0].1
    }

    /// The closing summary: (steps cached, steps executed, files read).
    pub fn summary(&self) -> Summary {
        let line = self
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("built "))
            .unwrap_or_else(|| panic!("no summary line in:\n{}", self.stderr));
        let number_before = |word: &str| -> usize {
            let at = line
                .find(word)
                .unwrap_or_else(|| panic!("no `{word}` in summary `{line}`"));
            let head = line[..at].trim_end();
            let n = head.rsplit(' ').next().unwrap_or_default();
            n.parse()
                .unwrap_or_else(|_| panic!("no number before `{word}` in `{line}`"))
        };
        Summary {
            cached: number_before(" steps cached"),
            executed: number_before(" executed"),
            files_read: number_before(" files read"),
        }
    }
}

/// The closing summary line's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub cached: usize,
    pub executed: usize,
    pub files_read: usize,
}

/// How a step ended in `--progress plain` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Cached,
    Done,
    Error,
    /// Started but never finished.
    Running,
}

/// Parse `--progress plain` lines: `#N <desc>`, then `#N CACHED` / `#N DONE 0.01s` / `#N ERROR: ..`.
/// Nodes that are not steps (`#7 COLLECT container images`, shown only when they log) are left
/// out.
pub fn parse_plain(stderr: &str) -> BTreeMap<String, Step> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut not_steps = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((num, text)) = rest.split_once(' ') else {
            continue;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let status = if text == "CACHED" {
            Some(Step::Cached)
        } else if text.starts_with("DONE ") {
            Some(Step::Done)
        } else if text.starts_with("ERROR") {
            Some(Step::Error)
        } else {
            None
        };
        if not_steps.contains(num) {
            continue;
        }
        match status {
            Some(s) => {
                let name = names
                    .get(num)
                    .unwrap_or_else(|| panic!("status before description for #{num}:\n{stderr}"));
                let previous = out.insert(name.clone(), s);
                assert_eq!(
                    previous,
                    Some(Step::Running),
                    "step `{name}` ended twice or never started:\n{stderr}"
                );
            }
            None if text.starts_with('[') && !names.contains_key(num) => {
                names.insert(num.to_string(), text.to_string());
                out.insert(text.to_string(), Step::Running);
            }
            None if !names.contains_key(num) => {
                not_steps.insert(num.to_string());
            }
            None => {}
        }
    }
    out
}

/// A throw-away build context.
pub struct Ctx {
    dir: TempDir,
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}

impl Ctx {
    pub fn new() -> Ctx {
        Ctx {
            dir: TempDir::new().expect("temp dir for the context"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file (parents created), mode 0644.
    pub fn file(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Ctx {
        self.file_mode(rel, contents, 0o644)
    }

    /// Write a file (parents created) with a mode.
    pub fn file_mode(&self, rel: &str, contents: impl AsRef<[u8]>, mode: u32) -> &Ctx {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir -p");
        }
        std::fs::write(&path, contents).expect("write file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        self
    }

    /// Write the Kubefile.
    pub fn kubefile(&self, text: &str) -> &Ctx {
        self.file("Kubefile", text)
    }

    /// A directory (with parents).
    pub fn dir(&self, rel: &str) -> &Ctx {
        std::fs::create_dir_all(self.path().join(rel)).expect("mkdir -p");
        self
    }

    /// A symlink `rel -> target`.
    pub fn symlink(&self, rel: &str, target: &str) -> &Ctx {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir -p");
        }
        std::os::unix::fs::symlink(target, path).expect("symlink");
        self
    }

    /// Set the mtime of one path (not following symlinks).
    pub fn touch(&self, rel: &str, epoch: i64) -> &Ctx {
        set_mtime(&self.path().join(rel), epoch);
        self
    }

    /// Set the mtime of every entry of the context.
    pub fn touch_all(&self, epoch: i64) -> &Ctx {
        set_mtime_tree(self.path(), epoch);
        self
    }

    /// Age every entry (mtime far in the past) and wait until their ctimes are outside the
    /// racy window too, so the next scan records them as clean.
    pub fn age(&self) -> &Ctx {
        self.touch_all(OLD);
        std::thread::sleep(Duration::from_millis(2100));
        self
    }
}

/// `touch -h -d @epoch path`.
pub fn set_mtime(path: &Path, epoch: i64) {
    let status = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{epoch}"))
        .arg(path)
        .status()
        .expect("running touch");
    assert!(status.success(), "touch {} failed", path.display());
}

/// `touch` every entry below (and including) `dir`.
pub fn set_mtime_tree(dir: &Path, epoch: i64) {
    let status = Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d"])
        .arg(format!("@{epoch}"))
        .args(["{}", "+"])
        .status()
        .expect("running find");
    assert!(status.success(), "touching {} failed", dir.display());
}

/// Run a tool and require success; returns stdout.
pub fn tool(program: &str, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An image written by `seal save` and extracted into an OCI layout directory.
pub struct SavedLayout {
    /// Holds the archive and the layout; removed on drop.
    pub dir: TempDir,
    pub layout: PathBuf,
}

impl SavedLayout {
    /// `seal save NAME` into a temp dir, then `tar -xf` it into `layout/`.
    pub fn new(seal: &Seal, name: &str) -> SavedLayout {
        let dir = TempDir::new().expect("temp dir for the archive");
        let archive = dir.path().join("img.tar");
        seal.save(name, &archive);
        let layout = dir.path().join("layout");
        std::fs::create_dir(&layout).expect("mkdir layout");
        let (a, l) = (
            archive.to_str().expect("utf-8"),
            layout.to_str().expect("utf-8"),
        );
        tool("tar", &["-xf", a, "-C", l], dir.path());
        SavedLayout { dir, layout }
    }

    /// A JSON document of the layout.
    pub fn json(&self, rel: &Path) -> serde_json::Value {
        let text =
            std::fs::read_to_string(rel).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", rel.display()))
    }

    /// The path of a blob.
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").expect("sha256 digest"))
    }

    /// The layer blobs of the (first) image, bottom to top.
    pub fn layer_blobs(&self) -> Vec<PathBuf> {
        let index = self.json(&self.layout.join("index.json"));
        let manifest = self.json(
            &self.blob(
                index["manifests"][0]["digest"]
                    .as_str()
                    .expect("manifest digest"),
            ),
        );
        manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|layer| self.blob(layer["digest"].as_str().expect("layer digest")))
            .collect()
    }
}

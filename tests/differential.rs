//! Differential test of the build cache (issue 7): an incremental build always equals a clean
//! build, and it reuses everything that did not change.
//!
//! A seeded driver generates a build context (a few directories, ~30-60 small files, symlinks,
//! an ignore file) and a Kubefile with 3-6 COPY steps and 1-2 RUN steps between them (lite mode:
//! deterministic shell commands on relative paths, so they touch only the rootfs), an `ARG V` and
//! an `ENV W` declared at random places, then applies random mutations to the context and the
//! Kubefile, one to three at a time. After each round it runs
//!
//! * an incremental build in a long-lived store (`--root` kept for the whole seed), and
//! * a clean build (`--no-cache`) in a fresh store,
//!
//! and requires equal image digests (or both builds failing). It also checks the
//! minimal-rebuild property against a model computed here, independently of seal: every step
//! gets a fingerprint of its inputs. For COPY: the instruction after ARG expansion with its
//! effective destination and flags, and for every path its sources select after the ignore
//! rules: relative path, type, mode bits, size, symlink target, bytes — never mtime, owner or
//! inode. For RUN: its command text, the variables it sees (the ARGs declared before it that
//! have a value, then the ENVs before it) and the identity of the rootfs it runs on, i.e. the
//! layer identity of every earlier step in order. A COPY layer's identity is the layer the model
//! predicts from the selected content (target path, type, mode after `--chmod`, owner, bytes),
//! so a COPY that re-ran but produced the same layer (a respelled destination) leaves the RUNs
//! after it cached ("early cutoff"); a RUN layer's identity is its own inputs with the variables
//! narrowed to those its command reads (the driver's RUN commands are deterministic and each
//! writes a path of its own, so different commands never make equal layers).
//! A step whose fingerprint was already built in this store must be `CACHED`; one never built
//! before must be `DONE`. (A set of every fingerprint built so far, not just the previous
//! build's, because the cache is content-addressed: reverting an edit must hit the old entry.)
//! The model's layer identities are also checked against the diffIDs seal reports: one identity
//! must always be one diffID, and a COPY diffID one identity.
//!
//! RUN mutations: change a RUN's command, the value of `ARG V` (default or `--build-arg`) or
//! `ENV W` (seen by a RUN, or declared after every RUN: must not re-run it), move a declaration,
//! rewrite a file copied before a RUN (it must re-run) or only after it (it must stay cached),
//! move, add or remove a RUN, respell its keyword.
//!
//! KUBEFILE.md "COPY semantics", "Context and ignore files", "Variables", "Build modes",
//! "Cache rules", "Reproducibility".
//!
//! * `differential_quick` — 3 seeds x 12 mutations, part of the normal test run.
//! * `differential_base_image_mutations` — issue 12: an app `FROM` a generated base image,
//!   whose COPY destinations cross the base's links and directories; 3 seeds x 20 base
//!   mutations on and off those paths (`SEAL_DIFF_BASE_ROUNDS` changes the 20). A COPY must stay
//!   cached when the base changes off its destination's path.
//! * `differential_long` — `SEAL_DIFF_MUTATIONS=N [SEAL_DIFF_SEED=S] [SEAL_DIFF_PER_SEED=P]`,
//!   run by `scripts/differential.sh`; returns at once when `SEAL_DIFF_MUTATIONS` is unset.
//! * `regression_*` — one minimal repro per seal bug this driver found; each asserts the
//!   correct behaviour (and fails until the bug is fixed).
//!
//! RUN steps need lite mode's mount namespace, so they are generated only when the test runs as
//! root (the CI setup); otherwise the Kubefiles hold COPY steps only.
//!
//! Self-contained on purpose: it does not use `tests/common`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// Longer than seal's racy-stat window (2 s): files older than this are trusted by the stat cache.
const SETTLE: Duration = Duration::from_millis(2_100);
const TAG: &str = "diff:test";

// ------------------------------------------------------------------------------------------
// Seeded randomness: xorshift64* seeded through splitmix64 (any seed, including 0, works).
// ------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next() % n as u64) as usize
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Small file content: mostly text lines, sometimes raw bytes.
    fn content(&mut self, len: usize) -> Vec<u8> {
        let binary = self.chance(15);
        (0..len)
            .map(|i| {
                if binary {
                    self.next() as u8
                } else if i % 40 == 39 {
                    b'\n'
                } else {
                    b"abcdefghijklmnopqrstuvwxyz0123456789 :-"[self.below(39)]
                }
            })
            .collect()
    }
}

// ------------------------------------------------------------------------------------------
// Lexical paths, globs, ignore rules and variable expansion: the model's own implementation of
// KUBEFILE.md (Docker semantics), written independently of seal's.
// ------------------------------------------------------------------------------------------

/// Clean a relative path: drop `.`/empty components and a leading `/`, resolve `..`.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or("")
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// `pattern` matches `path` (both `/`-separated): `*`, `?` and `[..]` stay inside one
/// component, a `**` component matches zero or more components.
fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    match_components(&p, &s)
}

fn match_components(p: &[&str], s: &[&str]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((&"**", rest)) => (0..=s.len()).any(|i| match_components(rest, &s[i..])),
        Some((first, rest)) => {
            !s.is_empty()
                && match_component(first.as_bytes(), s[0].as_bytes())
                && match_components(rest, &s[1..])
        }
    }
}

fn match_component(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| match_component(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && match_component(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(close) = p.iter().position(|&c| c == b']') else {
                return false;
            };
            let class = &p[1..close];
            let (negated, class) = match class.first() {
                Some(b'!') | Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            !s.is_empty()
                && class.contains(&s[0]) != negated
                && match_component(&p[close + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && match_component(&p[1..], &s[1..]),
    }
}

/// The context's ignore rules: `.sealignore`, else `.dockerignore`; Docker's syntax (a pattern
/// matching a directory excludes everything below it, `!` re-includes, the last match wins).
#[derive(Debug, Default)]
struct Ignore {
    rules: Vec<(String, bool)>,
    has_negation: bool,
}

impl Ignore {
    fn load(ctx: &Path) -> Ignore {
        for name in [".sealignore", ".dockerignore"] {
            if let Ok(text) = fs::read_to_string(ctx.join(name)) {
                return Ignore::parse(&text);
            }
        }
        Ignore::default()
    }

    fn parse(text: &str) -> Ignore {
        let mut ignore = Ignore::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let body = clean(body);
            if !body.is_empty() {
                ignore.has_negation |= negated;
                ignore.rules.push((body, negated));
            }
        }
        ignore
    }

    fn rule_matches(pattern: &str, rel: &str) -> bool {
        glob_match(pattern, rel)
            || rel
                .match_indices('/')
                .any(|(i, _)| glob_match(pattern, &rel[..i]))
    }

    fn excluded(&self, rel: &str) -> bool {
        let mut excluded = false;
        if !rel.is_empty() {
            for (pattern, negated) in &self.rules {
                if Ignore::rule_matches(pattern, rel) {
                    excluded = !negated;
                }
            }
        }
        excluded
    }
}

/// Docker's `$X`, `${X}`, `${X:-word}`, `${X:+word}` over the variables the driver uses.
fn expand(word: &str, vars: &BTreeMap<String, String>) -> String {
    let value = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').expect("generated `${` is closed");
            let inner = &body[..end];
            rest = &body[end + 1..];
            if let Some((name, alt)) = inner.split_once(":-") {
                out.push_str(&value(name).unwrap_or_else(|| alt.to_string()));
            } else if let Some((name, alt)) = inner.split_once(":+") {
                if value(name).is_some() {
                    out.push_str(alt);
                }
            } else {
                out.push_str(&value(inner).unwrap_or_default());
            }
        } else {
            let len = rest
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            out.push_str(&value(&rest[..len]).unwrap_or_default());
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    out
}

/// The names a shell command reads as `$NAME` or `${NAME...}`.
fn referenced_vars(command: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in command.match_indices('$') {
        let rest = command[at + 1..].trim_start_matches('{');
        let len = rest
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        if len > 0 {
            names.insert(rest[..len].to_string());
        }
    }
    names
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The Kubefile and the ignore files: in the context, but not mutated as data.
fn is_control_file(rel: &str) -> bool {
    matches!(rel, "Kubefile" | ".dockerignore" | ".sealignore")
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

// ------------------------------------------------------------------------------------------
// The Kubefile model.
// ------------------------------------------------------------------------------------------

/// A kind of COPY line: its sources, a sample path that satisfies each glob (to repair a
/// context whose glob stopped matching), its initial flags, and destinations to switch between
/// (some are spelled differently but mean the same directory).
struct Template {
    flags: &'static [&'static str],
    sources: &'static [(&'static str, &'static str)],
    dests: &'static [&'static str],
}

const TEMPLATES: &[Template] = &[
    Template {
        flags: &[],
        sources: &[("charts/app", "")],
        dests: &[
            "charts",
            "/charts",
            "charts/",
            "./charts",
            "charts/app",
            "opt/$D/charts",
        ],
    },
    Template {
        flags: &[],
        sources: &[("manifests/*.yaml", "manifests/restored.yaml")],
        dests: &[
            "manifests",
            "manifests/",
            "/manifests",
            "etc/${D}/manifests",
        ],
    },
    Template {
        flags: &[],
        sources: &[("etc/.", "")],
        dests: &["etc/$D", "etc/${D}", "/etc/$D/", "etc"],
    },
    Template {
        flags: &["--chmod=0755"],
        sources: &[("bin", "")],
        dests: &["opt/${D}/bin", "opt/$D", "usr/local/bin", "bin"],
    },
    Template {
        flags: &[],
        sources: &[("*.yaml", "restored.yaml")],
        dests: &[".", "/", "./", "root"],
    },
    Template {
        flags: &[],
        sources: &[("scripts/**/*.sh", "scripts/restored.sh")],
        dests: &["scripts", "opt/scripts", "/scripts/"],
    },
    Template {
        flags: &["--chown=1000:1000"],
        sources: &[("latest", "")],
        dests: &["apps/${F:-none}", "apps/${F:+set}", "apps"],
    },
    Template {
        flags: &[],
        sources: &[("platform/${ARCH}/.", "")],
        dests: &["bin", "opt/$D/bin", "platform"],
    },
    Template {
        flags: &[],
        sources: &[("README.md", "")],
        dests: &["docs/README.md", "docs", "/docs/"],
    },
    Template {
        flags: &[],
        sources: &[
            ("charts/app/templates", ""),
            ("etc/conf.d/[ab]*.conf", "etc/conf.d/a-restored.conf"),
        ],
        dests: &["conf", "conf/$D", "/conf/"],
    },
    Template {
        flags: &[],
        sources: &[(".", "")],
        dests: &["ctx", "/ctx/", "ctx/$D"],
    },
    Template {
        flags: &["--chmod=0600"],
        sources: &[("etc/registry", "")],
        dests: &["etc/registry", "registry", "/etc/registry/"],
    },
];

/// Templates with a glob, a `dir/.` + `$D` destination, and a `--chmod`: one of each is in
/// every generated Kubefile.
const GLOB_TEMPLATES: &[usize] = &[1, 4, 5];
const DOT_TEMPLATE: usize = 2;
const CHMOD_TEMPLATE: usize = 3;

#[derive(Debug, Clone)]
struct CopyLine {
    template: usize,
    chmod: Option<String>,
    chown: Option<String>,
    dest: String,
    /// Cosmetic spelling (must not change anything): lower-case keyword, wide spacing.
    lower: bool,
    wide: bool,
}

impl CopyLine {
    fn new(template: usize, dest: &str) -> CopyLine {
        let t = &TEMPLATES[template];
        let flag = |name: &str| {
            t.flags
                .iter()
                .find_map(|f| f.strip_prefix(name))
                .map(str::to_string)
        };
        CopyLine {
            template,
            chmod: flag("--chmod="),
            chown: flag("--chown="),
            dest: dest.to_string(),
            lower: false,
            wide: false,
        }
    }

    fn sources(&self) -> impl Iterator<Item = &'static str> {
        TEMPLATES[self.template].sources.iter().map(|(s, _)| *s)
    }

    fn render(&self) -> String {
        let mut words = Vec::new();
        if let Some(m) = &self.chmod {
            words.push(format!("--chmod={m}"));
        }
        if let Some(o) = &self.chown {
            words.push(format!("--chown={o}"));
        }
        words.extend(self.sources().map(str::to_string));
        words.push(self.dest.clone());
        let sep = if self.wide { "   " } else { " " };
        let keyword = if self.lower { "copy" } else { "COPY" };
        format!("{keyword}{sep}{}", words.join(sep))
    }
}

/// The RUN commands (lite mode: host tools, cwd = the rootfs). Each is deterministic, never
/// fails, touches only relative paths (the rootfs), writes a path no other command writes (so two
/// commands never produce the same layer), and reads what earlier COPY steps put in the rootfs.
/// `$V`, `$W`, `$D`, `$E` are left to the shell (seal does not expand RUN text).
const RUNS: &[&str] = &[
    r#"mkdir -p gen && cat cluster.yaml addons.yaml 2>/dev/null | wc -c > gen/size && echo "$V" > gen/v"#,
    r#"mkdir -p gen && cat manifests/*.yaml 2>/dev/null | wc -c > gen/manifests && echo "$V $W" > gen/vw && chmod 600 gen/manifests"#,
    r#"rm -rf manifests/a.yaml charts/app/values.yaml 2>/dev/null; mkdir -p gen && echo "rm $W" > gen/rm"#,
    r#"mkdir -p gen && ln -sf ../etc/registry/config.yml gen/link && echo "${V:-none}" > gen/link.v"#,
    r#"mkdir -p gen/bin && ls bin opt > gen/bin/ls 2>/dev/null; chmod 600 gen/bin/ls"#,
    r#"mkdir -p gen && find charts etc -type f -exec cksum {} + 2>/dev/null | sort > gen/sums; echo "$W" > gen/w"#,
    r#"mkdir -p gen && echo "$V/$E/$D" > gen/vars && chmod 640 gen/vars && rm -f gen/size"#,
    r#"mkdir -p gen && head -c 64 docs/README.md > gen/head 2>/dev/null; echo "$E" > gen/e"#,
];

/// Values of `ARG V` (`None`: declared without a default) and `ENV W` (expanded at its line).
const V_VALUES: &[Option<&str>] = &[Some("v1"), Some("v2"), Some("v3"), None];
const W_VALUES: &[&str] = &["w1", "w2", "w-$E", "${V:-nov}"];

#[derive(Debug, Clone)]
struct RunLine {
    variant: usize,
    lower: bool,
    wide: bool,
}

impl RunLine {
    fn command(&self) -> &'static str {
        RUNS[self.variant]
    }

    fn render(&self) -> String {
        let keyword = if self.lower { "run" } else { "RUN" };
        let sep = if self.wide { "   " } else { " " };
        format!("{keyword}{sep}{}", self.command())
    }
}

/// A step: one `[i/n]` line of the build after FROM.
#[derive(Debug, Clone)]
enum Line {
    Copy(CopyLine),
    Run(RunLine),
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Copy(c) => c.render(),
            Line::Run(r) => r.render(),
        }
    }

    fn copy(&self) -> Option<&CopyLine> {
        match self {
            Line::Copy(c) => Some(c),
            Line::Run(_) => None,
        }
    }

    fn is_run(&self) -> bool {
        matches!(self, Line::Run(_))
    }
}

/// `ARG V[=value]` or `ENV W=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decl {
    ArgV(Option<String>),
    EnvW(String),
}

impl Decl {
    fn render(&self) -> String {
        match self {
            Decl::ArgV(Some(v)) => format!("ARG V={v}"),
            Decl::ArgV(None) => "ARG V".to_string(),
            Decl::EnvW(v) => format!("ENV W={v}"),
        }
    }
}

/// The Kubefile in order: declarations and labels placed before step `i`, then step `i`.
enum Item<'a> {
    Label(&'a str),
    Decl(&'a Decl),
    Step(usize),
}

#[derive(Debug, Clone)]
struct Kube {
    steps: Vec<Line>,
    /// `LABEL` lines, each placed before the step of that index (or at the end).
    labels: Vec<(usize, String)>,
    /// `ARG V` and `ENV W`, each placed before the step of that index (or at the end).
    decls: Vec<(usize, Decl)>,
    build_args: BTreeMap<String, String>,
    comment: bool,
}

impl Kube {
    fn items(&self) -> Vec<Item<'_>> {
        let mut items = Vec::new();
        for i in 0..=self.steps.len() {
            for (_, d) in self.decls.iter().filter(|(at, _)| *at == i) {
                items.push(Item::Decl(d));
            }
            for (_, label) in self.labels.iter().filter(|(at, _)| *at == i) {
                items.push(Item::Label(label));
            }
            if i < self.steps.len() {
                items.push(Item::Step(i));
            }
        }
        items
    }

    fn render(&self) -> String {
        let mut s = String::from("FROM scratch\nARG D=x\nARG E=one\nARG F\n");
        if self.comment {
            s.push_str("# a comment changes nothing\n\n");
        }
        for item in self.items() {
            match item {
                Item::Label(l) => s.push_str(l),
                Item::Decl(d) => s.push_str(&d.render()),
                Item::Step(i) => s.push_str(&self.steps[i].render()),
            }
            s.push('\n');
        }
        s
    }

    /// The variables COPY sources and destinations expand with.
    fn vars(&self) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("D".to_string(), "x".to_string());
        v.insert("E".to_string(), "one".to_string());
        for (k, val) in &self.build_args {
            v.insert(k.clone(), val.clone());
        }
        v.insert("ARCH".to_string(), host_arch().to_string());
        v
    }

    fn copy_indices(&self) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| !self.steps[i].is_run())
            .collect()
    }

    fn run_indices(&self) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| self.steps[i].is_run())
            .collect()
    }

    fn copy_at(&self, i: usize) -> &CopyLine {
        self.steps[i].copy().expect("a COPY step")
    }

    fn copy_mut(&mut self, i: usize) -> &mut CopyLine {
        match &mut self.steps[i] {
            Line::Copy(c) => c,
            Line::Run(_) => panic!("step {i} is not a COPY"),
        }
    }

    /// Remove step `i`; labels and declarations after it stay after the same steps.
    fn remove_step(&mut self, i: usize) -> Line {
        let line = self.steps.remove(i);
        for at in self
            .labels
            .iter_mut()
            .map(|(at, _)| at)
            .chain(self.decls.iter_mut().map(|(at, _)| at))
        {
            if *at > i {
                *at -= 1;
            }
        }
        line
    }

    /// Where the declaration of `V` (`arg`) or `W` is placed.
    fn decl_index(&self, arg: bool) -> Option<usize> {
        self.decls
            .iter()
            .position(|(_, d)| matches!(d, Decl::ArgV(_)) == arg)
    }

    /// Whether some RUN sees the declaration at `at` (declared before it).
    fn seen_by_a_run(&self, at: usize) -> bool {
        self.run_indices().iter().any(|&r| at <= r)
    }
}

// ------------------------------------------------------------------------------------------
// The expected fingerprint of a COPY step.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// A literal source does not exist.
    Missing,
    /// A literal source is excluded by the ignore file.
    Excluded,
    /// A glob matches nothing.
    NoMatch,
    /// A source is a symlink whose chain breaks, leaves the context or ends at an excluded path.
    BadSymlink,
    /// A source is a fifo/socket/device.
    Unsupported,
}

/// Why the model expects the build to fail: which line, which source, which path.
#[derive(Debug, Clone)]
struct ModelError {
    line: usize,
    source: usize,
    path: String,
    failure: Failure,
}

struct Model<'a> {
    ctx: &'a Path,
    ignore: Ignore,
}

/// The model's view of one step.
#[derive(Debug, Clone)]
struct StepModel {
    /// Hash of `text`: the step's inputs (a COPY's destination normalised).
    fp: String,
    text: String,
    /// Identity of the layer the step produces: for a COPY, a hash of the layer's predicted
    /// entries; for a RUN, a hash of its inputs with the variables narrowed to those its
    /// command reads.
    layer: String,
    /// The context files a COPY reads (resolved paths); empty for a RUN.
    files: Vec<String>,
    /// What a COPY's layer puts in the rootfs; empty for a RUN (the driver's RUN commands
    /// never touch a COPY destination's path, so the model leaves them out of the rootfs).
    entries: Vec<(String, RootNode)>,
}

/// One path a COPY source brings in, relative to the matched source (`""`: the match itself).
struct Entry {
    rel: String,
    kind: String,
    mode: u32,
    symlink: bool,
}

/// One path of the rootfs the model predicts below a step (issue 12: a COPY lands where its
/// destination resolves in it, and its key covers that resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RootNode {
    /// `d`irectory, `f`ile or `l`ink.
    kind: char,
    mode: u32,
    owner: (u32, u32),
    /// A link's target.
    link: String,
}

type Rootfs = BTreeMap<String, RootNode>;

impl RootNode {
    fn dir(mode: u32, owner: (u32, u32)) -> RootNode {
        RootNode {
            kind: 'd',
            mode,
            owner,
            link: String::new(),
        }
    }

    /// What a lookup of this node contributes to a COPY's key: type, mode, owner, link target.
    fn record(&self) -> String {
        let (u, g) = self.owner;
        format!("{} {:o} {u}:{g} {}", self.kind, self.mode, self.link)
    }
}

/// Resolve `dest` in `rootfs` (KUBEFILE.md "COPY semantics"): every lookup made, in order;
/// where it lands (symlinks followed inside the rootfs); the directories that exist on that
/// path. `None` when an element before the last is a file (the step fails).
type Resolved = (Vec<String>, String, Rootfs);

fn resolve_in(rootfs: &Rootfs, dest: &str) -> Option<Resolved> {
    let mut trail = Vec::new();
    let mut todo: Vec<String> = dest
        .split('/')
        .filter(|p| !p.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut current: Vec<String> = Vec::new();
    let mut dirs = Rootfs::new();
    for _ in 0..200 {
        let Some(name) = todo.pop() else {
            return Some((trail, current.join("/"), dirs));
        };
        let path = join(&current.join("/"), &name);
        let node = rootfs.get(&path);
        trail.push(format!(
            "{path} {}",
            node.map_or_else(|| "-".to_string(), RootNode::record)
        ));
        match node {
            Some(n) if n.kind == 'l' => {
                let mut base = if n.link.starts_with('/') {
                    Vec::new()
                } else {
                    current.clone()
                };
                for part in n.link.split('/') {
                    match part {
                        "" | "." => {}
                        ".." => {
                            base.pop();
                        }
                        p => base.push(p.to_string()),
                    }
                }
                todo.extend(base.into_iter().rev());
                current.clear();
                dirs.clear();
            }
            Some(n) if n.kind == 'f' && !todo.is_empty() => return None,
            Some(n) => {
                if n.kind == 'd' {
                    dirs.insert(path, n.clone());
                }
                current.push(name);
            }
            None => current.push(name),
        }
    }
    None
}

impl Model<'_> {
    /// The inputs of `line`, or why the step must fail.
    fn step(
        &self,
        index: usize,
        line: &CopyLine,
        vars: &BTreeMap<String, String>,
        rootfs: &Rootfs,
    ) -> Result<StepModel, ModelError> {
        let chmod = line
            .chmod
            .as_ref()
            .map(|m| u32::from_str_radix(m, 8).expect("octal"));
        let chown = line.chown.as_ref().map(|o| {
            let (u, g) = o.split_once(':').unwrap_or((o, o));
            (u.parse::<u32>().unwrap(), g.parse::<u32>().unwrap())
        });
        let raw_dest = expand(&line.dest, vars);
        let dest = clean(&raw_dest);
        let (mut trail, landing, mut existing) = resolve_in(rootfs, &dest)
            .expect("the driver's destinations never cross a file or a link loop");
        // `<dest>/<name>` of each directory copied under its own name, resolved once each.
        let mut landed: BTreeSet<String> = BTreeSet::new();
        let (uid, gid) = chown.unwrap_or((0, 0));
        let flags = format!("chmod={chmod:?} chown={chown:?}");
        let mut out = String::new();
        // The layer: path -> `kind mode uid:gid` (KUBEFILE.md "COPY semantics": targets, mode
        // bits unless `--chmod`, owner 0:0 unless `--chown`; symlinks are 0777).
        let mut layer: BTreeMap<String, String> = BTreeMap::new();
        let mut nodes: Rootfs = BTreeMap::new();
        let mut files = Vec::new();
        for (si, raw) in line.sources().enumerate() {
            let word = expand(raw, vars);
            let contents_only = word.ends_with("/.") || word == ".";
            let pattern = clean(&word);
            let fail = |path: &str, failure| ModelError {
                line: index,
                source: si,
                path: path.to_string(),
                failure,
            };
            writeln!(out, "source {pattern:?} contents_only={contents_only}").unwrap();
            let candidates = if is_glob(&pattern) {
                // Only paths below the pattern's literal prefix can match.
                let base: Vec<&str> = pattern.split('/').take_while(|c| !is_glob(c)).collect();
                let mut found = Vec::new();
                self.glob(&base.join("/"), &pattern, &mut found);
                found.sort();
                if found.is_empty() {
                    return Err(fail(&pattern, Failure::NoMatch));
                }
                found
            } else {
                if self.ignore.excluded(&pattern) {
                    return Err(fail(&pattern, Failure::Excluded));
                }
                vec![pattern.clone()]
            };
            for rel in candidates {
                let (resolved, meta) = self.follow(&rel).map_err(|f| fail(&rel, f))?;
                // A symlink may not bring in what the ignore file keeps out of the context.
                if resolved != rel && self.ignore.excluded(&resolved) {
                    return Err(fail(&rel, Failure::BadSymlink));
                }
                let name = basename(&rel);
                writeln!(out, " match {name:?}").unwrap();
                let Some(kind) = self.kind(&resolved, &meta) else {
                    return Err(fail(&rel, Failure::Unsupported));
                };
                let mut entries = vec![Entry {
                    rel: String::new(),
                    kind,
                    mode: meta.mode() & 0o7777,
                    symlink: false,
                }];
                if meta.is_dir() {
                    let mut below = Vec::new();
                    self.walk(&resolved, "", &mut below);
                    below.sort_by(|a, b| a.rel.cmp(&b.rel));
                    entries.extend(below);
                }
                let into_dest = meta.is_dir() && (contents_only || name.is_empty());
                // The seed's rule on the destination as written; the files land where it
                // resolves.
                let target = if into_dest || basename(&dest) == name {
                    landing.clone()
                } else if meta.is_dir() {
                    let (more, at, dirs) = resolve_in(rootfs, &join(&dest, name))
                        .expect("the driver's destinations never cross a file");
                    if landed.insert(join(&dest, name)) {
                        trail.extend(more);
                        existing.extend(dirs);
                    }
                    at
                } else {
                    join(&landing, name)
                };
                for e in &entries {
                    writeln!(out, "  {:?} {} {:o}", e.rel, e.kind, e.mode).unwrap();
                    if e.kind.starts_with("file ") {
                        files.push(join(&resolved, &e.rel));
                    }
                    let path = join(&target, &e.rel);
                    if (into_dest && e.rel.is_empty()) || path.is_empty() {
                        continue;
                    }
                    let mode = match (e.symlink, chmod) {
                        (true, _) => 0o777,
                        (false, Some(m)) => m,
                        (false, None) => e.mode,
                    };
                    let kind = e.kind.chars().next().unwrap_or('f');
                    let link = e
                        .kind
                        .strip_prefix("symlink -> \"")
                        .and_then(|t| t.strip_suffix('"'))
                        .unwrap_or_default()
                        .to_string();
                    nodes.insert(
                        path.clone(),
                        RootNode {
                            kind: if kind == 's' { 'l' } else { kind },
                            mode,
                            owner: (uid, gid),
                            link,
                        },
                    );
                    layer.insert(path, format!("{} {mode:o} {uid}:{gid}", e.kind));
                }
            }
        }
        // The destination and its ancestors that exist keep the rootfs's mode and owner; every
        // entry's other missing ancestors are 0755 directories with the COPY's owner.
        for (path, node) in &existing {
            if nodes.get(path).is_some_and(|n| n.kind == 'd') {
                let (u, g) = node.owner;
                layer.insert(path.clone(), format!("dir {:o} {u}:{g}", node.mode));
                nodes.insert(path.clone(), node.clone());
            }
        }
        let paths: Vec<String> = layer.keys().cloned().collect();
        for path in paths {
            for (i, _) in path.match_indices('/') {
                let parent = &path[..i];
                let node = existing
                    .get(parent)
                    .cloned()
                    .unwrap_or_else(|| RootNode::dir(0o755, (uid, gid)));
                let (u, g) = node.owner;
                layer
                    .entry(parent.to_string())
                    .or_insert_with(|| format!("dir {:o} {u}:{g}", node.mode));
                nodes.entry(parent.to_string()).or_insert(node);
            }
        }
        let mut layer_text = String::new();
        for (path, what) in &layer {
            writeln!(layer_text, "{path:?} {what}").unwrap();
        }
        // `a`, `/a`, `a/` and `./a` are one destination (KUBEFILE.md "COPY semantics").
        // The key also covers the destination's resolution in the rootfs below (issue 12).
        let text = format!("COPY dest={dest:?} {flags}\n resolution {trail:?}\n{out}");
        files.sort();
        files.dedup();
        Ok(StepModel {
            fp: blake3::hash(text.as_bytes()).to_hex().to_string(),
            text,
            layer: blake3::hash(layer_text.as_bytes()).to_hex().to_string(),
            files,
            entries: nodes.into_iter().collect(),
        })
    }

    /// The non-excluded paths below `dir` matching `pattern`. Symlinks are not descended; an
    /// excluded directory is, when a `!` rule could re-include something inside it.
    fn glob(&self, dir: &str, pattern: &str, found: &mut Vec<String>) {
        let Ok(listing) = fs::read_dir(self.ctx.join(dir)) else {
            return;
        };
        for entry in listing {
            let entry = entry.unwrap();
            let rel = join(dir, &entry.file_name().to_string_lossy());
            let excluded = self.ignore.excluded(&rel);
            if !excluded && glob_match(pattern, &rel) {
                found.push(rel.clone());
            }
            let is_dir = entry.file_type().unwrap().is_dir();
            if is_dir && (!excluded || self.ignore.has_negation) {
                self.glob(&rel, pattern, found);
            }
        }
    }

    /// Follow a source that is a symlink while it stays inside the context.
    fn follow(&self, rel: &str) -> Result<(String, fs::Metadata), Failure> {
        let mut current = rel.to_string();
        for hop in 0..40 {
            let Ok(meta) = fs::symlink_metadata(self.ctx.join(&current)) else {
                return Err(if hop == 0 {
                    Failure::Missing
                } else {
                    Failure::BadSymlink
                });
            };
            if !meta.file_type().is_symlink() {
                return Ok((current, meta));
            }
            let target = fs::read_link(self.ctx.join(&current)).unwrap();
            let target = target.to_string_lossy();
            if target.starts_with('/') {
                return Err(Failure::BadSymlink);
            }
            current = clean(&join(parent(&current), &target));
            if current == ".." || current.starts_with("../") {
                return Err(Failure::BadSymlink);
            }
        }
        Err(Failure::BadSymlink)
    }

    /// `file <size> <blake3>`, `dir`, `symlink -> <target>`; `None` for fifos and sockets.
    fn kind(&self, rel: &str, meta: &fs::Metadata) -> Option<String> {
        let path = self.ctx.join(rel);
        let ft = meta.file_type();
        if ft.is_file() {
            let bytes = fs::read(&path).unwrap();
            Some(format!(
                "file {} {}",
                bytes.len(),
                blake3::hash(&bytes).to_hex()
            ))
        } else if ft.is_dir() {
            Some("dir".to_string())
        } else if ft.is_symlink() {
            Some(format!("symlink -> {:?}", fs::read_link(&path).unwrap()))
        } else {
            None
        }
    }

    /// The entries below the directory `base`. An excluded directory is not an entry, but is
    /// still walked when a `!` rule could re-include something in it.
    fn walk(&self, base: &str, sub: &str, out: &mut Vec<Entry>) {
        for entry in fs::read_dir(self.ctx.join(join(base, sub))).unwrap() {
            let entry = entry.unwrap();
            let rel = join(sub, &entry.file_name().to_string_lossy());
            let excluded = self.ignore.excluded(&join(base, &rel));
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                if !excluded {
                    out.push(Entry {
                        rel: rel.clone(),
                        kind: "dir".into(),
                        mode,
                        symlink: false,
                    });
                }
                if !excluded || self.ignore.has_negation {
                    self.walk(base, &rel, out);
                }
            } else if !excluded {
                if let Some(kind) = self.kind(&join(base, &rel), &meta) {
                    out.push(Entry {
                        rel,
                        kind,
                        mode,
                        symlink: meta.file_type().is_symlink(),
                    });
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Running seal.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Cached,
    Done,
}

#[derive(Debug)]
struct Build {
    code: i32,
    digest: Option<String>,
    /// Step number (`[i/n]`) -> status.
    steps: BTreeMap<usize, Status>,
    files_read: usize,
    stderr: String,
}

/// The binary under test: `SEAL_DIFF_BIN` (scripts/differential.sh points it at a private copy,
/// so a long run is not disturbed by a concurrent rebuild), else the one Cargo built.
fn seal_bin() -> PathBuf {
    std::env::var_os("SEAL_DIFF_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_seal")))
}

fn seal_build(
    root: &Path,
    ctx: &Path,
    build_args: &BTreeMap<String, String>,
    clean: bool,
) -> Build {
    seal_build_tag(root, ctx, TAG, build_args, clean)
}

fn seal_build_tag(
    root: &Path,
    ctx: &Path,
    tag: &str,
    build_args: &BTreeMap<String, String>,
    clean: bool,
) -> Build {
    let mut cmd = Command::new(seal_bin());
    // The generated charts and manifests hold random bytes, not something to collect images
    // from: collection has its own tests (tests/collect.rs).
    cmd.arg("--root")
        .arg(root)
        .args([
            "build",
            "--build-mode",
            "lite",
            "--progress",
            "plain",
            "-t",
            tag,
        ])
        .current_dir(ctx)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("SEAL_ROOT")
        .env_remove("SEAL_LOG");
    if clean {
        cmd.arg("--no-cache");
    }
    for (k, v) in build_args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    cmd.arg(".");
    let out = cmd.output().expect("running seal");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    let digest = (code == 0).then(|| {
        let d = stdout.trim().to_string();
        assert!(
            d.starts_with("sha256:") && d.len() == 71 && !d.contains('\n'),
            "stdout is not one digest: {stdout:?}\n{stderr}"
        );
        d
    });
    let (steps, files_read) = parse_progress(&stderr);
    Build {
        code,
        digest,
        steps,
        files_read,
        stderr,
    }
}

/// `#N [i/n] ...` then `#N CACHED` / `#N DONE 0.01s`, and the summary's `X files read`.
fn parse_progress(stderr: &str) -> (BTreeMap<usize, Status>, usize) {
    let mut vertex_step = BTreeMap::new();
    let mut steps = BTreeMap::new();
    let mut files_read = 0;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            let Some((n, what)) = rest.split_once(' ') else {
                continue;
            };
            if let Some(step) = what
                .strip_prefix('[')
                .and_then(|w| w.split_once('/'))
                .and_then(|(i, _)| i.parse::<usize>().ok())
            {
                vertex_step.insert(n.to_string(), step);
            } else if let Some(&step) = vertex_step.get(n) {
                if what == "CACHED" {
                    steps.insert(step, Status::Cached);
                } else if what.starts_with("DONE") {
                    steps.insert(step, Status::Done);
                }
            }
        } else if line.starts_with("built ") {
            if let Some(before) = line.split(" files read").next() {
                files_read = before
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    (steps, files_read)
}

// ------------------------------------------------------------------------------------------
// Findings and the report.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Finding {
    seed: u64,
    round: usize,
    mutations: Vec<String>,
    detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} round {} after [{}]:",
            self.seed,
            self.round,
            self.mutations.join("; ")
        )?;
        for line in self.detail.lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Report {
    seeds: Vec<u64>,
    mutations: usize,
    repairs: usize,
    rounds: usize,
    builds: usize,
    both_failed: usize,
    steps_cached: usize,
    steps_done: usize,
    /// RUN steps of incremental builds: cached, cached although an earlier step re-ran (its
    /// layer was unchanged: early cutoff), executed.
    runs_cached: usize,
    run_cutoffs: usize,
    runs_done: usize,
    files_read: usize,
    kinds: BTreeMap<&'static str, usize>,
    /// Incremental and clean builds disagree (digest, or one of them failed).
    divergences: Vec<Finding>,
    /// A step whose inputs were built before ran again.
    unnecessary: Vec<Finding>,
    /// A step whose inputs were never built was served from the cache.
    missed: Vec<Finding>,
    /// The model expected failure and seal built, or the reverse (in both builds), or a step
    /// reported no status.
    model: Vec<Finding>,
}

impl Report {
    fn summary(&self) -> String {
        let mut s = String::new();
        let seeds = match (self.seeds.first(), self.seeds.last()) {
            (Some(a), Some(b)) => format!("{a}..={b} ({} seeds)", self.seeds.len()),
            _ => "none".to_string(),
        };
        writeln!(s, "differential: seeds {seeds}").unwrap();
        writeln!(
            s,
            "  mutations applied: {} in {} rounds (+{} repairs); builds: {} ({} rounds where both failed)",
            self.mutations, self.rounds, self.repairs, self.builds, self.both_failed
        )
        .unwrap();
        writeln!(
            s,
            "  incremental steps: {} cached, {} executed; {} files read",
            self.steps_cached, self.steps_done, self.files_read
        )
        .unwrap();
        writeln!(
            s,
            "  incremental RUN steps: {} cached, {} cached after an earlier step re-ran (early cutoff), {} executed",
            self.runs_cached, self.run_cutoffs, self.runs_done
        )
        .unwrap();
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
        writeln!(s, "  mutation kinds: {}", kinds.join(" ")).unwrap();
        for (title, list) in [
            ("divergences (incremental != clean)", &self.divergences),
            ("unnecessary re-runs", &self.unnecessary),
            ("missed re-runs", &self.missed),
            ("model disagreements", &self.model),
        ] {
            writeln!(s, "  {title}: {}", list.len()).unwrap();
            for f in list.iter().take(12) {
                write!(s, "    - {f}").unwrap();
            }
            if list.len() > 12 {
                writeln!(s, "    ... and {} more", list.len() - 12).unwrap();
            }
        }
        s
    }

    fn problems(&self) -> usize {
        self.divergences.len() + self.unnecessary.len() + self.missed.len() + self.model.len()
    }
}

// ------------------------------------------------------------------------------------------
// The driver.
// ------------------------------------------------------------------------------------------

const NAMES: &[&str] = &[
    "new.yaml",
    "extra.yaml",
    "x.conf",
    "a9.conf",
    "b-new.conf",
    "run.sh",
    "data.txt",
    "old.bak",
    "scratch.tmp",
    "Chart.yaml",
    "values.yaml",
    ".hidden",
    "README.md",
    "deploy.yaml",
    "imageList",
    "with space.yaml",
    "ünïcödé.yaml",
    "a[1].conf",
    // Longer than a tar header's 100-byte name field.
    "a-file-name-long-enough-to-need-a-gnu-long-name-entry-in-the-layer-tar-when-it-sits-below-a-directory.yaml",
];

struct Harness {
    seed: u64,
    rng: Rng,
    tmp: TempDir,
    ctx: PathBuf,
    store: PathBuf,
    kube: Kube,
    /// Every step fingerprint built in the long-lived store so far.
    seen: BTreeSet<String>,
    /// The diffID seal made for each model layer identity, and the model identity of each COPY
    /// diffID (a RUN's identity is its inputs: several may make one diffID).
    layer_diff: BTreeMap<String, String>,
    copy_diff: BTreeMap<String, String>,
    built: bool,
    counter: usize,
    is_root: bool,
    waits: bool,
    verbose: bool,
}

impl Harness {
    fn new(seed: u64, waits: bool, verbose: bool) -> Harness {
        let tmp = TempDir::new().expect("temp dir");
        let ctx = tmp.path().join("ctx");
        let store = tmp.path().join("store");
        fs::create_dir_all(&ctx).unwrap();
        let is_root = running_as_root();
        Harness {
            seed,
            rng: Rng::new(seed),
            tmp,
            ctx,
            store,
            kube: Kube {
                steps: Vec::new(),
                labels: Vec::new(),
                decls: Vec::new(),
                build_args: BTreeMap::new(),
                comment: false,
            },
            seen: BTreeSet::new(),
            layer_diff: BTreeMap::new(),
            copy_diff: BTreeMap::new(),
            built: false,
            counter: 0,
            is_root,
            waits,
            verbose,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.ctx.join(rel)
    }

    fn fresh_name(&mut self) -> String {
        self.counter += 1;
        let name = self.rng.pick(NAMES).to_string();
        if self.rng.chance(50) {
            return name;
        }
        match name.split_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem}{}.{ext}", self.counter),
            _ => format!("{name}{}", self.counter),
        }
    }

    fn write_file(&mut self, rel: &str, len: usize, mode: u32) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let content = self.rng.content(len);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn write_kubefile(&self) {
        fs::write(self.path("Kubefile"), self.kube.render()).unwrap();
    }

    /// The initial context and Kubefile.
    fn generate(&mut self) {
        let base: &[(&str, u32)] = &[
            ("charts/app/Chart.yaml", 0o644),
            ("charts/app/values.yaml", 0o644),
            ("charts/app/templates/deploy.yaml", 0o644),
            ("charts/app/templates/svc.yaml", 0o644),
            ("charts/other/Chart.yaml", 0o644),
            ("manifests/a.yaml", 0o644),
            ("manifests/b.yaml", 0o644),
            ("manifests/imageList", 0o644),
            ("manifests/sub/c.yaml", 0o644),
            ("etc/Clusterfile", 0o644),
            ("etc/kubeadm.yaml", 0o600),
            ("etc/conf.d/a1.conf", 0o644),
            ("etc/conf.d/b2.conf", 0o644),
            ("etc/conf.d/c3.conf", 0o644),
            ("etc/registry/config.yml", 0o644),
            ("bin/kubectl", 0o755),
            ("bin/kubeadm", 0o755),
            ("cluster.yaml", 0o644),
            ("addons.yaml", 0o644),
            ("README.md", 0o644),
            ("notes.txt", 0o644),
            ("scripts/init.sh", 0o755),
            ("scripts/clean.sh", 0o644),
            ("scripts/lib/util.sh", 0o644),
            ("platform/amd64/tool", 0o755),
            ("platform/arm64/tool", 0o755),
            ("charts/app/old.bak", 0o644),
            ("manifests/draft.tmp", 0o644),
        ];
        for &(rel, mode) in base {
            let len = self.rng.below(300);
            self.write_file(rel, len, mode);
        }
        let dirs = [
            "",
            "charts/app",
            "charts/app/templates",
            "manifests",
            "manifests/sub",
            "etc",
            "etc/conf.d",
            "bin",
            "scripts",
            "scripts/lib",
        ];
        for _ in 0..self.rng.below(31) {
            let dir = *self.rng.pick(&dirs);
            let name = self.fresh_name();
            let mode = *self.rng.pick(&[0o644, 0o644, 0o755, 0o600]);
            let len = self.rng.below(200);
            let rel = join(dir, &name);
            if !self.path(&rel).is_dir() {
                self.write_file(&rel, len, mode);
            }
        }
        fs::create_dir_all(self.path("etc/empty.d")).unwrap();
        for (link, target) in [
            ("latest", "charts/app"),
            ("charts/app/current", "values.yaml"),
            ("etc/link", "conf.d"),
            ("manifests/alias.yaml", "a.yaml"),
        ] {
            let _ = fs::remove_file(self.path(link));
            std::os::unix::fs::symlink(target, self.path(link)).unwrap();
        }
        let mut ignore = vec!["# generated".to_string()];
        for p in [
            "**/*.bak",
            "*.tmp",
            "**/*.tmp",
            "notes.txt",
            "manifests/sub",
        ] {
            if self.rng.chance(50) {
                ignore.push(p.to_string());
            }
        }
        fs::write(self.path(".dockerignore"), ignore.join("\n") + "\n").unwrap();

        let mut templates = vec![*self.rng.pick(GLOB_TEMPLATES), DOT_TEMPLATE, CHMOD_TEMPLATE];
        for _ in 0..self.rng.below(4) {
            let t = self.rng.below(TEMPLATES.len());
            if !templates.contains(&t) {
                templates.push(t);
            }
        }
        for i in (1..templates.len()).rev() {
            let j = self.rng.below(i + 1);
            templates.swap(i, j);
        }
        for t in templates {
            let dest = if self.rng.chance(60) {
                TEMPLATES[t].dests[0]
            } else {
                *self.rng.pick(TEMPLATES[t].dests)
            };
            self.kube.steps.push(Line::Copy(CopyLine::new(t, dest)));
        }
        // One or two RUNs between (or after) the COPY steps, never first.
        if self.is_root {
            for _ in 0..1 + self.rng.below(2) {
                let variant = self.unused_run_variant();
                let at = 1 + self.rng.below(self.kube.steps.len());
                self.kube.steps.insert(
                    at,
                    Line::Run(RunLine {
                        variant,
                        lower: false,
                        wide: false,
                    }),
                );
            }
        }
        let n = self.kube.steps.len();
        let v = V_VALUES[self.rng.below(3)].map(str::to_string);
        let at = self.decl_position();
        self.kube.decls.push((at, Decl::ArgV(v)));
        let w = self.rng.pick(W_VALUES).to_string();
        let at = self.decl_position();
        self.kube.decls.push((at, Decl::EnvW(w)));
        self.kube
            .labels
            .push((self.rng.below(n + 1), "LABEL org.seal.d=$D".into()));
        self.kube
            .labels
            .push((self.rng.below(n + 1), "LABEL org.seal.e=${E}".into()));
        if self.rng.chance(50) {
            self.kube.build_args.insert("D".into(), "y".into());
        }
        self.write_kubefile();
    }

    /// Regular files, directories (not the root), symlinks and other entries of the context,
    /// without the Kubefile and the ignore files.
    fn inventory(&self) -> Inventory {
        let mut inv = Inventory::default();
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            let Ok(listing) = fs::read_dir(self.path(&dir)) else {
                continue;
            };
            let mut names: Vec<String> = listing
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let rel = join(&dir, &name);
                if matches!(rel.as_str(), "Kubefile" | ".dockerignore" | ".sealignore") {
                    continue;
                }
                let meta = fs::symlink_metadata(self.path(&rel)).unwrap();
                let ft = meta.file_type();
                if ft.is_dir() {
                    inv.dirs.push(rel.clone());
                    stack.push(rel);
                } else if ft.is_file() {
                    inv.files.push(rel);
                } else if ft.is_symlink() {
                    inv.links.push(rel);
                } else {
                    inv.others.push(rel);
                }
            }
        }
        inv.dirs.sort();
        inv
    }

    /// The active ignore file and its lines.
    fn ignore_file(&self) -> (PathBuf, Vec<String>) {
        let seal = self.path(".sealignore");
        let path = if seal.exists() {
            seal
        } else {
            self.path(".dockerignore")
        };
        let lines = fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        (path, lines)
    }

    fn write_ignore(&self, path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        fs::write(path, text).unwrap();
    }

    /// A path relative to the directory `from` that reaches the context path `to`.
    fn relative(from: &str, to: &str) -> String {
        let f: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
        let t: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
        let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
        let mut parts = vec![".."; f.len() - common];
        parts.extend(&t[common..]);
        if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        }
    }

    /// A symlink target for a link in `dir`: an existing file or a directory that is not an
    /// ancestor of the link (no loops), or now and then a dangling name.
    fn link_target(&mut self, dir: &str, inv: &Inventory) -> String {
        // Files, links (chains, and now and then a loop) and non-ancestor directories.
        let mut candidates: Vec<&String> = inv.files.iter().chain(&inv.links).collect();
        candidates.extend(
            inv.dirs
                .iter()
                .filter(|d| !(dir == d.as_str() || dir.starts_with(&format!("{d}/")))),
        );
        if candidates.is_empty() || self.rng.chance(10) {
            return format!("missing-{}", self.counter);
        }
        let to = self.rng.pick(&candidates).to_string();
        Harness::relative(dir, &to)
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        let file = if path.is_dir() {
            fs::File::open(path)
        } else {
            fs::File::options().write(true).open(path)
        };
        if let Ok(f) = file {
            f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
                .unwrap();
        }
    }

    /// Apply one random mutation; returns its kind and a description, or `None` when the chosen
    /// mutation had nothing to work on.
    fn mutate(&mut self) -> Option<(&'static str, String)> {
        if self.is_root && self.rng.chance(25) {
            return self.mutate_run();
        }
        let inv = self.inventory();
        let roll = self.rng.below(100);
        let pick_file = |h: &mut Harness| -> Option<String> {
            (!inv.files.is_empty()).then(|| h.rng.pick(&inv.files).clone())
        };
        let pick_dir_or_root = |h: &mut Harness| -> String {
            if h.rng.chance(15) || inv.dirs.is_empty() {
                String::new()
            } else {
                h.rng.pick(&inv.dirs).clone()
            }
        };
        match roll {
            0..=6 => {
                let f = pick_file(self)?;
                let old = fs::metadata(self.path(&f)).unwrap().len() as usize;
                let mut len = self.rng.below(400);
                if len == old {
                    len += 1;
                }
                let bytes = self.rng.content(len);
                fs::write(self.path(&f), bytes).unwrap();
                Some((
                    "rewrite-resize",
                    format!("rewrite {f} ({old} -> {len} bytes)"),
                ))
            }
            7..=12 => {
                let f = pick_file(self)?;
                let path = self.path(&f);
                let meta = fs::metadata(&path).unwrap();
                let old = fs::read(&path).unwrap();
                if old.is_empty() {
                    return None;
                }
                let mut bytes = old.clone();
                let i = self.rng.below(bytes.len());
                bytes[i] = bytes[i].wrapping_add(1 + self.rng.below(200) as u8);
                fs::write(&path, &bytes).unwrap();
                if self.rng.chance(60) {
                    let mtime = meta.modified().unwrap();
                    Harness::set_mtime(&path, mtime);
                    Some((
                        "rewrite-same-size-old-mtime",
                        format!("same-size rewrite of {f}, byte {i}, mtime restored"),
                    ))
                } else {
                    Some((
                        "rewrite-same-size",
                        format!("same-size rewrite of {f}, byte {i}"),
                    ))
                }
            }
            13..=15 => {
                let f = pick_file(self)?;
                let path = self.path(&f);
                let bytes = fs::read(&path).unwrap();
                let mode = fs::metadata(&path).unwrap().mode() & 0o7777;
                if self.rng.chance(50) {
                    fs::write(&path, &bytes).unwrap();
                    Some((
                        "rewrite-identical",
                        format!("rewrite {f} with its own bytes"),
                    ))
                } else {
                    let tmp = path.with_file_name(".tmp-replace");
                    fs::write(&tmp, &bytes).unwrap();
                    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).unwrap();
                    fs::rename(&tmp, &path).unwrap();
                    Some((
                        "replace-identical",
                        format!("replace {f} by an identical new inode (rename)"),
                    ))
                }
            }
            16..=21 => {
                let mut all = inv.files.clone();
                all.extend(inv.dirs.iter().cloned());
                if all.is_empty() {
                    return None;
                }
                let p = self.rng.pick(&all).clone();
                let secs = if self.rng.chance(50) {
                    1_500_000_000 + self.rng.below(100_000_000) as u64
                } else {
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        + self.rng.below(100_000) as u64
                };
                let nanos = self.rng.below(1_000_000_000) as u32;
                Harness::set_mtime(&self.path(&p), UNIX_EPOCH + Duration::new(secs, nanos));
                Some(("touch", format!("touch -d @{secs}.{nanos:09} {p}")))
            }
            22..=28 => {
                let dir_target = self.rng.chance(25) && !inv.dirs.is_empty();
                let (p, modes): (String, &[u32]) = if dir_target {
                    (
                        self.rng.pick(&inv.dirs).clone(),
                        &[0o755, 0o700, 0o750, 0o1777],
                    )
                } else {
                    (pick_file(self)?, &[0o644, 0o755, 0o600, 0o4755])
                };
                let path = self.path(&p);
                let old = fs::metadata(&path).unwrap().mode() & 0o7777;
                let choices: Vec<u32> = modes.iter().copied().filter(|m| *m != old).collect();
                let mode = *self.rng.pick(&choices);
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
                Some(("chmod", format!("chmod {mode:o} {p} (was {old:o})")))
            }
            29..=31 => {
                if !self.is_root {
                    return None;
                }
                let mut all = inv.files.clone();
                all.extend(inv.dirs.iter().cloned());
                all.extend(inv.links.iter().cloned());
                if all.is_empty() {
                    return None;
                }
                let p = self.rng.pick(&all).clone();
                let uid = *self.rng.pick(&[0, 1000, 65534]);
                let gid = *self.rng.pick(&[0, 1000, 65534]);
                std::os::unix::fs::lchown(self.path(&p), Some(uid), Some(gid)).unwrap();
                Some(("chown", format!("chown -h {uid}:{gid} {p}")))
            }
            32..=39 => {
                let dir = pick_dir_or_root(self);
                let rel = join(&dir, &self.fresh_name());
                if fs::symlink_metadata(self.path(&rel)).is_ok() {
                    return None;
                }
                // Now and then a file big enough for seal's multi-threaded mmap hashing (4 MiB).
                let len = if self.rng.chance(4) {
                    (4 << 20) + self.rng.below(1 << 16)
                } else {
                    self.rng.below(200)
                };
                let mode = *self.rng.pick(&[0o644, 0o644, 0o755, 0o600]);
                self.write_file(&rel, len, mode);
                Some(("add-file", format!("add {rel} ({len} bytes, {mode:o})")))
            }
            40..=45 => {
                let f = pick_file(self)?;
                fs::remove_file(self.path(&f)).unwrap();
                Some(("delete-file", format!("rm {f}")))
            }
            46..=49 => {
                let empty: Vec<&String> = inv
                    .dirs
                    .iter()
                    .filter(|d| fs::read_dir(self.path(d)).unwrap().next().is_none())
                    .collect();
                if !empty.is_empty() && self.rng.chance(40) {
                    let d = self.rng.pick(&empty).to_string();
                    fs::remove_dir(self.path(&d)).unwrap();
                    Some(("delete-empty-dir", format!("rmdir {d}")))
                } else {
                    let dir = pick_dir_or_root(self);
                    self.counter += 1;
                    let rel = join(&dir, &format!("empty{}", self.counter));
                    fs::create_dir(self.path(&rel)).unwrap();
                    Some(("add-empty-dir", format!("mkdir {rel}")))
                }
            }
            50..=54 => {
                let f = pick_file(self)?;
                let dir = if self.rng.chance(60) {
                    parent(&f).to_string()
                } else {
                    pick_dir_or_root(self)
                };
                let to = join(&dir, &self.fresh_name());
                if to == f || self.path(&to).is_dir() || dir.starts_with(&f) {
                    return None;
                }
                fs::rename(self.path(&f), self.path(&to)).unwrap();
                Some(("rename", format!("mv {f} {to}")))
            }
            55..=57 => {
                let f = pick_file(self)?;
                fs::remove_file(self.path(&f)).unwrap();
                fs::create_dir(self.path(&f)).unwrap();
                let child = join(&f, "inner.yaml");
                let len = self.rng.below(100);
                self.write_file(&child, len, 0o644);
                Some((
                    "file-to-dir",
                    format!("replace file {f} by a directory with {child}"),
                ))
            }
            58 => {
                let f = pick_file(self)?;
                let target = self.link_target(parent(&f), &inv);
                if target == basename(&f) {
                    return None;
                }
                fs::remove_file(self.path(&f)).unwrap();
                std::os::unix::fs::symlink(&target, self.path(&f)).unwrap();
                Some((
                    "file-to-symlink",
                    format!("replace file {f} by a symlink to {target}"),
                ))
            }
            59 => {
                if inv.dirs.is_empty() {
                    return None;
                }
                let d = self.rng.pick(&inv.dirs).clone();
                fs::remove_dir_all(self.path(&d)).unwrap();
                let len = self.rng.below(100);
                self.write_file(&d, len, 0o644);
                Some(("dir-to-file", format!("replace directory {d} by a file")))
            }
            60..=63 => {
                let dir = pick_dir_or_root(self);
                self.counter += 1;
                let name = if self.rng.chance(50) {
                    format!("lnk{}.yaml", self.counter)
                } else {
                    format!("lnk{}", self.counter)
                };
                let rel = join(&dir, &name);
                let target = self.link_target(&dir, &inv);
                std::os::unix::fs::symlink(&target, self.path(&rel)).unwrap();
                Some(("add-symlink", format!("ln -s {target} {rel}")))
            }
            64..=67 => {
                if inv.links.is_empty() {
                    return None;
                }
                let l = self.rng.pick(&inv.links).clone();
                let target = self.link_target(parent(&l), &inv);
                fs::remove_file(self.path(&l)).unwrap();
                std::os::unix::fs::symlink(&target, self.path(&l)).unwrap();
                Some(("retarget-symlink", format!("ln -sfn {target} {l}")))
            }
            68..=69 => {
                if inv.links.is_empty() {
                    return None;
                }
                let l = self.rng.pick(&inv.links).clone();
                fs::remove_file(self.path(&l)).unwrap();
                Some(("remove-symlink", format!("rm {l}")))
            }
            70..=71 => {
                let f = pick_file(self)?;
                let dir = pick_dir_or_root(self);
                let to = join(&dir, &self.fresh_name());
                if fs::symlink_metadata(self.path(&to)).is_ok() {
                    return None;
                }
                fs::hard_link(self.path(&f), self.path(&to)).unwrap();
                Some(("hardlink", format!("ln {f} {to}")))
            }
            72 => {
                let dir = pick_dir_or_root(self);
                self.counter += 1;
                let rel = join(&dir, &format!("fifo{}", self.counter));
                let ok = Command::new("mkfifo")
                    .arg(self.path(&rel))
                    .status()
                    .is_ok_and(|s| s.success());
                ok.then(|| ("fifo", format!("mkfifo {rel}")))
            }
            73..=81 => self.mutate_ignore(&inv),
            82..=96 => self.mutate_kubefile(),
            97 => self.break_source(),
            _ => {
                if !self.waits {
                    return None;
                }
                std::thread::sleep(SETTLE);
                Some(("wait", "sleep 2.1 s (out of the racy window)".to_string()))
            }
        }
    }

    /// Where to declare `V` or `W`: as often after every RUN (no RUN sees it) as before one.
    fn decl_position(&mut self) -> usize {
        let n = self.kube.steps.len();
        match self.kube.run_indices().last() {
            Some(&last) if self.rng.chance(50) => last + 1 + self.rng.below(n - last),
            Some(&last) => self.rng.below(last + 1),
            None => self.rng.below(n + 1),
        }
    }

    /// A RUN command no RUN of the Kubefile uses.
    fn unused_run_variant(&mut self) -> usize {
        let used: Vec<usize> = self
            .kube
            .steps
            .iter()
            .filter_map(|l| match l {
                Line::Run(r) => Some(r.variant),
                Line::Copy(_) => None,
            })
            .collect();
        let free: Vec<usize> = (0..RUNS.len()).filter(|v| !used.contains(v)).collect();
        *self.rng.pick(&free)
    }

    /// Rewrite the context file `f` with new content of another size.
    fn rewrite(&mut self, f: &str) -> String {
        let path = self.path(f);
        let old = fs::metadata(&path).unwrap().len() as usize;
        let mut len = self.rng.below(300);
        if len == old {
            len += 1;
        }
        let bytes = self.rng.content(len);
        fs::write(&path, bytes).unwrap();
        format!("rewrite {f} ({old} -> {len} bytes)")
    }

    /// Where `ARG V` / `ENV W` sits, for a mutation's kind: seen by a RUN or not.
    fn decl_kind(&self, arg: bool, seen: &'static str, unseen: &'static str) -> &'static str {
        match self.kube.decl_index(arg) {
            Some(d) if self.kube.seen_by_a_run(self.kube.decls[d].0) => seen,
            _ => unseen,
        }
    }

    /// A mutation aimed at the RUN steps (KUBEFILE.md "Cache rules": a RUN's key is its
    /// command, the variables it sees and the rootfs it runs on).
    fn mutate_run(&mut self) -> Option<(&'static str, String)> {
        let runs = self.kube.run_indices();
        let n = self.kube.steps.len();
        let r = *self.rng.pick(&runs);
        let out = match self.rng.below(100) {
            0..=13 => {
                let variant = self.unused_run_variant();
                let Line::Run(run) = &mut self.kube.steps[r] else {
                    unreachable!()
                };
                let old = std::mem::replace(&mut run.variant, variant);
                (
                    "run-command",
                    format!("RUN step {}: `{}` -> `{}`", r + 2, RUNS[old], RUNS[variant]),
                )
            }
            14..=23 => {
                let d = self.kube.decl_index(true)?;
                let v = self.rng.pick(V_VALUES).map(str::to_string);
                let decl = Decl::ArgV(v);
                if self.kube.decls[d].1 == decl {
                    return None;
                }
                let kind = self.decl_kind(true, "run-arg-default-seen", "run-arg-default-unseen");
                let old = std::mem::replace(&mut self.kube.decls[d].1, decl.clone());
                (kind, format!("`{}` -> `{}`", old.render(), decl.render()))
            }
            24..=33 => {
                let kind = self.decl_kind(true, "run-build-arg-seen", "run-build-arg-unseen");
                if self.rng.chance(30) {
                    self.kube.build_args.remove("V")?;
                    (kind, "drop --build-arg V".to_string())
                } else {
                    let v = self.rng.pick(&["v1", "v2", "v9"]).to_string();
                    let old = self.kube.build_args.insert("V".into(), v.clone());
                    if old.as_deref() == Some(v.as_str()) {
                        return None;
                    }
                    (kind, format!("--build-arg V={v}"))
                }
            }
            34..=45 => {
                let d = self.kube.decl_index(false)?;
                let decl = Decl::EnvW(self.rng.pick(W_VALUES).to_string());
                if self.kube.decls[d].1 == decl {
                    return None;
                }
                let kind = self.decl_kind(false, "run-env-seen", "run-env-unseen");
                let old = std::mem::replace(&mut self.kube.decls[d].1, decl.clone());
                (kind, format!("`{}` -> `{}`", old.render(), decl.render()))
            }
            46..=52 => {
                let d = self.rng.below(self.kube.decls.len());
                let at = self.decl_position();
                let old = std::mem::replace(&mut self.kube.decls[d].0, at);
                if old == at {
                    return None;
                }
                (
                    "run-decl-move",
                    format!(
                        "move `{}` from before step {} to before step {}",
                        self.kube.decls[d].1.render(),
                        old + 2,
                        at + 2
                    ),
                )
            }
            53..=67 => {
                // A file some COPY before the RUN reads: the RUN's rootfs changes.
                let expected = self.expected().ok()?;
                let before: Vec<&String> = (0..r)
                    .flat_map(|i| &expected[i].files)
                    .filter(|f| !is_control_file(f))
                    .collect();
                if before.is_empty() {
                    return None;
                }
                let f = self.rng.pick(&before).to_string();
                let what = self.rewrite(&f);
                return Some((
                    "run-input-before",
                    format!("{what}, copied before the RUN at step {}", r + 2),
                ));
            }
            68..=81 => {
                // A file only COPY steps after the RUN read: the RUN must stay cached.
                let expected = self.expected().ok()?;
                let before: BTreeSet<&String> = (0..r).flat_map(|i| &expected[i].files).collect();
                let after: Vec<&String> = (r + 1..n)
                    .flat_map(|i| &expected[i].files)
                    .filter(|f| !before.contains(f) && !is_control_file(f))
                    .collect();
                if after.is_empty() {
                    return None;
                }
                let f = self.rng.pick(&after).to_string();
                let what = self.rewrite(&f);
                return Some((
                    "run-input-after",
                    format!("{what}, copied only after the RUN at step {}", r + 2),
                ));
            }
            82..=85 => return self.respell_before_run(r),
            86..=89 => {
                let j = self.rng.below(n);
                if j == r {
                    return None;
                }
                self.kube.steps.swap(r, j);
                (
                    "run-reorder",
                    format!("swap RUN step {} and step {}", r + 2, j + 2),
                )
            }
            90..=95 => {
                if runs.len() >= 2 {
                    let line = self.kube.remove_step(r);
                    ("run-remove", format!("remove `{}`", line.render()))
                } else {
                    let variant = self.unused_run_variant();
                    let at = self.rng.below(n + 1);
                    let line = RunLine {
                        variant,
                        lower: false,
                        wide: false,
                    };
                    let text = line.render();
                    self.kube.steps.insert(at, Line::Run(line));
                    ("run-add", format!("insert `{text}` as step {}", at + 2))
                }
            }
            _ => {
                let Line::Run(run) = &mut self.kube.steps[r] else {
                    unreachable!()
                };
                if self.rng.chance(50) {
                    run.lower ^= true;
                } else {
                    run.wide ^= true;
                }
                (
                    "run-cosmetic",
                    format!("respell the keyword of RUN step {}", r + 2),
                )
            }
        };
        self.write_kubefile();
        Some(out)
    }

    /// Early cutoff: give a COPY before the RUN at `r` another destination or flags that change
    /// its definition (so it re-runs) but, by the model, not its layer (so the RUN stays cached).
    fn respell_before_run(&mut self, r: usize) -> Option<(&'static str, String)> {
        let copies: Vec<usize> = self
            .kube
            .copy_indices()
            .into_iter()
            .filter(|&c| c < r)
            .collect();
        if copies.is_empty() {
            return None;
        }
        let c = *self.rng.pick(&copies);
        let model = Model {
            ctx: &self.ctx,
            ignore: Ignore::load(&self.ctx),
        };
        let vars = self.kube.vars();
        let line = self.kube.copy_at(c).clone();
        let mut rootfs = Rootfs::new();
        for earlier in self.kube.copy_indices().into_iter().filter(|&e| e < c) {
            let m = model
                .step(earlier, self.kube.copy_at(earlier), &vars, &rootfs)
                .ok()?;
            rootfs.extend(m.entries);
        }
        let now = model.step(c, &line, &vars, &rootfs).ok()?;
        let t = &TEMPLATES[line.template];
        let mut variants = Vec::new();
        for dest in t.dests {
            variants.push(CopyLine {
                dest: dest.to_string(),
                ..line.clone()
            });
        }
        for chmod in [None, Some("0644"), Some("0755"), Some("0600")] {
            variants.push(CopyLine {
                chmod: chmod.map(str::to_string),
                ..line.clone()
            });
        }
        let same: Vec<CopyLine> = variants
            .into_iter()
            .filter(|v| {
                model
                    .step(c, v, &vars, &rootfs)
                    .is_ok_and(|m| m.layer == now.layer && m.fp != now.fp)
            })
            .collect();
        if same.is_empty() {
            return None;
        }
        let new = self.rng.pick(&same).clone();
        let old = std::mem::replace(self.kube.copy_mut(c), new.clone());
        self.write_kubefile();
        Some((
            "run-cutoff",
            format!(
                "`{}` -> `{}` (same layer), before the RUN at step {}",
                old.render(),
                new.render(),
                r + 2
            ),
        ))
    }

    /// Make a COPY source missing or ignored (both builds must fail; a repair follows).
    fn break_source(&mut self) -> Option<(&'static str, String)> {
        let copies = self.kube.copy_indices();
        let line = self.kube.copy_at(*self.rng.pick(&copies));
        let (raw, _) = *self.rng.pick(TEMPLATES[line.template].sources);
        let pattern = clean(&expand(raw, &self.kube.vars()));
        if pattern.is_empty() {
            return None; // `COPY . x` cannot lose its source
        }
        if is_glob(&pattern) || self.rng.chance(40) {
            let (path, mut lines) = self.ignore_file();
            lines.push(pattern.clone());
            self.write_ignore(&path, &lines);
            return Some(("break-source", format!("ignore COPY source {pattern}")));
        }
        let path = self.path(&pattern);
        let meta = fs::symlink_metadata(&path).ok()?;
        if meta.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        Some(("break-source", format!("rm -r COPY source {pattern}")))
    }

    fn mutate_ignore(&mut self, inv: &Inventory) -> Option<(&'static str, String)> {
        let (path, mut lines) = self.ignore_file();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut all: Vec<&String> = inv.files.iter().collect();
        all.extend(&inv.dirs);
        all.extend(&inv.links);
        let roll = self.rng.below(100);
        if roll < 15 {
            if file == ".sealignore" {
                fs::remove_file(&path).unwrap();
                return Some((
                    "ignore-switch",
                    "rm .sealignore (.dockerignore applies again)".into(),
                ));
            }
            let mut copy = lines.clone();
            if !copy.is_empty() && self.rng.chance(50) {
                copy.remove(self.rng.below(copy.len()));
            }
            if self.rng.chance(20) {
                copy.clear();
            }
            self.write_ignore(&self.path(".sealignore"), &copy);
            return Some((
                "ignore-switch",
                format!("create .sealignore with {:?}", copy),
            ));
        }
        if roll < 40 && !lines.is_empty() {
            let i = self.rng.below(lines.len());
            let removed = lines.remove(i);
            self.write_ignore(&path, &lines);
            return Some(("ignore-remove", format!("{file}: remove {removed:?}")));
        }
        let pattern = match self.rng.below(100) {
            0..=34 if !all.is_empty() => {
                let p = self.rng.pick(&all).to_string();
                if self.rng.chance(20) {
                    format!("/{p}")
                } else {
                    p
                }
            }
            35..=59 => self
                .rng
                .pick(&[
                    "**/*.bak",
                    "*.tmp",
                    "**/*.tmp",
                    "notes.txt",
                    "manifests/sub",
                    "etc/conf.d/c*",
                    "scripts/lib",
                    "charts/app/templates/*.yaml",
                    "**/restored*",
                    "bin/kubeadm",
                    "etc/registry/",
                    "**/lnk*",
                    "# comment",
                    "etc/**/*.conf",
                    "manifests/?.yaml",
                    "**/templates",
                ])
                .to_string(),
            60..=84 if !all.is_empty() => {
                let ignore = Ignore::load(&self.ctx);
                let excluded: Vec<&&String> = all.iter().filter(|p| ignore.excluded(p)).collect();
                let p = if !excluded.is_empty() && self.rng.chance(70) {
                    self.rng.pick(&excluded).to_string()
                } else {
                    self.rng.pick(&all).to_string()
                };
                format!("!{p}")
            }
            _ if !inv.dirs.is_empty() => {
                let d = self.rng.pick(&inv.dirs).clone();
                format!("{d}/*.{}", self.rng.pick(&["yaml", "conf", "sh", "txt"]))
            }
            _ => return None,
        };
        lines.push(pattern.clone());
        self.write_ignore(&path, &lines);
        Some(("ignore-add", format!("{file}: add {pattern:?}")))
    }

    fn mutate_kubefile(&mut self) -> Option<(&'static str, String)> {
        let n = self.kube.steps.len();
        let copies = self.kube.copy_indices();
        let roll = self.rng.below(100);
        let out = match roll {
            0..=14 => {
                let i = self.rng.below(n);
                let j = self.rng.below(n);
                if i == j {
                    return None;
                }
                self.kube.steps.swap(i, j);
                (
                    "kube-reorder",
                    format!("swap steps {} and {}", i + 2, j + 2),
                )
            }
            15..=32 => {
                let var = *self.rng.pick(&["D", "D", "E", "F"]);
                let pool: &[&str] = match var {
                    "D" => &["x", "y", "prod", "v2"],
                    "E" => &["one", "two", "three"],
                    _ => &["app", "tools"],
                };
                if self.rng.chance(25) {
                    self.kube.build_args.remove(var)?;
                    ("kube-build-arg", format!("drop --build-arg {var}"))
                } else {
                    let v = self.rng.pick(pool).to_string();
                    let old = self.kube.build_args.insert(var.into(), v.clone());
                    if old.as_deref() == Some(v.as_str()) {
                        return None;
                    }
                    ("kube-build-arg", format!("--build-arg {var}={v}"))
                }
            }
            33..=44 => {
                let extra: Vec<usize> = (0..self.kube.labels.len())
                    .filter(|&i| self.kube.labels[i].1.starts_with("LABEL org.seal.l"))
                    .collect();
                if !extra.is_empty() && self.rng.chance(35) {
                    let i = *self.rng.pick(&extra);
                    let (_, l) = self.kube.labels.remove(i);
                    ("kube-label", format!("remove `{l}`"))
                } else {
                    self.counter += 1;
                    let value = *self.rng.pick(&["static", "$D", "${E}", "v-$E"]);
                    let label = format!("LABEL org.seal.l{}={value}", self.counter);
                    let at = self.rng.below(n + 1);
                    self.kube.labels.push((at, label.clone()));
                    ("kube-label", format!("add `{label}`"))
                }
            }
            45..=64 => {
                let i = *self.rng.pick(&copies);
                let t = self.kube.copy_at(i).template;
                let dest = self.rng.pick(TEMPLATES[t].dests).to_string();
                if dest == self.kube.copy_at(i).dest {
                    return None;
                }
                let old = std::mem::replace(&mut self.kube.copy_mut(i).dest, dest.clone());
                (
                    "kube-dest",
                    format!("COPY step {}: dest {old:?} -> {dest:?}", i + 2),
                )
            }
            65..=74 => {
                let i = *self.rng.pick(&copies);
                let line = self.kube.copy_mut(i);
                let what = if self.rng.chance(60) {
                    let m = *self.rng.pick(&[
                        None,
                        Some("0644"),
                        Some("644"),
                        Some("0755"),
                        Some("0600"),
                    ]);
                    line.chmod = m.map(str::to_string);
                    format!("--chmod={m:?}")
                } else {
                    let o = *self.rng.pick(&[
                        None,
                        Some("1000:1000"),
                        Some("1000"),
                        Some("65534:65534"),
                    ]);
                    line.chown = o.map(str::to_string);
                    format!("--chown={o:?}")
                };
                ("kube-flags", format!("COPY step {}: {what}", i + 2))
            }
            75..=84 => {
                let i = self.rng.below(n);
                let (lower, wide) = match &mut self.kube.steps[i] {
                    Line::Copy(c) => (&mut c.lower, &mut c.wide),
                    Line::Run(r) => (&mut r.lower, &mut r.wide),
                };
                match self.rng.below(3) {
                    0 => *lower ^= true,
                    1 => *wide ^= true,
                    _ => self.kube.comment ^= true,
                }
                ("kube-cosmetic", format!("respell step {} / comment", i + 2))
            }
            85..=92 => {
                let unused: Vec<usize> = (0..TEMPLATES.len())
                    .filter(|t| copies.iter().all(|&c| self.kube.copy_at(c).template != *t))
                    .collect();
                if unused.is_empty() || copies.len() >= 6 {
                    return None;
                }
                let t = *self.rng.pick(&unused);
                let dest = self.rng.pick(TEMPLATES[t].dests).to_string();
                let at = self.rng.below(n + 1);
                let line = CopyLine::new(t, &dest);
                let text = line.render();
                self.kube.steps.insert(at, Line::Copy(line));
                (
                    "kube-add-copy",
                    format!("insert `{text}` as step {}", at + 2),
                )
            }
            _ => {
                if copies.len() <= 3 {
                    return None;
                }
                let i = *self.rng.pick(&copies);
                let line = self.kube.remove_step(i);
                ("kube-remove-copy", format!("remove `{}`", line.render()))
            }
        };
        self.write_kubefile();
        Some(out)
    }

    /// The model's fingerprints of every COPY line (in Kubefile order), or the first error.
    /// The model of every step (in Kubefile order), or the first COPY that must fail.
    fn expected(&self) -> Result<Vec<StepModel>, ModelError> {
        let model = Model {
            ctx: &self.ctx,
            ignore: Ignore::load(&self.ctx),
        };
        let vars = self.kube.vars();
        let build_args = &self.kube.build_args;
        // What a RUN sees (KUBEFILE.md "Variables"): the ARGs declared so far that have a value
        // (`--build-arg` wins over the default; `ARG F` has none of its own), then the ENVs in
        // order (an ENV wins over an ARG of the same name).
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        for (name, default) in [("D", Some("x")), ("E", Some("one")), ("F", None)] {
            if let Some(v) = build_args.get(name).map(String::as_str).or(default) {
                args.insert(name.to_string(), v.to_string());
            }
        }
        let mut env: Vec<(String, String)> = Vec::new();
        let mut layers: Vec<String> = Vec::new();
        let mut rootfs = Rootfs::new();
        let mut out = Vec::new();
        for item in self.kube.items() {
            match item {
                Item::Label(_) => {}
                Item::Decl(Decl::ArgV(default)) => {
                    args.remove("V");
                    if let Some(v) = build_args.get("V").or(default.as_ref()) {
                        args.insert("V".to_string(), v.clone());
                    }
                }
                Item::Decl(Decl::EnvW(raw)) => {
                    let mut visible = args.clone();
                    visible.extend(env.iter().cloned());
                    let value = expand(raw, &visible);
                    env.retain(|(k, _)| k != "W");
                    env.push(("W".to_string(), value));
                }
                Item::Step(i) => {
                    let step = match &self.kube.steps[i] {
                        Line::Copy(line) => model.step(i, line, &vars, &rootfs)?,
                        Line::Run(run) => {
                            let mut seen: Vec<String> = args
                                .iter()
                                .filter(|(k, _)| env.iter().all(|(e, _)| e != *k))
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect();
                            seen.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
                            let text = format!(
                                "RUN {:?}\n env {seen:?}\n rootfs (layers of steps 2..{}): {layers:?}\n",
                                run.command(),
                                i + 1,
                                layers = layers.iter().map(|l| &l[..16]).collect::<Vec<_>>(),
                            );
                            // The layer depends on the variables the command uses, not on every
                            // one it sees: moving `ENV W` past a RUN that never reads `$W`
                            // re-runs it (its key changed) but makes the same layer.
                            let used = referenced_vars(run.command());
                            let used: Vec<&String> = seen
                                .iter()
                                .filter(|kv| {
                                    used.iter().any(|u| kv.split_once('=').unwrap().0 == u)
                                })
                                .collect();
                            let layer = format!(
                                "RUN {:?}\n env {used:?}\n rootfs {layers:?}\n",
                                run.command()
                            );
                            StepModel {
                                layer: blake3::hash(layer.as_bytes()).to_hex().to_string(),
                                fp: blake3::hash(text.as_bytes()).to_hex().to_string(),
                                text,
                                files: Vec::new(),
                                entries: Vec::new(),
                            }
                        }
                    };
                    rootfs.extend(step.entries.iter().cloned());
                    layers.push(step.layer.clone());
                    out.push(step);
                }
            }
        }
        Ok(out)
    }

    /// Make the context build again after a mutation broke a COPY source.
    fn repair(&mut self, e: &ModelError) -> String {
        let line = self.kube.copy_at(e.line);
        let (raw, sample) = TEMPLATES[line.template].sources[e.source];
        let vars = self.kube.vars();
        match e.failure {
            Failure::Excluded => {
                let (path, lines) = self.ignore_file();
                let target = e.path.clone();
                let kept: Vec<String> = lines
                    .into_iter()
                    .filter(|l| {
                        let l = l.trim();
                        l.starts_with('!')
                            || l.starts_with('#')
                            || !Ignore::rule_matches(&clean(l), &target)
                    })
                    .collect();
                self.write_ignore(&path, &kept);
                format!("un-ignore {target}")
            }
            Failure::NoMatch => {
                let sample = clean(&expand(sample, &vars));
                self.make_room(&sample);
                let len = self.rng.below(100);
                self.write_file(&sample, len, 0o644);
                self.unignore(&sample);
                format!("add {sample} for {raw}")
            }
            Failure::Missing | Failure::BadSymlink | Failure::Unsupported => {
                let p = e.path.clone();
                if let Ok(meta) = fs::symlink_metadata(self.path(&p)) {
                    if meta.is_dir() {
                        fs::remove_dir_all(self.path(&p)).unwrap();
                    } else {
                        fs::remove_file(self.path(&p)).unwrap();
                    }
                }
                if is_glob(&clean(&expand(raw, &vars))) {
                    return format!("rm {p} (bad glob match)");
                }
                self.make_room(&p);
                if p == "latest" {
                    self.make_room("charts/app/Chart.yaml");
                    fs::create_dir_all(self.path("charts/app")).unwrap();
                    std::os::unix::fs::symlink("charts/app", self.path("latest")).unwrap();
                    self.unignore("charts/app");
                    return "ln -s charts/app latest".into();
                }
                if basename(&p).contains('.') {
                    let len = self.rng.below(100);
                    self.write_file(&p, len, 0o644);
                } else {
                    let len = self.rng.below(100);
                    self.write_file(&join(&p, "restored.txt"), len, 0o644);
                }
                format!("recreate {p}")
            }
        }
    }

    /// Make every ancestor of `rel` a directory (removing files or links in the way).
    fn make_room(&self, rel: &str) {
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            prefix = join(&prefix, part);
            let p = self.path(&prefix);
            if let Ok(meta) = fs::symlink_metadata(&p) {
                if !meta.is_dir() {
                    fs::remove_file(&p).unwrap();
                }
            }
        }
        fs::create_dir_all(self.path(parent(rel))).unwrap();
    }

    fn unignore(&self, rel: &str) {
        let (path, lines) = self.ignore_file();
        let kept: Vec<String> = lines
            .into_iter()
            .filter(|l| {
                let l = l.trim();
                l.starts_with('!') || l.starts_with('#') || !Ignore::rule_matches(&clean(l), rel)
            })
            .collect();
        self.write_ignore(&path, &kept);
    }

    /// Build incrementally and cleanly, compare, and check the minimal-rebuild property.
    /// Returns the model's error when the model expects the build to fail.
    fn check(
        &mut self,
        round: usize,
        mutations: &[String],
        report: &mut Report,
    ) -> Option<ModelError> {
        let expected = self.expected();
        let inc = seal_build(&self.store, &self.ctx, &self.kube.build_args, false);
        let clean_root = self.tmp.path().join("clean");
        let _ = fs::remove_dir_all(&clean_root);
        let cln = seal_build(&clean_root, &self.ctx, &self.kube.build_args, true);
        let _ = fs::remove_dir_all(&clean_root);
        report.builds += 2;
        let seed = self.seed;
        let finding = |detail: String| Finding {
            seed,
            round,
            mutations: mutations.to_vec(),
            detail,
        };
        if self.verbose {
            eprintln!(
                "seed {} round {round} [{}]: inc={:?} clean={:?} steps={:?}",
                self.seed,
                mutations.join("; "),
                inc.digest,
                cln.digest,
                inc.steps
            );
        }
        let kubefile = self.kube.render();
        let args = format!("{:?}", self.kube.build_args);
        match (&inc.digest, &cln.digest) {
            (Some(a), Some(b)) if a != b => report.divergences.push(finding(format!(
                "incremental {a} != clean {b}\nKubefile:\n{kubefile}build args: {args}\nincremental:\n{}",
                inc.stderr
            ))),
            (Some(_), None) | (None, Some(_)) => report.divergences.push(finding(format!(
                "incremental exit {} vs clean exit {}\nKubefile:\n{kubefile}build args: {args}\nincremental:\n{}\nclean:\n{}",
                inc.code, cln.code, inc.stderr, cln.stderr
            ))),
            _ => {}
        }
        let expected = match expected {
            Err(e) => {
                if inc.digest.is_none() && cln.digest.is_none() {
                    report.both_failed += 1;
                } else {
                    report.model.push(finding(format!(
                        "model expected a failure ({e:?}) but seal built\nKubefile:\n{kubefile}"
                    )));
                }
                return Some(e);
            }
            Ok(expected) => expected,
        };
        if inc.digest.is_none() {
            if cln.digest.is_none() {
                report.model.push(finding(format!(
                    "model expected success, both builds failed:\n{}",
                    inc.stderr
                )));
            }
            return None;
        }
        report.files_read += inc.files_read;
        let from = inc.steps.get(&1).copied();
        let want = if self.built {
            Status::Cached
        } else {
            Status::Done
        };
        if from != Some(want) {
            report.model.push(finding(format!(
                "step 1 FROM scratch: {from:?}, expected {want:?}\n{}",
                inc.stderr
            )));
        }
        let mut new_fp = BTreeSet::new();
        let mut earlier_done = false;
        for (i, m) in expected.iter().enumerate() {
            let step = i + 2;
            let status = inc.steps.get(&step).copied();
            let is_run = self.kube.steps[i].is_run();
            match status {
                Some(Status::Cached) => report.steps_cached += 1,
                Some(Status::Done) => report.steps_done += 1,
                None => {}
            }
            if is_run {
                match status {
                    Some(Status::Cached) if earlier_done => report.run_cutoffs += 1,
                    Some(Status::Cached) => report.runs_cached += 1,
                    Some(Status::Done) => report.runs_done += 1,
                    None => {}
                }
            }
            earlier_done |= status == Some(Status::Done);
            let line = self.kube.steps[i].render();
            let seen = self.seen.contains(&m.fp) || new_fp.contains(&m.fp);
            new_fp.insert(m.fp.clone());
            let detail = |problem: &str| {
                format!(
                    "step {step}: {problem}: {line}\n    expected inputs:\n{}build args: {args}\nincremental:\n{}",
                    m.text, inc.stderr
                )
            };
            match (status, seen) {
                (None, _) => report.model.push(finding(detail("no status reported"))),
                (Some(Status::Done), true) => report.unnecessary.push(finding(detail(
                    "re-ran although its inputs were built before",
                ))),
                (Some(Status::Cached), false) => report.missed.push(finding(detail(
                    "served from the cache although its inputs were never built",
                ))),
                _ => {}
            }
        }
        self.seen.extend(new_fp);
        self.built = true;
        self.check_layers(&expected, &finding, report);
        None
    }

    /// The model's layer identities against the diffIDs of the image seal built: one identity is
    /// always one diffID (else the model misses an input or seal is not deterministic), and one
    /// COPY diffID one identity (else the model's layer is too fine: its RUN expectations would
    /// be wrong).
    fn check_layers(
        &mut self,
        expected: &[StepModel],
        finding: &dyn Fn(String) -> Finding,
        report: &mut Report,
    ) {
        let ids = diff_ids(&self.store);
        if ids.len() != expected.len() {
            report.model.push(finding(format!(
                "{} layers for {} steps: {ids:?}",
                ids.len(),
                expected.len()
            )));
            return;
        }
        for (i, (m, id)) in expected.iter().zip(&ids).enumerate() {
            let line = self.kube.steps[i].render();
            let old = self.layer_diff.insert(m.layer.clone(), id.clone());
            if old.as_ref().is_some_and(|old| old != id) {
                report.model.push(finding(format!(
                    "step {}: layer identity {} was diffID {}, now {id}: {line}\n    expected inputs:\n{}",
                    i + 2,
                    &m.layer[..16],
                    old.unwrap(),
                    m.text
                )));
            }
            if !self.kube.steps[i].is_run() {
                let old = self.copy_diff.insert(id.clone(), m.layer.clone());
                if old.as_ref().is_some_and(|old| *old != m.layer) {
                    report.model.push(finding(format!(
                        "step {}: diffID {id} had layer identity {}, now {}: {line}\n    expected inputs:\n{}",
                        i + 2,
                        &old.unwrap()[..16],
                        &m.layer[..16],
                        m.text
                    )));
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inventory {
    files: Vec<String>,
    dirs: Vec<String>,
    links: Vec<String>,
    others: Vec<String>,
}

/// Run one seed: generate, build, then `mutations` mutations in rounds of one to three.
fn run_seed(seed: u64, mutations: usize, waits: bool, report: &mut Report) {
    let verbose = std::env::var_os("SEAL_DIFF_VERBOSE").is_some();
    let mut h = Harness::new(seed, waits, verbose);
    h.generate();
    // Let the generated files leave the racy window, so the stat cache trusts them and the
    // same-size-rewrite mutations exercise the trusted path.
    std::thread::sleep(SETTLE);
    report.seeds.push(seed);
    let mut pending = h.check(0, &["initial build".to_string()], report);
    let mut applied = 0;
    let mut round = 0;
    let mut repairs_in_a_row = 0;
    while applied < mutations {
        round += 1;
        let mut done = Vec::new();
        if let Some(e) = pending.take() {
            repairs_in_a_row += 1;
            if repairs_in_a_row > 8 {
                report.model.push(Finding {
                    seed,
                    round,
                    mutations: vec!["repair".into()],
                    detail: format!("the context could not be repaired: {e:?}"),
                });
                break;
            }
            let what = h.repair(&e);
            report.repairs += 1;
            done.push(format!("repair: {what}"));
        } else {
            repairs_in_a_row = 0;
            let want = match h.rng.below(10) {
                0..=6 => 1,
                7..=8 => 2,
                _ => 3,
            }
            .min(mutations - applied);
            let mut attempts = 0;
            while done.len() < want && attempts < 50 {
                attempts += 1;
                if let Some((kind, desc)) = h.mutate() {
                    *report.kinds.entry(kind).or_default() += 1;
                    done.push(desc);
                    applied += 1;
                }
            }
        }
        report.rounds += 1;
        pending = h.check(round, &done, report);
    }
    report.mutations += applied;
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn differential_quick() {
    let started = Instant::now();
    let mut report = Report::default();
    for seed in 1..=3 {
        run_seed(seed, 12, false, &mut report);
    }
    eprintln!("{}in {:.1?}", report.summary(), started.elapsed());
    assert!(report.mutations >= 36, "{}", report.summary());
    if running_as_root() {
        assert!(
            report.runs_cached > 0 && report.runs_done > 0,
            "RUN steps were not both executed and reused:\n{}",
            report.summary()
        );
    }
    assert_eq!(report.problems(), 0, "\n{}", report.summary());
}

#[test]
fn differential_long() {
    let Some(total) = env_num("SEAL_DIFF_MUTATIONS") else {
        return;
    };
    let first = env_num("SEAL_DIFF_SEED").unwrap_or(1);
    let per_seed = env_num("SEAL_DIFF_PER_SEED").unwrap_or(50).max(1) as usize;
    let started = Instant::now();
    let mut report = Report::default();
    let mut seed = first;
    let mut left = total as usize;
    while left > 0 {
        let n = left.min(per_seed);
        run_seed(seed, n, true, &mut report);
        left -= n;
        seed += 1;
        eprintln!(
            "  seed {} done: {} mutations so far, {} problems, {:.0?}",
            seed - 1,
            report.mutations,
            report.problems(),
            started.elapsed()
        );
    }
    println!("{}in {:.1?}", report.summary(), started.elapsed());
    assert_eq!(
        report.problems(),
        0,
        "problems found; see the summary above"
    );
}

// ------------------------------------------------------------------------------------------
// Base-image mutations (issue 12): a COPY's key covers the resolution of its destination in
// the rootfs below (type, mode, owner and link target of each path element it looks up) and
// nothing else of it. A seeded driver builds a base image (`diff:base`, one COPY of a
// generated rootfs with symlinks and directories of several modes) and an app image
// `FROM diff:base` with COPY steps whose destinations cross the base's links and
// directories, then mutates the base — paths on a destination's way (a mode, the owner, a
// link's target, a link replaced by a directory, a missing directory created) and paths off
// it (file content, a new file, an unrelated directory's mode) — rebuilding both images
// incrementally and cleanly after each mutation. The model resolves each destination in its
// own copy of the merged rootfs; a COPY whose (sources, destination, lookups) were built
// before must be CACHED, one never built DONE, and incremental and clean app images must be
// equal.
// ------------------------------------------------------------------------------------------

const BASE_TAG: &str = "diff:base";

/// One path of the model's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, bytes: Vec<u8> },
    Link { target: String },
}

/// The app's COPY steps: (source file, its mode, flags, destination). Destinations cross the
/// base's `bin` link, its 0700 `pki`, existing and missing directories.
const APP_COPIES: &[(&str, u32, &str, &str)] = &[
    ("kubectl", 0o755, "", "bin"),
    ("ca.crt", 0o644, "", "etc/kubernetes/pki"),
    ("conf.yaml", 0o644, "", "opt/app"),
    ("tool", 0o755, "", "var/lib/tools"),
    ("data.txt", 0o600, "--chown=7:7 ", "srv/data"),
];

struct BaseHarness {
    rng: Rng,
    tmp: TempDir,
    /// The base rootfs as generated (owners come from `owner`).
    base: BTreeMap<String, Node>,
    owner: (u32, u32),
    seen: BTreeSet<String>,
    counter: usize,
}

impl BaseHarness {
    fn new(seed: u64) -> BaseHarness {
        let mut base = BTreeMap::new();
        for (path, node) in [
            ("usr", Node::Dir { mode: 0o755 }),
            ("usr/bin", Node::Dir { mode: 0o755 }),
            ("usr/local", Node::Dir { mode: 0o755 }),
            ("usr/local/bin", Node::Dir { mode: 0o755 }),
            ("etc", Node::Dir { mode: 0o755 }),
            ("etc/kubernetes", Node::Dir { mode: 0o755 }),
            ("etc/kubernetes/pki", Node::Dir { mode: 0o700 }),
            ("opt", Node::Dir { mode: 0o755 }),
            ("opt/data", Node::Dir { mode: 0o755 }),
            ("var", Node::Dir { mode: 0o755 }),
            ("var/lib", Node::Dir { mode: 0o755 }),
            ("unrelated", Node::Dir { mode: 0o755 }),
            (
                "bin",
                Node::Link {
                    target: "usr/bin".into(),
                },
            ),
        ] {
            base.insert(path.to_string(), node);
        }
        for (path, mode) in [
            ("usr/bin/sh", 0o755),
            ("etc/kubernetes/pki/old.crt", 0o600),
            ("opt/data/a.txt", 0o644),
            ("unrelated/x.txt", 0o644),
        ] {
            base.insert(
                path.to_string(),
                Node::File {
                    mode,
                    bytes: format!("{path}\n").into_bytes(),
                },
            );
        }
        let tmp = TempDir::new().expect("temp dir");
        let app = tmp.path().join("app");
        fs::create_dir_all(&app).unwrap();
        let mut kubefile = format!("FROM {BASE_TAG}\n");
        for (name, mode, flags, dest) in APP_COPIES {
            fs::write(app.join(name), format!("{name}\n")).unwrap();
            fs::set_permissions(app.join(name), fs::Permissions::from_mode(*mode)).unwrap();
            writeln!(kubefile, "COPY {flags}{name} {dest}").unwrap();
        }
        // Last, a directory copied under its own name into the root: it lands where the
        // base's `bin` leads (the seed's `COPY bin .` is Docker's `COPY bin /bin`).
        fs::create_dir_all(app.join("bin")).unwrap();
        fs::write(app.join("bin/helm"), "helm\n").unwrap();
        kubefile.push_str("COPY bin .\n");
        fs::write(app.join("Kubefile"), kubefile).unwrap();
        BaseHarness {
            rng: Rng::new(seed),
            tmp,
            base,
            owner: (0, 0),
            seen: BTreeSet::new(),
            counter: 0,
        }
    }

    /// Write the base context: `rootfs/` as the model says, and its Kubefile.
    fn write_base(&self) {
        let ctx = self.tmp.path().join("base");
        let rootfs = ctx.join("rootfs");
        let _ = fs::remove_dir_all(&ctx);
        fs::create_dir_all(&rootfs).unwrap();
        for (path, node) in &self.base {
            let p = rootfs.join(path);
            match node {
                Node::Dir { .. } => fs::create_dir_all(&p).unwrap(),
                Node::File { mode, bytes } => {
                    fs::create_dir_all(p.parent().unwrap()).unwrap();
                    fs::write(&p, bytes).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                }
                Node::Link { target } => {
                    fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::os::unix::fs::symlink(target, &p).unwrap();
                }
            }
        }
        for (path, node) in self.base.iter().rev() {
            if let Node::Dir { mode } = node {
                fs::set_permissions(rootfs.join(path), fs::Permissions::from_mode(*mode)).unwrap();
            }
        }
        let (u, g) = self.owner;
        fs::write(
            ctx.join("Kubefile"),
            format!("FROM scratch\nCOPY --chown={u}:{g} rootfs/. .\n"),
        )
        .unwrap();
    }

    /// One mutation of the base; returns (kind, description).
    fn mutate(&mut self) -> (&'static str, String) {
        self.counter += 1;
        let n = self.counter;
        match self.rng.below(9) {
            0 => {
                let path = *self
                    .rng
                    .pick(&["unrelated/x.txt", "opt/data/a.txt", "usr/bin/sh"]);
                let bytes = format!("{path} v{n}\n").into_bytes();
                if let Some(Node::File { bytes: b, .. }) = self.base.get_mut(path) {
                    *b = bytes;
                }
                ("off-path-content", format!("rewrite {path}"))
            }
            1 => {
                let path = format!("unrelated/new{n}.txt");
                self.base.insert(
                    path.clone(),
                    Node::File {
                        mode: 0o644,
                        bytes: b"new\n".to_vec(),
                    },
                );
                ("off-path-new-file", format!("add {path}"))
            }
            2 => {
                let mode = *self.rng.pick(&[0o700, 0o750, 0o755]);
                self.base.insert("unrelated".into(), Node::Dir { mode });
                ("off-path-chmod", format!("chmod {mode:o} unrelated"))
            }
            3 | 4 => {
                let path = *self.rng.pick(&[
                    "etc/kubernetes/pki",
                    "etc/kubernetes",
                    "opt",
                    "var/lib",
                    "usr/bin",
                    "usr/local/bin",
                ]);
                let mode = *self.rng.pick(&[0o700, 0o750, 0o755, 0o775]);
                if let Some(Node::Dir { mode: m }) = self.base.get_mut(path) {
                    *m = mode;
                    ("on-path-chmod", format!("chmod {mode:o} {path}"))
                } else {
                    (
                        "on-path-chmod",
                        format!("chmod {path}: not a directory now"),
                    )
                }
            }
            5 => {
                let target =
                    *self
                        .rng
                        .pick(&["usr/bin", "usr/local/bin", "/usr/local/bin", "./usr/bin"]);
                self.base.insert(
                    "bin".into(),
                    Node::Link {
                        target: target.into(),
                    },
                );
                ("on-path-relink", format!("ln -sf {target} bin"))
            }
            6 => {
                // A link replaced by a directory, or a directory by a link.
                let (path, link) = *self
                    .rng
                    .pick(&[("bin", "usr/bin"), ("var/lib", "../opt/data")]);
                let now = match self.base.get(path) {
                    Some(Node::Link { .. }) => Node::Dir { mode: 0o755 },
                    _ => Node::Link {
                        target: link.into(),
                    },
                };
                let what = format!("{path} becomes {now:?}");
                self.base.retain(|p, _| !p.starts_with(&format!("{path}/")));
                self.base.insert(path.into(), now);
                ("on-path-type", what)
            }
            7 => {
                let path = *self.rng.pick(&["srv", "opt/app"]);
                if self.base.remove(path).is_some() {
                    ("on-path-missing", format!("rmdir {path}"))
                } else {
                    let mode = *self.rng.pick(&[0o700, 0o755]);
                    self.base.insert(path.into(), Node::Dir { mode });
                    ("on-path-missing", format!("mkdir -m {mode:o} {path}"))
                }
            }
            _ => {
                self.owner = *self.rng.pick(&[(0, 0), (5, 6), (1000, 1000)]);
                ("on-path-owner", format!("chown {:?} the base", self.owner))
            }
        }
    }

    /// The fingerprint of each app COPY: its line, its source, and the lookups of its
    /// destination in the rootfs below (the base and the COPYs before it).
    fn expected(&self) -> Vec<(String, String)> {
        let mut rootfs: Rootfs = self
            .base
            .iter()
            .map(|(p, n)| {
                let node = match n {
                    Node::Dir { mode } => RootNode::dir(*mode, self.owner),
                    Node::File { mode, .. } => RootNode {
                        kind: 'f',
                        mode: *mode,
                        owner: self.owner,
                        link: String::new(),
                    },
                    Node::Link { target } => RootNode {
                        kind: 'l',
                        mode: 0o777,
                        owner: self.owner,
                        link: target.clone(),
                    },
                };
                (p.clone(), node)
            })
            .collect();
        let mut out = Vec::new();
        for (name, mode, flags, dest) in APP_COPIES {
            let (trail, resolved, _) =
                resolve_in(&rootfs, dest).expect("no destination crosses a file");
            let text = format!(
                "COPY {flags}{name} {dest} (mode {mode:o})\n{}",
                trail.join("\n")
            );
            out.push((blake3::hash(text.as_bytes()).to_hex().to_string(), text));
            // What the layer adds: missing ancestors (0755, the COPY's owner) and the file.
            let owner = if flags.contains("7:7") {
                (7, 7)
            } else {
                (0, 0)
            };
            let target = join(&resolved, name);
            for (i, _) in target.match_indices('/') {
                rootfs
                    .entry(target[..i].to_string())
                    .or_insert_with(|| RootNode::dir(0o755, owner));
            }
            rootfs.insert(
                target,
                RootNode {
                    kind: 'f',
                    mode: *mode,
                    owner,
                    link: String::new(),
                },
            );
        }
        let (trail, _, _) = resolve_in(&rootfs, "bin").expect("bin is no file");
        let text = format!("COPY bin . (a directory)\n{}", trail.join("\n"));
        out.push((blake3::hash(text.as_bytes()).to_hex().to_string(), text));
        out
    }

    /// Build base and app incrementally and cleanly; check digests and statuses.
    fn check(&mut self, round: usize, mutation: &str, report: &mut BaseReport) {
        self.write_base();
        let store = self.tmp.path().join("store");
        let clean = self.tmp.path().join("clean");
        let _ = fs::remove_dir_all(&clean);
        let base_ctx = self.tmp.path().join("base");
        let app_ctx = self.tmp.path().join("app");
        let none = BTreeMap::new();
        for (root, no_cache) in [(&store, false), (&clean, true)] {
            let b = seal_build_tag(root, &base_ctx, BASE_TAG, &none, no_cache);
            assert_eq!(
                b.code, 0,
                "base build failed after {mutation}:\n{}",
                b.stderr
            );
        }
        let inc = seal_build_tag(&store, &app_ctx, TAG, &none, false);
        let cln = seal_build_tag(&clean, &app_ctx, TAG, &none, true);
        let _ = fs::remove_dir_all(&clean);
        report.builds += 4;
        let problem = |what: String| format!("round {round} after [{mutation}]: {what}");
        if inc.digest.is_none() || inc.digest != cln.digest {
            report.divergences.push(problem(format!(
                "incremental {:?} vs clean {:?}\n{}\n{}",
                inc.digest, cln.digest, inc.stderr, cln.stderr
            )));
            return;
        }
        let expected = self.expected();
        let mut all_cached = true;
        for (i, (fp, text)) in expected.iter().enumerate() {
            let status = inc.steps.get(&(i + 2)).copied();
            let seen = self.seen.contains(fp);
            all_cached &= status == Some(Status::Cached);
            match (status, seen) {
                (Some(Status::Done), true) => report.unneeded.push(problem(format!(
                    "step {} re-ran although its inputs were built before:\n{text}\n{}",
                    i + 2,
                    inc.stderr
                ))),
                (Some(Status::Cached), false) => report.missed.push(problem(format!(
                    "step {} was served from the cache although its inputs are new:\n{text}\n{}",
                    i + 2,
                    inc.stderr
                ))),
                (None, _) => report
                    .missed
                    .push(problem(format!("step {} has no status", i + 2))),
                (Some(Status::Done), false) => report.copies_done += 1,
                (Some(Status::Cached), true) => report.copies_cached += 1,
            }
            self.seen.insert(fp.clone());
        }
        if mutation.starts_with("off-path") && round > 0 {
            report.off_path_rounds += 1;
            if all_cached {
                report.off_path_all_cached += 1;
            }
        }
    }
}

#[derive(Debug, Default)]
struct BaseReport {
    builds: usize,
    copies_cached: usize,
    copies_done: usize,
    off_path_rounds: usize,
    off_path_all_cached: usize,
    kinds: BTreeMap<&'static str, usize>,
    divergences: Vec<String>,
    unneeded: Vec<String>,
    missed: Vec<String>,
}

#[test]
fn differential_base_image_mutations() {
    let started = Instant::now();
    let mut report = BaseReport::default();
    let rounds = env_num("SEAL_DIFF_BASE_ROUNDS").unwrap_or(20) as usize;
    for seed in 1..=3 {
        let mut h = BaseHarness::new(seed);
        h.check(0, "initial build", &mut report);
        for round in 1..=rounds {
            let (kind, what) = h.mutate();
            *report.kinds.entry(kind).or_default() += 1;
            h.check(round, &format!("{kind}: {what}"), &mut report);
        }
    }
    let summary = format!(
        "base-image differential: {} builds; app COPY steps {} cached, {} executed; {} off-path rounds, {} with every COPY cached; kinds {:?}; {} divergences, {} unneeded re-runs, {} missed re-runs ({:.1?})",
        report.builds,
        report.copies_cached,
        report.copies_done,
        report.off_path_rounds,
        report.off_path_all_cached,
        report.kinds,
        report.divergences.len(),
        report.unneeded.len(),
        report.missed.len(),
        started.elapsed()
    );
    eprintln!("{summary}");
    for list in [&report.divergences, &report.unneeded, &report.missed] {
        for finding in list.iter().take(5) {
            eprintln!("  - {finding}");
        }
    }
    assert!(report.divergences.is_empty(), "{summary}");
    assert!(report.unneeded.is_empty(), "{summary}");
    assert!(report.missed.is_empty(), "{summary}");
    assert!(
        report.off_path_rounds > 0 && report.off_path_all_cached == report.off_path_rounds,
        "a COPY re-ran after an unrelated base change: {summary}"
    );
    assert!(
        report.copies_done > (APP_COPIES.len() + 1) * 3,
        "nothing on a destination's path changed: {summary}"
    );
}

// ------------------------------------------------------------------------------------------
// Minimal repros of the seal bugs found while building this driver. Each asserts the correct
// behaviour, so each fails while its bug is present.
// ------------------------------------------------------------------------------------------

/// A context at `<tmp>/ctx` with `files`, and a store at `<tmp>/store`.
fn small_context(files: &[(&str, &str)]) -> (TempDir, PathBuf, PathBuf) {
    let tmp = TempDir::new().expect("temp dir");
    let ctx = tmp.path().join("ctx");
    for (rel, content) in files {
        let path = ctx.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    let store = tmp.path().join("store");
    (tmp, ctx, store)
}

fn build_ok(store: &Path, ctx: &Path, kubefile: &str) -> Build {
    fs::write(ctx.join("Kubefile"), kubefile).unwrap();
    let b = seal_build(store, ctx, &BTreeMap::new(), false);
    assert_eq!(b.code, 0, "build failed:\n{kubefile}\n{}", b.stderr);
    b
}

/// `config.rootfs.diff_ids` of the image `TAG` in `store`.
fn diff_ids(store: &Path) -> Vec<String> {
    let out = Command::new(seal_bin())
        .arg("--root")
        .arg(store)
        .args(["inspect", TAG])
        .output()
        .expect("running seal inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v["config"]["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// Found by the driver (`kube-dest` mutations such as `etc/$D` -> `/etc/$D/`): seal keys a
/// COPY on its destination as spelled, so respelling it (`a`, `/a`, `a/`, `./a` all name the
/// same directory, KUBEFILE.md "COPY semantics") re-runs the step, although the cache key is
/// "a hash of the step's normalised definition" ("Cache rules") and the layer is identical.
/// Repro: `COPY dir1 a`, build; `COPY dir1 /a/`, build: step 2 was `DONE`, same diff_id.
/// Fixed in ff250a4 ("COPY destinations are normalised before hashing").
#[test]
fn regression_copy_dest_spelling_is_not_part_of_the_cache_key() {
    let (_tmp, ctx, store) = small_context(&[("dir1/one.txt", "one\n")]);
    build_ok(&store, &ctx, "FROM scratch\nCOPY dir1 a\n");
    let layer = diff_ids(&store);
    let mut reruns = Vec::new();
    for dest in ["/a", "a/", "./a", "/a/"] {
        let b = build_ok(&store, &ctx, &format!("FROM scratch\nCOPY dir1 {dest}\n"));
        assert_eq!(
            diff_ids(&store),
            layer,
            "`{dest}` names the same directory as `a`"
        );
        if b.steps.get(&2) != Some(&Status::Cached) {
            reruns.push(dest);
        }
    }
    assert!(
        reruns.is_empty(),
        "COPY dir1 <dest> re-ran for dest {reruns:?} although it equals `a` and its layer is unchanged"
    );
}

/// Found by the driver's model (ignore mutations adding `!` rules): with `.dockerignore`
/// `scripts/lib` + `!scripts/lib/util.sh`, util.sh is in the context (Docker's rules; seal's own
/// directory walk agrees: `COPY scripts x` copies it), but the glob `scripts/**/*.sh` does not
/// descend into the excluded `scripts/lib`, so it neither copied util.sh nor noticed its edits.
/// Fixed in ff250a4.
#[test]
fn regression_glob_skips_reincluded_files_in_excluded_dirs() {
    let (_tmp, ctx, store) = small_context(&[
        ("scripts/init.sh", "init\n"),
        ("scripts/lib/util.sh", "util\n"),
        (".dockerignore", "scripts/lib\n!scripts/lib/util.sh\n"),
    ]);
    let kubefile = "FROM scratch\nCOPY scripts/**/*.sh out\n";
    let before = build_ok(&store, &ctx, kubefile);
    fs::write(ctx.join("scripts/lib/util.sh"), "util, edited\n").unwrap();
    let after = build_ok(&store, &ctx, kubefile);
    assert_eq!(
        after.steps.get(&2),
        Some(&Status::Done),
        "scripts/lib/util.sh is re-included and matches the glob; editing it must re-run the COPY:\n{}",
        after.stderr
    );
    assert_ne!(
        before.digest, after.digest,
        "out/util.sh must be in the image"
    );
}

/// Found while writing the model (not by a mutation: the driver makes no symlinked parent
/// directories): a COPY source whose *parent* is a symlink leaving the context is followed by
/// the OS, so `COPY link/secret.txt x` with `link -> /outside` copies a file from outside the
/// context. KUBEFILE.md: sources "may not leave it (`../x`, an absolute path, or a symlink that
/// points outside the context is an error)". Globs under such a parent leaked the same way.
/// Fixed in ff250a4.
#[test]
fn regression_symlinked_parent_dir_escapes_context() {
    let (tmp, ctx, store) = small_context(&[("inside.txt", "in\n")]);
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, ctx.join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside", ctx.join("rel")).unwrap();
    let mut leaked = Vec::new();
    for source in [
        "abs/secret.txt",
        "rel/secret.txt",
        "abs/*.txt",
        "rel/**/*.txt",
    ] {
        let kubefile = format!("FROM scratch\nCOPY {source} x\n");
        fs::write(ctx.join("Kubefile"), &kubefile).unwrap();
        let b = seal_build(&store, &ctx, &BTreeMap::new(), false);
        if b.code == 0 {
            leaked.push(source);
        }
    }
    assert!(
        leaked.is_empty(),
        "these COPY sources read {} through a symlink leaving the context, and the build succeeded: {leaked:?}",
        outside.join("secret.txt").display()
    );
}

/// Found while writing the model: a COPY source that is a symlink was followed without applying
/// the ignore file to its target, so with `.dockerignore` = `secret.txt` and
/// `lnk -> secret.txt`, `COPY lnk x` copied the ignored file (while `COPY secret.txt x` fails as
/// excluded). KUBEFILE.md "Context and ignore files": the ignore file excludes paths from the
/// context; Docker's context would not hold the target. Fixed in 10c7a57.
#[test]
fn regression_symlink_source_reads_an_ignored_file() {
    let (_tmp, ctx, store) = small_context(&[
        ("secret.txt", "top secret\n"),
        (".dockerignore", "secret.txt\n"),
    ]);
    std::os::unix::fs::symlink("secret.txt", ctx.join("lnk")).unwrap();
    std::os::unix::fs::symlink("secret.txt", ctx.join("alias.txt")).unwrap();
    let mut copied = Vec::new();
    for source in ["lnk", "*.txt"] {
        let kubefile = format!("FROM scratch\nCOPY {source} x\n");
        fs::write(ctx.join("Kubefile"), &kubefile).unwrap();
        let b = seal_build(&store, &ctx, &BTreeMap::new(), false);
        if b.code == 0 {
            copied.push(source);
        }
    }
    assert!(
        copied.is_empty(),
        "COPY of {copied:?} built, copying the ignored secret.txt through a symlink"
    );
}

/// Found by the driver (seed 11, `swap steps 2 and 3`) while issue 12 was being fixed: a COPY's
/// key covers its destination's lookups in the rootfs below, but over an empty rootfs seal
/// made no lookups at all, so the same COPY moved to the top of the Kubefile (nothing below
/// it on its destination's way, as before) got another key and re-ran.
#[test]
fn regression_copy_moved_to_the_top_keeps_its_key() {
    let (_tmp, ctx, store) = small_context(&[("a.yaml", "a\n"), ("dir1/one.txt", "one\n")]);
    build_ok(
        &store,
        &ctx,
        "FROM scratch\nCOPY a.yaml .\nCOPY dir1 opt/x\n",
    );
    let moved = build_ok(
        &store,
        &ctx,
        "FROM scratch\nCOPY dir1 opt/x\nCOPY a.yaml .\n",
    );
    assert_eq!(
        moved.steps.get(&2),
        Some(&Status::Cached),
        "{}",
        moved.stderr
    );
}

//! Which paths image collection reads (`manifests/`, `application/apps/`, `charts/`,
//! `registry/`), and whether an op may change them — judged from the op alone, no IO.
//! Lowering uses it to let collection start before the last steps; the engine to mark
//! layers that touch none of those paths.

use crate::{CopySource, FileAction, Op};

/// The directories whose files name the images a cluster needs.
pub const SCANNED_DIRS: [&str; 3] = ["manifests", "application/apps", "charts"];

/// The OCI whiteout prefix.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// `a/b` without leading `./` or `/` and without a trailing `/`.
pub fn clean(raw: &str) -> String {
    let mut s = raw.trim_start_matches("./").trim_start_matches('/');
    s = s.trim_end_matches('/');
    s.to_string()
}

pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// `path` is `dir` or inside it (`dir` empty: everything).
pub fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// Whether a layer entry at `path` (rootfs-relative, whiteouts included) could change what
/// collection reads: the scanned directories or `registry/`.
pub fn concerns_collection(path: &str) -> bool {
    let path = clean(path);
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
    let affected = if name == WHITEOUT_OPAQUE {
        parent.to_string()
    } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        join(parent, hidden)
    } else {
        path.clone()
    };
    concerns_scan(&affected) || under(&affected, "registry") || affected.is_empty()
}

/// Whether the layer `op` produces could change what collection reads, judged from the op
/// alone (no IO): the paths a COPY or ADD writes are `dest/<source's last name>`, unknown for
/// globs, `dir/.` sources and unpacked archives (then all of `dest` counts); a RUN may write
/// anywhere. Lowering collects images on the rootfs up to the last op that may, so later
/// steps (binaries copied after the manifests) run while collection resolves and pulls.
pub fn may_change(op: &Op) -> bool {
    let touches = |prefix: &str| concerns_collection(prefix) || concerns_scan_ancestor(prefix);
    match op {
        Op::File(file) => file.actions.iter().any(|action| match action {
            FileAction::Copy(c) => sources_touch(&c.dest, &c.sources, &|_| false, &touches),
            FileAction::Add(a) => {
                let archive = |p: &str| crate::paths::is_archive_name(last_name(p));
                sources_touch(&a.dest, &a.sources, &archive, &touches)
                    || a.urls.iter().any(|u| {
                        let name = u.url.rsplit('/').next().unwrap_or_default();
                        touches(&join(&clean(&a.dest), name))
                    })
            }
            FileAction::Mkdir { path, .. }
            | FileAction::Mkfile { path, .. }
            | FileAction::Rm { path } => touches(&clean(path)),
        }),
        Op::Exec(_) => true,
        Op::Source(_) | Op::Merge(_) | Op::Collect(_) | Op::RegistryLayer(_) => true,
    }
}

fn sources_touch(
    dest: &str,
    sources: &[CopySource],
    unpacked: &dyn Fn(&str) -> bool,
    touches: &dyn Fn(&str) -> bool,
) -> bool {
    let dest = clean(dest);
    sources.iter().any(|s| {
        if s.contents_only || crate::paths::is_glob(&s.pattern) || unpacked(&s.pattern) {
            touches(&dest)
        } else {
            touches(&join(&dest, last_name(&s.pattern)))
        }
    })
}

fn last_name(pattern: &str) -> &str {
    pattern
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// `path` is a parent of a scanned directory or of `registry/` (writing there may create
/// them): the root, `application`.
fn concerns_scan_ancestor(path: &str) -> bool {
    SCANNED_DIRS
        .iter()
        .chain(std::iter::once(&"registry"))
        .any(|d| under(d, path))
}

/// The entry is inside a scanned directory, or is one of their parents.
pub fn concerns_scan(path: &str) -> bool {
    SCANNED_DIRS
        .iter()
        .any(|d| under(path, d) || under(d, path))
}

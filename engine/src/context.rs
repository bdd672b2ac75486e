//! The build context: resolving COPY sources, walking them, and hashing their content.
//!
//! Only the paths some COPY names are ever walked; only files whose (dev, inode, size, mtime,
//! ctime) changed since the file-hash cache saw them are read. The resulting
//! [`ContextSelection`] carries a content id over exactly what a COPY will put in its layer
//! (path, type, mode, size, link target, bytes — never mtimes or owners), which is what makes
//! COPY's cache key content-based.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use globset::GlobBuilder;
use rayon::prelude::*;
use seal_solver::Id;
use seal_store::{FileHashEntry, FileStat, Store};

use crate::ignore::IgnoreMatcher;
use crate::llb::encode::Encoder;
use crate::paths;
use crate::EngineError;

/// Files at least this big are hashed chunk by chunk on all cores.
const BIG_FILE: u64 = 4 << 20;
/// The chunk size for big files.
const CHUNK: usize = 8 << 20;

/// One entry under a matched source, relative to the match (`""` is the match itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub rel: String,
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// The stat tuple seen by the walk (files only); not part of the content id.
    pub stat: Option<FileStat>,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File { size: u64, blake3: [u8; 32] },
    Dir,
    Symlink { target: String },
}

/// One match of a COPY source: the name it lands under and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMatch {
    /// The basename the seed's COPY semantics use for the destination.
    pub name: String,
    /// Context-relative path of the content (after following a top-level symlink).
    pub resolved: String,
    /// Sorted by `rel`; the first is the match itself.
    pub entries: Vec<ContextEntry>,
}

/// The selected content of one Local source: matches per include pattern, in order.
#[derive(Debug, Clone)]
pub struct ContextSelection {
    pub dir: PathBuf,
    pub patterns: Vec<Vec<SourceMatch>>,
    pub content_id: Id,
    /// Files whose content was read (hashed) during this scan.
    pub files_hashed: usize,
}

impl ContextSelection {
    /// Absolute path of an entry on the host.
    pub fn host_path(&self, m: &SourceMatch, e: &ContextEntry) -> PathBuf {
        self.dir.join(paths::join(&m.resolved, &e.rel))
    }
}

/// Check that every include pattern is valid and matches something, without reading content.
/// Used before a build opens the store, so bad sources fail fast.
pub fn validate(dir: &Path, include: &[String], ignore: &IgnoreMatcher) -> Result<(), EngineError> {
    for pattern in include {
        resolve_pattern(dir, pattern, ignore)?;
    }
    Ok(())
}

/// Resolve, walk and hash the sources `include` of the context `dir`.
pub fn scan(
    store: &Store,
    dir: &Path,
    include: &[String],
    ignore: &IgnoreMatcher,
) -> Result<ContextSelection, EngineError> {
    scan_with(Some(store), dir, include, ignore)
}

/// [`scan`] of a throw-away directory (a stage's rootfs unpacked for `COPY --from`): every
/// selected file is hashed and nothing is remembered.
pub fn scan_uncached(dir: &Path, include: &[String]) -> Result<ContextSelection, EngineError> {
    scan_with(None, dir, include, &IgnoreMatcher::default())
}

fn scan_with(
    store: Option<&Store>,
    dir: &Path,
    include: &[String],
    ignore: &IgnoreMatcher,
) -> Result<ContextSelection, EngineError> {
    let scan_started = now_ns();
    let mut patterns = Vec::with_capacity(include.len());
    for pattern in include {
        let roots = resolve_pattern(dir, pattern, ignore)?;
        let mut matches = Vec::with_capacity(roots.len());
        for (name, resolved, meta) in roots {
            let entries = walk_match(dir, &resolved, &meta, ignore)?;
            matches.push(SourceMatch {
                name,
                resolved,
                entries,
            });
        }
        patterns.push(matches);
    }
    let files_hashed = fill_hashes(store, dir, &mut patterns, scan_started)?;
    let content_id = content_id(&patterns);
    Ok(ContextSelection {
        dir: dir.to_path_buf(),
        patterns,
        content_id,
        files_hashed,
    })
}

/// A stat tuple plus where to find the file, collected during the walk.
struct Pending {
    pattern: usize,
    matched: usize,
    entry: usize,
    path: PathBuf,
    stat: FileStat,
}

fn fill_hashes(
    store: Option<&Store>,
    dir: &Path,
    patterns: &mut [Vec<SourceMatch>],
    scan_started: i128,
) -> Result<usize, EngineError> {
    let mut pending = Vec::new();
    for (pi, matches) in patterns.iter().enumerate() {
        for (mi, m) in matches.iter().enumerate() {
            for (ei, e) in m.entries.iter().enumerate() {
                if let (EntryKind::File { .. }, Some(stat)) = (&e.kind, e.stat) {
                    let path = dir.join(paths::join(&m.resolved, &e.rel));
                    pending.push(Pending {
                        pattern: pi,
                        matched: mi,
                        entry: ei,
                        path,
                        stat,
                    });
                }
            }
        }
    }
    let paths: Vec<PathBuf> = pending.iter().map(|p| p.path.clone()).collect();
    let known = match store {
        Some(store) => store.file_hashes(&paths)?,
        None => vec![None; paths.len()],
    };
    let misses: Vec<usize> = (0..pending.len())
        .filter(|&i| {
            known[i]
                .as_ref()
                .and_then(|k| k.hash_if_valid(&pending[i].stat))
                .is_none()
        })
        .collect();
    let hashed: Vec<(usize, [u8; 32])> = misses
        .par_iter()
        .map(|&i| hash_file(&pending[i].path, pending[i].stat.size).map(|h| (i, h)))
        .collect::<Result<_, _>>()?;
    let mut hashes: Vec<Option<[u8; 32]>> = (0..pending.len())
        .map(|i| {
            known[i]
                .as_ref()
                .and_then(|k| k.hash_if_valid(&pending[i].stat))
        })
        .collect();
    let mut updates = Vec::with_capacity(hashed.len());
    for (i, h) in &hashed {
        hashes[*i] = Some(*h);
        updates.push((
            pending[*i].path.clone(),
            FileHashEntry {
                stat: pending[*i].stat,
                hashed_at_ns: scan_started,
                blake3: *h,
            },
        ));
    }
    if let Some(store) = store {
        store.put_file_hashes(&updates)?;
    }
    for (i, p) in pending.iter().enumerate() {
        let entry = &mut patterns[p.pattern][p.matched].entries[p.entry];
        if let (EntryKind::File { size, blake3 }, Some(h)) = (&mut entry.kind, hashes[i]) {
            *size = p.stat.size;
            *blake3 = h;
        }
    }
    Ok(hashed.len())
}

/// blake3 of a file's bytes. Big files are read in chunks hashed on all cores; never mapped,
/// so the pages do not count against the process's memory.
pub fn hash_file(path: &Path, size: u64) -> Result<[u8; 32], EngineError> {
    let mut hasher = blake3::Hasher::new();
    let mut file = fs::File::open(path).map_err(|e| EngineError::io("reading", path, e))?;
    if size >= BIG_FILE {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n =
                read_full(&mut file, &mut buf).map_err(|e| EngineError::io("reading", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
        }
    } else {
        hasher
            .update_reader(&mut file)
            .map_err(|e| EngineError::io("reading", path, e))?;
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Read until `buf` is full or the file ends.
fn read_full(file: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn content_id(patterns: &[Vec<SourceMatch>]) -> Id {
    let mut e = Encoder::new("seal.context.v1");
    e.u64(patterns.len() as u64);
    for matches in patterns {
        e.u64(matches.len() as u64);
        for m in matches {
            e.str(&m.name).u64(m.entries.len() as u64);
            for entry in &m.entries {
                e.str(&entry.rel).u64(entry.mode as u64);
                match &entry.kind {
                    EntryKind::File { size, blake3 } => {
                        e.tag(1).u64(*size).bytes(blake3);
                    }
                    EntryKind::Dir => {
                        e.tag(2);
                    }
                    EntryKind::Symlink { target } => {
                        e.tag(3).str(target);
                    }
                }
            }
        }
    }
    e.finish()
}

/// The matches of one pattern: (name, resolved context-relative path, metadata of the content).
fn resolve_pattern(
    dir: &Path,
    pattern: &str,
    ignore: &IgnoreMatcher,
) -> Result<Vec<(String, String, fs::Metadata)>, EngineError> {
    if paths::escapes(pattern) || pattern.starts_with('/') {
        return Err(EngineError::SourceOutsideContext {
            source_path: pattern.into(),
            reason: "it leaves the build context".into(),
        });
    }
    let candidates: Vec<String> = if paths::is_glob(pattern) {
        let found = glob(dir, pattern, ignore)?;
        if found.is_empty() {
            return Err(EngineError::GlobNoMatch {
                pattern: pattern.into(),
            });
        }
        found
    } else {
        if ignore.is_excluded(pattern) {
            return Err(EngineError::SourceExcluded {
                source_path: pattern.into(),
            });
        }
        vec![pattern.to_string()]
    };
    let mut out = Vec::with_capacity(candidates.len());
    for rel in candidates {
        let name = if rel.is_empty() {
            String::new()
        } else {
            paths::basename(&rel).to_string()
        };
        let (resolved, meta) = follow(dir, &rel, pattern)?;
        // A symlink may not smuggle in what the ignore file keeps out of the context.
        if resolved != rel && ignore.is_excluded(&resolved) {
            return Err(EngineError::SourceOutsideContext {
                source_path: pattern.into(),
                reason: format!(
                    "`{rel}` is a symlink to `{resolved}`, which the ignore file excludes"
                ),
            });
        }
        out.push((name, resolved, meta));
    }
    Ok(out)
}

/// Follow symlinks from `rel` while they stay inside the context.
fn follow(dir: &Path, rel: &str, pattern: &str) -> Result<(String, fs::Metadata), EngineError> {
    // Resolve component by component: the kernel would follow a symlinked *parent* silently,
    // and that must not lead outside the context either.
    let outside = |reason: String| EngineError::SourceOutsideContext {
        source_path: pattern.into(),
        reason,
    };
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: std::collections::VecDeque<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut hops = 0;
    let mut followed_any = false;
    while let Some(component) = pending.pop_front() {
        match component.as_str() {
            "." => continue,
            ".." => {
                if resolved.pop().is_none() {
                    return Err(outside("it leaves the build context".into()));
                }
                continue;
            }
            _ => {}
        }
        let candidate = paths::join(&resolved.join("/"), &component);
        let path = dir.join(&candidate);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(if followed_any {
                    outside(format!(
                        "it goes through a symlink to `{candidate}`, which does not exist"
                    ))
                } else {
                    EngineError::SourceNotFound {
                        source_path: pattern.into(),
                    }
                });
            }
            Err(e) => return Err(EngineError::io("reading the metadata of", &path, e)),
        };
        if !meta.file_type().is_symlink() {
            resolved.push(component);
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(outside("too many levels of symlinks".into()));
        }
        followed_any = true;
        let target =
            fs::read_link(&path).map_err(|e| EngineError::io("reading the symlink", &path, e))?;
        let target = target.to_string_lossy().into_owned();
        if target.starts_with('/') {
            return Err(outside(format!(
                "`{candidate}` is a symlink to the absolute path `{target}`"
            )));
        }
        let next = paths::clean(&paths::join(&resolved.join("/"), &target));
        if paths::escapes(&next) {
            return Err(outside(format!(
                "`{candidate}` is a symlink to `{target}`, outside the build context"
            )));
        }
        // Restart from the link's target, then whatever followed the link.
        resolved.clear();
        for c in next.split('/').filter(|c| !c.is_empty()).rev() {
            pending.push_front(c.to_string());
        }
    }
    let current = resolved.join("/");
    let path = dir.join(&current);
    let meta = fs::symlink_metadata(&path)
        .map_err(|e| EngineError::io("reading the metadata of", &path, e))?;
    Ok((current, meta))
}

/// Context-relative paths matching a glob, sorted. Paths are spelled as the pattern spells
/// them; the walk itself runs on the resolved directory, so a symlinked prefix cannot lead out.
fn glob(dir: &Path, pattern: &str, ignore: &IgnoreMatcher) -> Result<Vec<String>, EngineError> {
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| EngineError::BadGlob {
            pattern: pattern.into(),
            reason: e.kind().to_string(),
        })?
        .compile_matcher();
    // Walk only below the literal prefix of the pattern.
    let base: Vec<&str> = pattern
        .split('/')
        .take_while(|c| !paths::is_glob(c))
        .collect();
    let base = base.join("/");
    let resolved_base = if base.is_empty() {
        String::new()
    } else {
        match follow(dir, &base, pattern) {
            Ok((resolved, meta)) if meta.is_dir() => resolved,
            Ok(_) | Err(EngineError::SourceNotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    let recursive = pattern.contains("**");
    let depth = pattern.split('/').count();
    let mut found = Vec::new();
    // (the path as the pattern spells it, the real context path)
    let mut stack = vec![(base, resolved_base)];
    while let Some((spelled_dir, real_dir)) = stack.pop() {
        let path = dir.join(&real_dir);
        let Ok(entries) = fs::read_dir(&path) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(|e| EngineError::io("listing", &path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let spelled = paths::join(&spelled_dir, &name);
            let real = paths::join(&real_dir, &name);
            let excluded = ignore.is_excluded(&real);
            if !excluded && matcher.is_match(&spelled) {
                found.push(spelled.clone());
            }
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            // An excluded directory may still hold re-included (`!`) paths.
            let may_hold_matches = !excluded || !ignore.can_skip_dir();
            if is_dir && may_hold_matches && (recursive || spelled.split('/').count() < depth) {
                stack.push((spelled, real));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The entries of one match, sorted by relative path.
fn walk_match(
    dir: &Path,
    resolved: &str,
    meta: &fs::Metadata,
    ignore: &IgnoreMatcher,
) -> Result<Vec<ContextEntry>, EngineError> {
    let root_kind = kind_of(&dir.join(resolved), meta)?;
    let Some(root_kind) = root_kind else {
        return Err(EngineError::UnsupportedFileType {
            path: resolved.into(),
        });
    };
    let is_dir = root_kind == EntryKind::Dir;
    let mut entries = vec![ContextEntry {
        rel: String::new(),
        kind: root_kind,
        mode: meta.mode() & 0o7777,
        stat: Some(FileStat::of(meta)),
    }];
    if is_dir {
        entries.extend(walk_dir(dir, resolved, "", ignore)?);
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    }
    Ok(entries)
}

/// Entries below `base/sub`, in parallel across subdirectories.
fn walk_dir(
    dir: &Path,
    base: &str,
    sub: &str,
    ignore: &IgnoreMatcher,
) -> Result<Vec<ContextEntry>, EngineError> {
    let path = dir.join(paths::join(base, sub));
    let listing = fs::read_dir(&path).map_err(|e| EngineError::io("listing", &path, e))?;
    let mut out = Vec::new();
    let mut subdirs = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| EngineError::io("listing", &path, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(EngineError::NonUtf8Path { path: entry.path() });
        };
        let rel = paths::join(sub, &name);
        let context_rel = paths::join(base, &rel);
        let excluded = ignore.is_excluded(&context_rel);
        let meta = entry
            .metadata()
            .map_err(|e| EngineError::io("reading the metadata of", &entry.path(), e))?;
        if meta.is_dir() {
            if excluded && ignore.can_skip_dir() {
                continue;
            }
            if !excluded {
                out.push(ContextEntry {
                    rel: rel.clone(),
                    kind: EntryKind::Dir,
                    mode: meta.mode() & 0o7777,
                    stat: None,
                });
            }
            subdirs.push(rel);
            continue;
        }
        if excluded {
            continue;
        }
        if let Some(kind) = kind_of(&entry.path(), &meta)? {
            out.push(ContextEntry {
                rel,
                kind,
                mode: meta.mode() & 0o7777,
                stat: Some(FileStat::of(&meta)),
            });
        } else {
            tracing::warn!(
                "skipping {}: sockets, fifos and devices are not copied",
                entry.path().display()
            );
        }
    }
    let nested: Vec<Vec<ContextEntry>> = subdirs
        .par_iter()
        .map(|s| walk_dir(dir, base, s, ignore))
        .collect::<Result<_, _>>()?;
    for n in nested {
        out.extend(n);
    }
    Ok(out)
}

fn kind_of(path: &Path, meta: &fs::Metadata) -> Result<Option<EntryKind>, EngineError> {
    let ft = meta.file_type();
    Ok(if ft.is_file() {
        Some(EntryKind::File {
            size: meta.len(),
            blake3: [0; 32],
        })
    } else if ft.is_dir() {
        Some(EntryKind::Dir)
    } else if ft.is_symlink() {
        let target =
            fs::read_link(path).map_err(|e| EngineError::io("reading the symlink", path, e))?;
        let target = target
            .to_str()
            .ok_or_else(|| EngineError::NonUtf8Path {
                path: path.to_path_buf(),
            })?
            .to_string();
        Some(EntryKind::Symlink { target })
    } else {
        None
    })
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Shared handle to a selection (the output of a Local source).
pub type SharedSelection = Arc<ContextSelection>;

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("ctx/d")).unwrap();
        std::fs::write(tmp.path().join("ctx/d/f"), "one").unwrap();
        let store = Store::open(&tmp.path().join("store"), &mut || {}).unwrap();
        (tmp, store)
    }

    fn scan_d(tmp: &tempfile::TempDir, store: &Store) -> ContextSelection {
        scan(
            store,
            &tmp.path().join("ctx"),
            &["d".to_string()],
            &IgnoreMatcher::default(),
        )
        .unwrap()
    }

    #[test]
    fn same_size_rewrite_within_the_racy_window_is_detected() {
        let (tmp, store) = setup();
        let first = scan_d(&tmp, &store);
        // Same size, and the mtime is put back: only the racy rule (or ctime) can notice.
        let f = tmp.path().join("ctx/d/f");
        let before = fs::metadata(&f).unwrap().modified().unwrap();
        fs::write(&f, "two").unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(before)
            .unwrap();
        let second = scan_d(&tmp, &store);
        assert_ne!(first.content_id, second.content_id);
        assert_eq!(second.files_hashed, 1);
    }

    #[test]
    fn mtime_is_not_content() {
        let (tmp, store) = setup();
        let first = scan_d(&tmp, &store);
        let f = tmp.path().join("ctx/d/f");
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(scan_d(&tmp, &store).content_id, first.content_id);
    }

    #[test]
    fn mode_is_content() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, store) = setup();
        let first = scan_d(&tmp, &store);
        fs::set_permissions(
            tmp.path().join("ctx/d/f"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(scan_d(&tmp, &store).content_id, first.content_id);
    }

    #[test]
    fn escaping_symlinks_are_refused() {
        let (tmp, store) = setup();
        let ctx = tmp.path().join("ctx");
        std::os::unix::fs::symlink("/etc/passwd", ctx.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", ctx.join("rel")).unwrap();
        std::os::unix::fs::symlink("d/f", ctx.join("inside")).unwrap();
        for bad in ["abs", "rel"] {
            let err =
                scan(&store, &ctx, &[bad.to_string()], &IgnoreMatcher::default()).unwrap_err();
            assert!(
                matches!(err, EngineError::SourceOutsideContext { .. }),
                "{bad}: {err}"
            );
        }
        let ok = scan(
            &store,
            &ctx,
            &["inside".to_string()],
            &IgnoreMatcher::default(),
        )
        .unwrap();
        assert_eq!(ok.patterns[0][0].name, "inside");
        assert_eq!(ok.patterns[0][0].resolved, "d/f");
    }

    #[test]
    fn missing_sources_and_empty_globs_are_errors() {
        let (tmp, store) = setup();
        let ctx = tmp.path().join("ctx");
        let err = scan(
            &store,
            &ctx,
            &["nope".to_string()],
            &IgnoreMatcher::default(),
        )
        .unwrap_err();
        assert!(matches!(err, EngineError::SourceNotFound { .. }));
        let err = scan(
            &store,
            &ctx,
            &["*.yaml".to_string()],
            &IgnoreMatcher::default(),
        )
        .unwrap_err();
        assert!(matches!(err, EngineError::GlobNoMatch { .. }));
        let ignore = IgnoreMatcher::new(&["d".to_string()]).unwrap();
        let err = scan(&store, &ctx, &["d".to_string()], &ignore).unwrap_err();
        assert!(matches!(err, EngineError::SourceExcluded { .. }));
    }
}

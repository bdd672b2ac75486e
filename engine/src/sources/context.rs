//! The build context: resolving COPY sources, walking them, and hashing their content.
//!
//! Only the paths some COPY names are ever walked; only files whose (dev, inode, size, mtime,
//! ctime) changed since the file-hash cache saw them are read. The resulting
//! [`ContextSelection`] carries a content id over exactly what a COPY will put in its layer
//! (path, type, mode, size, link target, bytes, which files are hardlinks of which, and the
//! xattrs a stage's files carry — never mtimes or owners), which is what makes COPY's cache
//! key content-based.

use std::collections::BTreeMap;
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
use crate::layers::file_hash::hash_file;
use crate::llb::encode::Encoder;
use crate::paths;
use crate::xattrs::{self, Xattrs};
use crate::EngineError;

/// One entry under a matched source, relative to the match (`""` is the match itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub rel: String,
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// The stat tuple seen by the walk (files only); not part of the content id, except that
    /// a file whose (dev, inode) an earlier file of its match had is a hardlink to it.
    pub stat: Option<FileStat>,
    /// Kept extended attributes ([`crate::xattrs`]); read only by [`scan_uncached`] (a stage's
    /// filesystem), empty for the build context.
    pub xattrs: Xattrs,
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
/// selected file is hashed and nothing is remembered. Entries carry their extended attributes:
/// a stage's files keep theirs through `COPY --from`, as in BuildKit.
pub fn scan_uncached(dir: &Path, include: &[String]) -> Result<ContextSelection, EngineError> {
    let mut selection = scan_with(None, dir, include, &IgnoreMatcher::default())?;
    for matches in &mut selection.patterns {
        for m in matches {
            for e in &mut m.entries {
                let host = dir.join(paths::join(&m.resolved, &e.rel));
                e.xattrs = xattrs::read(&host)?;
            }
        }
    }
    selection.content_id = content_id(&selection.patterns);
    Ok(selection)
}

/// For each entry of `m`, the index of the earlier entry it is a hardlink of (same dev and
/// inode, files only), if any.
pub fn hardlinks_of(m: &SourceMatch) -> Vec<Option<usize>> {
    let mut first: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    m.entries
        .iter()
        .enumerate()
        .map(|(i, e)| match (&e.kind, &e.stat) {
            (EntryKind::File { .. }, Some(stat)) => {
                Some(*first.entry((stat.dev, stat.ino)).or_insert(i)).filter(|&at| at != i)
            }
            _ => None,
        })
        .collect()
}

fn scan_with(
    store: Option<&Store>,
    dir: &Path,
    include: &[String],
    ignore: &IgnoreMatcher,
) -> Result<ContextSelection, EngineError> {
    let scan_started = now_ns();
    let scan_span = tracing::info_span!(
        target: "seal_trace",
        "context scan",
        patterns = include.len(),
        entries = tracing::field::Empty
    )
    .entered();
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
    if !scan_span.is_disabled() {
        let entries: usize = patterns.iter().flatten().map(|m| m.entries.len()).sum();
        scan_span.record("entries", entries);
    }
    drop(scan_span);
    let files_hashed = fill_hashes(store, dir, &mut patterns, scan_started)?;
    let content_id = content_id(&patterns);
    Ok(ContextSelection {
        dir: dir.to_path_buf(),
        patterns,
        content_id,
        files_hashed,
    })
}

fn fill_hashes(
    store: Option<&Store>,
    dir: &Path,
    patterns: &mut [Vec<SourceMatch>],
    scan_started: i128,
) -> Result<usize, EngineError> {
    let span = tracing::info_span!(
        target: "seal_trace",
        "hashing",
        files = tracing::field::Empty,
        hashed = tracing::field::Empty,
        bytes = tracing::field::Empty
    )
    .entered();
    // (pattern, match, entry) of every file, and its host path (the file-hash cache's key).
    let mut at = Vec::new();
    let mut paths = Vec::new();
    for (pi, matches) in patterns.iter().enumerate() {
        for (mi, m) in matches.iter().enumerate() {
            for (ei, e) in m.entries.iter().enumerate() {
                if let (EntryKind::File { .. }, Some(_)) = (&e.kind, e.stat) {
                    at.push((pi, mi, ei));
                    paths.push(dir.join(paths::join(&m.resolved, &e.rel)));
                }
            }
        }
    }
    let stat_of = |i: usize| {
        let (pi, mi, ei) = at[i];
        patterns[pi][mi].entries[ei].stat.unwrap_or(FileStat {
            dev: 0,
            ino: 0,
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        })
    };
    let known = match store {
        Some(store) => store.file_hashes(&paths)?,
        None => vec![None; paths.len()],
    };
    let mut hashes: Vec<Option<[u8; 32]>> = known
        .iter()
        .enumerate()
        .map(|(i, k)| k.as_ref().and_then(|k| k.hash_if_valid(&stat_of(i))))
        .collect();
    let misses: Vec<usize> = (0..at.len()).filter(|&i| hashes[i].is_none()).collect();
    let hashed: Vec<(usize, [u8; 32])> = misses
        .par_iter()
        .map(|&i| hash_file(&paths[i], stat_of(i).size).map(|h| (i, h)))
        .collect::<Result<_, _>>()?;
    if !span.is_disabled() {
        let bytes: u64 = hashed.iter().map(|&(i, _)| stat_of(i).size).sum();
        span.record("files", at.len());
        span.record("hashed", hashed.len());
        span.record("bytes", bytes);
    }
    let mut updates = Vec::with_capacity(hashed.len());
    for &(i, h) in &hashed {
        hashes[i] = Some(h);
        updates.push((
            paths[i].clone(),
            FileHashEntry {
                stat: stat_of(i),
                hashed_at_ns: scan_started,
                blake3: h,
            },
        ));
    }
    if let Some(store) = store {
        store.put_file_hashes(&updates)?;
    }
    for (i, &(pi, mi, ei)) in at.iter().enumerate() {
        let entry = &mut patterns[pi][mi].entries[ei];
        let stat = entry.stat;
        if let (EntryKind::File { size, blake3 }, Some(stat), Some(h)) =
            (&mut entry.kind, stat, hashes[i])
        {
            *size = stat.size;
            *blake3 = h;
        }
    }
    Ok(hashed.len())
}

fn content_id(patterns: &[Vec<SourceMatch>]) -> Id {
    let mut e = Encoder::new("seal.context.v1");
    e.u64(patterns.len() as u64);
    for matches in patterns {
        e.u64(matches.len() as u64);
        for m in matches {
            e.str(&m.name).u64(m.entries.len() as u64);
            for (entry, link) in m.entries.iter().zip(hardlinks_of(m)) {
                e.str(&entry.rel).u64(entry.mode as u64);
                // Tags only when present, so ids of content without them are unchanged.
                if !entry.xattrs.is_empty() {
                    e.tag(5).u64(entry.xattrs.len() as u64);
                    for (name, value) in &entry.xattrs {
                        e.str(name).bytes(value);
                    }
                }
                if let Some(at) = link {
                    e.tag(4).u64(at as u64);
                }
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
    let root = ContextEntry {
        rel: String::new(),
        kind: root_kind,
        mode: meta.mode() & 0o7777,
        stat: Some(FileStat::of(meta)),
        xattrs: Xattrs::new(),
    };
    if !is_dir {
        return Ok(vec![root]);
    }
    let chunks = walk_dir(dir, resolved, "", ignore)?;
    let mut entries = Vec::with_capacity(1 + chunks.iter().map(Vec::len).sum::<usize>());
    entries.push(root);
    for chunk in chunks {
        entries.extend(chunk);
    }
    Ok(entries)
}

/// One directory's listing, in the order its entries' paths sort.
enum Item {
    Entry(ContextEntry),
    /// A subdirectory's contents: every path in it sorts as `<name>/...`.
    Below(String),
}

/// Entries below `base/sub`, as chunks whose concatenation is sorted by `rel` (so the match
/// needs no sort of all its paths and no entry is copied once per directory level).
/// Subdirectories are walked in parallel.
///
/// Sorting a directory's entries by name and each subdirectory's contents by `<name>/` gives
/// exactly the byte order of the full paths: a path below `d` shares the prefix `d/`, and
/// `d` itself sorts before it.
fn walk_dir(
    dir: &Path,
    base: &str,
    sub: &str,
    ignore: &IgnoreMatcher,
) -> Result<Vec<Vec<ContextEntry>>, EngineError> {
    let path = dir.join(paths::join(base, sub));
    let listing = fs::read_dir(&path).map_err(|e| EngineError::io("listing", &path, e))?;
    let mut items: Vec<(String, Item)> = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| EngineError::io("listing", &path, e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| EngineError::NonUtf8Path { path: entry.path() })?;
        let rel = paths::join(sub, &name);
        let excluded = !ignore.is_empty() && ignore.is_excluded(&paths::join(base, &rel));
        let meta = entry
            .metadata()
            .map_err(|e| EngineError::io("reading the metadata of", &entry.path(), e))?;
        if meta.is_dir() {
            if excluded && ignore.can_skip_dir() {
                continue;
            }
            items.push((format!("{name}/"), Item::Below(rel.clone())));
            if !excluded {
                let e = ContextEntry {
                    rel,
                    kind: EntryKind::Dir,
                    mode: meta.mode() & 0o7777,
                    stat: None,
                    xattrs: Xattrs::new(),
                };
                items.push((name, Item::Entry(e)));
            }
            continue;
        }
        if excluded {
            continue;
        }
        if let Some(kind) = kind_of(&entry.path(), &meta)? {
            let e = ContextEntry {
                rel,
                kind,
                mode: meta.mode() & 0o7777,
                stat: Some(FileStat::of(&meta)),
                xattrs: Xattrs::new(),
            };
            items.push((name, Item::Entry(e)));
        } else {
            // By its context path: the build's renderer shows it (issue 12.6).
            tracing::warn!(
                "skipping `{}` of the build context: sockets, fifos and devices are not copied",
                paths::join(base, &rel)
            );
        }
    }
    // Keys are unique: names differ, and no name contains the `/` of a `Below` key.
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let below: Vec<&str> = items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Below(rel) => Some(rel.as_str()),
            Item::Entry(_) => None,
        })
        .collect();
    let mut nested: Vec<Vec<Vec<ContextEntry>>> = if below.len() > 1 {
        below
            .par_iter()
            .map(|s| walk_dir(dir, base, s, ignore))
            .collect::<Result<_, _>>()?
    } else {
        below
            .iter()
            .map(|s| walk_dir(dir, base, s, ignore))
            .collect::<Result<_, _>>()?
    };
    nested.reverse();
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    for (_, item) in items {
        match item {
            Item::Entry(e) => current.push(e),
            Item::Below(_) => {
                if !current.is_empty() {
                    chunks.push(std::mem::take(&mut current));
                }
                chunks.extend(nested.pop().unwrap_or_default());
            }
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
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
    fn entries_are_in_path_byte_order() {
        // Names that extend a directory's name with bytes below `/` sort between the
        // directory and its contents; the walk must still give plain byte order.
        let (tmp, store) = setup();
        let d = tmp.path().join("ctx/d");
        for dir in ["a", "a/b", "a-b", "a.b", "ab", "A", "z", "\u{e9}t\u{e9}"] {
            fs::create_dir_all(d.join(dir)).unwrap();
        }
        for file in [
            "a/x",
            "a/b/y",
            "a.txt",
            "a-",
            "a!",
            "a0",
            "a/b.c",
            "a-b/q",
            "\u{e9}t\u{e9}/f",
        ] {
            fs::write(d.join(file), file).unwrap();
        }
        let sel = scan_d(&tmp, &store);
        let rels: Vec<&str> = sel.patterns[0][0]
            .entries
            .iter()
            .map(|e| e.rel.as_str())
            .collect();
        let mut sorted = rels.clone();
        sorted.sort();
        assert_eq!(rels, sorted);
        assert_eq!(rels.len(), 1 + 8 + 9 + 1, "{rels:?}");
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

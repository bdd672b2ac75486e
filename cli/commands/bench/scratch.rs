//! `seal bench`'s scratch space: a copy of the context (the builds read it and the phases
//! edit it), stores made fresh from a seed, the base images the user's store has copied into
//! that seed, and the file the edit phases change. The user's context and store are only
//! read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use seal_engine::ignore::{read_ignore_patterns, IgnoreMatcher};
use seal_frontend::ast::{Args, Keyword};
use seal_store::{Reference, Store};

/// The scratch directory, removed when dropped.
pub struct Scratch {
    dir: tempfile::TempDir,
    /// The copy of the context.
    pub context: PathBuf,
    /// A store holding only the seeded base images (the start of every cold run).
    pub seed: PathBuf,
    stores: usize,
}

impl Scratch {
    /// A scratch directory under `$TMPDIR` with a copy of `context` (`cp -a`: modes,
    /// symlinks, hardlinks and times kept).
    pub fn new(context: &Path) -> Result<Scratch, String> {
        let dir = tempfile::Builder::new()
            .prefix("seal-bench-")
            .tempdir()
            .map_err(|e| format!("creating a scratch directory: {e}"))?;
        let copy = dir.path().join("context");
        copy_tree(context, &copy)?;
        Ok(Scratch {
            seed: dir.path().join("seed-store"),
            context: copy,
            dir,
            stores: 0,
        })
    }

    /// Where the scratch space is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A new store in the cold state: a copy of the seed, or none at all without one.
    pub fn fresh_store(&mut self) -> Result<PathBuf, String> {
        self.stores += 1;
        let store = self.dir.path().join(format!("store-{}", self.stores));
        if self.seed.exists() {
            copy_tree(&self.seed, &store)?;
        }
        Ok(store)
    }

    /// Remove a store no later run needs (a cold run's), so scratch space stays small.
    pub fn drop_store(&self, store: &Path) {
        let _ = std::fs::remove_dir_all(store);
    }
}

/// `cp -a SRC/. DST`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let mut source = from.as_os_str().to_owned();
    source.push("/.");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&source)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running cp: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "copying {} to {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The images the Kubefile's FROMs name (not `scratch`, not an earlier stage, no `$`).
pub fn base_images(kubefile: &seal_frontend::ast::Kubefile) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for ins in kubefile
        .instructions
        .iter()
        .filter(|i| i.keyword == Keyword::From)
    {
        let words: Vec<&str> = ins.words.iter().map(|w| w.text.as_str()).collect();
        let Some(image) = words.first() else { continue };
        let known_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(image));
        if let [_, as_word, name, ..] = words.as_slice() {
            if as_word.eq_ignore_ascii_case("as") {
                stages.push(name.to_string());
            }
        }
        let plain = !image.eq_ignore_ascii_case("scratch") && !image.contains('$');
        if plain && !known_stage && !images.iter().any(|i| i == image) {
            images.push(image.to_string());
        }
    }
    images
}

/// Copy each of `images` the user's store at `user_root` holds into the seed store (`seal
/// save` from a read-only view, `seal load` into the seed); the others are left for the
/// builds to pull, as a cold build on a new machine would. Returns the images seeded.
pub fn seed_images(
    scratch: &Scratch,
    exe: &Path,
    globals: &[OsString],
    user_root: &Path,
    images: &[String],
) -> Result<Vec<String>, String> {
    let mut seeded = Vec::new();
    if images.is_empty() || !user_root.join("db").exists() {
        return Ok(seeded);
    }
    let user = Store::open_read_only(user_root)
        .map_err(|e| format!("reading the store at {}: {e}", user_root.display()))?;
    for (i, image) in images.iter().enumerate() {
        let Ok(reference) = Reference::parse_cluster_image(image) else {
            continue;
        };
        if !matches!(user.image(&reference), Ok(Some(_))) {
            continue;
        }
        let archive = scratch.path().join(format!("base-{i}.tar"));
        run_seal(exe, globals, user_root, &["save", "-o"], &archive, image)?;
        run_seal(
            exe,
            globals,
            &scratch.seed,
            &["load", "-t", image, "-i"],
            &archive,
            "",
        )?;
        let _ = std::fs::remove_file(&archive);
        seeded.push(image.clone());
    }
    Ok(seeded)
}

fn run_seal(
    exe: &Path,
    globals: &[OsString],
    root: &Path,
    args: &[&str],
    file: &Path,
    last: &str,
) -> Result<(), String> {
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(root)
        .args(globals)
        .args(args)
        .arg(file);
    if !last.is_empty() {
        cmd.arg(last);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running seal: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "seal {} {}: {}",
            args.join(" "),
            last,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The file (relative to the context) the edit phases change: `--edit`, which must be a
/// regular file inside the context, or else the first file in path order of the last
/// COPY/ADD whose sources are plain paths of the context, skipping ignored files.
pub fn edit_target(
    context: &Path,
    edit: Option<&Path>,
    kubefile: &seal_frontend::ast::Kubefile,
) -> Result<String, String> {
    if let Some(edit) = edit {
        let rel = if edit.is_absolute() {
            let root = context
                .canonicalize()
                .map_err(|e| format!("{}: {e}", context.display()))?;
            edit.strip_prefix(&root)
                .map_err(|_| {
                    format!(
                        "--edit {}: not inside the context {}",
                        edit.display(),
                        root.display()
                    )
                })?
                .to_path_buf()
        } else {
            edit.to_path_buf()
        };
        let is_file = std::fs::symlink_metadata(context.join(&rel)).is_ok_and(|m| m.is_file());
        let escapes = rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        if !is_file || escapes {
            return Err(format!(
                "--edit {}: not a regular file of the context",
                edit.display()
            ));
        }
        return Ok(rel.to_string_lossy().into_owned());
    }
    let ignore = read_ignore_patterns(context)
        .and_then(|p| IgnoreMatcher::new(&p))
        .map_err(|e| e.to_string())?;
    let copies = kubefile.instructions.iter().filter(|i| {
        matches!(i.keyword, Keyword::Copy | Keyword::Add)
            && !i.flags.iter().any(|f| f.name == "from")
    });
    for ins in copies.collect::<Vec<_>>().into_iter().rev() {
        let words: Vec<&str> = match &ins.args {
            Args::Json { items, .. } => items.iter().map(|w| w.text.as_str()).collect(),
            Args::Shell { .. } => ins.words.iter().map(|w| w.text.as_str()).collect(),
        };
        let Some((_, sources)) = words.split_last() else {
            continue;
        };
        for source in sources {
            let plain =
                !source.contains(['$', '*', '?', '[', '"', '\'', '\\']) && !source.contains("://");
            if !plain {
                continue;
            }
            let rel = source.trim_start_matches("./").trim_end_matches('/');
            if let Some(found) = first_file(context, rel, &ignore) {
                return Ok(found);
            }
        }
    }
    Err("no file among the COPY sources to edit; name one with --edit PATH".into())
}

/// The first regular file, in path byte order, at or under `rel`, not ignored.
fn first_file(context: &Path, rel: &str, ignore: &IgnoreMatcher) -> Option<String> {
    let rel = if rel == "." { "" } else { rel };
    let meta = std::fs::symlink_metadata(context.join(rel)).ok()?;
    if !rel.is_empty() && ignore.is_excluded(rel) {
        return None;
    }
    if meta.is_file() {
        return Some(rel.to_string());
    }
    if !meta.is_dir() {
        return None;
    }
    let mut names: Vec<String> = std::fs::read_dir(context.join(rel))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.iter().find_map(|name| {
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        first_file(context, &child, ignore)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubefile(text: &str) -> seal_frontend::ast::Kubefile {
        seal_frontend::parse_checked(text.as_bytes()).kubefile
    }

    #[test]
    fn the_edited_file_is_the_first_of_the_last_copy() {
        let ctx = tempfile::TempDir::new().unwrap();
        for f in ["dir1/x", "dir2/b/z", "dir2/a/y", "dir2/a/.skip", "Kubefile"] {
            let p = ctx.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x").unwrap();
        }
        std::fs::write(ctx.path().join(".sealignore"), "dir2/a/.skip\n").unwrap();
        let k = kubefile("FROM scratch\nCOPY dir1 a\nCOPY dir2 b\n");
        assert_eq!(edit_target(ctx.path(), None, &k).unwrap(), "dir2/a/y");
        let k = kubefile("FROM scratch\nCOPY [\"dir1\", \"a\"]\nCOPY --from=x dir2 b\n");
        assert_eq!(edit_target(ctx.path(), None, &k).unwrap(), "dir1/x");
        assert_eq!(
            edit_target(ctx.path(), Some(Path::new("dir2/b/z")), &k).unwrap(),
            "dir2/b/z"
        );
        for bad in ["dir2", "nope", "../x"] {
            let e = edit_target(ctx.path(), Some(Path::new(bad)), &k).unwrap_err();
            assert!(e.contains("not a regular file"), "{e}");
        }
        let none = kubefile("FROM scratch\nCOPY *.txt a\n");
        assert!(edit_target(ctx.path(), None, &none).is_err());
    }

    #[test]
    fn base_images_skip_scratch_stages_and_variables() {
        let k = kubefile(
            "FROM base:1 AS one\nFROM one\nFROM scratch\nFROM ${X}\nFROM reg/img:2\nFROM base:1\n",
        );
        assert_eq!(base_images(&k), vec!["base:1", "reg/img:2"]);
    }
}

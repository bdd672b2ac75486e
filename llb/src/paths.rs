//! Lexical path helpers for context- and rootfs-relative paths (`/`-separated strings).

/// Clean a relative path lexically: drop `.` and empty components and a leading `/`, resolve
/// `..` against earlier components. A `..` that would leave the root is kept, so callers can
/// detect escapes with [`escapes`].
pub fn clean(path: &str) -> String {
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

/// True when a cleaned path leaves its root.
pub fn escapes(cleaned: &str) -> bool {
    cleaned == ".." || cleaned.starts_with("../")
}

/// The last component of a cleaned path (`""` for the root).
pub fn basename(cleaned: &str) -> &str {
    cleaned.rsplit('/').next().unwrap_or("")
}

/// `a` joined with `b` (either may be empty).
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// True when the pattern has glob metacharacters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// A file name ADD unpacks: `.tar`, `.tar.gz`, `.tgz`, `.tar.zst`, `.tar.zstd` (any case), with
/// something before the suffix.
pub fn is_archive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"]
        .iter()
        .any(|suffix| lower.len() > suffix.len() && lower.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean("./a//b/./c/"), "a/b/c");
        assert_eq!(clean("/abs/x"), "abs/x");
        assert_eq!(clean("a/../../x"), "../x");
        assert_eq!(clean("."), "");
        assert!(escapes(&clean("../x")));
        assert!(!escapes(&clean("a/../x")));
        assert_eq!(basename("a/b"), "b");
        assert_eq!(join("", "b"), "b");
    }

    #[test]
    fn archive_names() {
        for name in ["a.tar", "B.TGZ", "c.tar.gz", "d.tar.zst", "e.tar.zstd"] {
            assert!(is_archive_name(name), "{name}");
        }
        for name in [".tar", "tar", "a.tar.bz2", "a.zip", "tgz"] {
            assert!(!is_archive_name(name), "{name}");
        }
    }
}

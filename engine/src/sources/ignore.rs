//! `.sealignore` / `.dockerignore`: Docker's pattern rules (not gitignore's).
//!
//! Patterns are relative to the context root (a leading `/` is dropped), `*` and `?` stay
//! within one path component, `**` crosses components, `!` re-includes, the last matching
//! pattern wins, and a pattern that matches a directory excludes everything under it.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::EngineError;

/// The ignore files read from the context root, in this order: `.dockerignore`'s patterns
/// come first, so `.sealignore`'s (later, and the last matching pattern wins) override them.
pub const IGNORE_FILES: [&str; 2] = [".dockerignore", ".sealignore"];

/// Compiled ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    rules: Vec<(GlobMatcher, bool)>,
    has_negation: bool,
}

impl IgnoreMatcher {
    /// Compile cleaned patterns (see [`read_ignore_patterns`]); `!` marks a re-include.
    pub fn new(patterns: &[String]) -> Result<IgnoreMatcher, EngineError> {
        let mut rules = Vec::new();
        let mut has_negation = false;
        for p in patterns {
            let (negated, body) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            has_negation |= negated;
            let glob = GlobBuilder::new(body)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| EngineError::BadIgnorePattern {
                    pattern: p.clone(),
                    reason: e.kind().to_string(),
                })?;
            rules.push((glob.compile_matcher(), negated));
        }
        Ok(IgnoreMatcher {
            rules,
            has_negation,
        })
    }

    /// True when no pattern is set.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when the context-relative path `rel` is excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        if self.rules.is_empty() || rel.is_empty() {
            return false;
        }
        let mut excluded = false;
        for (glob, negated) in &self.rules {
            if matches_or_parent(glob, rel) {
                excluded = !negated;
            }
        }
        excluded
    }

    /// True when an excluded directory can be skipped whole (no `!` pattern could re-include
    /// something inside it).
    pub fn can_skip_dir(&self) -> bool {
        !self.has_negation
    }
}

fn matches_or_parent(glob: &GlobMatcher, rel: &str) -> bool {
    if glob.is_match(rel) {
        return true;
    }
    rel.match_indices('/')
        .any(|(i, _)| glob.is_match(&rel[..i]))
}

/// Read and clean the patterns of the context's ignore files: both `.dockerignore` and
/// `.sealignore` (KUBEFILE.md "Context and ignore files"), in [`IGNORE_FILES`] order; empty
/// when there is neither.
pub fn read_ignore_patterns(context: &Path) -> Result<Vec<String>, EngineError> {
    let mut patterns = Vec::new();
    for name in IGNORE_FILES {
        let path = context.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => patterns.extend(clean_patterns(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(EngineError::io("reading the ignore file", &path, e)),
        }
    }
    Ok(patterns)
}

/// Docker's cleaning: skip blanks and `#` comments, trim, drop a leading `/`, clean the path.
pub fn clean_patterns(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (neg, body) = match line.strip_prefix('!') {
            Some(rest) => ("!", rest.trim()),
            None => ("", line),
        };
        let cleaned = crate::paths::clean(body);
        if cleaned.is_empty() {
            continue;
        }
        out.push(format!("{neg}{cleaned}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(patterns: &str, path: &str, excluded: bool) {
        let m = IgnoreMatcher::new(&clean_patterns(patterns)).unwrap();
        assert_eq!(m.is_excluded(path), excluded, "{patterns:?} on {path}");
    }

    #[test]
    fn both_ignore_files_are_read_and_sealignore_wins() {
        // Issue 12 point 11: a `.sealignore` used to make `.dockerignore` unread.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".dockerignore"), "*.log\nkeep.txt\n").unwrap();
        std::fs::write(tmp.path().join(".sealignore"), "*.tmp\n!keep.txt\n").unwrap();
        let m = IgnoreMatcher::new(&read_ignore_patterns(tmp.path()).unwrap()).unwrap();
        assert!(m.is_excluded("a.log"), ".dockerignore is read");
        assert!(m.is_excluded("a.tmp"), ".sealignore is read");
        assert!(!m.is_excluded("keep.txt"), ".sealignore's later rule wins");
    }

    #[test]
    fn docker_rules() {
        check("*.md", "README.md", true);
        check("*.md", "docs/README.md", false);
        check("**/*.md", "docs/README.md", true);
        check("docs", "docs/a/b.txt", true);
        check("/docs/", "docs/a", true);
        check("docs\n!docs/keep", "docs/keep", false);
        check("docs\n!docs/keep", "docs/drop", true);
        check("# comment\n\n", "x", false);
        check("a?c", "abc", true);
        check("!x\nx", "x", true);
    }
}

//! The reason a step executes, in the Kubefile's terms, from what the name's last build of the
//! same step read ([`StepRecord`]) and what this build observed ([`Observed`]).
//!
//! A step's cache key is its own definition digest plus one id per input, so the reasons are
//! exactly the parts that differ: the definition (the line's text, the ARG/ENV values it saw,
//! the FROM image, or else a build flag), the sources it selects (files added, removed,
//! modified, chmodded), or the rootfs below (the steps below whose output changed). When
//! nothing differs, the step ran because its stored result is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use seal_solver::NodeId;
use seal_store::Store;

use super::observed::Observed;
use super::record::{self, FileList, RecordedVar, StepRecord};
use crate::llb::{op_digest, Definition, Node, Op, SourceOp};

/// How many names a reason lists before it only counts.
const NAMES_SHOWN: usize = 3;
/// How much of an old line a reason quotes.
const TEXT_SHOWN: usize = 80;

/// Explains the steps of one build as they start.
pub struct Explainer {
    pub definition: Definition,
    /// The image name whose records are compared against.
    pub name: String,
    pub store: Arc<Store>,
    pub previous: BTreeMap<String, StepRecord>,
    pub observed: Arc<Observed>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`'s nodes.
    pub no_cache_nodes: BTreeSet<NodeId>,
}

impl Explainer {
    /// Why node `node`, which is starting, executes; `None` for nodes that are not steps.
    pub fn reason(&self, node: usize) -> Option<String> {
        let n = self.definition.nodes.get(node)?;
        let position = record::position(&n.metadata)?;
        if self.no_cache {
            return Some("--no-cache".into());
        }
        if self.no_cache_nodes.contains(&NodeId(node as u32)) {
            return Some("--no-cache-filter".into());
        }
        if matches!(&n.op, Op::File(f) if f.always_runs()) {
            return Some("ADD of a URL without --checksum: runs on every build".into());
        }
        let Some(previous) = self.previous.get(&position) else {
            return Some("first build of this step".into());
        };
        let mut causes = Vec::new();
        let definition_changed = previous.digest != op_digest(&n.op, &[]).to_hex();
        if definition_changed {
            causes.extend(definition_causes(previous, n));
        }
        let keys = self.observed.keys(node).unwrap_or_default();
        if previous.inputs.len() == keys.len() {
            let mut below = BTreeSet::new();
            let mut rootfs_changed = false;
            for (i, key) in keys.iter().enumerate() {
                if previous.inputs[i] == key.to_hex() {
                    continue;
                }
                let input = n.inputs[i];
                match self.definition.nodes.get(input).map(|n| &n.op) {
                    Some(Op::Source(SourceOp::Local { .. })) => {
                        causes.push(self.sources_cause(&position, input));
                    }
                    _ => {
                        rootfs_changed = true;
                        below.extend(self.changed_below(input));
                    }
                }
            }
            if !below.is_empty() {
                causes.push(self.below_cause(&below));
            } else if rootfs_changed && !definition_changed {
                // (A COPY to another destination resolves another path of the same rootfs:
                // that is its line's change, said above.)
                causes.push("the rootfs below it changed".into());
            }
        } else if causes.is_empty() {
            causes.push("its inputs changed".into());
        }
        if causes.is_empty() {
            causes.push("its cached result is gone (`seal prune`, or a damaged blob)".into());
        }
        Some(causes.join("; "))
    }

    /// The steps at or below `from` whose output differs from their record, not looking
    /// below a step (its own inputs are its own story).
    fn changed_below(&self, from: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(at) = stack.pop() {
            if !seen.insert(at) {
                continue;
            }
            let Some(node) = self.definition.nodes.get(at) else {
                continue;
            };
            match record::position(&node.metadata) {
                Some(position) => {
                    let now = self.observed.output(at).map(|id| id.to_hex());
                    let before = self.previous.get(&position).map(|r| &r.output);
                    if now.is_some() && now.as_ref() != before {
                        found.insert(at);
                    }
                }
                None => stack.extend(node.inputs.iter().copied()),
            }
        }
        found
    }

    /// `its base changed: [1/3] FROM x` and/or `an earlier step changed: [2/3] COPY a /x`.
    fn below_cause(&self, nodes: &BTreeSet<usize>) -> String {
        let (bases, steps): (Vec<&Node>, Vec<&Node>) = nodes
            .iter()
            .filter_map(|&i| self.definition.nodes.get(i))
            .partition(|n| {
                n.metadata
                    .text
                    .as_deref()
                    .is_some_and(|t| t.starts_with("FROM "))
            });
        let label = |n: &&Node| n.metadata.description.clone().unwrap_or_default();
        let mut parts = Vec::new();
        if !bases.is_empty() {
            let names: Vec<String> = bases.iter().map(label).collect();
            parts.push(format!("its base changed: {}", names.join(", ")));
        }
        match steps.as_slice() {
            [] => {}
            [one] => parts.push(format!("an earlier step changed: {}", label(one))),
            many => {
                let names: Vec<String> = many.iter().map(label).collect();
                parts.push(format!("earlier steps changed: {}", names.join(", ")));
            }
        }
        parts.join("; ")
    }

    /// What changed in the sources the Local node `local` selects, against the files stored
    /// with the step's record.
    fn sources_cause(&self, position: &str, local: usize) -> String {
        let old = record::load_files(&self.store, &self.name, position);
        let new = self
            .observed
            .selection(local)
            .map(|s| record::file_list(&s));
        match (old, new) {
            (Some(old), Some(new)) => sources_message(&old, &new),
            _ => "its sources changed".into(),
        }
    }
}

/// Why a step's own definition differs from its record's.
fn definition_causes(previous: &StepRecord, node: &Node) -> Vec<String> {
    let mut causes = Vec::new();
    let text = node.metadata.text.clone().unwrap_or_default();
    if previous.text != text {
        causes.push(format!(
            "the Kubefile line changed (was: {})",
            cut(&previous.text, TEXT_SHOWN)
        ));
    }
    let vars: Vec<RecordedVar> = node.metadata.vars.iter().map(RecordedVar::from).collect();
    causes.extend(var_changes(&previous.vars, &vars));
    if let (
        Some(old),
        Op::Source(SourceOp::Image {
            reference,
            manifest,
        }),
    ) = (&previous.image, &node.op)
    {
        let old_manifest = old.rsplit_once('@').map_or(old.as_str(), |(_, m)| m);
        if old_manifest != manifest {
            causes.push(format!(
                "base image changed: {reference} {} → {}",
                short_digest(old_manifest),
                short_digest(manifest)
            ));
        }
    }
    if causes.is_empty() {
        causes.push(
            "a build option changed (--compression, --mode, --allow or SOURCE_DATE_EPOCH)".into(),
        );
    }
    causes
}

/// `ARG VERSION changed: 1 → 2` for each variable whose value differs (`(unset)` when it
/// had none, or was not seen).
pub fn var_changes(old: &[RecordedVar], new: &[RecordedVar]) -> Vec<String> {
    let index = |vars: &[RecordedVar]| -> BTreeMap<String, (String, Option<String>)> {
        vars.iter()
            .map(|v| (v.name.clone(), (v.kind.clone(), v.value.clone())))
            .collect()
    };
    let (old, new) = (index(old), index(new));
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let show = |v: Option<&Option<String>>| match v {
        Some(Some(value)) => cut(value, TEXT_SHOWN),
        _ => "(unset)".into(),
    };
    names
        .into_iter()
        .filter_map(|name| {
            let (before, after) = (old.get(name), new.get(name));
            let before_value = before.map(|(_, v)| v);
            let after_value = after.map(|(_, v)| v);
            if before_value.cloned().flatten() == after_value.cloned().flatten() {
                return None;
            }
            let kind = after.or(before).map_or("ARG", |(k, _)| k.as_str());
            Some(format!(
                "{kind} {name} changed: {} → {}",
                show(before_value),
                show(after_value)
            ))
        })
        .collect()
}

/// `sources changed: 1 added (b), 2 modified (a, c), 1 mode changed (run.sh)`.
pub fn sources_message(old: &FileList, new: &FileList) -> String {
    let old: BTreeMap<&str, _> = old.iter().map(|f| (f.0.as_str(), f)).collect();
    let new: BTreeMap<&str, _> = new.iter().map(|f| (f.0.as_str(), f)).collect();
    let (mut added, mut removed, mut modified, mut mode) = (vec![], vec![], vec![], vec![]);
    for (path, entry) in &new {
        match old.get(path) {
            None => added.push(*path),
            Some(before) if before.1 != entry.1 || before.3 != entry.3 => modified.push(*path),
            Some(before) if before.2 != entry.2 => mode.push(*path),
            Some(_) => {}
        }
    }
    removed.extend(old.keys().filter(|p| !new.contains_key(*p)).copied());
    let parts: Vec<String> = [
        ("added", added),
        ("removed", removed),
        ("modified", modified),
        ("mode changed", mode),
    ]
    .into_iter()
    .filter(|(_, paths)| !paths.is_empty())
    .map(|(what, paths)| format!("{} {what} ({})", paths.len(), names(&paths)))
    .collect();
    if parts.is_empty() {
        // Same paths, types, modes and bytes: what differs is hardlinks, xattrs or the
        // names the matches land under.
        return "its sources changed (hardlinks, extended attributes or match names)".into();
    }
    format!("sources changed: {}", parts.join(", "))
}

/// `a, b, c and 4 more`.
fn names(paths: &[&str]) -> String {
    let shown: Vec<&str> = paths.iter().take(NAMES_SHOWN).copied().collect();
    let rest = paths.len().saturating_sub(NAMES_SHOWN);
    if rest == 0 {
        shown.join(", ")
    } else {
        format!("{} and {rest} more", shown.join(", "))
    }
}

/// `sha256:0123456789ab`.
fn short_digest(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", digest));
    let hex: String = hex.chars().take(12).collect();
    if algorithm.is_empty() {
        hex
    } else {
        format!("{algorithm}:{hex}")
    }
}

/// At most `max` characters of `text`, `…` marking a cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::record::FileEntry;

    fn file(path: &str, mode: u32, content: &str) -> FileEntry {
        FileEntry(path.into(), 'f', mode, content.into())
    }

    fn var(kind: &str, name: &str, value: Option<&str>) -> RecordedVar {
        RecordedVar {
            kind: kind.into(),
            name: name.into(),
            value: value.map(String::from),
        }
    }

    #[test]
    fn sources_say_what_changed_by_kind_with_the_first_names_and_a_count() {
        let old = vec![
            file("a", 0o644, "1"),
            file("b", 0o644, "1"),
            file("run.sh", 0o644, "1"),
            file("gone", 0o644, "1"),
        ];
        let new = vec![
            file("a", 0o644, "2"),
            file("b", 0o644, "1"),
            file("new", 0o644, "1"),
            file("run.sh", 0o755, "1"),
        ];
        assert_eq!(
            sources_message(&old, &new),
            "sources changed: 1 added (new), 1 removed (gone), 1 modified (a), 1 mode changed (run.sh)"
        );
        let many: Vec<FileEntry> = (0..7).map(|i| file(&format!("f{i}"), 0o644, "x")).collect();
        assert_eq!(
            sources_message(&vec![], &many),
            "sources changed: 7 added (f0, f1, f2 and 4 more)"
        );
        // A file that became a symlink is modified, not a mode change.
        let link = vec![FileEntry("a".into(), 'l', 0o777, "b".into())];
        assert_eq!(
            sources_message(&vec![file("a", 0o644, "1")], &link),
            "sources changed: 1 modified (a)"
        );
        assert_eq!(
            sources_message(&old, &old),
            "its sources changed (hardlinks, extended attributes or match names)"
        );
    }

    #[test]
    fn variables_report_old_and_new_values() {
        let old = vec![var("ARG", "V", Some("1")), var("ENV", "GONE", Some("x"))];
        let new = vec![
            var("ARG", "V", Some("2")),
            var("ENV", "NEW", Some("y")),
            var("ARG", "SAME", None),
        ];
        assert_eq!(
            var_changes(&old, &new),
            vec![
                "ENV GONE changed: x → (unset)",
                "ENV NEW changed: (unset) → y",
                "ARG V changed: 1 → 2",
            ]
        );
        assert!(var_changes(&new, &new).is_empty());
    }

    #[test]
    fn short_forms() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef"),
            "sha256:0123456789ab"
        );
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(names(&["a", "b"]), "a, b");
    }
}

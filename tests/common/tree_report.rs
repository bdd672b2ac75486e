//! A RUN that reports the tree it sees (every entry's type, mode, owner and size, every file's
//! sha256, which paths share an inode), and a context of many files to report on: how the
//! snapshot tests compare what a RUN sees with what the context holds.

use std::collections::{BTreeMap, BTreeSet};

use super::Ctx;

/// Prints every entry under `$1` (type, mode, owner, size), every file's sha256, each file's
/// inode, and how many devices its entries report (one, as on any one file system: `find
/// -xdev`, `du -x` and `tar --one-file-system` must not stop at a layer), one record per line.
pub const REPORT: &str = r#"#!/bin/sh
set -e
{
  find "$1" -mindepth 1 ! -type f -printf 'META %p %y %m %U:%G\n'
  find "$1" -type f -printf 'META %p %y %m %U:%G %s\n'
} | LC_ALL=C sort
find "$1" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sed 's/^/SUM /'
find "$1" -type f -printf 'INODE %i %p\n'
printf 'DEVICES %s\n' "$(find "$1" -printf '%D\n' | sort -u | wc -l)"
"#;

/// A context of 300 files in which many have equal bytes: with equal modes (still two files),
/// with other modes (setuid among them), plus one hardlinked pair, and a second directory that
/// repeats the first one's files for a second layer.
pub fn many_files(ctx: &Ctx) {
    for d in 0..10 {
        for f in 0..30 {
            let rel = format!("many/d{d}/f{f}");
            let mode = [0o644, 0o755, 0o4755][f % 3];
            ctx.file_mode(&rel, format!("content {}\n", (d * 30 + f) % 7), mode);
        }
    }
    ctx.file_mode("many/hard/a", "content 1\n", 0o644);
    std::fs::hard_link(
        ctx.path().join("many/hard/a"),
        ctx.path().join("many/hard/b"),
    )
    .unwrap();
    ctx.file_mode("owned/setuid", "content 1\n", 0o4750);
    ctx.file_mode("report.sh", REPORT, 0o755);
    ctx.kubefile(
        "FROM scratch\nCOPY report.sh /\nCOPY many /many\nCOPY --chown=1000:42 owned /owned\n\
         COPY many/d0 /again\n\
         RUN sh report.sh many && sh report.sh owned && sh report.sh again && echo done > ran\n",
    );
}

/// The report's lines of one kind (`META`, `SUM`, `INODE`) from a build's plain progress.
pub fn records(stderr: &str, kind: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .filter(|rest| rest.starts_with(kind))
        .map(str::to_string)
        .collect()
}

/// Paths that share an inode with another, as sets (inode numbers differ between trees).
pub fn link_groups(inode_lines: &[String]) -> BTreeSet<Vec<String>> {
    let mut by_inode: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for line in inode_lines {
        let mut words = line.splitn(3, ' ').skip(1);
        let (inode, path) = (words.next().unwrap(), words.next().unwrap());
        by_inode.entry(inode).or_default().push(path.to_string());
    }
    by_inode
        .into_values()
        .filter(|paths| paths.len() > 1)
        .map(|mut paths| {
            paths.sort();
            paths
        })
        .collect()
}

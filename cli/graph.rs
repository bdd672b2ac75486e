//! `seal build --graph FILE`: the build's LLB graph as Graphviz DOT, each op labelled with
//! its Kubefile line and coloured by what it did in this build; SVG through `dot` when FILE
//! ends in `.svg`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use seal_engine::llb::{Definition, Op, SourceOp};

/// What an op did in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Cached,
    Executed,
    Failed,
    /// Not reached (the build stopped first) or stopped because another step failed.
    NotRun,
}

impl NodeState {
    fn colour(self) -> (&'static str, &'static str) {
        match self {
            NodeState::Cached => ("#9ecae1", "cached"),
            NodeState::Executed => ("#fdae6b", "executed"),
            NodeState::Failed => ("#fb6a4a", "failed"),
            NodeState::NotRun => ("#f0f0f0", "not run"),
        }
    }
}

/// Whether FILE asks for SVG.
pub fn wants_svg(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
}

/// `Ok` when `dot` runs; else the message telling how to get it.
pub fn check_dot(path: &Path) -> Result<(), String> {
    let found = Command::new("dot")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Ok(())
    } else {
        Err(format!(
            "--graph {}: writing SVG needs Graphviz's `dot`, which is not installed; install it \
             (`apt-get install graphviz`) or name a `.dot` file to get the DOT text",
            path.display()
        ))
    }
}

/// Write the graph to `path`: DOT, or SVG rendered by `dot` when the name ends in `.svg`.
pub fn write(path: &Path, dot_text: &str) -> Result<(), String> {
    if !wants_svg(path) {
        return std::fs::write(path, dot_text)
            .map_err(|e| format!("--graph: writing {}: {e}", path.display()));
    }
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("--graph: running `dot`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot_text.as_bytes())
            .map_err(|e| format!("--graph: feeding `dot`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("--graph: running `dot`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "--graph: `dot -Tsvg` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The DOT text of `definition`, with `states[i]` for node `i` and the Kubefile `source`
/// (named `file_name`) for line labels.
pub fn dot(
    definition: &Definition,
    states: &[NodeState],
    source: &[u8],
    file_name: &str,
) -> String {
    let mut out = String::from(
        "digraph seal_build {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", \
         fontname=\"monospace\", fontsize=10];\n  edge [color=\"#777777\"];\n",
    );
    // Stages as clusters, in order of first appearance; ops of no stage outside.
    let mut stages: Vec<&str> = Vec::new();
    for node in &definition.nodes {
        if let Some(stage) = node.metadata.stage.as_deref() {
            if !stages.contains(&stage) {
                stages.push(stage);
            }
        }
    }
    let mut clusters: Vec<String> = vec![String::new(); stages.len()];
    for (i, node) in definition.nodes.iter().enumerate() {
        let state = states.get(i).copied().unwrap_or(NodeState::NotRun);
        let (fill, word) = state.colour();
        let mut lines = vec![match &node.metadata.description {
            Some(d) => d.clone(),
            None => internal_label(&node.op),
        }];
        if let Some((start, _)) = node.metadata.span {
            let (number, text) = line_at(source, start);
            lines.push(format!("{file_name}:{number}: {text}"));
        }
        lines.push(word.to_string());
        let label: String = lines.iter().map(|l| format!("{}\\l", escape(l))).collect();
        let style = if node.metadata.description.is_some() {
            ""
        } else {
            ", style=\"rounded,filled,dashed\""
        };
        let statement = format!("n{i} [label=\"{label}\", fillcolor=\"{fill}\"{style}];\n");
        match stages
            .iter()
            .position(|s| Some(*s) == node.metadata.stage.as_deref())
        {
            Some(c) => clusters[c].push_str(&format!("    {statement}")),
            None => out.push_str(&format!("  {statement}")),
        }
    }
    for (c, (stage, body)) in stages.iter().zip(&clusters).enumerate() {
        out.push_str(&format!(
            "  subgraph cluster_stage{c} {{\n    label=\"stage {}\"; fontsize=10; style=dotted;\n{body}  }}\n",
            escape(stage)
        ));
    }
    for (i, node) in definition.nodes.iter().enumerate() {
        for input in &node.inputs {
            out.push_str(&format!("  n{input} -> n{i};\n"));
        }
    }
    out.push_str("  subgraph cluster_legend {\n    label=\"legend\"; fontsize=10;\n");
    for state in [
        NodeState::Cached,
        NodeState::Executed,
        NodeState::Failed,
        NodeState::NotRun,
    ] {
        let (fill, word) = state.colour();
        out.push_str(&format!(
            "    legend_{} [label=\"{word}\", fillcolor=\"{fill}\"];\n",
            word.replace(' ', "_")
        ));
    }
    out.push_str("  }\n}\n");
    out
}

/// What an op without a Kubefile step does.
pub fn internal_label(op: &Op) -> String {
    match op {
        Op::Source(SourceOp::Scratch) => "scratch".into(),
        Op::Source(SourceOp::Image { reference, .. }) => format!("image {reference}"),
        Op::Source(SourceOp::Local { include, .. }) => {
            format!("context scan: {}", include.join(" "))
        }
        Op::File(_) => "file op".into(),
        Op::Exec(_) => "exec".into(),
        Op::Merge(_) => "merge (rootfs)".into(),
        Op::Collect(_) => "collect images".into(),
        Op::RegistryLayer(_) => "registry/ layer".into(),
    }
}

/// The 1-based line number at byte `at` of `source`, and that line's text (cut at 60
/// characters).
fn line_at(source: &[u8], at: usize) -> (usize, String) {
    let at = at.min(source.len());
    let number = source[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let start = source[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let end = source[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(source.len(), |p| at + p);
    let text = String::from_utf8_lossy(&source[start..end])
        .trim()
        .to_string();
    let text = match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    };
    (number, text)
}

/// A string for the inside of a DOT `"..."` label.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_and_labels_escaped() {
        let source = b"FROM scratch\nCOPY \"a b\" c\\\n";
        assert_eq!(line_at(source, 14), (2, "COPY \"a b\" c\\".to_string()));
        assert_eq!(line_at(source, 0), (1, "FROM scratch".to_string()));
        assert_eq!(escape("COPY \"a\" b\\"), "COPY \\\"a\\\" b\\\\");
        assert!(wants_svg(Path::new("g.SVG")));
        assert!(!wants_svg(Path::new("g.dot")));
    }
}

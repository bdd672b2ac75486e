//! `seal build --graph FILE` (issue 20): the LLB graph of a multi-stage Kubefile as DOT that
//! Graphviz accepts (`dot -Tsvg`), each op labelled with its Kubefile line and coloured by
//! what it did in this build; SVG directly; a clear message when `dot` is missing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Ctx, Seal};

const CACHED: &str = "#9ecae1";
const EXECUTED: &str = "#fdae6b";
const FAILED: &str = "#fb6a4a";

const MULTI_STAGE: &str = "\
FROM scratch AS tools
COPY tool /bin/tool
FROM scratch
COPY --from=tools /bin/tool /usr/bin/tool
COPY conf /etc/conf
";

/// The DOT statement of the node whose label starts with `step`.
fn node_line<'a>(dot: &'a str, step: &str) -> &'a str {
    dot.lines()
        .find(|l| l.contains(&format!("label=\"{step}")))
        .unwrap_or_else(|| panic!("no node labelled {step} in:\n{dot}"))
}

/// `dot -Tsvg` of `file`: it must accept the text.
fn svg_of(file: &Path) -> String {
    let out = Command::new("dot")
        .arg("-Tsvg")
        .arg(file)
        .output()
        .expect("Graphviz is installed (scripts/install-system-packages.sh)");
    assert!(
        out.status.success(),
        "dot -Tsvg refused the graph:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    // Graphviz writes `-` as `&#45;`.
    String::from_utf8_lossy(&out.stdout).replace("&#45;", "-")
}

#[test]
fn a_multi_stage_graph_is_valid_dot_with_lines_and_states() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("tool", "#!/bin/sh\n")
        .file("conf", "a=1\n")
        .kubefile(MULTI_STAGE);
    let dir = tempfile::TempDir::new().unwrap();
    let first = dir.path().join("first.dot");
    seal.build_ok(ctx.path(), "app:1", &["--graph", first.to_str().unwrap()]);
    let dot = std::fs::read_to_string(&first).unwrap();
    let svg = svg_of(&first);
    // Each step with its Kubefile line, in the DOT and in what Graphviz drew.
    for (step, line) in [
        (
            "[tools 2/2] COPY tool /bin/tool",
            "Kubefile:2: COPY tool /bin/tool",
        ),
        (
            "[stage-1 2/3] COPY --from=tools /bin/tool /usr/bin/tool",
            "Kubefile:4: COPY --from=tools /bin/tool /usr/bin/tool",
        ),
        (
            "[stage-1 3/3] COPY conf /etc/conf",
            "Kubefile:5: COPY conf /etc/conf",
        ),
    ] {
        let node = node_line(&dot, step);
        assert!(node.contains(line), "{node}");
        assert!(
            node.contains(EXECUTED),
            "first build executes {step}: {node}"
        );
        assert!(svg.contains(line), "the SVG shows {line}");
    }
    // The second stage reads the first: an edge from the tools COPY into the --from COPY.
    let id = |step: &str| {
        node_line(&dot, step)
            .trim()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let (tools, from) = (
        id("[tools 2/2] COPY tool /bin/tool"),
        id("[stage-1 2/3] COPY --from=tools"),
    );
    let reaches = |a: &str, b: &str| {
        // Through at most one op between (the stage's rootfs merge).
        let edges: Vec<(String, String)> = dot
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(';').split_once(" -> "))
            .map(|(x, y)| (x.to_string(), y.to_string()))
            .collect();
        edges.iter().any(|(x, y)| x == a && y == b)
            || edges
                .iter()
                .any(|(x, m)| x == a && edges.iter().any(|(m2, y)| m2 == m && y == b))
    };
    assert!(reaches(&tools, &from), "no path {tools} -> {from}:\n{dot}");

    // An edit of conf: the tools stage is cached, the conf COPY runs again.
    ctx.file("conf", "a=2\n");
    let second = dir.path().join("second.dot");
    seal.build_ok(ctx.path(), "app:1", &["--graph", second.to_str().unwrap()]);
    let dot = std::fs::read_to_string(&second).unwrap();
    svg_of(&second);
    assert!(node_line(&dot, "[tools 2/2] COPY tool /bin/tool").contains(CACHED));
    assert!(node_line(&dot, "[stage-1 2/3] COPY --from=tools").contains(CACHED));
    assert!(node_line(&dot, "[stage-1 3/3] COPY conf /etc/conf").contains(EXECUTED));
    // Each stage is a cluster named after it.
    assert!(dot.contains("label=\"stage tools\""), "{dot}");
}

#[test]
fn a_failed_step_is_red_and_svg_is_written_directly() {
    let seal = Seal::new();
    let base = Ctx::new();
    let bin = base.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    base.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(base.path(), "bb:1", &[]);

    let ctx = Ctx::new();
    ctx.file("a", "a")
        .kubefile("FROM bb:1\nCOPY a /a\nRUN exit 3\nCOPY a /b\n");
    let dir = tempfile::TempDir::new().unwrap();
    let dot_file = dir.path().join("failed.dot");
    let out = seal.build(
        ctx.path(),
        "app:1",
        &["--graph", dot_file.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let dot = std::fs::read_to_string(&dot_file).expect("a failed build writes its graph");
    svg_of(&dot_file);
    assert!(node_line(&dot, "[3/4] RUN exit 3").contains(FAILED));
    assert!(node_line(&dot, "[3/4] RUN exit 3").contains("Kubefile:3: RUN exit 3"));
    assert!(node_line(&dot, "[2/4] COPY a /a").contains(EXECUTED));
    assert!(node_line(&dot, "[4/4] COPY a /b").contains("not run"));

    let svg_file = dir.path().join("graph.svg");
    seal.build_ok(
        base.path(),
        "bb:1",
        &["--graph", svg_file.to_str().unwrap()],
    );
    let svg = std::fs::read_to_string(&svg_file).unwrap();
    assert!(svg.contains("<svg"), "an SVG file: {svg}");
    assert!(svg.contains("COPY rootfs/. ."));
}

#[test]
fn svg_without_dot_says_how_to_get_it() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("a", "a").kubefile("FROM scratch\nCOPY a a\n");
    let empty = tempfile::TempDir::new().unwrap();
    let out = seal.build_env(
        ctx.path(),
        "app:1",
        &["--graph", "g.svg"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("apt-get install graphviz"),
        "{}",
        out.stderr
    );
    assert!(!seal.root().exists(), "nothing was built");
    assert!(!ctx.path().join("g.svg").exists());
}

//! The Helm conformance suite: small charts under `tests/helm_conformance/<case>/chart`, each
//! exercising one construct (a group of Sprig/Helm functions, shared-map mutation through each
//! call path, render order across files and subcharts, nil errors, `tpl`, `lookup`,
//! `required`, `fail`), rendered by seal and compared with the real `helm template`:
//! - `<case>/helm.out` is what `helm template release <case>/chart` printed; seal's rendering,
//!   laid out as `helm template` lays it out (files in path order, split into documents,
//!   stable-sorted by kind), must equal it byte for byte. Nothing random is printed as is
//!   (`randAlpha` is checked by length, `now` by kind), so every byte is deterministic.
//! - `<case>/helm.err` is Helm's error for a chart it refuses; seal must fail too, naming the
//!   same template and line, with the same message.
//!
//! The golden files are Helm's own output, committed; the test also runs Helm live
//! (`/opt/helm-oracle/helm`, or `$HELM_ORACLE_DIR/helm`; `scripts/install-helm.sh` installs
//! it) and fails when Helm is missing or its output has moved from the golden files.
//! `UPDATE_EXPECT=1` rewrites the golden files from the live Helm.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use seal_helm::render_dir;
use seal_helm::yaml::{parse_document, Yaml};

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helm_conformance")
}

fn helm() -> PathBuf {
    let dir = std::env::var_os("HELM_ORACLE_DIR").unwrap_or_else(|| "/opt/helm-oracle".into());
    let helm = Path::new(&dir).join("helm");
    assert!(
        helm.exists(),
        "the Helm conformance suite needs the real Helm at {}: install it with scripts/install-helm.sh",
        helm.display()
    );
    helm
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(suite())
        .expect("reading tests/helm_conformance")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("chart").is_dir())
        .collect();
    cases.sort();
    cases
}

/// Helm's `InstallOrder` (pkg/release/v1/util/kind_sorter.go): `helm template` prints
/// manifests stable-sorted by it, unknown kinds last in name order.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Split one rendered file as Helm's `SplitManifests` does.
fn split_manifests(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"(?:^|\s*\n)---\s*").expect("static regex");
    re.split(text.trim())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// seal's rendering of `chart`, laid out as `helm template` prints it.
fn seal_template(chart: &Path) -> Result<String, String> {
    let rendered = render_dir(chart, &[]).map_err(|e| e.to_string())?;
    let mut files = rendered.files;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut manifests: Vec<(String, String, String)> = Vec::new();
    for file in &files {
        for doc in split_manifests(&file.text) {
            let kind = match parse_document(&doc) {
                Ok(yaml) => match yaml.get("kind") {
                    Some(Yaml::String(k)) => k.clone(),
                    _ => String::new(),
                },
                Err(e) => return Err(format!("YAML parse error on {}: {}", file.name, e.message)),
            };
            manifests.push((kind, file.name.clone(), doc));
        }
    }
    let rank = |kind: &str| INSTALL_ORDER.iter().position(|k| *k == kind);
    manifests.sort_by(|a, b| match (rank(&a.0), rank(&b.0)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    Ok(manifests
        .iter()
        .map(|(_, name, doc)| format!("---\n# Source: {name}\n{doc}\n"))
        .collect())
}

/// The outermost `file:line` and the innermost message of a Helm error.
fn helm_error(stderr: &str) -> (String, String) {
    let text = stderr
        .trim()
        .strip_prefix("Error: ")
        .unwrap_or(stderr)
        .split("\n\nUse --debug")
        .next()
        .unwrap_or_default();
    let file_line = |loc: &str| {
        loc.rsplit_once(':')
            .map_or(loc, |(head, _)| head)
            .to_string()
    };
    for prefix in ["execution error at (", "parse error at ("] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let (loc, msg) = rest.split_once("): ").unwrap_or((rest, ""));
            // A parse error's location is file:line already.
            let loc = if prefix.starts_with("parse") {
                loc.to_string()
            } else {
                file_line(loc)
            };
            return (loc, msg.to_string());
        }
    }
    if let Some(rest) = text.strip_prefix("template: ") {
        let (loc, rest) = rest.split_once(": executing ").unwrap_or((rest, ""));
        let msg = rest.split_once(">: ").map(|(_, m)| m).unwrap_or(rest);
        return (file_line(loc), msg.to_string());
    }
    let first = text.lines().next().unwrap_or_default();
    let last = text.lines().last().unwrap_or_default().trim();
    (file_line(first), last.to_string())
}

struct Live {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn live_helm(helm: &Path, chart: &Path) -> Live {
    let out = Command::new(helm)
        .args(["template", "release"])
        .arg(chart)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", helm.display()));
    Live {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Compare one case; `Err` says how it differs.
fn check(case: &Path, helm: &Path, update: bool) -> Result<(), String> {
    let name = case
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let chart = case.join("chart");
    let (out_file, err_file) = (case.join("helm.out"), case.join("helm.err"));
    let live = live_helm(helm, &chart);
    if update {
        let _ = fs::remove_file(&out_file);
        let _ = fs::remove_file(&err_file);
        if live.ok {
            fs::write(&out_file, &live.stdout).expect("writing helm.out");
        } else {
            fs::write(&err_file, &live.stderr).expect("writing helm.err");
        }
    }
    let golden_out = fs::read_to_string(&out_file).ok();
    let golden_err = fs::read_to_string(&err_file).ok();
    match (&golden_out, &golden_err) {
        (Some(g), None) if live.ok && *g == live.stdout => {}
        (None, Some(g)) if !live.ok && *g == live.stderr => {}
        _ => {
            return Err(format!(
                "{name}: the live Helm no longer gives the golden file (UPDATE_EXPECT=1 rewrites it)\n--- live stdout\n{}--- live stderr\n{}",
                live.stdout, live.stderr
            ))
        }
    }
    let ours = seal_template(&chart);
    match (golden_out, golden_err, ours) {
        (Some(expected), _, Ok(got)) if got == expected => Ok(()),
        (Some(expected), _, Ok(got)) => Err(format!(
            "{name}: seal's output differs from Helm's\n{}",
            diff(&expected, &got)
        )),
        (Some(_), _, Err(e)) => Err(format!("{name}: Helm renders it, seal fails: {e}")),
        (None, Some(err), Err(ours)) => {
            let (location, message) = helm_error(&err);
            if ours.contains(&format!("{location}:")) && ours.contains(&message) {
                Ok(())
            } else {
                Err(format!(
                    "{name}: seal's error should name {location} and say {message:?}; it is:\n{ours}"
                ))
            }
        }
        (None, Some(err), Ok(_)) => Err(format!("{name}: Helm fails ({err}), seal renders it")),
        (None, None, _) => Err(format!("{name}: no golden file")),
    }
}

/// The differing lines, Helm's first.
fn diff(expected: &str, got: &str) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(g.len()) {
        let (a, b) = (e.get(i).copied(), g.get(i).copied());
        if a != b {
            out.push_str(&format!(
                "line {}:\n  helm: {}\n  seal: {}\n",
                i + 1,
                a.unwrap_or("<none>"),
                b.unwrap_or("<none>")
            ));
        }
    }
    out
}

#[test]
fn every_case_renders_as_helm_template_does() {
    let helm = helm();
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let cases = cases();
    assert!(cases.len() >= 20, "conformance cases: {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c, &helm, update).err())
        .collect();
    eprintln!(
        "helm conformance: {} of {} cases equal to helm template",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn helm_errors_are_read_for_their_location_and_message() {
    assert_eq!(
        helm_error("Error: execution error at (c/templates/x.yaml:8:13): host is required!\n\nUse --debug flag to render out invalid YAML\n"),
        ("c/templates/x.yaml:8".into(), "host is required!".into())
    );
    assert_eq!(
        helm_error("Error: c/templates/x.yaml:7:12\n  executing \"c/templates/x.yaml\" at <include \"h\" .>:\n    error calling include:\nc/templates/_h.tpl:2:11\n  executing \"h\" at <.a.b>:\n    nil pointer evaluating interface {}.b\n\nUse --debug flag to render out invalid YAML\n"),
        ("c/templates/x.yaml:7".into(), "nil pointer evaluating interface {}.b".into())
    );
    assert_eq!(
        helm_error("Error: template: c/templates/x.yaml:7:10: executing \"c/templates/x.yaml\" at <eq 1 2.0>: error calling eq: incompatible types for comparison\n"),
        ("c/templates/x.yaml:7".into(), "error calling eq: incompatible types for comparison".into())
    );
}

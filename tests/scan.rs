//! `seal scan` end to end: every manifest set and chart of the shared corpus must give exactly
//! the images in `corpus/expected/*.images`, and a chart rendered by seal must give the same
//! images as the same chart rendered by the real `helm template` (`/opt/helm-oracle/helm`,
//! installed by `scripts/install-helm.sh`).
//!
//! The corpus lives beside the repository (`../shared/corpus`), not in it: the tests that read
//! it are `#[ignore]`d, and `scripts/test.sh` runs them with `--ignored` when it is there.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

fn seal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seal"))
        .args(args)
        .output()
        .expect("running seal")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The values file the corpus renders a chart with, if any.
fn values_for(chart: &str) -> Option<PathBuf> {
    let path = corpus().join("values").join(format!("{chart}.yaml"));
    path.exists().then_some(path)
}

fn names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(corpus().join(dir))
        .unwrap_or_else(|e| panic!("reading corpus/{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Run `seal scan` on one corpus entry and compare with its expected list.
fn check(kind: &str, name: &str) -> Result<(), String> {
    let path = corpus().join(format!("{kind}s")).join(name);
    let mut args = vec!["scan".to_string()];
    if let Some(values) = values_for(name).filter(|_| kind == "chart") {
        args.push("--values".into());
        args.push(values.display().to_string());
    }
    args.push(path.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = seal(&args);
    let expected = fs::read_to_string(
        corpus()
            .join("expected")
            .join(format!("{kind}-{name}.images")),
    )
    .map_err(|e| format!("{kind} {name}: no expected list: {e}"))?;
    let stdout = text(&out.stdout);
    if !out.status.success() || stdout != expected {
        return Err(format!(
            "{kind} {name}: exit {:?}\n--- got\n{stdout}--- expected\n{expected}--- stderr\n{}",
            out.status.code(),
            text(&out.stderr)
        ));
    }
    Ok(())
}

#[test]
#[ignore = "needs ../shared/corpus beside the repository; .ci/run runs it when present"]
fn every_manifest_set_gives_its_expected_images() {
    let names = names("manifests");
    assert!(names.len() >= 6, "corpus manifests: {names:?}");
    let failures: Vec<String> = names
        .iter()
        .filter_map(|n| check("manifest", n).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "needs ../shared/corpus beside the repository; .ci/run runs it when present"]
fn every_chart_gives_its_expected_images() {
    let names = names("charts");
    assert!(names.len() >= 8, "corpus charts: {names:?}");
    let failures: Vec<String> = names
        .iter()
        .filter_map(|n| check("chart", n).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "needs ../shared/corpus beside the repository; .ci/run runs it when present"]
fn a_chart_that_fails_names_the_chart_template_and_line() {
    // apollo-service requires values it has no default for (corpus/SOURCES.md).
    let chart = corpus().join("charts/apollo-service");
    let out = seal(&["scan", chart.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("chart apollo-service: apollo-service/templates/")
            && stderr.contains("configdb.userName is required!"),
        "{stderr}"
    );
    let line = stderr
        .split("templates/")
        .nth(1)
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|l| l.parse::<usize>().ok());
    assert!(line.is_some_and(|l| l > 0), "no line number in: {stderr}");
}

#[test]
#[ignore = "needs ../shared/corpus beside the repository; .ci/run runs it when present"]
fn json_output_says_where_each_image_was_found() {
    let chart = corpus().join("charts/metrics-server");
    let out = seal(&["scan", "--format", "json", chart.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    assert_eq!(
        items,
        serde_json::json!([{
            "reference": "registry.k8s.io/metrics-server/metrics-server:v0.8.1",
            "file": "metrics-server/templates/deployment.yaml",
            "document": 0,
            "field": "spec.template.spec.containers[0].image",
        }])
    );
}

#[test]
fn invalid_references_and_invalid_yaml_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("manifests")).unwrap();
    fs::write(
        dir.path().join("manifests/bad.yaml"),
        "kind: Pod\nspec:\n  containers:\n  - image: Not/Valid:Ref\n  - image: nginx\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("manifests/app.tmpl"),
        "spec:\n  image: busybox:1.36\n  broken: [\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("manifests/imageList"),
        "# pinned\nredis:7\n",
    )
    .unwrap();
    let out = seal(&["scan", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "docker.io/library/busybox:1.36\ndocker.io/library/nginx:latest\ndocker.io/library/redis:7\n"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("manifests/bad.yaml") && stderr.contains("Not/Valid:Ref"),
        "{stderr}"
    );
    assert!(stderr.contains("warning: manifests/app.tmpl:"), "{stderr}");
}

/// Images of `helm template` output, read by seal's own YAML walker.
fn oracle_images(helm: &Path, chart: &str) -> String {
    let path = corpus().join("charts").join(chart);
    let mut cmd = Command::new(helm);
    cmd.args(["template", "release"]).arg(&path);
    if let Some(values) = values_for(chart) {
        cmd.arg("-f").arg(values);
    }
    let out = cmd.output().expect("running helm");
    assert!(
        out.status.success(),
        "helm template {chart}: {}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("rendered.yaml"), &out.stdout).unwrap();
    let scan = seal(&["scan", dir.path().to_str().unwrap()]);
    assert!(scan.status.success(), "{}", text(&scan.stderr));
    text(&scan.stdout)
}

#[test]
#[ignore = "needs ../shared/corpus beside the repository; .ci/run runs it when present"]
fn charts_render_like_the_helm_oracle() {
    let dir = std::env::var_os("HELM_ORACLE_DIR").unwrap_or_else(|| "/opt/helm-oracle".into());
    let helm = Path::new(&dir).join("helm");
    assert!(
        helm.exists(),
        "the Helm oracle {} is missing: install it with scripts/install-helm.sh",
        helm.display()
    );
    for chart in [
        "ingress-nginx",
        "bitnami-wordpress",
        "cert-manager",
        "apollo-service",
    ] {
        let path = corpus().join("charts").join(chart);
        let mut args = vec!["scan".to_string()];
        if let Some(values) = values_for(chart) {
            args.push("--values".into());
            args.push(values.display().to_string());
        }
        args.push(path.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = seal(&args);
        assert!(ours.status.success(), "{chart}: {}", text(&ours.stderr));
        assert_eq!(text(&ours.stdout), oracle_images(&helm, chart), "{chart}");
    }
}

#[test]
fn a_chart_that_renders_no_podspec_is_noted_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("rbac-only");
    fs::create_dir_all(chart.join("templates")).unwrap();
    fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: rbac-only\nversion: 0.1.0\n",
    )
    .unwrap();
    fs::write(
        chart.join("templates/sa.yaml"),
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}\n",
    )
    .unwrap();
    let out = seal(&["scan", chart.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("chart rbac-only rendered 1 document and no PodSpec"),
        "{}",
        text(&out.stderr)
    );
}

//! Applications end to end: APP, CNI, CSI, APPCMDS, APPENV, LAUNCH and KUBEVERSION through the
//! real binary — files under `application/apps/<name>/`, detected types and launch commands in
//! the `sealer.image.extension` annotation, labels in the config, errors at the right line, and
//! the cache. KUBEFILE.md "Instructions", "Result".

mod common;

use common::{tool, Ctx, SavedLayout, Seal, Step};
use serde_json::{json, Value};

/// A context with one app of each type and a file no type claims.
fn apps_context(kubefile: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.kubefile(kubefile)
        .file(
            "mychart/Chart.yaml",
            "apiVersion: v2\nname: mychart\nversion: 0.1.0\n",
        )
        .file("mychart/values.yaml", "replicas: 1\n")
        .file("mychart/templates/x.yaml", "kind: ConfigMap\n")
        .file("a.yaml", "kind: Pod\n")
        .file_mode("install.sh", "echo installing\n", 0o755)
        .file("calico/calico.yaml", "kind: DaemonSet\n")
        .file("openebs/openebs.yaml", "kind: StorageClass\n")
        .file("docs/README.md", "read me\n");
    ctx
}

const ALL_TYPES: &str = "FROM scratch\n\
    APP web local://mychart\n\
    APP k local://a.yaml\n\
    APP s local://install.sh\n\
    APPENV s MODE=fast TARGET=\"a b\"\n\
    CNI calico local://calico\n\
    CSI openebs local://openebs/openebs.yaml\n\
    KUBEVERSION v1.22.15\n\
    LAUNCH [\"calico\", \"web\", \"s\"]\n";

/// The `sealer.image.extension` annotation of a stored image, parsed.
fn extension(seal: &Seal, name: &str) -> Value {
    let inspect = seal.inspect(name);
    let text = inspect["annotations"]["sealer.image.extension"]
        .as_str()
        .unwrap_or_else(|| panic!("no sealer.image.extension in {inspect:#}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("extension is not JSON ({e}): {text}"))
}

/// The extension's application named `name`.
fn app(extension: &Value, name: &str) -> Value {
    extension["applications"]
        .as_array()
        .unwrap_or_else(|| panic!("no applications in {extension:#}"))
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no app `{name}` in {extension:#}"))
        .clone()
}

/// `seal save` the image (built with `--compression gzip`) and list every layer with GNU tar.
fn layer_paths(seal: &Seal, name: &str) -> Vec<Vec<String>> {
    let saved = SavedLayout::new(seal, name);
    let dir = saved.dir.path();
    saved
        .layer_blobs()
        .into_iter()
        .map(|path| {
            tool("tar", &["-tzf", path.to_str().unwrap()], dir)
                .lines()
                .map(|l| l.trim_end_matches('/').to_string())
                .collect()
        })
        .collect()
}

/// A build that must fail with exit 1 and a diagnostic `message` at `Kubefile:<at>`.
#[track_caller]
fn fails_at(ctx: &Ctx, at: &str, message: &str) -> String {
    let seal = Seal::new();
    let out = seal.build(ctx.path(), "demo:v1", &[]);
    assert_eq!(out.code, 1, "exit code; stderr:\n{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "no digest on failure: {}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        out.stderr.contains(message),
        "expected `{message}` in:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(" --> Kubefile:{at}\n")),
        "expected Kubefile:{at} in:\n{}",
        out.stderr
    );
    out.stderr
}

#[test]
fn detected_types_default_commands_env_launch_and_labels() {
    let seal = Seal::new();
    let ctx = apps_context(ALL_TYPES);
    let out = seal.build_ok(ctx.path(), "apps:v1", &["--compression", "gzip"]);
    for step in [
        "[2/6] APP web local://mychart",
        "[3/6] APP k local://a.yaml",
        "[4/6] APP s local://install.sh",
        "[5/6] CNI calico local://calico",
        "[6/6] CSI openebs local://openebs/openebs.yaml",
    ] {
        assert_eq!(out.step(step), Step::Done, "{}", out.stderr);
    }

    let ext = extension(&seal, "apps:v1");
    assert_eq!(ext["type"], "kube-installer");
    assert_eq!(
        ext["applications"],
        json!([
            {
                "name": "web",
                "type": "helm",
                "launchfiles": ["mychart"],
                "cmds": ["helm install web application/apps/web/mychart"]
            },
            {
                "name": "k",
                "type": "kube",
                "launchfiles": ["a.yaml"],
                "cmds": ["kubectl apply -f application/apps/k/a.yaml"]
            },
            {
                "name": "s",
                "type": "shell",
                "launchfiles": ["install.sh"],
                "cmds": ["bash application/apps/s/install.sh"],
                "env": {"MODE": "fast", "TARGET": "a b"}
            },
            {
                "name": "calico",
                "type": "kube",
                "launchfiles": ["calico.yaml"],
                "cmds": ["kubectl apply -f application/apps/calico/calico.yaml"]
            },
            {
                "name": "openebs",
                "type": "kube",
                "launchfiles": ["openebs.yaml"],
                "cmds": ["kubectl apply -f application/apps/openebs/openebs.yaml"]
            }
        ])
    );
    assert_eq!(ext["launch"], json!({"app_names": ["calico", "web", "s"]}));

    let inspect = seal.inspect("apps:v1");
    let labels = &inspect["config"]["config"]["Labels"];
    assert_eq!(labels["cluster.alpha.sealer.io/kube-cni-calico"], "true");
    assert_eq!(labels["cluster.alpha.sealer.io/kube-csi-openebs"], "true");
    assert_eq!(
        labels["app.alpha.sealer.io/supported-kube-version"],
        "v1.22.15"
    );
    assert!(labels["io.sealer.version"].is_string(), "{labels}");
    // One layer and one history entry per app; APPENV, KUBEVERSION and LAUNCH are empty layers.
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 5);
    let history: Vec<(String, bool)> = inspect["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap().to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("APP web local://mychart".to_string(), false),
            ("APP k local://a.yaml".to_string(), false),
            ("APP s local://install.sh".to_string(), false),
            ("APPENV s MODE=fast TARGET=\"a b\"".to_string(), true),
            ("CNI calico local://calico".to_string(), false),
            (
                "CSI openebs local://openebs/openebs.yaml".to_string(),
                false
            ),
            ("KUBEVERSION v1.22.15".to_string(), true),
            ("LAUNCH [\"calico\", \"web\", \"s\"]".to_string(), true),
        ]
    );

    // Each app's files, and only them, in its own layer, at application/apps/<name>/<basename>.
    let layers = layer_paths(&seal, "apps:v1");
    let parents = |leaf: &[&str]| -> Vec<String> {
        let mut all = vec!["application".to_string(), "application/apps".to_string()];
        all.extend(leaf.iter().map(|s| s.to_string()));
        all.sort();
        all
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(layers[0].clone()),
        parents(&[
            "application/apps/web",
            "application/apps/web/mychart",
            "application/apps/web/mychart/Chart.yaml",
            "application/apps/web/mychart/templates",
            "application/apps/web/mychart/templates/x.yaml",
            "application/apps/web/mychart/values.yaml",
        ])
    );
    assert_eq!(
        sorted(layers[1].clone()),
        parents(&["application/apps/k", "application/apps/k/a.yaml"])
    );
    assert_eq!(
        sorted(layers[2].clone()),
        parents(&["application/apps/s", "application/apps/s/install.sh"])
    );
    assert_eq!(
        sorted(layers[3].clone()),
        parents(&[
            // The dir's name is the app's: its contents land in the app dir (COPY's rule).
            "application/apps/calico",
            "application/apps/calico/calico.yaml",
        ])
    );
    assert_eq!(
        sorted(layers[4].clone()),
        parents(&[
            "application/apps/openebs",
            "application/apps/openebs/openebs.yaml",
        ])
    );
}

#[test]
fn appcmds_override_the_defaults_and_make_any_app_launchable() {
    let seal = Seal::new();
    let ctx = apps_context(
        "FROM scratch\n\
         APP web local://mychart\n\
         APP docs local://docs\n\
         APPCMDS web [\"helm install web mychart --set replicas=$N\", \"kubectl get pods\"]\n\
         APPCMDS docs [\"cat README.md\"]\n\
         APPENV docs N=2\n",
    );
    seal.build_ok(ctx.path(), "cmds:v1", &[]);
    let ext = extension(&seal, "cmds:v1");
    // The type is still detected; the commands are kept as written for the launch shell.
    assert_eq!(
        app(&ext, "web"),
        json!({
            "name": "web",
            "type": "helm",
            "launchfiles": ["mychart"],
            "cmds": ["helm install web mychart --set replicas=$N", "kubectl get pods"]
        })
    );
    // No type to detect: APPCMDS alone says how to launch it.
    assert_eq!(
        app(&ext, "docs"),
        json!({"name": "docs", "cmds": ["cat README.md"], "env": {"N": "2"}})
    );
    assert!(ext["launch"].get("app_names").is_none(), "{ext:#}");
}

#[test]
fn a_chart_copied_as_the_app_directory_and_contents_only_sources() {
    let seal = Seal::new();
    let ctx = apps_context(
        "FROM scratch\n\
         APP mychart local://mychart\n\
         APP scripts local://calico/. local://install.sh\n",
    );
    seal.build_ok(ctx.path(), "layout:v1", &[]);
    let ext = extension(&seal, "layout:v1");
    // `mychart` lands at application/apps/mychart itself (COPY's same-basename rule).
    assert_eq!(
        app(&ext, "mychart")["cmds"],
        json!(["helm install mychart application/apps/mychart"])
    );
    assert_eq!(
        app(&ext, "scripts"),
        json!({
            "name": "scripts",
            "type": "shell",
            "launchfiles": ["install.sh"],
            "cmds": ["bash application/apps/scripts/install.sh"]
        })
    );
}

#[test]
fn an_unchanged_app_rebuild_is_fully_cached_and_a_changed_app_reruns_alone() {
    let seal = Seal::new();
    let ctx = apps_context(ALL_TYPES);
    let first = seal.build_ok(ctx.path(), "apps:v1", &[]);
    let second = seal.build_ok(ctx.path(), "apps:v1", &[]);
    for (name, status) in second.steps() {
        assert_eq!(status, Step::Cached, "`{name}`:\n{}", second.stderr);
    }
    assert_eq!(second.summary().executed, 0, "{}", second.stderr);
    assert_eq!(second.summary().cached, 6, "{}", second.stderr);
    assert_eq!(first.digest(), second.digest());

    ctx.file("a.yaml", "kind: Pod\nmetadata: {name: changed}\n");
    let third = seal.build_ok(ctx.path(), "apps:v1", &[]);
    assert_eq!(third.step("APP k local://a.yaml"), Step::Done);
    assert_eq!(third.step("APP web local://mychart"), Step::Cached);
    assert_eq!(third.summary().executed, 1, "{}", third.stderr);
    assert_ne!(first.digest(), third.digest());
}

#[test]
fn unknown_apps_are_errors_at_the_name() {
    let ctx = apps_context("FROM scratch\nAPP web local://a.yaml\nAPPCMDS wbe [\"x\"]\n");
    let stderr = fails_at(&ctx, "3:9", "unknown app `wbe`");
    assert!(
        stderr.contains("help: declared apps: `web` (did you mean `web`?)"),
        "{stderr}"
    );

    ctx.kubefile("FROM scratch\nAPP web local://a.yaml\nAPPENV db K=1\n");
    fails_at(&ctx, "3:8", "unknown app `db`");

    ctx.kubefile("FROM scratch\nAPP web local://a.yaml\nLAUNCH [\"web\", \"db\"]\n");
    fails_at(&ctx, "3:16", "unknown app `db`");

    // Declared after the LAUNCH would name it is not declared before: LAUNCH comes last.
    ctx.kubefile("FROM scratch\nAPPENV web K=1\nAPP web local://a.yaml\n");
    let stderr = fails_at(&ctx, "2:8", "unknown app `web`");
    assert!(
        stderr.contains("no app is declared before this APPENV"),
        "{stderr}"
    );
}

#[test]
fn launch_rules() {
    let ctx = apps_context("FROM scratch\nAPP k local://a.yaml\nLAUNCH [\"k\"]\nLABEL a=b\n");
    fails_at(&ctx, "3:1", "LAUNCH must be the last instruction");

    ctx.kubefile("FROM scratch\nAPP k local://a.yaml\nLAUNCH [\"k\"]\nLAUNCH [\"k\"]\n");
    fails_at(&ctx, "4:1", "only one LAUNCH is allowed");

    ctx.kubefile("FROM scratch\nAPP k local://a.yaml\nCMD kubectl get pods\nLAUNCH [\"k\"]\n");
    fails_at(&ctx, "4:1", "LAUNCH and CMD cannot be used together");

    ctx.kubefile("FROM scratch\nAPP k local://a.yaml\nLAUNCH k k\n");
    fails_at(&ctx, "3:10", "app `k` is launched twice");
}

#[test]
fn bad_app_declarations() {
    let ctx = apps_context("FROM scratch\nAPP web https://example.com/app.yaml\n");
    fails_at(&ctx, "2:9", "APP from a URL is not supported yet");

    ctx.kubefile("FROM scratch\nCNI calico calico\n");
    fails_at(
        &ctx,
        "2:12",
        "CNI source `calico` has no `local://` or `https://` scheme",
    );

    ctx.kubefile("FROM scratch\nAPP web local://../outside\n");
    fails_at(
        &ctx,
        "2:9",
        "APP source `../outside` is outside the build context",
    );

    ctx.kubefile("FROM scratch\nAPP web local://nope.yaml\n");
    fails_at(&ctx, "2:9", "`nope.yaml` not found in the build context");

    ctx.kubefile("FROM scratch\nAPP k local://a.yaml\nCSI k local://install.sh\n");
    fails_at(&ctx, "3:5", "app `k` is declared twice");

    ctx.kubefile("FROM scratch\nAPP a/b local://a.yaml\n");
    fails_at(&ctx, "2:5", "invalid app name `a/b`");
}

#[test]
fn an_app_without_a_type_or_appcmds_fails_at_its_app_line() {
    let ctx = apps_context("FROM scratch\nAPP k local://a.yaml\nAPP docs local://docs\n");
    let stderr = fails_at(
        &ctx,
        "3:1",
        "cannot tell how to launch app `docs`: no Chart.yaml, *.yaml or *.sh; add `APPCMDS docs [...]`",
    );
    assert!(stderr.contains("3 | APP docs local://docs"), "{stderr}");
}

//! Applications (`APP`, `CNI`, `CSI`): what the Kubefile declares about each app
//! ([`AppSpec`], produced by lowering), and what the image records about it ([`Application`],
//! Sealer's `applications` entry of the `sealer.image.extension` annotation).
//!
//! An app's files are copied like a COPY to `application/apps/<name>/`. Its type is detected at
//! build time from what that copy selected (the Local source's [`ContextSelection`]), never from
//! the rootfs: a directory with `Chart.yaml` is `helm`, else `*.sh` files make it `shell`, else
//! `*.yaml`/`*.yml` files make it `kube`. Each type has Sealer's default launch commands unless
//! `APPCMDS` gives them. An app with neither a detectable type nor `APPCMDS` fails the build at
//! its APP line.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::context::{ContextSelection, EntryKind};
use crate::llb::{CopyAction, Definition, FileAction, Op};
use crate::paths;
use crate::EngineError;

pub use seal_llb::image_spec::{app_dir, AppSpec, AppType, APPS_DIR};

/// One entry of the extension's `applications` list, in Sealer's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Application {
    pub name: String,
    /// `None` when the type cannot be detected (the app then has `APPCMDS`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<AppType>,
    /// Paths relative to the app's directory: the chart directory (`.` for the app directory
    /// itself), or the manifests, or the scripts that the default commands launch.
    #[serde(rename = "launchfiles", skip_serializing_if = "Vec::is_empty")]
    pub launch_files: Vec<String>,
    /// The launch commands: `APPCMDS`, or the type's defaults.
    pub cmds: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// Detect every app's type from the selections its copy read, and complete its metadata.
/// `selection(i)` is the output of Definition node `i` when it is a context selection. An error
/// comes with the node of the app's FileOp (where the CLI points: the APP line).
pub fn applications<'s>(
    definition: &Definition,
    apps: &[AppSpec],
    selection: impl Fn(usize) -> Option<&'s ContextSelection>,
) -> Result<Vec<Application>, (usize, EngineError)> {
    apps.iter()
        .map(|app| application(definition, app, &selection).map_err(|e| (app.node, e)))
        .collect()
}

fn application<'s>(
    definition: &Definition,
    app: &AppSpec,
    selection: &impl Fn(usize) -> Option<&'s ContextSelection>,
) -> Result<Application, EngineError> {
    let internal = |what: &str| EngineError::Internal(format!("app `{}`: {what}", app.name));
    let node = definition
        .nodes
        .get(app.node)
        .ok_or_else(|| internal("its node is not in the Definition"))?;
    let copy = match &node.op {
        Op::File(file) => file.actions.iter().find_map(|a| match a {
            FileAction::Copy(c) => Some(c),
            _ => None,
        }),
        _ => None,
    }
    .ok_or_else(|| internal("its node is not a copy"))?;
    let selected = node
        .inputs
        .first()
        .and_then(|&i| selection(i))
        .ok_or_else(|| internal("its files were not scanned"))?;
    let files = landed_files(copy, selected);
    if files.iter().any(String::is_empty) {
        return Err(EngineError::AppLayout {
            name: app.name.clone(),
            reason: format!(
                "a file named `{}` would replace the app's directory {}; rename the file or the app",
                app.name,
                app_dir(&app.name)
            ),
        });
    }
    let detected = detect(&files);
    let (kind, launch_files) = match detected {
        Ok((kind, launch_files)) => (Some(kind), launch_files),
        Err(_) if !app.cmds.is_empty() => (None, Vec::new()),
        Err(reason) => {
            return Err(EngineError::AppUndetectable {
                name: app.name.clone(),
                reason,
            })
        }
    };
    let cmds = if app.cmds.is_empty() {
        kind.map(|k| default_cmds(&app.name, k, &launch_files))
            .unwrap_or_default()
    } else {
        app.cmds.clone()
    };
    Ok(Application {
        name: app.name.clone(),
        kind,
        launch_files,
        cmds,
        env: app.env.clone(),
    })
}

/// The files (and symlinks) `copy` puts under its destination, as paths relative to it, in
/// the order of the copy's sources (a directory's entries in path order). Mirrors the target
/// rule of `ops::file`: a directory written `dir/.`, or whose name the destination already
/// ends with, contributes its contents.
pub fn landed_files(copy: &CopyAction, selection: &ContextSelection) -> Vec<String> {
    let dest = paths::clean(&copy.dest);
    let mut out: Vec<String> = Vec::new();
    for (source, matches) in copy.sources.iter().zip(&selection.patterns) {
        for m in matches {
            let root_is_dir = m.entries.first().is_some_and(|e| e.kind == EntryKind::Dir);
            let contents_only = root_is_dir && (source.contents_only || m.name.is_empty());
            let target = if contents_only || paths::basename(&dest) == m.name {
                ""
            } else {
                m.name.as_str()
            };
            for e in &m.entries {
                if e.kind == EntryKind::Dir {
                    continue;
                }
                let path = paths::join(target, &e.rel);
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// The type of an app from its files (relative to the app directory), with the launch files:
/// 1. `helm`: the shallowest directory holding a `Chart.yaml` (subcharts are deeper); several
///    at the same depth are ambiguous.
/// 2. `shell`: the `*.sh` files at the shallowest depth that has any (`install.sh`, not
///    `lib/helpers.sh` next to it).
/// 3. `kube`: every `*.yaml` / `*.yml` file.
///
/// The error is the reason, for "cannot tell how to launch app `x`: <reason>".
pub fn detect(files: &[String]) -> Result<(AppType, Vec<String>), String> {
    let depth = |p: &str| p.matches('/').count();
    let charts: Vec<&str> = files
        .iter()
        .filter(|f| paths::basename(f) == "Chart.yaml")
        .map(|f| f.rsplit_once('/').map_or("", |(dir, _)| dir))
        .collect();
    if let Some(top) = charts.iter().map(|c| depth_of_dir(c)).min() {
        let mut shallowest: Vec<&str> = charts
            .into_iter()
            .filter(|c| depth_of_dir(c) == top)
            .collect();
        shallowest.sort_unstable();
        if shallowest.len() > 1 {
            let listed = shallowest
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!(
                "it holds several Helm charts ({listed}) and one release installs one chart"
            ));
        }
        let chart = if shallowest[0].is_empty() {
            "."
        } else {
            shallowest[0]
        };
        return Ok((AppType::Helm, vec![chart.to_string()]));
    }
    let scripts: Vec<&String> = files.iter().filter(|f| has_extension(f, &["sh"])).collect();
    if let Some(top) = scripts.iter().map(|f| depth(f)).min() {
        let launch = scripts
            .into_iter()
            .filter(|f| depth(f) == top)
            .cloned()
            .collect();
        return Ok((AppType::Shell, launch));
    }
    let manifests: Vec<String> = files
        .iter()
        .filter(|f| has_extension(f, &["yaml", "yml"]))
        .cloned()
        .collect();
    if !manifests.is_empty() {
        return Ok((AppType::Kube, manifests));
    }
    Err("no Chart.yaml, *.yaml or *.sh".into())
}

/// Depth of a directory path (`""` is 0, `a` is 1, `a/b` is 2).
fn depth_of_dir(dir: &str) -> usize {
    if dir.is_empty() {
        0
    } else {
        dir.matches('/').count() + 1
    }
}

fn has_extension(path: &str, extensions: &[&str]) -> bool {
    paths::basename(path)
        .rsplit_once('.')
        .is_some_and(|(stem, ext)| {
            !stem.is_empty() && extensions.iter().any(|e| ext.eq_ignore_ascii_case(e))
        })
}

/// Sealer's default launch commands of a detected app, with rootfs-relative paths.
pub fn default_cmds(name: &str, kind: AppType, launch_files: &[String]) -> Vec<String> {
    let dir = app_dir(name);
    let path = |file: &str| {
        let p = if file == "." {
            dir.clone()
        } else {
            paths::join(&dir, file)
        };
        shell_quote(&p)
    };
    match kind {
        AppType::Helm => launch_files
            .iter()
            .map(|chart| format!("helm install {} {}", shell_quote(name), path(chart)))
            .collect(),
        AppType::Kube => launch_files
            .iter()
            .map(|f| format!("kubectl apply -f {}", path(f)))
            .collect(),
        AppType::Shell => launch_files
            .iter()
            .map(|f| format!("bash {}", path(f)))
            .collect(),
    }
}

/// `s` as one POSIX shell word: unchanged when it has only safe characters, else in single
/// quotes.
fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./+:@=,%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[track_caller]
    fn detected(list: &[&str]) -> (AppType, Vec<String>) {
        detect(&files(list)).unwrap()
    }

    #[test]
    fn helm_wins_and_takes_the_shallowest_chart() {
        assert_eq!(
            detected(&[
                "mychart/Chart.yaml",
                "mychart/values.yaml",
                "mychart/templates/x.yaml",
                "mychart/charts/sub/Chart.yaml",
                "install.sh",
            ]),
            (AppType::Helm, files(&["mychart"]))
        );
        assert_eq!(
            detected(&["Chart.yaml", "templates/a.yaml"]),
            (AppType::Helm, files(&["."]))
        );
        let err = detect(&files(&["a/Chart.yaml", "b/Chart.yaml"])).unwrap_err();
        assert!(err.contains("several Helm charts (`a`, `b`)"), "{err}");
    }

    #[test]
    fn shell_before_kube_and_only_the_top_scripts() {
        assert_eq!(
            detected(&["install.sh", "lib/helpers.sh", "manifests/a.yaml"]),
            (AppType::Shell, files(&["install.sh"]))
        );
        assert_eq!(
            detected(&["s/b.SH", "s/a.sh"]),
            (AppType::Shell, files(&["s/b.SH", "s/a.sh"]))
        );
    }

    #[test]
    fn kube_keeps_source_order() {
        assert_eq!(
            detected(&["ns.yaml", "README.md", "deploy/b.yml", "deploy/a.YAML"]),
            (
                AppType::Kube,
                files(&["ns.yaml", "deploy/b.yml", "deploy/a.YAML"])
            )
        );
    }

    #[test]
    fn undetectable() {
        assert_eq!(
            detect(&files(&["README.md", ".yaml", "bin/tool"])).unwrap_err(),
            "no Chart.yaml, *.yaml or *.sh"
        );
        assert!(detect(&[]).is_err());
    }

    #[test]
    fn default_commands() {
        assert_eq!(
            default_cmds("web", AppType::Helm, &files(&["mychart"])),
            ["helm install web application/apps/web/mychart"]
        );
        assert_eq!(
            default_cmds("web", AppType::Helm, &files(&["."])),
            ["helm install web application/apps/web"]
        );
        assert_eq!(
            default_cmds("k", AppType::Kube, &files(&["a.yaml", "d/b c.yaml"])),
            [
                "kubectl apply -f application/apps/k/a.yaml",
                "kubectl apply -f 'application/apps/k/d/b c.yaml'"
            ]
        );
        assert_eq!(
            default_cmds("s", AppType::Shell, &files(&["it's.sh"])),
            [r"bash 'application/apps/s/it'\''s.sh'"]
        );
    }

    #[test]
    fn application_json_shape() {
        let app = Application {
            name: "web".into(),
            kind: Some(AppType::Kube),
            launch_files: files(&["a.yaml"]),
            cmds: files(&["kubectl apply -f application/apps/web/a.yaml"]),
            env: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
        };
        assert_eq!(
            serde_json::to_string(&app).unwrap(),
            r#"{"name":"web","type":"kube","launchfiles":["a.yaml"],"cmds":["kubectl apply -f application/apps/web/a.yaml"],"env":{"A":"1","B":"2"}}"#
        );
        let bare = Application {
            kind: None,
            launch_files: Vec::new(),
            env: BTreeMap::new(),
            ..app
        };
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"name":"web","cmds":["kubectl apply -f application/apps/web/a.yaml"]}"#
        );
    }
}

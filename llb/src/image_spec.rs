//! The image-config side of a build: what the Kubefile says about the image besides its
//! layers (ENV, LABEL, CMD, CMDS, apps, LAUNCH, history), produced by lowering and applied at
//! export.

use std::collections::BTreeMap;

use serde::Serialize;

/// The target platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

impl Platform {
    /// The platform of this machine, in OCI's spelling (`amd64`, `arm64`).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
        }
    }
}

/// One history entry: the instruction and whether it produced a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryStep {
    pub created_by: String,
    pub empty_layer: bool,
}

/// Everything the export needs besides the layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSpec {
    pub platform: Platform,
    /// ENV in order of declaration (a later value of the same name wins).
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub maintainer: Option<String>,
    /// CMD instructions, in order: run by `sealer run`.
    pub cmds: Vec<String>,
    /// The CMDS instruction's commands.
    pub launch_cmds: Vec<String>,
    /// APP/CNI/CSI apps in declaration order, with their APPCMDS and APPENV.
    pub apps: Vec<AppSpec>,
    /// The LAUNCH instruction's app names, in order.
    pub launch_apps: Vec<String>,
    pub history: Vec<HistoryStep>,
    /// Seconds since the epoch for `created` and every layer mtime.
    pub source_date_epoch: i64,
    /// Who ran RUN steps (`--mode`: `lite`, `container`), recorded as Sealer's
    /// `buildClient.buildMode`.
    pub exec_mode: String,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            platform: Platform::host(),
            env: Vec::new(),
            labels: BTreeMap::new(),
            maintainer: None,
            cmds: Vec::new(),
            launch_cmds: Vec::new(),
            apps: Vec::new(),
            launch_apps: Vec::new(),
            history: Vec::new(),
            source_date_epoch: 0,
            exec_mode: "lite".into(),
        }
    }
}

/// Where apps live in the rootfs.
pub const APPS_DIR: &str = "application/apps";

/// The rootfs-relative directory of app `name`.
pub fn app_dir(name: &str) -> String {
    format!("{APPS_DIR}/{name}")
}

/// An app as the Kubefile declares it (APP/CNI/CSI, then APPCMDS and APPENV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSpec {
    pub name: String,
    /// The Definition node of the FileOp that copies the app's files (its input 0 is the
    /// Local source whose selection decides the type). Build errors about the app name it.
    pub node: usize,
    /// `APPCMDS`: replaces the type's default launch commands when not empty.
    pub cmds: Vec<String>,
    /// `APPENV` pairs (a later value of a key wins).
    pub env: BTreeMap<String, String>,
    /// Byte range of the APP/CNI/CSI instruction in the Kubefile.
    pub span: (usize, usize),
}

/// How an app is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    Helm,
    Kube,
    Shell,
}

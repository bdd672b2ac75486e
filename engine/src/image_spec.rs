//! The image-config side of a build: what the Kubefile says about the image besides its
//! layers (ENV, LABEL, CMD, CMDS, apps, LAUNCH, history), produced by lowering and applied at
//! export.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::apps::AppSpec;

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

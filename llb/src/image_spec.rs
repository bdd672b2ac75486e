//! The image-config side of a build: what the Kubefile says about the image besides its
//! layers (ENV, LABEL, CMD, CMDS, apps, LAUNCH, history), produced by lowering and applied at
//! export.

use std::collections::BTreeMap;

use serde::Serialize;

/// A platform an image is built for (`OS/ARCH[/VARIANT]`, OCI's names). It enters no op's
/// definition: a step depends on the platform only through what it reads (its base image,
/// build args such as `TARGETARCH`, a `${ARCH}` path), so equal inputs share a cache key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine, in OCI's spelling (`amd64`, `arm64`).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// `OS/ARCH[/VARIANT]`, with `x86_64` and `aarch64` as aliases of `amd64` and `arm64`
    /// (`arm64/v8` is `arm64`, as containerd normalises it).
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] if !variant.is_empty() => (*os, *arch, Some(*variant)),
            _ => {
                return Err(format!(
                    "invalid platform `{text}`: expected OS/ARCH[/VARIANT] such as linux/amd64"
                ))
            }
        };
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        if !ok(os) || !ok(arch) || !variant.is_none_or(ok) {
            return Err(format!(
                "invalid platform `{text}`: expected OS/ARCH[/VARIANT] such as linux/amd64"
            ));
        }
        let architecture = match arch {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let variant = match (architecture, variant) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        Ok(Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant,
        })
    }

    /// The variant, or the empty string (`TARGETVARIANT`'s value when there is none).
    pub fn variant_or_empty(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::Platform;

    #[test]
    fn platforms_parse_with_aliases_and_variants() {
        let show = |s: &str| Platform::parse(s).map(|p| p.to_string());
        assert_eq!(show("linux/amd64").unwrap(), "linux/amd64");
        assert_eq!(show("linux/x86_64").unwrap(), "linux/amd64");
        assert_eq!(show("linux/aarch64").unwrap(), "linux/arm64");
        assert_eq!(show("linux/arm64/v8").unwrap(), "linux/arm64");
        assert_eq!(show("linux/arm/v7").unwrap(), "linux/arm/v7");
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().variant_or_empty(),
            "v7"
        );
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/",
            "linux/a/b/c",
            "Linux/AMD64",
            "linux/amd 64",
        ] {
            assert!(show(bad).is_err(), "{bad}");
        }
    }
}

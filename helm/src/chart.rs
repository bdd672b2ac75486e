//! Loading a Helm chart: `Chart.yaml`, `values.yaml`, `templates/`, the other files (for
//! `.Files`), and the subcharts under `charts/` (directories or `.tgz` archives), honouring
//! `.helmignore` as Helm's loader does.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::glob::go_match;
use crate::yaml::{self, Yaml};

/// A loaded chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub metadata: Metadata,
    /// `values.yaml`, parsed (Null when absent).
    pub values: Yaml,
    /// `templates/...` files: (path inside the chart, text).
    pub templates: Vec<(String, String)>,
    /// Every other file (path inside the chart -> bytes), for `.Files`.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Subcharts from `charts/`.
    pub dependencies: Vec<Chart>,
}

/// `Chart.yaml`, with the fields Helm knows (and exposes as `.Chart`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Metadata {
    pub api_version: String,
    pub name: String,
    pub version: String,
    pub kube_version: String,
    pub description: String,
    #[serde(rename = "type")]
    pub chart_type: String,
    pub keywords: Vec<String>,
    pub home: String,
    pub sources: Vec<String>,
    pub dependencies: Vec<Dependency>,
    pub maintainers: Vec<Maintainer>,
    pub icon: String,
    pub app_version: String,
    pub deprecated: bool,
    pub annotations: BTreeMap<String, String>,
    pub condition: String,
    pub tags: String,
}

/// One `dependencies` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub condition: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub alias: String,
    #[serde(rename = "import-values")]
    pub import_values: Vec<Yaml>,
}

/// One `maintainers` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Maintainer {
    pub name: String,
    pub email: String,
    pub url: String,
}

/// `requirements.yaml` of `apiVersion: v1` charts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Requirements {
    dependencies: Vec<Dependency>,
}

impl Chart {
    /// Is this a library chart (named templates only)?
    pub fn is_library(&self) -> bool {
        self.metadata.chart_type == "library"
    }
}

/// Does `dir` look like a chart: a `Chart.yaml` beside a `templates/` directory, or beside
/// `charts/` only (an umbrella chart whose templates are all its subcharts')?
pub fn is_chart_dir(dir: &Path) -> bool {
    dir.join("Chart.yaml").is_file()
        && (dir.join("templates").is_dir() || dir.join("charts").is_dir())
}

/// Load the chart in `dir`.
pub fn load_dir(dir: &Path) -> Result<Chart, String> {
    let mut files = BTreeMap::new();
    let rules = match std::fs::read_to_string(dir.join(".helmignore")) {
        Ok(text) => IgnoreRules::parse(&text),
        Err(_) => IgnoreRules::default(),
    };
    read_tree(dir, "", &rules, &mut files)?;
    from_files(files, &dir.display().to_string())
}

/// Load a packaged chart (`.tgz`), whose entries sit under one top directory.
pub fn load_archive(bytes: &[u8], label: &str) -> Result<Chart, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut raw: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("reading {label}: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading {label}: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| format!("reading {label}: {e}"))?
            .to_string_lossy()
            .into_owned();
        // Drop the top directory (`mychart/...`).
        let Some((_, inner)) = path.split_once('/') else {
            continue;
        };
        if inner.split('/').any(|c| c == "..") {
            return Err(format!("{label}: entry `{path}` leaves the chart"));
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| format!("reading {label}: {e}"))?;
        raw.insert(inner.to_string(), data);
    }
    // A packaged chart was filtered by its .helmignore when it was packaged.
    from_files(raw, label)
}

fn read_tree(
    root: &Path,
    prefix: &str,
    rules: &IgnoreRules,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    let dir = root.join(prefix);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // Follow symlinks, as Helm's loader does.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if rules.ignores(&rel, meta.is_dir()) {
            continue;
        }
        if meta.is_dir() {
            read_tree(root, &rel, rules, files)?;
        } else if meta.is_file() {
            let data = std::fs::read(entry.path())
                .map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
            files.insert(rel, data);
        }
    }
    Ok(())
}

/// Sort a chart's files into metadata, values, templates, subcharts and the rest.
fn from_files(mut files: BTreeMap<String, Vec<u8>>, label: &str) -> Result<Chart, String> {
    let chart_yaml = files
        .remove("Chart.yaml")
        .ok_or_else(|| format!("{label}: no Chart.yaml"))?;
    let mut metadata: Metadata = serde_saphyr::from_str(&String::from_utf8_lossy(&chart_yaml))
        .map_err(|e| {
            format!(
                "{label}/Chart.yaml: {}",
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
    if metadata.name.is_empty() {
        return Err(format!("{label}/Chart.yaml: the chart has no name"));
    }
    if let Some(req) = files.remove("requirements.yaml") {
        if metadata.dependencies.is_empty() {
            let req: Requirements = serde_saphyr::from_str(&String::from_utf8_lossy(&req))
                .map_err(|e| format!("{label}/requirements.yaml: {e}"))?;
            metadata.dependencies = req.dependencies;
        }
    }
    let values = match files.remove("values.yaml") {
        Some(bytes) => yaml::parse_document(&String::from_utf8_lossy(&bytes))
            .map_err(|e| format!("{label}/values.yaml: {e}"))?,
        None => Yaml::Null,
    };
    files.remove("values.schema.json");
    files.remove("requirements.lock");
    files.remove("Chart.lock");

    let mut templates = Vec::new();
    let mut sub_dirs: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut dependencies = Vec::new();
    let mut rest = BTreeMap::new();
    for (path, data) in files {
        if path.starts_with("templates/") {
            templates.push((path, String::from_utf8_lossy(&data).into_owned()));
        } else if let Some(sub) = path.strip_prefix("charts/") {
            match sub.split_once('/') {
                Some((dir, inner)) => {
                    sub_dirs
                        .entry(dir.to_string())
                        .or_default()
                        .insert(inner.to_string(), data);
                }
                None if sub.ends_with(".tgz") || sub.ends_with(".tar.gz") => {
                    dependencies.push(load_archive(&data, &format!("{label}/charts/{sub}"))?);
                }
                None => {}
            }
        } else {
            rest.insert(path, data);
        }
    }
    for (dir, sub_files) in sub_dirs {
        if !sub_files.contains_key("Chart.yaml") {
            continue;
        }
        // As in Helm, only the top chart's .helmignore applies to a directory tree; a
        // subchart's own was for packaging it.
        dependencies.push(from_files(sub_files, &format!("{label}/charts/{dir}"))?);
    }
    Ok(Chart {
        metadata,
        values,
        templates,
        files: rest,
        dependencies,
    })
}

/// `.helmignore` rules (Helm's subset of gitignore: no `**`; a pattern without `/` matches the
/// base name; a trailing `/` matches directories only; `!` negates).
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    patterns: Vec<IgnorePattern>,
}

#[derive(Debug, Clone)]
struct IgnorePattern {
    glob: String,
    negate: bool,
    dir_only: bool,
    base_name: bool,
}

impl Default for IgnoreRules {
    fn default() -> IgnoreRules {
        IgnoreRules::parse("")
    }
}

impl IgnoreRules {
    /// Parse a `.helmignore`, adding Helm's default rule (hidden files under `templates/`).
    pub fn parse(text: &str) -> IgnoreRules {
        let mut patterns = Vec::new();
        for line in text.lines().chain(["templates/.?*"]) {
            let mut rule = line.trim();
            if rule.is_empty() || rule.starts_with('#') || rule.contains("**") {
                continue;
            }
            let negate = rule.starts_with('!');
            if negate {
                rule = &rule[1..];
            }
            let dir_only = rule.ends_with('/');
            let rule = rule.trim_end_matches('/');
            let anchored = rule.starts_with('/');
            let rule = rule.trim_start_matches('/');
            patterns.push(IgnorePattern {
                glob: rule.to_string(),
                negate,
                dir_only,
                base_name: !anchored && !rule.contains('/'),
            });
        }
        IgnoreRules { patterns }
    }

    /// Is `path` (relative, `/`-separated) ignored?
    pub fn ignores(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." {
            return false;
        }
        for p in &self.patterns {
            let subject = if p.base_name {
                path.rsplit('/').next().unwrap_or(path)
            } else {
                path
            };
            let matched = go_match(&p.glob, subject);
            if p.negate {
                if p.dir_only && !is_dir {
                    return true;
                }
                if !matched {
                    return true;
                }
                continue;
            }
            if p.dir_only && !is_dir {
                continue;
            }
            if matched {
                return true;
            }
        }
        false
    }

    /// Is a file, or any directory above it, ignored?
    #[cfg(test)]
    fn ignores_path(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        (1..parts.len()).any(|n| self.ignores(&parts[..n].join("/"), true))
            || self.ignores(path, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helmignore_rules() {
        let rules = IgnoreRules::parse("# comment\n.git/\n*.swp\n/ci/\nfoo/bar.txt\n");
        assert!(rules.ignores(".git", true));
        assert!(!rules.ignores(".git", false));
        assert!(rules.ignores("templates/x.swp", false));
        assert!(rules.ignores("ci", true));
        assert!(rules.ignores("foo/bar.txt", false));
        assert!(rules.ignores("templates/.hidden", false));
        assert!(!rules.ignores("templates/deployment.yaml", false));
        assert!(rules.ignores_path("ci/lint.sh"));
    }

    #[test]
    fn loads_a_packaged_chart() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, text) in [
            ("web/Chart.yaml", "name: web\nversion: 1.0.0\n"),
            ("web/values.yaml", "a: 1\n"),
            ("web/templates/x.yaml", "x: 1\n"),
            ("web/charts/sub/Chart.yaml", "name: sub\nversion: 0.1.0\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, text.as_bytes())
                .unwrap();
        }
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let chart = load_archive(&bytes, "web.tgz").unwrap();
        assert_eq!(chart.metadata.name, "web");
        assert_eq!(chart.templates.len(), 1);
        assert_eq!(chart.dependencies[0].metadata.name, "sub");
    }

    #[test]
    fn loads_a_chart_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("templates")).unwrap();
        std::fs::create_dir_all(root.join("charts/sub/templates")).unwrap();
        std::fs::write(
            root.join("Chart.yaml"),
            "apiVersion: v2\nname: top\nversion: 1.0\nappVersion: 1.10\n",
        )
        .unwrap();
        std::fs::write(root.join("values.yaml"), "a: 1\n").unwrap();
        std::fs::write(root.join("templates/x.yaml"), "x: 1\n").unwrap();
        std::fs::write(root.join("files.txt"), "data").unwrap();
        std::fs::write(
            root.join("charts/sub/Chart.yaml"),
            "name: sub\nversion: 0.1.0\n",
        )
        .unwrap();
        std::fs::write(root.join("charts/sub/templates/y.yaml"), "y: 1\n").unwrap();
        let chart = load_dir(root).unwrap();
        assert_eq!(chart.metadata.name, "top");
        assert_eq!(chart.metadata.app_version, "1.10");
        assert_eq!(chart.templates.len(), 1);
        assert_eq!(
            chart.files.keys().collect::<Vec<_>>(),
            ["files.txt"].iter().collect::<Vec<_>>()
        );
        assert_eq!(chart.dependencies.len(), 1);
        assert_eq!(chart.dependencies[0].metadata.name, "sub");
    }
}

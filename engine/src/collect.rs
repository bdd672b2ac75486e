//! Image collection: the container images a build context, rootfs, chart or manifest
//! directory needs, found without pulling anything (`seal scan`, and later the build's
//! `registry/` layer).
//!
//! Sources, in a rootfs or build context (a directory with `manifests/`, `application/apps/`
//! or `charts/`), or anywhere under any other directory:
//! - files named `imageList`: one reference per line, blank and `#` lines ignored;
//! - `*.yaml`, `*.yml`, `*.tmpl`: multi-document YAML, images from every PodSpec
//!   ([`podspec`]); a file that is not valid YAML falls back to the line rule ([`lines`]) with
//!   a warning;
//! - Helm charts (a directory with `Chart.yaml` and `templates/`, a `.tgz` under `charts/`, or
//!   a `.tgz` given as the path to scan):
//!   rendered like `helm template release CHART` ([`helm`]), then read as YAML.
//!
//! Every reference is normalised as Docker does (`nginx` -> `docker.io/library/nginx:latest`);
//! an invalid one is an error naming its file and value, never dropped. What this module does
//! not do: pull, push or talk to registries; print or choose exit codes (the CLI does).

/// Helm charts, rendered by their own crate.
pub use seal_helm as helm;
/// YAML as a plain tree (the Helm crate's; manifests use it too).
pub use seal_helm::yaml;
pub mod auth_list;
pub mod lines;
pub mod podspec;
pub mod registry_layout;
pub mod rootfs;

use std::path::{Path, PathBuf};

use seal_store::Reference;

use self::helm::value::Map;
use self::yaml::Yaml;

/// What to scan with.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Values files for the charts found (`helm template -f`, later files win).
    pub values_files: Vec<PathBuf>,
    /// Values for one chart only (`seal build --chart-values CHART_DIR=FILE`): the chart's
    /// directory relative to the scanned path, and the parsed values, applied after
    /// `values_files`.
    pub chart_values: Vec<(String, Map)>,
}

/// One image reference and where it was first found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub reference: Reference,
    /// The file, relative to the scanned path (for charts, the rendered template's path).
    pub file: String,
    /// The index of the YAML document inside the file (0 for image lists and line matches).
    pub document: usize,
    /// Where in the document: `spec.template.spec.containers[0].image`, or `line 3`.
    pub field: String,
}

/// Something worth telling that did not stop the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Something that makes the scan's result incomplete or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// An image value that is not a valid reference.
    #[error("{file}: document {document}, {field}: invalid image reference `{value}`: {reason}")]
    InvalidReference {
        file: String,
        document: usize,
        field: String,
        value: String,
        reason: String,
    },
    /// A chart that did not render.
    #[error(transparent)]
    Chart(#[from] helm::ChartError),
    /// A file or directory that could not be read, or a bad values file.
    #[error("{path}: {message}")]
    Read { path: String, message: String },
}

/// The result of a scan: images sorted by reference and unique, warnings, errors.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub images: Vec<FoundImage>,
    pub warnings: Vec<Warning>,
    pub errors: Vec<ScanError>,
}

/// Scan `path` (a file or directory) for container images.
pub fn scan(path: &Path, options: &ScanOptions) -> Scan {
    let mut scanner = Scanner {
        root: path.to_path_buf(),
        values: Vec::new(),
        chart_values: options.chart_values.clone(),
        chart_values_used: vec![false; options.chart_values.len()],
        found: Vec::new(),
        warnings: Vec::new(),
        errors: Vec::new(),
    };
    for file in &options.values_files {
        match helm::read_values_file(file) {
            Ok(v) => scanner.values.push(v),
            Err(message) => scanner.errors.push(ScanError::Read {
                path: file.display().to_string(),
                message,
            }),
        }
    }
    if scanner.errors.is_empty() {
        scanner.scan_root(path);
    }
    scanner.finish()
}

struct Scanner {
    root: PathBuf,
    values: Vec<Map>,
    chart_values: Vec<(String, Map)>,
    /// Per `chart_values` entry: a chart at its path was rendered.
    chart_values_used: Vec<bool>,
    found: Vec<FoundImage>,
    warnings: Vec<Warning>,
    errors: Vec<ScanError>,
}

/// The directories of a rootfs or build context that hold what the cluster deploys.
const ROOTFS_DIRS: [&str; 3] = ["manifests", "application/apps", "charts"];

impl Scanner {
    fn scan_root(&mut self, path: &Path) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.read_error(path, e.to_string());
                return;
            }
        };
        if meta.is_file() {
            // A packaged chart named on the command line is a chart wherever it lies (as for
            // `helm template chart.tgz`); inside a directory only `charts/*.tgz` are.
            let name = path.to_string_lossy();
            if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
                self.scan_chart_archive(path);
            } else if !self.scan_file(path) {
                self.read_error(
                    path,
                    "not an imageList, a YAML manifest (.yaml, .yml, .tmpl) or a packaged \
                     chart (.tgz)"
                        .into(),
                );
            }
            return;
        }
        if helm::chart::is_chart_dir(path) {
            self.scan_chart(path);
            return;
        }
        let rootfs: Vec<PathBuf> = ROOTFS_DIRS
            .iter()
            .map(|d| path.join(d))
            .filter(|d| d.is_dir())
            .collect();
        if rootfs.is_empty() {
            self.walk(path);
        } else {
            for dir in rootfs {
                self.walk(&dir);
            }
        }
    }

    fn walk(&mut self, dir: &Path) {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(e) => {
                self.read_error(dir, e.to_string());
                return;
            }
        };
        entries.sort();
        for entry in entries {
            let hidden = entry
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if entry.is_dir() {
                if helm::chart::is_chart_dir(&entry) {
                    self.scan_chart(&entry);
                } else {
                    self.walk(&entry);
                }
            } else if entry.is_file() {
                self.scan_file(&entry);
            }
        }
    }

    /// Scan one file if it is a kind we read; false when it is not.
    fn scan_file(&mut self, path: &Path) -> bool {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "imageList" {
            self.scan_image_list(path);
            return true;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        match ext.as_str() {
            "yaml" | "yml" | "tmpl" => {
                match std::fs::read(path) {
                    Ok(bytes) => {
                        let label = self.label(path);
                        self.scan_manifest(&label, &String::from_utf8_lossy(&bytes));
                    }
                    Err(e) => self.read_error(path, e.to_string()),
                }
                true
            }
            "tgz" if path.parent().is_some_and(|p| p.ends_with("charts")) => {
                self.scan_chart_archive(path);
                true
            }
            _ => false,
        }
    }

    fn scan_image_list(&mut self, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return self.read_error(path, e.to_string()),
        };
        let label = self.label(path);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.add(&label, 0, format!("line {}", i + 1), line);
        }
    }

    /// A YAML stream; if it does not parse, the line rule with a warning.
    fn scan_manifest(&mut self, label: &str, text: &str) {
        match yaml::parse_documents(text) {
            Ok(docs) => self.scan_documents(label, &docs),
            Err(e) => {
                self.warnings.push(Warning {
                    file: label.to_string(),
                    line: e.line,
                    message: format!(
                        "not valid YAML ({}); taking images from `<key ending in image>: <value>` lines",
                        e.message
                    ),
                });
                let scan = lines::scan(text);
                for skipped in scan.skipped {
                    self.warnings.push(Warning {
                        file: label.to_string(),
                        line: Some(skipped.0),
                        message: format!("templated image value `{}` skipped", skipped.1),
                    });
                }
                for image in scan.images {
                    self.add(
                        label,
                        0,
                        format!("line {}: {}", image.line, image.key),
                        &image.value,
                    );
                }
            }
        }
    }

    fn scan_documents(&mut self, label: &str, docs: &[Yaml]) {
        for (index, doc) in docs.iter().enumerate() {
            for raw in podspec::document_images(doc) {
                match &raw.value {
                    Yaml::String(s) => self.add(label, index, raw.field, s),
                    Yaml::Null => self.errors.push(ScanError::InvalidReference {
                        file: label.to_string(),
                        document: index,
                        field: raw.field,
                        value: String::new(),
                        reason: "the image is empty".into(),
                    }),
                    other => {
                        // Like the oracle: a number is read as its text (and likely invalid).
                        let text = other.scalar_text().unwrap_or_default();
                        self.add(label, index, raw.field, &text);
                    }
                }
            }
        }
    }

    fn scan_chart(&mut self, dir: &Path) {
        let values = self.values_for(dir);
        let rendered = helm::render_dir(dir, &values);
        self.scan_rendered(dir, rendered);
    }

    /// The values files for every chart, then those given for the chart at `path` only
    /// (which are then marked used).
    fn values_for(&mut self, path: &Path) -> Vec<Map> {
        let label = self.label(path);
        let mut values = self.values.clone();
        for (i, (chart, v)) in self.chart_values.iter().enumerate() {
            if chart.trim_end_matches('/') == label {
                values.push(v.clone());
                self.chart_values_used[i] = true;
            }
        }
        values
    }

    fn scan_chart_archive(&mut self, path: &Path) {
        let label = self.label(path);
        let values = self.values_for(path);
        let rendered = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| helm::chart::load_archive(&bytes, &label))
            .map_err(|message| helm::ChartError {
                chart: label.clone(),
                message,
            })
            .and_then(|chart| helm::render_chart(&chart, &values));
        self.scan_rendered(path, rendered);
    }

    fn scan_rendered(
        &mut self,
        chart_path: &Path,
        rendered: Result<helm::RenderedChart, helm::ChartError>,
    ) {
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => {
                self.errors.push(e.into());
                return;
            }
        };
        let chart_label = self.label(chart_path);
        let found_before = self.found.len() + self.errors.len();
        let mut documents = 0;
        for message in &rendered.warnings {
            self.warnings.push(Warning {
                file: chart_label.clone(),
                line: None,
                message: message.clone(),
            });
        }
        for file in &rendered.files {
            if file.text.trim().is_empty() {
                continue;
            }
            let label = chart_file_label(&chart_label, &rendered.name, &file.name);
            let mut docs = Vec::new();
            for piece in helm_split(&file.text) {
                // `helm template` prints each document followed by a newline.
                match yaml::parse_documents(&format!("{piece}\n")) {
                    Ok(parsed) => docs.extend(parsed),
                    Err(e) => {
                        self.errors.push(ScanError::Chart(helm::ChartError {
                            chart: rendered.name.clone(),
                            message: format!("YAML parse error on {}: {}", file.name, e.message),
                        }));
                        docs.clear();
                        break;
                    }
                }
            }
            documents += docs.len();
            self.scan_documents(&label, &docs);
        }
        // An empty result must never be silent: it is how a chart rendered with the wrong
        // values (or a construct we got wrong) looks.
        if self.found.len() + self.errors.len() == found_before {
            self.warnings.push(Warning {
                file: chart_label,
                line: None,
                message: format!(
                    "chart {} rendered {documents} document{} and no PodSpec with an image",
                    rendered.name,
                    if documents == 1 { "" } else { "s" }
                ),
            });
        }
    }

    fn add(&mut self, file: &str, document: usize, field: String, value: &str) {
        match Reference::parse_container_image(value) {
            Ok(reference) => self.found.push(FoundImage {
                reference,
                file: file.to_string(),
                document,
                field,
            }),
            Err(e) => self.errors.push(ScanError::InvalidReference {
                file: file.to_string(),
                document,
                field,
                value: value.to_string(),
                reason: e.reason,
            }),
        }
    }

    fn read_error(&mut self, path: &Path, message: String) {
        self.errors.push(ScanError::Read {
            path: path.display().to_string(),
            message,
        });
    }

    /// `path` relative to the scanned root (its file name when the root is the file itself).
    fn label(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
            _ => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }

    fn finish(mut self) -> Scan {
        self.found.sort_by(|a, b| {
            (a.reference.to_string(), &a.file, a.document, &a.field).cmp(&(
                b.reference.to_string(),
                &b.file,
                b.document,
                &b.field,
            ))
        });
        self.found
            .dedup_by(|later, first| later.reference == first.reference);
        // Values for a chart that is not there are a typo, not something to ignore.
        for ((chart, _), used) in self.chart_values.iter().zip(&self.chart_values_used) {
            if !used {
                self.errors.push(ScanError::Read {
                    path: chart.clone(),
                    message: "values were given for this chart (--chart-values), but there is no chart at this path; charts are directories with Chart.yaml and templates/ (or charts/), or .tgz archives, under charts/".into(),
                });
            }
        }
        Scan {
            images: self.found,
            warnings: self.warnings,
            errors: self.errors,
        }
    }
}

/// Split rendered output into documents as Helm does (`releaseutil.SplitManifests`): at
/// every `---` that starts a line, whatever follows it on that line (`---# comment` too).
fn helm_split(text: &str) -> Vec<&str> {
    static SEPARATOR: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re =
        SEPARATOR.get_or_init(|| regex::Regex::new(r"(?:^|\s*\n)---\s*").expect("static regex"));
    re.split(text.trim())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect()
}

/// A rendered template's label: Helm's name (`nginx/templates/x.yaml`) with the chart name
/// replaced by the chart's path when the chart is inside the scanned directory.
fn chart_file_label(chart_label: &str, chart_name: &str, file: &str) -> String {
    match file
        .strip_prefix(chart_name)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(rest) if !chart_label.is_empty() && chart_label != chart_name => {
            format!("{chart_label}/{rest}")
        }
        _ => file.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn chart_values_reach_packaged_charts_and_unknown_paths_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        // charts/pkg.tgz: a packaged chart whose image comes from its values.
        let mut tgz = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, text) in [
            ("pkg/Chart.yaml", "apiVersion: v2\nname: pkg\nversion: 0.1.0\n"),
            ("pkg/values.yaml", "image: default/app:1\n"),
            (
                "pkg/templates/pod.yaml",
                "kind: Pod\nspec:\n  containers:\n    - name: a\n      image: {{ .Values.image }}\n",
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            tgz.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        let bytes = tgz.into_inner().unwrap().finish().unwrap();
        std::fs::create_dir_all(dir.path().join("charts")).unwrap();
        std::fs::write(dir.path().join("charts/pkg.tgz"), bytes).unwrap();
        let values = |chart: &str| {
            (
                chart.to_string(),
                helm::parse_values("image: override/app:2\n", "v.yaml").unwrap(),
            )
        };
        let scan = scan(
            dir.path(),
            &ScanOptions {
                values_files: Vec::new(),
                chart_values: vec![values("charts/pkg.tgz"), values("charts/missing")],
            },
        );
        assert_eq!(refs(&scan), ["docker.io/override/app:2"]);
        assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
        assert!(scan.errors[0].to_string().contains("charts/missing"));
    }

    #[test]
    fn a_packaged_chart_given_alone_is_scanned_wherever_it_lies() {
        // Issue 12: `seal scan chart.tgz` was refused outside a `charts/` directory.
        let dir = tempfile::tempdir().unwrap();
        let mut tgz = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, text) in [
            (
                "app/Chart.yaml",
                "apiVersion: v2\nname: app\nversion: 0.1.0\n",
            ),
            (
                "app/templates/pod.yaml",
                "kind: Pod\nspec:\n  containers:\n    - name: a\n      image: nginx:1.25\n",
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            tgz.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        let bytes = tgz.into_inner().unwrap().finish().unwrap();
        let file = dir.path().join("app-0.1.0.tgz");
        std::fs::write(&file, bytes).unwrap();
        let scan = scan(&file, &ScanOptions::default());
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(refs(&scan), ["docker.io/library/nginx:1.25"]);
    }

    fn refs(scan: &Scan) -> Vec<String> {
        scan.images
            .iter()
            .map(|i| i.reference.to_string())
            .collect()
    }

    #[test]
    fn rendered_output_splits_like_helm() {
        assert_eq!(
            helm_split("---\na: 1\n---# c\nb: 2\n\n---\n\n---\n  key: |\n    -----BEGIN X\n"),
            // Like Go's regexp, the second of two `---` lines in a row stays in the document.
            ["a: 1", "# c\nb: 2", "---\n  key: |\n    -----BEGIN X"]
        );
    }

    #[test]
    fn rootfs_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "manifests/imageList",
            "# comment\n\nnginx:1.25\n  quay.io/a/b  \n",
        );
        write(
            root,
            "manifests/app.yaml",
            "kind: Pod\nspec: {containers: [{image: busybox}]}\n",
        );
        write(
            root,
            "application/apps/x/deploy.yml",
            "kind: Deployment\nspec: {template: {spec: {containers: [{image: nginx:1.25}]}}}\n",
        );
        write(
            root,
            "other/ignored.yaml",
            "kind: Pod\nspec: {containers: [{image: ignored}]}\n",
        );
        let scan = scan(root, &ScanOptions::default());
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(
            refs(&scan),
            [
                "docker.io/library/busybox:latest",
                "docker.io/library/nginx:1.25",
                "quay.io/a/b:latest"
            ]
        );
        // The first place (by file) a reference appears is its provenance.
        let nginx = &scan.images[1];
        assert_eq!(nginx.file, "application/apps/x/deploy.yml");
        assert_eq!(nginx.field, "spec.template.spec.containers[0].image");
    }

    #[test]
    fn invalid_yaml_falls_back_to_lines_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "app.tmpl",
            "spec:\n  image: nginx:{{ .Tag }}\n  sidecarImage: envoy:v1\n  x: [\n",
        );
        let scan = scan(dir.path(), &ScanOptions::default());
        assert_eq!(refs(&scan), ["docker.io/library/envoy:v1"]);
        assert_eq!(scan.images[0].field, "line 3: sidecarImage");
        assert!(scan
            .warnings
            .iter()
            .any(|w| w.file == "app.tmpl" && w.line.is_some()));
        assert!(scan.warnings.iter().any(|w| w.line == Some(2)));
    }

    #[test]
    fn invalid_references_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.yaml",
            "kind: Pod\nspec: {containers: [{image: 'Bad:Name'}, {image: null}, {image: ok}]}\n",
        );
        let scan = scan(dir.path(), &ScanOptions::default());
        assert_eq!(refs(&scan), ["docker.io/library/ok:latest"]);
        assert_eq!(scan.errors.len(), 2);
        let text = scan.errors[0].to_string();
        assert!(
            text.contains("a.yaml") && text.contains("Bad:Name"),
            "{text}"
        );
    }

    #[test]
    fn a_chart_without_a_podspec_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "charts/crds/Chart.yaml",
            "apiVersion: v2\nname: crds\nversion: 0.1.0\n",
        );
        write(
            dir.path(),
            "charts/crds/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        );
        write(
            dir.path(),
            "charts/app/Chart.yaml",
            "apiVersion: v2\nname: app\nversion: 0.1.0\n",
        );
        write(
            dir.path(),
            "charts/app/templates/pod.yaml",
            "kind: Pod\nspec:\n  containers:\n  - image: nginx\n",
        );
        let scan = scan(dir.path(), &ScanOptions::default());
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(refs(&scan), ["docker.io/library/nginx:latest"]);
        let notes: Vec<String> = scan
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.file, w.message))
            .collect();
        assert_eq!(
            notes,
            ["charts/crds: chart crds rendered 2 documents and no PodSpec with an image"]
        );
    }

    #[test]
    fn charts_are_rendered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "charts/web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.2\"\n",
        );
        write(
            root,
            "charts/web/values.yaml",
            "image: {repository: nginx}\n",
        );
        write(
            root,
            "charts/web/templates/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - image: {{ .Values.image.repository }}:{{ .Chart.AppVersion }}\n",
        );
        let scan = scan(root, &ScanOptions::default());
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(refs(&scan), ["docker.io/library/nginx:1.2"]);
        assert_eq!(scan.images[0].file, "charts/web/templates/deploy.yaml");
    }

    #[test]
    fn a_chart_changing_its_values_does_not_change_another_charts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "values.yaml", "img: {repo: nginx}\n");
        for name in ["a", "b"] {
            write(
                root,
                &format!("charts/{name}/Chart.yaml"),
                &format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n"),
            );
            write(
                root,
                &format!("charts/{name}/templates/pod.yaml"),
                "kind: Pod\nspec:\n  containers:\n  - image: {{ .Values.img.repo }}\n{{ $_ := set .Values.img \"repo\" \"changed-by-a\" }}\n",
            );
        }
        let options = ScanOptions {
            values_files: vec![root.join("values.yaml")],
            ..ScanOptions::default()
        };
        let scan = scan(root, &options);
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(refs(&scan), ["docker.io/library/nginx:latest"]);
    }

    #[test]
    fn an_umbrella_chart_without_templates_is_a_chart() {
        // Its subchart needs the umbrella's values; rendered alone it would fail on nil.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "Chart.yaml",
            "apiVersion: v2\nname: umbrella\nversion: 0.1.0\n",
        );
        write(root, "values.yaml", "app: {image: {repo: nginx}}\n");
        write(
            root,
            "charts/app/Chart.yaml",
            "apiVersion: v2\nname: app\nversion: 0.1.0\n",
        );
        write(
            root,
            "charts/app/templates/pod.yaml",
            "kind: Pod\nspec:\n  containers:\n  - image: {{ .Values.image.repo }}\n",
        );
        let scan = scan(root, &ScanOptions::default());
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(refs(&scan), ["docker.io/library/nginx:latest"]);
    }
}

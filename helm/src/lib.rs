//! Helm charts rendered as `helm template release CHART` renders them, without Helm: load a
//! chart (directory or `.tgz`), compute its values, execute its templates with Go
//! text/template's and Sprig's semantics, and return the manifests. It renders; it does not
//! install, talk to a cluster (`lookup` finds nothing), fetch dependencies, or run hooks.
//! seal's image collection uses it through [`render_dir`], [`render_chart`] and
//! [`parse_values`]; it depends on no other seal crate.
//!
//! - [`chart`]: reading a chart directory or `.tgz` (`.helmignore` honoured).
//! - [`values`]: `-f` files, defaults, subchart values and `global`, conditions and tags.
//! - [`engine`]: the shared template namespace, one top-level object per chart, Helm's objects
//!   and render order.
//! - [`exec`]: Go text/template execution over gotmpl's parse trees (nil errors, methods,
//!   `include`/`tpl`); [`value`]: values whose maps are shared references, as Go's are.
//! - [`funcs`]: the Helm/Sprig function library; [`format`] prints values as Go does
//!   (`%v`, `toYaml`, `toJson`); [`value`], [`semver`], [`glob`]: helpers.
//!
//! Real Helm is used only as a test oracle: `helm/tests/helm_conformance` (small charts
//! compared byte for byte with `helm template`) and `tests/scan.rs` (the shared corpus).
//!
//! Known differences from Helm, none of which changes what images a chart names:
//! - functions that are random or read the outside world are deterministic placeholders
//!   (`now` is the Unix epoch, `lookup` finds nothing, `genCA`/`genPrivateKey` and friends
//!   return fake PEM blocks of the right type, `derivePassword`, `htpasswd` and `encryptAES`
//!   are not the real algorithms);
//! - the texts of `fromJson`'s errors are serde_json's, not encoding/json's;
//! - `.Capabilities.HelmVersion` is a map of its fields: printed whole, it is not Go's struct.

pub mod chart;
pub mod engine;
pub mod exec;
pub mod format;
pub mod funcs;
pub mod glob;
pub mod semver;
pub mod value;
pub mod values;
pub mod yaml;

use std::path::Path;

pub use engine::{Release, RenderedFile};

use value::{as_map, Map};

/// A chart rendered to manifests.
#[derive(Debug, Clone)]
pub struct RenderedChart {
    /// The chart's name (from `Chart.yaml`).
    pub name: String,
    /// Every rendered template that is not a partial and not `NOTES.txt`, in Helm's order.
    pub files: Vec<RenderedFile>,
    /// Things Helm would print as warnings (values that could not be merged, odd conditions).
    pub warnings: Vec<String>,
}

/// Why a chart could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chart {chart}: {message}")]
pub struct ChartError {
    /// The chart's name, or its directory when `Chart.yaml` could not be read.
    pub chart: String,
    /// What failed, starting with `template:line` when a template failed.
    pub message: String,
}

/// Values files (`helm template -f`), parsed.
pub fn read_values_file(path: &Path) -> Result<Map, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_values(&text, &path.display().to_string())
}

/// Values YAML text, parsed; `label` names it in errors.
pub fn parse_values(text: &str, label: &str) -> Result<Map, String> {
    let doc = yaml::parse_document(text).map_err(|e| format!("{label}: {e}"))?;
    if matches!(doc, yaml::Yaml::Null) {
        return Ok(Map::new());
    }
    as_map(&value::from_yaml(&doc))
        .ok_or_else(|| format!("{label}: a values file must be a YAML mapping"))
}

/// Render the chart in `dir` as `helm template release DIR -f ...` would.
pub fn render_dir(dir: &Path, user_values: &[Map]) -> Result<RenderedChart, ChartError> {
    let chart = chart::load_dir(dir).map_err(|message| ChartError {
        chart: dir.display().to_string(),
        message,
    })?;
    render_chart(&chart, user_values)
}

/// Render a loaded chart.
pub fn render_chart(
    chart: &chart::Chart,
    user_values: &[Map],
) -> Result<RenderedChart, ChartError> {
    let user = user_values
        .iter()
        .fold(Map::new(), |acc, m| values::merge_user_values(&acc, m));
    // Templates recurse through include/tpl; give them a deep stack of their own.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("helm-render".into())
            .stack_size(512 << 20)
            .spawn_scoped(scope, || render_on_this_thread(chart, &user))
            .map_err(|e| ChartError {
                chart: chart.metadata.name.clone(),
                message: format!("starting the render thread: {e}"),
            })?
            .join()
            .unwrap_or_else(|_| {
                Err(ChartError {
                    chart: chart.metadata.name.clone(),
                    message: "the renderer panicked".into(),
                })
            })
    })
}

fn render_on_this_thread(chart: &chart::Chart, user: &Map) -> Result<RenderedChart, ChartError> {
    let mut warnings = Vec::new();
    let tree = values::resolve_dependencies(chart, user, &mut warnings);
    // Templates may change their values in place: this render gets maps of its own, never
    // those of the values files that other charts of the same scan are rendered with.
    let values = values::coalesce(&tree, value::deep_copy_map(user), &mut warnings);
    let files = engine::render(&tree, &values, &Release::default()).map_err(|e| ChartError {
        chart: chart.metadata.name.clone(),
        message: e.to_string(),
    })?;
    let files = files
        .into_iter()
        .filter(|f| !f.name.ends_with("NOTES.txt"))
        .collect();
    Ok(RenderedChart {
        name: chart.metadata.name.clone(),
        files,
        warnings,
    })
}

//! Rendering a chart's templates the way Helm's engine (`pkg/engine`) does.
//!
//! All templates of a chart and its subcharts share one namespace of named templates, parsed
//! in Helm's order (`sortTemplates`: more path segments first, then reverse lexical order, so
//! a parent's `define` wins over a subchart's); templates are executed in that same order.
//! Each chart has **one** top-level object (`.Chart`, `.Files`, `.Values`, `.Subcharts`, and
//! `.Release`/`.Capabilities` shared by all charts) that all its templates get as `$`, with
//! `.Template` set before each one runs — so a template that does `set $ "Values" ...` changes
//! `.Values` for every template after it, as in Helm. A subchart's `.Values` is the very map
//! under its name in the parent's `.Values`. Execution is [`super::exec`]'s.

use std::sync::Arc;

use std::sync::OnceLock;

use gotmpl::parse::{Expr, ListNode, Node, Parser, PipeNode};

use super::chart::Chart;
use super::exec::{is_builtin, Exec, ExecError, FuncMap, Named, Namespace};
use super::format::{go_string, to_yaml};
use super::funcs;
use super::glob::go_match;
use super::value::{self, list, string, string_list, Dict, Elem, List, Map, Tag, Value};
use super::values::ChartNode;

/// The Kubernetes version `helm template` assumes without a cluster (Helm v4.1's).
pub const KUBE_VERSION: &str = "v1.35.0";

/// The API group-versions `helm template` reports without a cluster (Helm v4.1, client-go
/// v1.35); `.Capabilities.APIVersions.Has` checks this list exactly (no `group/version/Kind`).
const API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "autoscaling/v2beta1",
    "autoscaling/v2beta2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha1",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

/// Release facts, as `helm template release CHART` sets them.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Default for Release {
    fn default() -> Release {
        Release {
            name: "release".into(),
            namespace: "default".into(),
        }
    }
}

/// One rendered template.
#[derive(Debug, Clone)]
pub struct RenderedFile {
    /// Helm's name for it: `<chart>/templates/x.yaml`, `<chart>/charts/<sub>/templates/y.yaml`.
    pub name: String,
    pub text: String,
}

/// A render failure: the template and line, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// `file:line` of the action that failed (or of the parse error), when known.
    pub location: Option<String>,
    pub message: String,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A template file, the chart whose top-level object it gets, and whether it only defines.
struct Renderable {
    name: String,
    text: String,
    /// Index of its chart's top-level object in `render`'s list.
    chart: usize,
    base_path: String,
}

/// Render every template of `root` (its subcharts included) with `values` (already coalesced,
/// and this render's own: templates may change them).
pub fn render(
    root: &ChartNode<'_>,
    values: &Map,
    release: &Release,
) -> Result<Vec<RenderedFile>, RenderError> {
    funcs::reset_random();
    let mut renderables = Vec::new();
    let mut tops = Vec::new();
    let (release, capabilities) = common_data(release);
    let ctx = Common {
        release,
        capabilities,
    };
    collect(
        root,
        None,
        &value::map(values.clone()),
        &ctx,
        &mut tops,
        &mut renderables,
    );

    // Helm's `sortTemplates`: more path segments first, then reverse lexical order. Later
    // parses replace earlier `define`s of the same name; templates run in this order too.
    renderables.sort_by(|a, b| {
        let (ca, cb) = (a.name.matches('/').count(), b.name.matches('/').count());
        cb.cmp(&ca).then_with(|| b.name.cmp(&a.name))
    });

    let mut namespace = Namespace::new();
    for r in &renderables {
        let file: Arc<str> = Arc::from(r.name.as_str());
        let (tree, defines) = parse_template(&r.name, &r.text).map_err(|message| RenderError {
            location: None,
            message: format!("parse error: {message}"),
        })?;
        add_defines(&mut namespace, defines, &file);
        namespace.insert(
            r.name.clone(),
            Named {
                body: Arc::new(tree),
                file,
            },
        );
    }

    let mut exec = Exec::new(Arc::new(namespace), known_funcs(), method, parse_template);
    let mut out = Vec::new();
    for r in &renderables {
        let base = r.name.rsplit('/').next().unwrap_or(&r.name);
        if base.starts_with('_') {
            continue;
        }
        let top: &Dict = &tops[r.chart];
        let mut template = Map::new();
        template.insert("Name".into(), string(&r.name));
        template.insert("BasePath".into(), string(&r.base_path));
        top.insert("Template", value::map(template));
        let text = exec
            .execute(&r.name, Value::Map(top.clone()))
            .map_err(RenderError::from)?;
        out.push(RenderedFile {
            name: r.name.clone(),
            text: text.replace("<no value>", ""),
        });
    }
    Ok(out)
}

impl From<ExecError> for RenderError {
    fn from(e: ExecError) -> RenderError {
        RenderError {
            location: Some(format!("{}:{}", e.file, e.line)),
            message: e.message,
        }
    }
}

/// Parse one template text named `name`: its body and its `define`s. As in Go, a function
/// that does not exist is a parse error, even where it would never run.
fn parse_template(name: &str, text: &str) -> Result<(ListNode, Vec<(String, ListNode)>), String> {
    let text = fix_comment_trim(text);
    let (tree, defines) = Parser::with_name(Some(name), &text, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(|e| e.to_string())?;
    let known = |f: &str| known_funcs().contains_key(f) || is_builtin(f);
    for list in std::iter::once(&tree).chain(defines.iter().map(|d| &d.body)) {
        if let Some((f, line)) = undefined_function(list, &known) {
            return Err(format!("{name}:{line}: function {f:?} not defined"));
        }
    }
    Ok((
        tree,
        defines
            .into_iter()
            .map(|d| (d.name.to_string(), d.body))
            .collect(),
    ))
}

/// The first function named in `list` that `known` does not know, with its line.
fn undefined_function(list: &ListNode, known: &dyn Fn(&str) -> bool) -> Option<(String, usize)> {
    fn pipe(p: &PipeNode, known: &dyn Fn(&str) -> bool) -> Option<(String, usize)> {
        p.commands
            .iter()
            .flat_map(|c| c.args.iter())
            .find_map(|e| expr(e, known))
    }
    fn expr(e: &Expr, known: &dyn Fn(&str) -> bool) -> Option<(String, usize)> {
        match e {
            Expr::Identifier(pos, f) if !known(f) => Some((f.to_string(), pos.line)),
            Expr::Pipe(_, p) => pipe(p, known),
            Expr::Chain(_, inner, _) => expr(inner, known),
            _ => None,
        }
    }
    list.nodes.iter().find_map(|n| match n {
        Node::Action(a) => pipe(&a.pipe, known),
        Node::If(b) | Node::With(b) | Node::Range(b) => pipe(&b.pipe, known)
            .or_else(|| undefined_function(&b.body, known))
            .or_else(|| {
                b.else_body
                    .as_ref()
                    .and_then(|e| undefined_function(e, known))
            }),
        Node::Template(t) => t.pipe.as_ref().and_then(|p| pipe(p, known)),
        Node::List(l) => undefined_function(l, known),
        Node::Define(d) => undefined_function(&d.body, known),
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => None,
    })
}

/// Add `define`s: a later non-empty body replaces an earlier one; an empty one never does.
fn add_defines(namespace: &mut Namespace, defines: Vec<(String, ListNode)>, file: &Arc<str>) {
    for (name, body) in defines {
        if body.is_empty_tree() && namespace.contains_key(&name) {
            continue;
        }
        namespace.insert(
            name,
            Named {
                body: Arc::new(body),
                file: file.clone(),
            },
        );
    }
}

/// `.Release` and `.Capabilities`: one object each, shared by every chart.
struct Common {
    release: Value,
    capabilities: Value,
}

/// Build the top-level object of one chart and its subcharts, and list their templates
/// (Helm's `recAllTpls`). Returns the chart's top-level object.
fn collect(
    node: &ChartNode<'_>,
    parent: Option<(&str, &Dict)>,
    root_values: &Value,
    common: &Common,
    tops: &mut Vec<Dict>,
    out: &mut Vec<Renderable>,
) -> Dict {
    let (path, values) = match parent {
        None => (node.name.clone(), root_values.clone()),
        Some((parent_path, parent_top)) => (
            format!("{parent_path}/charts/{}", node.name),
            // The same map as the parent's `.Values.<name>`, when that is a map.
            parent_top
                .get("Values")
                .and_then(|v| v.field(&node.name))
                .filter(|v| matches!(v, Value::Map(_)))
                .unwrap_or_else(value::empty_map),
        ),
    };
    let subcharts = Dict::new(Map::new());
    let top = Dict::new(Map::new());
    top.insert("Chart", chart_value(node, parent.is_none()));
    top.insert("Files", files_value(node.chart));
    top.insert("Release", common.release.clone());
    top.insert("Capabilities", common.capabilities.clone());
    top.insert("Values", values);
    top.insert("Subcharts", Value::Map(subcharts.clone()));
    for dep in &node.deps {
        let child = collect(dep, Some((&path, &top)), root_values, common, tops, out);
        subcharts.insert(dep.name.as_str(), Value::Map(child));
    }
    let index = tops.len();
    tops.push(top.clone());
    let chart = node.chart;
    for (file, text) in &chart.templates {
        let base = file.rsplit('/').next().unwrap_or(file);
        // A library chart's templates other than partials are not templates at all.
        if chart.is_library() && !base.starts_with('_') {
            continue;
        }
        out.push(Renderable {
            name: format!("{path}/{file}"),
            text: text.clone(),
            chart: index,
            base_path: format!("{path}/templates"),
        });
    }
    top
}

/// `.Release` and `.Capabilities`.
fn common_data(release: &Release) -> (Value, Value) {
    let mut rel = Map::new();
    rel.insert("Name".into(), string(&release.name));
    rel.insert("Namespace".into(), string(&release.namespace));
    rel.insert("IsInstall".into(), Value::Bool(true));
    rel.insert("IsUpgrade".into(), Value::Bool(false));
    rel.insert("Revision".into(), Value::Int(1));
    rel.insert("Service".into(), string("Helm"));

    let minor = KUBE_VERSION.split('.').nth(1).unwrap_or("0");
    let mut kube = Map::new();
    kube.insert("Version".into(), string(KUBE_VERSION));
    kube.insert("Major".into(), string("1"));
    kube.insert("Minor".into(), string(minor));
    let mut helm = Map::new();
    helm.insert("Version".into(), string("v4.1.4"));
    helm.insert("GitCommit".into(), string(""));
    helm.insert("GitTreeState".into(), string("clean"));
    helm.insert("GoVersion".into(), string(""));
    helm.insert("KubeClientVersion".into(), string("v1.35"));
    let mut caps = Map::new();
    caps.insert(
        "APIVersions".into(),
        Value::List(List::with_elem(
            Elem::VersionSet,
            API_VERSIONS.iter().map(string).collect(),
        )),
    );
    caps.insert(
        "KubeVersion".into(),
        Value::Map(Dict::tagged(Tag::KubeVersion, kube)),
    );
    caps.insert("HelmVersion".into(), value::map(helm));

    (value::map(rel), value::map(caps))
}

/// `.Chart`, with Helm's capitalised field names.
fn chart_value(node: &ChartNode<'_>, is_root: bool) -> Value {
    let md = &node.chart.metadata;
    let strings = |v: &[String]| list(v.iter().map(string).collect());
    let mut c = Map::new();
    c.insert("APIVersion".into(), string(&md.api_version));
    c.insert("Name".into(), string(&node.name));
    c.insert("Version".into(), string(&md.version));
    c.insert("KubeVersion".into(), string(&md.kube_version));
    c.insert("Description".into(), string(&md.description));
    c.insert("Type".into(), string(&md.chart_type));
    c.insert("Keywords".into(), strings(&md.keywords));
    c.insert("Home".into(), string(&md.home));
    c.insert("Sources".into(), strings(&md.sources));
    c.insert("Icon".into(), string(&md.icon));
    c.insert("AppVersion".into(), string(&md.app_version));
    c.insert("Deprecated".into(), Value::Bool(md.deprecated));
    c.insert("Condition".into(), string(&md.condition));
    c.insert("Tags".into(), string(&md.tags));
    c.insert("IsRoot".into(), Value::Bool(is_root));
    c.insert(
        "Annotations".into(),
        value::map(
            md.annotations
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), string(v)))
                .collect(),
        ),
    );
    c.insert(
        "Maintainers".into(),
        list(
            md.maintainers
                .iter()
                .map(|m| {
                    let mut e = Map::new();
                    e.insert("Name".into(), string(&m.name));
                    e.insert("Email".into(), string(&m.email));
                    e.insert("URL".into(), string(&m.url));
                    value::map(e)
                })
                .collect(),
        ),
    );
    let enabled: Vec<&str> = node.deps.iter().map(|d| d.name.as_str()).collect();
    c.insert(
        "Dependencies".into(),
        list(
            md.dependencies
                .iter()
                .map(|d| {
                    let name = if d.alias.is_empty() {
                        &d.name
                    } else {
                        &d.alias
                    };
                    let mut e = Map::new();
                    e.insert("Name".into(), string(&d.name));
                    e.insert("Version".into(), string(&d.version));
                    e.insert("Repository".into(), string(&d.repository));
                    e.insert("Condition".into(), string(&d.condition));
                    e.insert("Tags".into(), strings(&d.tags));
                    e.insert(
                        "Enabled".into(),
                        Value::Bool(enabled.contains(&name.as_str())),
                    );
                    e.insert("Alias".into(), string(&d.alias));
                    value::map(e)
                })
                .collect(),
        ),
    );
    value::map(c)
}

/// `.Files`: path -> content. Its methods (`Get`, `Glob`, `AsConfig`...) are `__method`'s.
fn files_value(chart: &Chart) -> Value {
    Value::Map(Dict::tagged(
        Tag::Files,
        chart
            .files
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), string(String::from_utf8_lossy(v))))
            .collect(),
    ))
}

/// The function table, built once.
fn known_funcs() -> &'static FuncMap {
    static FUNCS: OnceLock<FuncMap> = OnceLock::new();
    FUNCS.get_or_init(all_funcs)
}

/// The function table: Sprig and Helm's functions, plus the engine's own.
fn all_funcs() -> FuncMap {
    let mut m = funcs::func_map();
    m.insert("required".into(), |a| {
        let msg = a.first().map(go_string).unwrap_or_default();
        match a.get(1) {
            None | Some(Value::Nil) => Err(msg),
            Some(Value::String(s)) if s.is_empty() => Err(msg),
            Some(v) => Ok(v.clone()),
        }
    });
    m.insert("fail".into(), |a| {
        Err(a.first().map(go_string).unwrap_or_default())
    });
    // `helm template` has no cluster: `lookup` finds nothing (an empty map).
    m.insert("lookup".into(), |_| Ok(value::empty_map()));
    m
}

/// Methods of Helm's objects: `.Files.Get/GetBytes/Glob/Lines/AsConfig/AsSecrets`,
/// `.Capabilities.APIVersions.Has` and `.Capabilities.KubeVersion.GitVersion`. `None`:
/// `receiver` has no method `name`.
fn method(name: &str, receiver: &Value, args: &[Value]) -> Option<Result<Value, String>> {
    let text = |i: usize| args.get(i).map(go_string).unwrap_or_default();
    let files = match receiver {
        Value::Map(d) if d.tag() == Tag::KubeVersion && name == "GitVersion" => {
            return Some(Ok(d.get("Version").unwrap_or(Value::Nil)));
        }
        Value::List(items) if name == "Has" && items.elem() == Elem::VersionSet => {
            let wanted = text(0);
            return Some(Ok(Value::Bool(
                items
                    .items()
                    .iter()
                    .any(|i| matches!(i, Value::String(s) if **s == *wanted)),
            )));
        }
        Value::Map(d) if d.tag() == Tag::Files => d,
        _ => return None,
    };
    Some(Ok(match name {
        "Get" | "GetBytes" => files.get(&text(0)).unwrap_or_else(|| string("")),
        "Glob" => {
            let pattern = text(0);
            Value::Map(Dict::tagged(
                Tag::Files,
                files
                    .snapshot()
                    .into_iter()
                    .filter(|(k, _)| go_match(&pattern, k))
                    .collect(),
            ))
        }
        "Lines" => {
            let content = files
                .get(&text(0))
                .map(|v| go_string(&v))
                .unwrap_or_default();
            if content.is_empty() {
                return Some(Ok(string_list([])));
            }
            let content = content.strip_suffix('\n').unwrap_or(&content);
            string_list(content.split('\n').map(str::to_owned))
        }
        "AsConfig" | "AsSecrets" => {
            let secrets = name == "AsSecrets";
            let mut m = Map::new();
            for (k, v) in files.snapshot() {
                let base = k.rsplit('/').next().unwrap_or(&k);
                let content = go_string(&v);
                let content = if secrets {
                    funcs::base64(content.as_bytes())
                } else {
                    content
                };
                m.insert(Arc::from(base), string(content));
            }
            string(if m.is_empty() {
                String::new()
            } else {
                to_yaml(&value::map(m))
            })
        }
        _ => return None,
    }))
}

/// Work around gotmpl 0.6 trimming the text *after* `{{- /* comment */}}` (Go trims only
/// before it): such a comment becomes `{{- "" }}`, which prints nothing and trims the same way.
/// The comment's newlines stay inside the action, so line numbers do not move.
fn fix_comment_trim(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("{{- /*") && !text.contains("{{-\t/*") && !text.contains("{{-\n/*") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{-") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let body = after.trim_start();
        let replaced = (after.len() > body.len() && body.starts_with("/*"))
            .then(|| body.find("*/"))
            .flatten()
            .and_then(|end| {
                let tail = &body[end + 2..];
                let close = tail.trim_start();
                let trims_right = close.starts_with("-}}") && close.len() < tail.len();
                (close.starts_with("}}") && !trims_right).then(|| {
                    let consumed = rest.len() - close.len() + 2;
                    let newlines = rest[i..consumed].matches('\n').count();
                    (consumed, newlines)
                })
            });
        match replaced {
            Some((consumed, newlines)) => {
                out.push_str("{{- \"\"");
                out.push_str(&"\n".repeat(newlines));
                out.push_str(" }}");
                rest = &rest[consumed..];
            }
            None => {
                out.push_str("{{-");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests;

//! Rendering a chart's templates the way Helm's engine does, on gotmpl.
//!
//! All templates of a chart and its subcharts share one namespace of named templates, parsed
//! in Helm's order (deepest paths first, so a parent's `define` wins over a subchart's); every
//! template that is not a partial (`_*`) is executed with its own chart's `.Values`, `.Chart`,
//! `.Files` and `.Template`. `include` and `tpl` need the template set itself, so they live
//! here: the set being executed is on a thread-local stack (`tpl` pushes a copy with the
//! string's own `define`s), and so is the location of the action being executed, for errors.

use std::cell::RefCell;
use std::sync::Arc;

use gotmpl::parse::{DefineNode, ListNode, Parser};
use gotmpl::{FuncMap, Template, TemplateError, Value};

use super::chart::Chart;
use super::format::{go_string, to_yaml};
use super::funcs::{self, error};
use super::glob::go_match;
use super::rewrite::rewrite;
use super::value::{self, as_map, list, string, Map};
use super::values::ChartNode;

/// Nested `include`/`tpl` calls allowed (Helm allows 1000 of one name).
const MAX_INCLUDE_DEPTH: usize = 1000;

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

/// A template file to parse, with the data its execution gets.
struct Renderable {
    name: String,
    text: String,
    data: Value,
    partial_only: bool,
}

/// Render every template of `root` (its subcharts included) with `values` (already coalesced).
pub fn render(
    root: &ChartNode<'_>,
    values: &Map,
    release: &Release,
) -> Result<Vec<RenderedFile>, RenderError> {
    funcs::reset_random();
    let mut renderables = Vec::new();
    let top = common_data(release);
    collect(
        root,
        None,
        &value::map(values.clone()),
        &top,
        &mut renderables,
    );

    // Helm's parse order: more path segments first, then reverse lexical order; later parses
    // replace earlier `define`s of the same name.
    renderables.sort_by(|a, b| {
        let (ca, cb) = (a.name.matches('/').count(), b.name.matches('/').count());
        cb.cmp(&ca).then_with(|| b.name.cmp(&a.name))
    });

    let mut set = Template::new("gotpl").funcs(all_funcs());
    for r in &renderables {
        let file: Arc<str> = Arc::from(r.name.as_str());
        let (tree, defines) = parse(&r.name, &r.text)?;
        set = add_defines(set, defines, &file);
        if !r.partial_only {
            set = set.add_parse_tree(&r.name, rewrite(tree, &file));
        }
    }
    let set = Arc::new(set);

    let mut out = Vec::new();
    for r in &renderables {
        let base = r.name.rsplit('/').next().unwrap_or(&r.name);
        if r.partial_only || base.starts_with('_') {
            continue;
        }
        let text = with_set(set.clone(), || {
            set_location(Arc::from(r.name.as_str()), 0);
            set.execute_template_to_string(&r.name, &r.data)
        })
        .map_err(|e| RenderError {
            location: Some(current_location()),
            message: clean_message(&e),
        })?;
        out.push(RenderedFile {
            name: r.name.clone(),
            text: text.replace("<no value>", ""),
        });
    }
    Ok(out)
}

/// Parse one file, naming it in errors.
fn parse(name: &str, text: &str) -> Result<(ListNode, Vec<DefineNode>), RenderError> {
    let text = fix_comment_trim(text);
    Parser::with_name(Some(name), &text, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(|e| RenderError {
            location: None,
            message: e.to_string(),
        })
}

/// Add `define`s: a later non-empty body replaces an earlier one; an empty one never does.
fn add_defines(mut set: Template, defines: Vec<DefineNode>, file: &Arc<str>) -> Template {
    for d in defines {
        if d.body.is_empty_tree() && set.lookup(&d.name).is_some() {
            continue;
        }
        let name = d.name.to_string();
        set = set.add_parse_tree(&name, rewrite(d.body, file));
    }
    set
}

/// Build the renderables of one chart and its subcharts (Helm's `recAllTpls`).
fn collect(
    node: &ChartNode<'_>,
    parent: Option<(&str, &Value)>,
    root_values: &Value,
    top: &Map,
    out: &mut Vec<Renderable>,
) -> Value {
    let (path, values) = match parent {
        None => (node.name.clone(), root_values.clone()),
        Some((parent_path, parent_values)) => (
            format!("{parent_path}/charts/{}", node.name),
            parent_values
                .field(&node.name)
                .filter(|v| as_map(v).is_some())
                .cloned()
                .unwrap_or_else(value::empty_map),
        ),
    };
    let mut subcharts = Map::new();
    for dep in &node.deps {
        let sub_values = collect(dep, Some((&path, &values)), root_values, top, out);
        subcharts.insert(Arc::from(dep.name.as_str()), sub_values);
    }
    let chart = node.chart;
    let base_path = format!("{path}/templates");
    let mut data = top.clone();
    data.insert("Chart".into(), chart_value(node, parent.is_none()));
    data.insert("Files".into(), files_value(chart));
    data.insert("Values".into(), values.clone());
    data.insert("Subcharts".into(), value::map(subcharts));
    for (file, text) in &chart.templates {
        let name = format!("{path}/{file}");
        let base = file.rsplit('/').next().unwrap_or(file);
        let mut d = data.clone();
        let mut template = Map::new();
        template.insert("Name".into(), string(&name));
        template.insert("BasePath".into(), string(&base_path));
        d.insert("Template".into(), value::map(template));
        out.push(Renderable {
            name,
            text: text.clone(),
            data: value::map(d),
            partial_only: chart.is_library() && !base.starts_with('_'),
        });
    }
    values
}

/// `.Release` and `.Capabilities`, the same for every template.
fn common_data(release: &Release) -> Map {
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
    kube.insert("GitVersion".into(), string(KUBE_VERSION));
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
        list(API_VERSIONS.iter().map(string).collect()),
    );
    caps.insert("KubeVersion".into(), value::map(kube));
    caps.insert("HelmVersion".into(), value::map(helm));

    let mut top = Map::new();
    top.insert("Release".into(), value::map(rel));
    top.insert("Capabilities".into(), value::map(caps));
    top
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
    value::map(
        chart
            .files
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), string(String::from_utf8_lossy(v))))
            .collect(),
    )
}

/// The function table: Sprig and Helm's functions, plus the engine's own.
fn all_funcs() -> FuncMap {
    let mut m = funcs::func_map();
    let mut add = |name: &str, f: fn(&[Value]) -> gotmpl::Result<Value>| {
        m.insert(name.to_string(), Arc::new(f));
    };
    add("include", include);
    add("tpl", tpl);
    add("required", |a| {
        let msg = a.first().map(go_string).unwrap_or_default();
        match a.get(1) {
            None | Some(Value::Nil) => Err(TemplateError::Exec(msg)),
            Some(Value::String(s)) if s.is_empty() => Err(TemplateError::Exec(msg)),
            Some(v) => Ok(v.clone()),
        }
    });
    add("fail", |a| {
        Err(TemplateError::Exec(
            a.first().map(go_string).unwrap_or_default(),
        ))
    });
    add("lookup", |_| Ok(value::empty_map()));
    add("__at", |a| {
        if let (Some(Value::String(file)), Some(Value::Int(line))) = (a.first(), a.get(1)) {
            set_location(file.clone(), *line);
        }
        Ok(string(""))
    });
    add("__fmt", |a| {
        Ok(match a.last() {
            None | Some(Value::Nil) => string("<no value>"),
            Some(v @ Value::String(_)) => v.clone(),
            Some(v) => string(go_string(v)),
        })
    });
    add("__method", method);
    add("__setPath", |a| {
        let root = a.first().cloned().unwrap_or(Value::Nil);
        let v = a.get(1).cloned().unwrap_or(Value::Nil);
        let path: Vec<Arc<str>> = a
            .iter()
            .skip(2)
            .map(|p| Arc::from(go_string(p).as_str()))
            .collect();
        Ok(value::set_path(&root, &path, v))
    });
    m
}

/// A method call on Helm's objects: `Files.Get/Glob/Lines/AsConfig/AsSecrets`,
/// `Capabilities.APIVersions.Has`, or a function stored in a map.
fn method(a: &[Value]) -> gotmpl::Result<Value> {
    let name = match a.first() {
        Some(Value::String(s)) => s.to_string(),
        _ => return Err(TemplateError::Exec("bad method call".into())),
    };
    let receiver = a.get(1).unwrap_or(&Value::Nil);
    let args = &a[2.min(a.len())..];
    let text = |i: usize| args.get(i).map(go_string).unwrap_or_default();
    match (name.as_str(), receiver) {
        (_, Value::Map(m)) if matches!(m.get(name.as_str()), Some(Value::Function(_))) => {
            match m.get(name.as_str()) {
                Some(Value::Function(f)) => f(args),
                _ => Ok(Value::Nil),
            }
        }
        ("Has", Value::List(items)) => {
            let wanted = text(0);
            Ok(Value::Bool(
                items
                    .iter()
                    .any(|i| matches!(i, Value::String(s) if **s == *wanted)),
            ))
        }
        ("Get", Value::Map(files)) => Ok(files
            .get(text(0).as_str())
            .cloned()
            .unwrap_or_else(|| string(""))),
        ("Glob", Value::Map(files)) => {
            let pattern = text(0);
            Ok(value::map(
                files
                    .iter()
                    .filter(|(k, _)| go_match(&pattern, k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }
        ("Lines", Value::Map(files)) => {
            let content = files
                .get(text(0).as_str())
                .map(go_string)
                .unwrap_or_default();
            if content.is_empty() {
                return Ok(list(vec![]));
            }
            let content = content.strip_suffix('\n').unwrap_or(&content);
            Ok(list(content.split('\n').map(string).collect()))
        }
        ("AsConfig" | "AsSecrets", Value::Map(files)) => {
            let secrets = name == "AsSecrets";
            let mut m = Map::new();
            for (k, v) in files.iter() {
                let base = k.rsplit('/').next().unwrap_or(k);
                let content = go_string(v);
                let content = if secrets {
                    funcs::base64(content.as_bytes())
                } else {
                    content
                };
                m.insert(Arc::from(base), string(content));
            }
            Ok(string(if m.is_empty() {
                String::new()
            } else {
                to_yaml(&value::map(m))
            }))
        }
        _ => Err(TemplateError::Exec(format!(
            "can't evaluate method {name} on type {}",
            receiver.type_name()
        ))),
    }
}

#[derive(Default)]
struct State {
    /// Template sets being executed; the last is current.
    sets: Vec<Arc<Template>>,
    /// The file and line of the last action started.
    location: (Arc<str>, i64),
    depth: usize,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        sets: Vec::new(),
        location: (Arc::from(""), 0),
        depth: 0,
    });
}

fn with_set<T>(set: Arc<Template>, f: impl FnOnce() -> T) -> T {
    STATE.with(|s| s.borrow_mut().sets.push(set));
    let out = f();
    STATE.with(|s| s.borrow_mut().sets.pop());
    out
}

fn current_set() -> Option<Arc<Template>> {
    STATE.with(|s| s.borrow().sets.last().cloned())
}

fn set_location(file: Arc<str>, line: i64) {
    STATE.with(|s| s.borrow_mut().location = (file, line));
}

fn location() -> (Arc<str>, i64) {
    STATE.with(|s| s.borrow().location.clone())
}

fn current_location() -> String {
    let (file, line) = location();
    format!("{file}:{line}")
}

/// Enter a nested `include`/`tpl`, refusing runaway recursion.
fn enter(name: &str) -> gotmpl::Result<()> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.depth >= MAX_INCLUDE_DEPTH {
            return Err(TemplateError::Exec(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            )));
        }
        s.depth += 1;
        Ok(())
    })
}

fn leave() {
    STATE.with(|s| s.borrow_mut().depth -= 1);
}

/// Run a nested execution; on failure, put the inner location into the message and restore the
/// caller's location, so that each level of the error names its own line.
fn nested(
    function: &str,
    name: &str,
    run: impl FnOnce() -> gotmpl::Result<String>,
) -> gotmpl::Result<Value> {
    enter(name)?;
    let saved = location();
    let result = run();
    leave();
    let inner = location();
    set_location(saved.0.clone(), saved.1);
    match result {
        Ok(text) => Ok(string(text)),
        // A deep chain (runaway recursion) keeps its innermost levels only.
        Err(e) if clean_message(&e).matches("error calling ").count() >= 8 => Err(e),
        Err(e) if inner != saved => Err(error(
            function,
            format!("{}:{}: {}", inner.0, inner.1, clean_message(&e)),
        )),
        Err(e) => Err(error(function, clean_message(&e))),
    }
}

/// Helm's `include NAME DATA`.
fn include(a: &[Value]) -> gotmpl::Result<Value> {
    let name = a.first().map(go_string).unwrap_or_default();
    let data = a.get(1).cloned().unwrap_or(Value::Nil);
    let set = current_set().ok_or_else(|| error("include", "no template set"))?;
    nested("include", &name, || {
        set.execute_template_to_string(&name, &data)
    })
}

/// Helm's `tpl TEXT DATA`: TEXT is parsed as a template (its `define`s visible to `include`
/// inside it) and executed with DATA.
fn tpl(a: &[Value]) -> gotmpl::Result<Value> {
    let text = a.first().map(go_string).unwrap_or_default();
    let data = a.get(1).cloned().unwrap_or(Value::Nil);
    let set = current_set().ok_or_else(|| error("tpl", "no template set"))?;
    let (caller, _) = location();
    let label = format!("{caller} (tpl)");
    let file: Arc<str> = Arc::from(label.as_str());
    let text = fix_comment_trim(&text);
    let (tree, defines) = Parser::with_name(Some(&label), &text, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(|e| error("tpl", e))?;
    let mut copy = add_defines((*set).clone(), defines, &file);
    copy = copy.add_parse_tree(&label, rewrite(tree, &file));
    let copy = Arc::new(copy);
    let result = nested("tpl", &label, || {
        with_set(copy.clone(), || {
            copy.execute_template_to_string(&label, &data)
        })
    })?;
    Ok(string(go_string(&result).replace("<no value>", "")))
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

/// An engine error without gotmpl's `execution error: ` prefix.
fn clean_message(e: &TemplateError) -> String {
    let s = e.to_string();
    s.strip_prefix("execution error: ")
        .unwrap_or(&s)
        .to_string()
}

#[cfg(test)]
mod tests;

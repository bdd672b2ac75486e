//! Chart values as Helm computes them: `-f` files merged in order, defaults coalesced under them
//! (a user `null` deletes a default), subchart values under the subchart's key with the
//! parent's `global` section copied in, and subcharts dropped by `condition` or `tags`.
//!
//! This follows Helm's `chartutil` (`CoalesceValues`, `coalesceGlobals`,
//! `ProcessDependencies`) step by step, including its order of precedence.

use std::sync::Arc;

use super::value::Value;

use super::chart::{Chart, Dependency};
use super::semver;
use super::value::{self, as_map, Map};

/// A chart as rendered: its effective name (alias applied) and its enabled subcharts.
#[derive(Debug, Clone)]
pub struct ChartNode<'a> {
    pub chart: &'a Chart,
    pub name: String,
    pub deps: Vec<ChartNode<'a>>,
    /// The `Chart.yaml` dependency entry that brought this chart in, if any.
    pub requirement: Option<Dependency>,
}

/// Merge `-f` values files the way Helm does: maps recursively, anything else replaced.
pub fn merge_user_values(base: &Map, overlay: &Map) -> Map {
    let mut out = base.clone();
    for (k, v) in overlay {
        match (out.get(k).and_then(as_map), as_map(v)) {
            (Some(dst), Some(src)) => {
                let merged = merge_user_values(&dst, &src);
                out.insert(k.clone(), value::map(merged));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// The tree of charts to render: subcharts matched to their `dependencies` entries, aliases
/// applied, and those disabled by `condition`/`tags` removed (evaluated against `user`).
pub fn resolve_dependencies<'a>(
    chart: &'a Chart,
    user: &Map,
    warnings: &mut Vec<String>,
) -> ChartNode<'a> {
    let full = full_tree(chart, chart.metadata.name.clone(), None);
    let values = coalesce(&full, user.clone(), warnings);
    prune(full, &values, "", warnings)
}

/// Every subchart, enabled or not.
fn full_tree(chart: &Chart, name: String, requirement: Option<Dependency>) -> ChartNode<'_> {
    let reqs = &chart.metadata.dependencies;
    let mut deps = Vec::new();
    // Subcharts that no dependency entry claims are always rendered.
    for sub in &chart.dependencies {
        let claimed = reqs
            .iter()
            .any(|r| r.name == sub.metadata.name && compatible(&r.version, &sub.metadata.version));
        if !claimed {
            deps.push(full_tree(sub, sub.metadata.name.clone(), None));
        }
    }
    for req in reqs {
        let found = chart.dependencies.iter().find(|sub| {
            sub.metadata.name == req.name && compatible(&req.version, &sub.metadata.version)
        });
        if let Some(sub) = found {
            let name = if req.alias.is_empty() {
                req.name.clone()
            } else {
                req.alias.clone()
            };
            deps.push(full_tree(sub, name, Some(req.clone())));
        }
    }
    ChartNode {
        chart,
        name,
        deps,
        requirement,
    }
}

fn compatible(constraint: &str, version: &str) -> bool {
    if constraint.is_empty() {
        return true;
    }
    match (
        semver::Constraint::parse(constraint),
        semver::Version::parse(version),
    ) {
        (Ok(c), Ok(v)) => c.check(&v),
        // Helm would drop the subchart; be lenient with what we cannot read.
        _ => true,
    }
}

fn prune<'a>(
    node: ChartNode<'a>,
    values: &Map,
    path: &str,
    warnings: &mut Vec<String>,
) -> ChartNode<'a> {
    let tags = values.get("tags").and_then(as_map);
    let tags = tags.as_ref();
    // Helm evaluates every `dependencies` entry, found or not, and removes every subchart
    // *named* like a disabled one: also a subchart no entry claims (its version is outside
    // the entry's range), not only the entry's own chart.
    let disabled: Vec<String> = node
        .chart
        .metadata
        .dependencies
        .iter()
        .filter_map(|req| {
            let name = if req.alias.is_empty() {
                &req.name
            } else {
                &req.alias
            };
            (!enabled(req, name, tags, values, path, warnings)).then(|| name.clone())
        })
        .collect();
    let mut deps = Vec::new();
    for dep in node.deps {
        if !disabled.contains(&dep.name) {
            let sub_path = format!("{path}{}.", dep.name);
            deps.push(prune(dep, values, &sub_path, warnings));
        }
    }
    ChartNode { deps, ..node }
}

/// Helm's `processDependencyTags` then `processDependencyConditions` for one entry.
fn enabled(
    req: &Dependency,
    name: &str,
    tags: Option<&Map>,
    values: &Map,
    path: &str,
    warnings: &mut Vec<String>,
) -> bool {
    let mut enabled = true;
    if let Some(tags) = tags {
        let (mut has_true, mut has_false) = (false, false);
        for tag in &req.tags {
            match tags.get(tag.as_str()) {
                Some(Value::Bool(true)) => has_true = true,
                Some(Value::Bool(false)) => has_false = true,
                Some(_) => warnings.push(format!("tag `{tag}` for chart {name} is not a boolean")),
                None => {}
            }
        }
        if !has_true && has_false {
            enabled = false;
        }
    }
    for condition in req.condition.trim().split(',').map(str::trim) {
        if condition.is_empty() {
            continue;
        }
        match path_value(values, &format!("{path}{condition}")) {
            Some(Value::Bool(b)) => {
                enabled = b;
                break;
            }
            Some(Value::Nil) | None => {}
            Some(_) => warnings.push(format!(
                "condition path `{condition}` for chart {name} returned a non-boolean value"
            )),
        }
    }
    enabled
}

fn path_value(values: &Map, path: &str) -> Option<Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut current = values.get(first)?.clone();
    for part in parts {
        current = current.field(part)?;
    }
    Some(current)
}

/// Helm's `CoalesceValues`: `dest` (user values) over the chart's defaults, recursively into
/// subcharts.
pub fn coalesce(node: &ChartNode<'_>, dest: Map, warnings: &mut Vec<String>) -> Map {
    let defaults = value::from_yaml(&node.chart.values);
    let mut dest = match as_map(&defaults) {
        Some(defaults) => coalesce_values(&defaults, dest, &node.name, warnings),
        None => dest,
    };
    for dep in &node.deps {
        let key: Arc<str> = Arc::from(dep.name.as_str());
        let sub = match dest.get(&key) {
            None => Map::new(),
            Some(v) => match as_map(v) {
                Some(m) => m,
                None => {
                    warnings.push(format!(
                        "values for subchart {} are not a map; using its defaults",
                        dep.name
                    ));
                    Map::new()
                }
            },
        };
        let sub = coalesce_globals(sub, &dest, warnings);
        let sub = coalesce(dep, sub, warnings);
        dest.insert(key, value::map(sub));
    }
    dest
}

/// Chart defaults under `dest`: a key the user set to null is removed.
fn coalesce_values(defaults: &Map, mut dest: Map, chart: &str, warnings: &mut Vec<String>) -> Map {
    for (key, default) in defaults {
        match dest.get(key) {
            Some(Value::Nil) => {
                dest.remove(key);
            }
            Some(Value::Map(user)) => match as_map(default) {
                Some(src) => {
                    let merged = coalesce_tables(user.snapshot(), &src, warnings);
                    dest.insert(key.clone(), value::map(merged));
                }
                None if !matches!(default, Value::Nil) => {
                    warnings.push(format!("skipped value for {chart}.{key}: not a table"))
                }
                None => {}
            },
            Some(_) => {}
            None => {
                dest.insert(key.clone(), default.clone());
            }
        }
    }
    dest
}

/// Merge `src` under `dst` (`dst` wins); a null in `dst` deletes the key.
fn coalesce_tables(mut dst: Map, src: &Map, warnings: &mut Vec<String>) -> Map {
    for (key, s) in src {
        match dst.get(key) {
            Some(Value::Nil) => {
                dst.remove(key);
            }
            None => {
                dst.insert(key.clone(), s.clone());
            }
            Some(d) => match (as_map(d), as_map(s)) {
                (Some(d), Some(s)) => {
                    let merged = coalesce_tables(d, &s, warnings);
                    dst.insert(key.clone(), value::map(merged));
                }
                (None, Some(_)) => {
                    warnings.push(format!("cannot overwrite table with non table for {key}"))
                }
                _ => {}
            },
        }
    }
    dst
}

/// Copy the parent's `global` section into a subchart's values (the parent's entries win).
fn coalesce_globals(mut dest: Map, parent: &Map, warnings: &mut Vec<String>) -> Map {
    let mut dg = dest.get("global").and_then(as_map).unwrap_or_default();
    let sg = parent.get("global").and_then(as_map).unwrap_or_default();
    for (key, val) in sg {
        match (as_map(&val), dg.get(&key)) {
            (Some(vv), None) => {
                dg.insert(key, value::map(vv));
            }
            (Some(vv), Some(existing)) => match as_map(existing) {
                Some(dv) => {
                    let merged = coalesce_tables(vv, &dv, warnings);
                    dg.insert(key, value::map(merged));
                }
                None => warnings.push(format!("cannot merge map onto non-map for global {key}")),
            },
            (None, Some(existing)) if as_map(existing).is_some() => {
                warnings.push(format!("global {key} is a table; skipping"))
            }
            (None, _) => {
                dg.insert(key, val);
            }
        }
    }
    dest.insert(Arc::from("global"), value::map(dg));
    dest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::from_yaml;
    use crate::yaml::parse_document;

    fn m(src: &str) -> Map {
        as_map(&from_yaml(&parse_document(src).unwrap())).unwrap_or_default()
    }

    #[test]
    fn user_values_win_and_null_deletes() {
        let mut w = Vec::new();
        let out = coalesce_values(
            &m("a: 1\nb: {c: 2, d: 3}\ne: 5\n"),
            m("b: {c: 9, d: null}\ne: null\n"),
            "x",
            &mut w,
        );
        assert_eq!(out, m("a: 1\nb: {c: 9}\n"));
    }

    #[test]
    fn merging_values_files() {
        let out = merge_user_values(&m("a: {b: 1, c: 2}\nl: [1]\n"), &m("a: {b: 3}\nl: [2]\n"));
        assert_eq!(out, m("a: {b: 3, c: 2}\nl: [2]\n"));
    }

    #[test]
    fn parent_globals_win() {
        let mut w = Vec::new();
        let out = coalesce_globals(
            m("global: {a: 1, t: {x: 1, y: 1}}\n"),
            &m("global: {a: 2, t: {x: 2}, n: 3}\n"),
            &mut w,
        );
        assert_eq!(out, m("global: {a: 2, n: 3, t: {x: 2, y: 1}}\n"));
    }
}

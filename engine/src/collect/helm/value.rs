//! Template values: building them from YAML, and the Go notions (emptiness, kinds) Sprig uses.
//!
//! Helm reads values, `fromYaml` and `fromJson` through JSON, so every number from a file is a
//! Go `float64`; numbers made inside a template (`1`, `len`, `int`) are integers. We keep the
//! same split: YAML numbers become [`Value::Float`].

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use crate::collect::yaml::Yaml;

/// A map value.
pub type Map = BTreeMap<Arc<str>, Value>;

/// Wrap a map.
pub fn map(m: Map) -> Value {
    Value::Map(Arc::new(m))
}

/// Wrap a list.
pub fn list(items: Vec<Value>) -> Value {
    Value::List(items.into())
}

/// A string value.
pub fn string(s: impl AsRef<str>) -> Value {
    Value::String(Arc::from(s.as_ref()))
}

/// An empty map.
pub fn empty_map() -> Value {
    map(Map::new())
}

/// Convert parsed YAML the way Helm does (numbers become floats, keys strings).
pub fn from_yaml(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Nil,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Int(i) => Value::Float(*i as f64),
        Yaml::Float(f) => Value::Float(*f),
        Yaml::String(s) => string(s),
        Yaml::Seq(items) => list(items.iter().map(from_yaml).collect()),
        Yaml::Map(entries) => map(entries
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), from_yaml(v)))
            .collect()),
    }
}

/// The map inside a value, if it is one.
pub fn as_map(v: &Value) -> Option<&Map> {
    match v {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

/// Go's notion of an empty value, as Sprig's `empty` and `default` use it.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Function(_) => false,
    }
}

/// Go's `reflect.Kind` name of a value (Sprig's `kindOf`).
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Function(_) => "func",
    }
}

/// Go's type name of a value (Sprig's `typeOf`).
pub fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
    }
}

/// Deep equality, treating integers and floats of the same value as different (as Go does).
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    a == b
}

/// Set `path` (a chain of map keys) inside `root` to `value`, building maps as needed.
pub fn set_path(root: &Value, path: &[Arc<str>], value: Value) -> Value {
    let Some((first, rest)) = path.split_first() else {
        return value;
    };
    let mut m = as_map(root).cloned().unwrap_or_default();
    let inner = m.get(first).cloned().unwrap_or(Value::Nil);
    m.insert(first.clone(), set_path(&inner, rest, value));
    map(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::yaml::parse_document;

    #[test]
    fn numbers_from_yaml_are_floats() {
        let v = from_yaml(&parse_document("a: 1\nb: [x]\n").unwrap());
        assert_eq!(v.field("a"), Some(&Value::Float(1.0)));
        assert_eq!(kind_of(v.field("a").unwrap()), "float64");
        assert_eq!(type_of(v.field("b").unwrap()), "[]interface {}");
    }

    #[test]
    fn set_path_builds_maps() {
        let v = set_path(
            &empty_map(),
            &[Arc::from("a"), Arc::from("b")],
            Value::Int(1),
        );
        assert_eq!(
            v.field("a").and_then(|a| a.field("b")),
            Some(&Value::Int(1))
        );
    }
}

//! Template values with Go's reference semantics, and the Go notions (emptiness, kinds) Sprig
//! uses.
//!
//! In Helm every map is a Go `map[string]interface{}`: a reference. A helper that runs
//! `set . "k" v` changes the caller's dot, `set $ "Values" ...` changes the one top-level object
//! every later template of the chart reads, and a map inside a list is the same map wherever
//! the list goes. [`Dict`] is that reference: cloning a [`Value::Map`] clones the reference,
//! [`Dict::insert`] is seen through every clone, [`deep_copy`] makes a new map.
//!
//! A [`List`] is a Go slice, shared like a map: Sprig changes one list in place — `sortAlpha`
//! sorts a `[]string` argument (what `keys`, `splitList`, `regexSplit`... return) and every
//! reference sees the new order. A `[]interface{}` (lists from values, `list`, `append`) is
//! never changed in place: `sortAlpha` copies it into a new `[]string`, as Sprig's `strslice`
//! does. The maps inside a list are shared like any other.
//!
//! Helm reads values, `fromYaml` and `fromJson` through JSON, so every number from a file is a
//! Go `float64`; numbers made inside a template (`1`, `len`, `int`) are integers. We keep the
//! same split: YAML numbers become [`Value::Float`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::yaml::Yaml;

/// The contents of a map, keys in Go's sorted order.
pub type Map = BTreeMap<Arc<str>, Value>;

/// What a map stands for, when it is one of Helm's objects with methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A plain `map[string]interface{}`.
    Plain,
    /// Helm's `.Files` (path → content), with `Get`, `Glob`, `Lines`, `AsConfig`, `AsSecrets`.
    Files,
    /// Helm's `.Capabilities.KubeVersion`, a Go struct of `Version`, `Major`, `Minor` with a
    /// `GitVersion` method: an action prints its `String()` (the version), `%v` and `toString`
    /// the struct (`{v1.35.0 v1.35.0 1 35}`), `toJson` its fields in declaration order.
    KubeVersion,
}

/// A shared, mutable map: Go's `map[string]interface{}`.
///
/// A lock is held only inside one method call, never while other values are evaluated, so a
/// map that contains itself (`set $m "self" $m`) cannot deadlock a lookup.
#[derive(Clone)]
pub struct Dict(Arc<DictInner>);

struct DictInner {
    tag: Tag,
    map: Mutex<Map>,
}

impl Dict {
    /// A new map holding `m`.
    pub fn new(m: Map) -> Dict {
        Dict::tagged(Tag::Plain, m)
    }

    /// A new map standing for one of Helm's objects.
    pub fn tagged(tag: Tag, m: Map) -> Dict {
        Dict(Arc::new(DictInner {
            tag,
            map: Mutex::new(m),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        // A panic while the lock was held leaves a map that is still a valid map.
        self.0.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Which of Helm's objects this is.
    pub fn tag(&self) -> Tag {
        self.0.tag
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.lock().get(key).cloned()
    }

    /// Set `key`, seen by every reference to this map.
    pub fn insert(&self, key: impl Into<Arc<str>>, value: Value) {
        self.lock().insert(key.into(), value);
    }

    /// Remove `key`.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.lock().remove(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<Arc<str>> {
        self.lock().keys().cloned().collect()
    }

    /// A copy of the entries as they are now (the values still share their maps).
    pub fn snapshot(&self) -> Map {
        self.lock().clone()
    }

    /// Whether both are the same map (Go's pointer identity).
    pub fn same(&self, other: &Dict) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.snapshot()).finish()
    }
}

/// The element type of a Go slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `[]interface{}`.
    Interface,
    /// `[]string`: every item is a [`Value::String`].
    String,
    /// Helm's `common.VersionSet` (`.Capabilities.APIVersions`): a `[]string` with `Has`.
    VersionSet,
}

/// A shared list: Go's slice (its backing array is shared by every copy of the value).
///
/// Only a `[]string` is ever changed in place ([`List::sort_strings`]); the items are an
/// `Arc<[Value]>` that is swapped whole, so a reader holds a consistent snapshot.
#[derive(Clone)]
pub struct List(Arc<ListInner>);

struct ListInner {
    elem: Elem,
    items: Mutex<Arc<[Value]>>,
}

impl List {
    /// A new `[]interface{}`.
    pub fn new(items: Vec<Value>) -> List {
        List::typed(Elem::Interface, items.into())
    }

    /// A new `[]string`.
    pub fn strings(items: impl IntoIterator<Item = String>) -> List {
        List::typed(Elem::String, items.into_iter().map(string).collect())
    }

    /// A new slice of the given element type.
    pub fn with_elem(elem: Elem, items: Vec<Value>) -> List {
        List::typed(elem, items.into())
    }

    fn typed(elem: Elem, items: Arc<[Value]>) -> List {
        List(Arc::new(ListInner {
            elem,
            items: Mutex::new(items),
        }))
    }

    /// The items as they are now.
    pub fn items(&self) -> Arc<[Value]> {
        // A panic while the lock was held leaves a list that is still a valid list.
        self.0
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The element type.
    pub fn elem(&self) -> Elem {
        self.0.elem
    }

    pub fn len(&self) -> usize {
        self.items().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    /// Sort a `[]string` in place, seen through every reference (Go's `sort.Strings`);
    /// `false` for a `[]interface{}`, which is left alone.
    pub fn sort_strings(&self) -> bool {
        if self.0.elem == Elem::Interface {
            return false;
        }
        let mut items = self.0.items.lock().unwrap_or_else(|e| e.into_inner());
        let mut sorted = items.to_vec();
        sorted.sort_by(|a, b| match (a, b) {
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => std::cmp::Ordering::Equal,
        });
        *items = sorted.into();
        true
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.items().iter()).finish()
    }
}

impl From<Vec<Value>> for List {
    fn from(items: Vec<Value>) -> List {
        List::new(items)
    }
}

/// A template value: what Go's `interface{}` holds in Helm.
#[derive(Clone, Debug)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    String(Arc<str>),
    List(List),
    Map(Dict),
}

impl PartialEq for Value {
    /// Go's `reflect.DeepEqual`: integers and floats of the same value differ.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Uint(a), Value::Uint(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.elem() == b.elem() && (Arc::ptr_eq(&a.0, &b.0) || a.items() == b.items())
            }
            (Value::Map(a), Value::Map(b)) => a.same(b) || a.snapshot() == b.snapshot(),
            _ => false,
        }
    }
}

impl Value {
    /// Go's truth for `if`, `with`, `and`, `or`, `not`.
    pub fn is_truthy(&self) -> bool {
        !is_empty(self)
    }

    /// The value under `key` when this is a map.
    pub fn field(&self, key: &str) -> Option<Value> {
        match self {
            Value::Map(d) => d.get(key),
            _ => None,
        }
    }

    /// Go's type name (`%T`).
    pub fn type_name(&self) -> &'static str {
        type_of(self)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        string(s)
    }
}

/// Wrap entries in a new map.
pub fn map(m: Map) -> Value {
    Value::Map(Dict::new(m))
}

/// Wrap a list.
pub fn list(items: Vec<Value>) -> Value {
    Value::List(List::new(items))
}

/// Wrap strings in a new `[]string`.
pub fn string_list(items: impl IntoIterator<Item = String>) -> Value {
    Value::List(List::strings(items))
}

/// A string value.
pub fn string(s: impl AsRef<str>) -> Value {
    Value::String(Arc::from(s.as_ref()))
}

/// A new empty map.
pub fn empty_map() -> Value {
    map(Map::new())
}

/// Convert parsed YAML the way Helm does (numbers become floats, keys strings); every mapping
/// becomes a map of its own.
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

/// The entries of a value that is a map, as they are now.
pub fn as_map(v: &Value) -> Option<Map> {
    match v {
        Value::Map(d) => Some(d.snapshot()),
        _ => None,
    }
}

/// The map a value is, if it is one.
pub fn as_dict(v: &Value) -> Option<&Dict> {
    match v {
        Value::Map(d) => Some(d),
        _ => None,
    }
}

/// A copy sharing nothing with `v`: every map inside is a new map (Sprig's `deepCopy`, and how
/// each render gets values of its own).
pub fn deep_copy(v: &Value) -> Value {
    match v {
        Value::List(l) => Value::List(List::typed(
            l.elem(),
            l.items().iter().map(deep_copy).collect(),
        )),
        Value::Map(d) => Value::Map(Dict::tagged(d.tag(), deep_copy_map(&d.snapshot()))),
        other => other.clone(),
    }
}

/// [`deep_copy`] of each value of `m`.
pub fn deep_copy_map(m: &Map) -> Map {
    m.iter().map(|(k, v)| (k.clone(), deep_copy(v))).collect()
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
        Value::Map(d) if d.tag() == Tag::KubeVersion => "struct",
        Value::Map(_) => "map",
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
        Value::List(l) => match l.elem() {
            Elem::Interface => "[]interface {}",
            Elem::String => "[]string",
            Elem::VersionSet => "common.VersionSet",
        },
        Value::Map(d) if d.tag() == Tag::Files => "engine.files",
        Value::Map(d) if d.tag() == Tag::KubeVersion => "common.KubeVersion",
        Value::Map(_) => "map[string]interface {}",
    }
}

/// Deep equality, treating integers and floats of the same value as different (as Go does).
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_document;

    #[test]
    fn numbers_from_yaml_are_floats() {
        let v = from_yaml(&parse_document("a: 1\nb: [x]\n").unwrap());
        assert_eq!(v.field("a"), Some(Value::Float(1.0)));
        assert_eq!(kind_of(&v.field("a").unwrap()), "float64");
        assert_eq!(type_of(&v.field("b").unwrap()), "[]interface {}");
    }

    #[test]
    fn a_map_is_shared_by_every_reference_and_deep_copy_is_not() {
        let v = from_yaml(&parse_document("inner: {a: 1}\nlist: [{b: 2}]\n").unwrap());
        let alias = v.clone();
        let inner = v.field("inner").unwrap();
        as_dict(&inner).unwrap().insert("x", Value::Int(1));
        assert_eq!(
            alias.field("inner").and_then(|i| i.field("x")),
            Some(Value::Int(1))
        );
        let copy = deep_copy(&v);
        as_dict(&inner).unwrap().insert("y", Value::Int(2));
        assert_eq!(copy.field("inner").and_then(|i| i.field("y")), None);
        assert_eq!(
            copy.field("inner").and_then(|i| i.field("x")),
            Some(Value::Int(1))
        );
        // A map inside a list is the same map wherever the list goes.
        let Some(Value::List(items)) = alias.field("list") else {
            panic!("list")
        };
        as_dict(&items.items()[0])
            .unwrap()
            .insert("c", Value::Int(3));
        let Some(Value::List(again)) = v.field("list") else {
            panic!("list")
        };
        assert_eq!(again.items()[0].field("c"), Some(Value::Int(3)));
    }

    #[test]
    fn a_string_slice_is_sorted_in_place_and_an_interface_slice_is_not() {
        let strings = string_list(["b".to_owned(), "a".to_owned()]);
        let alias = strings.clone();
        let Value::List(l) = &strings else {
            panic!("list")
        };
        assert!(l.sort_strings());
        assert_eq!(crate::format::go_string(&alias), "[a b]");
        assert_eq!(type_of(&alias), "[]string");
        let iface = list(vec![string("b"), string("a")]);
        let Value::List(l) = &iface else {
            panic!("list")
        };
        assert!(!l.sort_strings());
        assert_eq!(l.items()[0], string("b"));
        // Go's DeepEqual tells the two slice types apart.
        assert_ne!(list(vec![string("a")]), string_list(["a".to_owned()]));
        // deepCopy keeps the type and shares nothing.
        let copy = deep_copy(&alias);
        assert_eq!(type_of(&copy), "[]string");
        assert!(matches!(&copy, Value::List(c) if !Arc::ptr_eq(&c.0, &l.0)));
    }

    #[test]
    fn a_map_containing_itself_does_not_deadlock_equality() {
        let v = empty_map();
        as_dict(&v).unwrap().insert("self", v.clone());
        assert_eq!(v, v.clone());
        // Break the cycle so the test does not leak.
        as_dict(&v).unwrap().remove("self");
    }
}

//! Sprig's list, dict, default/empty and type functions.
//!
//! Sprig's `set`, `unset`, `merge` and `mergeOverwrite` change their first argument in place
//! and return it; so do ours, on the shared [`Dict`] every reference to the map sees.
//! `deepCopy` makes maps of its own.

use std::sync::Arc;

use crate::exec::FuncMap;
use crate::value::{List, Value};

use super::{add, arg, error, last, list_arg, str_arg, strval, to_i64, FuncResult};
use crate::value::{
    self, as_dict, as_map, deep_copy, is_empty, kind_of, list, string, string_list, type_of, Dict,
    Map,
};

pub(super) fn register(m: &mut FuncMap) {
    add(m, "list", |a| Ok(list(a.to_vec())));
    add(m, "tuple", |a| Ok(list(a.to_vec())));
    add(m, "dict", |a| {
        let mut d = Map::new();
        for pair in a.chunks(2) {
            let key: Arc<str> = Arc::from(strval(&pair[0]).as_str());
            d.insert(key, pair.get(1).cloned().unwrap_or_else(|| string("")));
        }
        Ok(value::map(d))
    });
    add(m, "get", |a| {
        let key = str_arg(arg(a, 1));
        Ok(dict_arg(arg(a, 0))
            .get(key.as_str())
            .cloned()
            .unwrap_or_else(|| string("")))
    });
    add(m, "set", |a| {
        let d = target("set", arg(a, 0))?;
        d.insert(str_arg(arg(a, 1)).as_str(), arg(a, 2).clone());
        Ok(Value::Map(d.clone()))
    });
    add(m, "unset", |a| {
        let d = target("unset", arg(a, 0))?;
        d.remove(str_arg(arg(a, 1)).as_str());
        Ok(Value::Map(d.clone()))
    });
    add(m, "hasKey", |a| {
        Ok(Value::Bool(
            dict_arg(arg(a, 0)).contains_key(str_arg(arg(a, 1)).as_str()),
        ))
    });
    add(m, "keys", |a| {
        let mut keys: Vec<String> = Vec::new();
        for d in a {
            keys.extend(dict_arg(d).keys().map(|k| k.to_string()));
        }
        Ok(string_list(keys))
    });
    add(m, "values", |a| {
        Ok(list(dict_arg(arg(a, 0)).values().cloned().collect()))
    });
    add(m, "pluck", |a| {
        let key = str_arg(arg(a, 0));
        Ok(list(
            a.iter()
                .skip(1)
                .filter_map(|d| dict_arg(d).get(key.as_str()).cloned())
                .collect(),
        ))
    });
    add(m, "pick", |a| {
        let d = dict_arg(arg(a, 0));
        let keys: Vec<String> = a.iter().skip(1).map(str_arg).collect();
        Ok(value::map(
            d.into_iter()
                .filter(|(k, _)| keys.iter().any(|x| x.as_str() == &**k))
                .collect(),
        ))
    });
    add(m, "omit", |a| {
        let d = dict_arg(arg(a, 0));
        let keys: Vec<String> = a.iter().skip(1).map(str_arg).collect();
        Ok(value::map(
            d.into_iter()
                .filter(|(k, _)| !keys.iter().any(|x| x.as_str() == &**k))
                .collect(),
        ))
    });
    add(m, "dig", |a| {
        if a.len() < 3 {
            return Err(error("dig", "dig needs at least three arguments"));
        }
        let default = a[a.len() - 2].clone();
        let mut current = a[a.len() - 1].clone();
        for key in &a[..a.len() - 2] {
            match current.field(str_arg(key).as_str()) {
                Some(next) => current = next,
                None => return Ok(default),
            }
        }
        Ok(current)
    });
    for name in ["merge", "mustMerge"] {
        add(m, name, |a| merge(a, false));
    }
    for name in ["mergeOverwrite", "mustMergeOverwrite"] {
        add(m, name, |a| merge(a, true));
    }
    add(m, "deepCopy", |a| Ok(deep_copy(arg(a, 0))));
    add(m, "mustDeepCopy", |a| Ok(deep_copy(arg(a, 0))));

    for name in ["append", "push", "mustAppend", "mustPush"] {
        add(m, name, |a| {
            let mut items = list_arg("append", arg(a, 0))?;
            items.push(arg(a, 1).clone());
            Ok(list(items))
        });
    }
    for name in ["prepend", "mustPrepend"] {
        add(m, name, |a| {
            let mut items = list_arg("prepend", arg(a, 0))?;
            items.insert(0, arg(a, 1).clone());
            Ok(list(items))
        });
    }
    add(m, "concat", |a| {
        let mut items = Vec::new();
        for l in a {
            items.extend(list_arg("concat", l)?);
        }
        Ok(list(items))
    });
    for name in ["first", "mustFirst"] {
        add(m, name, |a| {
            Ok(list_arg("first", last(a))?
                .first()
                .cloned()
                .unwrap_or(Value::Nil))
        });
    }
    for name in ["last", "mustLast"] {
        add(m, name, |a| {
            Ok(list_arg("last", last(a))?
                .last()
                .cloned()
                .unwrap_or(Value::Nil))
        });
    }
    for name in ["rest", "mustRest"] {
        add(m, name, |a| {
            let items = list_arg("rest", last(a))?;
            Ok(list(items.into_iter().skip(1).collect()))
        });
    }
    for name in ["initial", "mustInitial"] {
        add(m, name, |a| {
            let mut items = list_arg("initial", last(a))?;
            items.pop();
            Ok(list(items))
        });
    }
    for name in ["reverse", "mustReverse"] {
        add(m, name, |a| {
            let mut items = list_arg("reverse", last(a))?;
            items.reverse();
            Ok(list(items))
        });
    }
    for name in ["uniq", "mustUniq"] {
        add(m, name, |a| {
            let mut out: Vec<Value> = Vec::new();
            for item in list_arg("uniq", last(a))? {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            Ok(list(out))
        });
    }
    for name in ["without", "mustWithout"] {
        add(m, name, |a| {
            let drop = &a[1.min(a.len())..];
            Ok(list(
                list_arg("without", arg(a, 0))?
                    .into_iter()
                    .filter(|i| !drop.contains(i))
                    .collect(),
            ))
        });
    }
    for name in ["has", "mustHas"] {
        add(m, name, |a| {
            let haystack = match arg(a, 1) {
                Value::List(items) => items.items().to_vec(),
                _ => Vec::new(),
            };
            Ok(Value::Bool(haystack.contains(arg(a, 0))))
        });
    }
    for name in ["compact", "mustCompact"] {
        add(m, name, |a| {
            Ok(list(
                list_arg("compact", last(a))?
                    .into_iter()
                    .filter(|v| !is_empty(v))
                    .collect(),
            ))
        });
    }
    for name in ["slice", "mustSlice"] {
        add(m, name, |a| slice(a).map_err(|e| error("slice", e)));
    }
    for name in ["chunk", "mustChunk"] {
        add(m, name, |a| {
            let size = to_i64(arg(a, 0)).max(1) as usize;
            let items = list_arg("chunk", arg(a, 1))?;
            Ok(list(items.chunks(size).map(|c| list(c.to_vec())).collect()))
        });
    }
    add(m, "until", |a| {
        let n = to_i64(arg(a, 0));
        let step = if n < 0 { -1 } else { 1 };
        Ok(list(until_step(0, n, step)))
    });
    add(m, "untilStep", |a| {
        Ok(list(until_step(
            to_i64(arg(a, 0)),
            to_i64(arg(a, 1)),
            to_i64(arg(a, 2)),
        )))
    });
    add(m, "seq", |a| {
        let nums: Vec<i64> = a.iter().map(to_i64).collect();
        let (start, step, end) = match nums.as_slice() {
            [end] => (1, 1, *end),
            [start, end] => (*start, if start <= end { 1 } else { -1 }, *end),
            [start, step, end] => (*start, *step, *end),
            _ => return Ok(string("")),
        };
        let mut out = Vec::new();
        let mut i = start;
        while step != 0 && ((step > 0 && i <= end) || (step < 0 && i >= end)) && out.len() < 100_000
        {
            out.push(i.to_string());
            i += step;
        }
        Ok(string(out.join(" ")))
    });

    add(m, "empty", |a| Ok(Value::Bool(is_empty(last(a)))));
    add(m, "default", |a| {
        let given = a.get(1);
        Ok(match given {
            Some(v) if !is_empty(v) => v.clone(),
            _ => arg(a, 0).clone(),
        })
    });
    add(m, "coalesce", |a| {
        Ok(a.iter()
            .find(|v| !is_empty(v))
            .cloned()
            .unwrap_or(Value::Nil))
    });
    add(m, "all", |a| {
        Ok(Value::Bool(a.iter().all(|v| !is_empty(v))))
    });
    add(m, "any", |a| {
        Ok(Value::Bool(a.iter().any(|v| !is_empty(v))))
    });
    add(m, "ternary", |a| {
        Ok(if arg(a, 2).is_truthy() {
            arg(a, 0).clone()
        } else {
            arg(a, 1).clone()
        })
    });
    add(m, "kindOf", |a| Ok(string(kind_of(last(a)))));
    add(m, "kindIs", |a| {
        Ok(Value::Bool(str_arg(arg(a, 0)) == kind_of(arg(a, 1))))
    });
    add(m, "typeOf", |a| Ok(string(type_of(last(a)))));
    add(m, "typeIs", |a| {
        Ok(Value::Bool(str_arg(arg(a, 0)) == type_of(arg(a, 1))))
    });
    add(m, "typeIsLike", |a| {
        let t = str_arg(arg(a, 0));
        let actual = type_of(arg(a, 1));
        Ok(Value::Bool(t == actual || format!("*{t}") == actual))
    });
    add(m, "deepEqual", |a| {
        Ok(Value::Bool(value::deep_equal(arg(a, 0), arg(a, 1))))
    });
}

/// A dict argument; nil (a missing value) is an empty dict.
fn dict_arg(v: &Value) -> Map {
    as_map(v).unwrap_or_default()
}

/// The map a function changes in place; Go cannot pass anything else as `map[string]interface{}`.
fn target<'v>(name: &str, v: &'v Value) -> Result<&'v Dict, String> {
    as_dict(v).ok_or_else(|| {
        error(
            name,
            format!(
                "wrong type for value; expected map[string]interface {{}}; got {}",
                match v {
                    Value::Nil => "interface {}",
                    other => type_of(other),
                }
            ),
        )
    })
}

/// Sprig's `slice LIST [START [END]]` (and on strings, Go's `slice`).
fn slice(a: &[Value]) -> Result<Value, String> {
    let bound = |i: usize, len: usize, default: usize| -> Result<usize, String> {
        match a.get(i) {
            None => Ok(default),
            Some(v) => {
                let n = to_i64(v);
                if n < 0 || n as usize > len {
                    Err(format!("index out of range: {n}"))
                } else {
                    Ok(n as usize)
                }
            }
        }
    };
    match arg(a, 0) {
        Value::List(l) => {
            let items = l.items();
            let start = bound(1, items.len(), 0)?;
            let end = bound(2, items.len(), items.len())?;
            if start > end {
                return Err(format!("invalid slice index: {start} > {end}"));
            }
            Ok(Value::List(List::with_elem(
                l.elem(),
                items[start..end].to_vec(),
            )))
        }
        Value::String(s) => {
            let start = bound(1, s.len(), 0)?;
            let end = bound(2, s.len(), s.len())?;
            if start > end {
                return Err(format!("invalid slice index: {start} > {end}"));
            }
            Ok(string(String::from_utf8_lossy(&s.as_bytes()[start..end])))
        }
        other => Err(format!("Cannot slice type {}", type_of(other))),
    }
}

fn until_step(start: i64, stop: i64, step: i64) -> Vec<Value> {
    let mut out = Vec::new();
    if step == 0 || (step > 0 && start >= stop) || (step < 0 && start <= stop) {
        return out;
    }
    let mut i = start;
    while ((step > 0 && i < stop) || (step < 0 && i > stop)) && out.len() < 1_000_000 {
        out.push(Value::Int(i));
        i += step;
    }
    out
}

/// Sprig's `merge`/`mergeOverwrite` (mergo): the first map is changed in place and returned;
/// deep for maps (a nested destination map is changed in place too); without overwrite only
/// empty or missing destination keys are filled. Source maps are put in by reference, as mergo
/// does.
fn merge(a: &[Value], overwrite: bool) -> FuncResult {
    let name = if overwrite { "mergeOverwrite" } else { "merge" };
    let dst = target(name, arg(a, 0))?;
    for src in a.iter().skip(1) {
        if let Some(src) = as_dict(src) {
            if !src.same(dst) {
                merge_into(dst, src, overwrite);
            }
        }
    }
    Ok(Value::Map(dst.clone()))
}

fn merge_into(dst: &Dict, src: &Dict, overwrite: bool) {
    for (k, s) in src.snapshot() {
        let d = dst.get(&k);
        if matches!(s, Value::Nil) {
            // mergo skips a nil source value, or with overwrite sets it.
            if overwrite {
                dst.insert(k, s);
            }
            continue;
        }
        if let (Some(Value::Map(dm)), Value::Map(sm)) = (&d, &s) {
            if !dm.same(sm) {
                merge_into(dm, sm, overwrite);
            }
            if !dm.is_empty() {
                continue;
            }
        }
        let take = match &d {
            None => true,
            Some(d) if is_empty(d) => true,
            Some(_) => overwrite,
        };
        if take {
            dst.insert(k, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::go_string;
    use crate::value::from_yaml;
    use crate::yaml::parse_document;

    fn call(name: &str, args: &[Value]) -> String {
        let mut m = FuncMap::new();
        register(&mut m);
        go_string(&m.get(name).unwrap()(args).unwrap())
    }

    fn y(src: &str) -> Value {
        from_yaml(&parse_document(src).unwrap())
    }

    #[test]
    fn dicts() {
        let d = y("a: 1\nb: {c: 2}\n");
        assert_eq!(call("get", &[d.clone(), string("x")]), "");
        assert_eq!(call("hasKey", &[d.clone(), string("a")]), "true");
        assert_eq!(
            call("set", &[deep_copy(&d), string("z"), Value::Int(3)]),
            "map[a:1 b:map[c:2] z:3]"
        );
        assert_eq!(call("hasKey", &[d.clone(), string("z")]), "false");
        assert_eq!(call("omit", &[d.clone(), string("b")]), "map[a:1]");
        assert_eq!(call("pick", &[d.clone(), string("b")]), "map[b:map[c:2]]");
        assert_eq!(
            call("dig", &[string("b"), string("c"), string("def"), d.clone()]),
            "2"
        );
        assert_eq!(call("dig", &[string("q"), string("def"), d.clone()]), "def");
        assert_eq!(call("keys", &[d]), "[a b]");
    }

    #[test]
    fn merges() {
        let dst = y("a: 1\nb: {c: 2}\ne: ''\nl: [1]\n");
        let src = y("a: 9\nb: {c: 9, d: 9}\ne: x\nl: [2]\nnew: 1\n");
        assert_eq!(
            call("merge", &[dst.clone(), src.clone()]),
            "map[a:1 b:map[c:2 d:9] e:x l:[1] new:1]"
        );
        assert_eq!(
            call("mergeOverwrite", &[dst, src]),
            "map[a:9 b:map[c:9 d:9] e:x l:[2] new:1]"
        );
    }

    #[test]
    fn lists_and_defaults() {
        let l = y("[a, b, a, '']");
        assert_eq!(call("uniq", std::slice::from_ref(&l)), "[a b ]");
        assert_eq!(call("compact", std::slice::from_ref(&l)), "[a b a]");
        assert_eq!(call("without", &[l.clone(), string("a")]), "[b ]");
        assert_eq!(call("has", &[string("b"), l.clone()]), "true");
        assert_eq!(call("first", std::slice::from_ref(&l)), "a");
        assert_eq!(call("until", &[Value::Int(3)]), "[0 1 2]");
        assert_eq!(call("default", &[string("d"), Value::Nil]), "d");
        assert_eq!(call("default", &[string("d")]), "d");
        assert_eq!(call("default", &[string("d"), string("v")]), "v");
        assert_eq!(
            call("coalesce", &[Value::Nil, string(""), string("x")]),
            "x"
        );
        assert_eq!(
            call("ternary", &[string("a"), string("b"), Value::Bool(false)]),
            "b"
        );
        assert_eq!(call("kindIs", &[string("map"), y("{}")]), "true");
        assert_eq!(call("typeIs", &[string("string"), string("x")]), "true");
    }
}

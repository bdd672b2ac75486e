//! text/template's own functions (`and`, `or`, `not`, `len`, `index`, `print`, `printf`,
//! `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, ...) with Go's semantics, and the printing
//! and value conversions they share with the executor.

use super::*;

pub(super) type Builtin = fn(&[Value]) -> std::result::Result<Value, String>;

/// Whether `name` is one of Go's builtins or Helm's `include`/`tpl` (which the executor runs).
pub fn is_builtin(name: &str) -> bool {
    matches!(name, "and" | "or" | "include" | "tpl" | "call") || builtin(name).is_some()
}

/// Go's builtin functions (those a chart's function map does not replace).
pub(super) fn builtin(name: &str) -> Option<Builtin> {
    Some(match name {
        "not" => |a| match a {
            [v] => Ok(Value::Bool(!v.is_truthy())),
            _ => Err(format!(
                "wrong number of args for not: want 1 got {}",
                a.len()
            )),
        },
        "len" => |a| match a.first() {
            Some(Value::String(s)) => Ok(Value::Int(s.len() as i64)),
            Some(Value::List(l)) => Ok(Value::Int(l.len() as i64)),
            Some(Value::Map(m)) => Ok(Value::Int(m.len() as i64)),
            Some(Value::Nil) | None => Err("len of nil pointer".into()),
            Some(other) => Err(format!("len of type {}", type_of(other))),
        },
        "index" => index,
        "print" => |a| Ok(value::string(sprint(a))),
        "println" => |a| {
            let parts: Vec<String> = a.iter().map(go_string).collect();
            Ok(value::string(format!("{}\n", parts.join(" "))))
        },
        "printf" => printf,
        "eq" => |a| eq(a).map(Value::Bool),
        "ne" => |a| match a {
            [x, y] => eq(&[x.clone(), y.clone()]).map(|b| Value::Bool(!b)),
            _ => Err(format!(
                "wrong number of args for ne: want 2 got {}",
                a.len()
            )),
        },
        "lt" => |a| order(a, |o| o.is_lt()),
        "le" => |a| order(a, |o| o.is_le()),
        "gt" => |a| order(a, |o| o.is_gt()),
        "ge" => |a| order(a, |o| o.is_ge()),
        "html" => |a| Ok(value::string(gotmpl::html_escape(&escaper_arg(a)))),
        "js" => |a| Ok(value::string(gotmpl::js_escape(&escaper_arg(a)))),
        "urlquery" => |a| Ok(value::string(gotmpl::url_encode(&escaper_arg(a)))),
        _ => return None,
    })
}

/// `fmt.Sprint`: a space between operands when neither is a string.
pub fn sprint(a: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 && !matches!(v, Value::String(_)) && !matches!(a[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&go_string(v));
    }
    out
}

pub(super) fn escaper_arg(a: &[Value]) -> String {
    match a {
        [Value::String(s)] => s.to_string(),
        _ => sprint(a),
    }
}

/// `printf`, by gotmpl's implementation of Go's `fmt` (maps are handed over as snapshots).
/// gotmpl's `%v` of a float is not Go's (`1000000` for `1e+06`): a float, list or map that a
/// plain `%v` prints is handed over already printed, as Go prints it.
pub(super) fn printf(a: &[Value]) -> std::result::Result<Value, String> {
    let mut args: Vec<gotmpl::Value> = a.iter().map(to_gotmpl).collect();
    if let Some(Value::String(format)) = a.first() {
        for (verb, index) in verbs(format) {
            let printed = match (verb, a.get(index + 1)) {
                (b'v', Some(v @ (Value::Float(_) | Value::List(_) | Value::Map(_)))) => Some(v),
                // A struct (`.Capabilities.KubeVersion`): `%s` prints each field with `%s`.
                (b's', Some(v @ Value::Map(d))) if d.tag() == Tag::KubeVersion => Some(v),
                _ => None,
            };
            if let Some(v) = printed {
                args[index + 1] = gotmpl::Value::String(Arc::from(go_string(v)));
            }
        }
    }
    let mut data = std::collections::BTreeMap::new();
    data.insert(Arc::<str>::from("a"), gotmpl::Value::List(args.into()));
    let args: String = (0..a.len()).map(|i| format!(" (index .a {i})")).collect();
    let src = format!("{{{{printf{args}}}}}");
    gotmpl::Template::new("printf")
        .parse(&src)
        .and_then(|t| t.execute_to_string(&gotmpl::Value::Map(Arc::new(data))))
        .map(value::string)
        .map_err(|e| e.to_string())
}

/// The verbs of a `printf` format with the index of the argument each prints; empty when the
/// format uses `*` or explicit argument indexes (then nothing is handed over pre-printed).
pub(super) fn verbs(format: &str) -> Vec<(u8, usize)> {
    let bytes = format.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut arg = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        let mut plain = true;
        while let Some(&c) = bytes.get(i) {
            match c {
                b'+' | b'#' => {
                    plain = false;
                    i += 1;
                }
                b'-' | b' ' | b'0'..=b'9' | b'.' => i += 1,
                b'*' | b'[' => return Vec::new(),
                _ => break,
            }
        }
        if let Some(&verb) = bytes.get(i) {
            if plain {
                out.push((verb, arg));
            }
            arg += 1;
            i += 1;
        }
    }
    out
}

/// A value as gotmpl holds it (maps copied as they are now).
pub fn to_gotmpl(v: &Value) -> gotmpl::Value {
    match v {
        Value::Nil => gotmpl::Value::Nil,
        Value::Bool(b) => gotmpl::Value::Bool(*b),
        Value::Int(i) => gotmpl::Value::Int(*i),
        Value::Uint(u) => gotmpl::Value::Uint(*u),
        Value::Float(x) => gotmpl::Value::Float(*x),
        Value::String(s) => gotmpl::Value::String(s.clone()),
        Value::List(items) => gotmpl::Value::List(
            items
                .items()
                .iter()
                .map(to_gotmpl)
                .collect::<Vec<_>>()
                .into(),
        ),
        Value::Map(d) => gotmpl::Value::Map(Arc::new(
            d.snapshot()
                .iter()
                .map(|(k, v)| (k.clone(), to_gotmpl(v)))
                .collect(),
        )),
    }
}

/// Go's `index`: through maps (a missing key is a nil interface), lists and strings.
pub(super) fn index(a: &[Value]) -> std::result::Result<Value, String> {
    let Some((item, indexes)) = a.split_first() else {
        return Err("wrong number of args for index: want at least 1 got 0".into());
    };
    if matches!(item, Value::Nil) {
        return Err("index of untyped nil".into());
    }
    let mut item = item.clone();
    for i in indexes {
        item = match (&item, i) {
            (Value::Nil, _) => return Err("index of nil pointer".into()),
            (Value::Map(d), Value::String(k)) => d.get(k).unwrap_or(Value::Nil),
            (Value::Map(_), other) => {
                return Err(format!(
                    "value has type {}; should be string",
                    type_of(other)
                ))
            }
            (Value::List(items), _) => {
                let n = int_index(i)?;
                items
                    .items()
                    .get(n)
                    .cloned()
                    .ok_or_else(|| format!("index out of range: {n}"))?
            }
            (Value::String(s), _) => {
                let n = int_index(i)?;
                Value::Uint(u64::from(
                    *s.as_bytes()
                        .get(n)
                        .ok_or_else(|| format!("index out of range: {n}"))?,
                ))
            }
            (other, _) => return Err(format!("can't index item of type {}", type_of(other))),
        };
    }
    Ok(item)
}

pub(super) fn int_index(v: &Value) -> std::result::Result<usize, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        Value::Uint(u) => Ok(*u as usize),
        Value::Int(i) => Err(format!("index out of range: {i}")),
        Value::Nil => Err("cannot index slice/array with nil".into()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            type_of(other)
        )),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
pub(super) enum Kind {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    String,
    Other,
}

pub(super) fn kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::String,
        Value::List(_) | Value::Map(_) => Kind::Other,
    }
}

/// Go's `eq`: the first argument against each of the others.
pub(super) fn eq(a: &[Value]) -> std::result::Result<bool, String> {
    let Some((x, rest)) = a.split_first() else {
        return Err("missing argument for comparison".into());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for y in rest {
        let truth = match (x, y) {
            (Value::Int(i), Value::Uint(u)) | (Value::Uint(u), Value::Int(i)) => {
                *i >= 0 && *i as u64 == *u
            }
            _ if kind(x) != kind(y) => {
                if kind(x) != Kind::Invalid && kind(y) != Kind::Invalid {
                    return Err(format!(
                        "incompatible types for comparison: {} and {}",
                        type_of(x),
                        type_of(y)
                    ));
                }
                false
            }
            (Value::Nil, Value::Nil) => true,
            (Value::List(_) | Value::Map(_), _) => {
                return Err(format!(
                    "non-comparable types {}: {}, {}: {}",
                    go_string(x),
                    type_of(x),
                    type_of(y),
                    go_string(y)
                ))
            }
            _ => x == y,
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt`, `le`, `gt`, `ge`.
pub(super) fn order(
    a: &[Value],
    pred: fn(std::cmp::Ordering) -> bool,
) -> std::result::Result<Value, String> {
    let [x, y] = a else {
        return Err(format!("wrong number of args: want 2 got {}", a.len()));
    };
    let ord = match (x, y) {
        (Value::Int(i), Value::Int(j)) => i.cmp(j),
        (Value::Uint(i), Value::Uint(j)) => i.cmp(j),
        (Value::Int(i), Value::Uint(u)) => {
            if *i < 0 {
                std::cmp::Ordering::Less
            } else {
                (*i as u64).cmp(u)
            }
        }
        (Value::Uint(u), Value::Int(i)) => {
            if *i < 0 {
                std::cmp::Ordering::Greater
            } else {
                u.cmp(&(*i as u64))
            }
        }
        (Value::Float(p), Value::Float(q)) => p.partial_cmp(q).unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(s), Value::String(t)) => s.cmp(t),
        _ if matches!(kind(x), Kind::Invalid | Kind::Bool | Kind::Other)
            || matches!(kind(y), Kind::Invalid | Kind::Bool | Kind::Other) =>
        {
            return Err("invalid type for comparison".into())
        }
        _ => return Err("incompatible types for comparison".into()),
    };
    Ok(Value::Bool(pred(ord)))
}

//! Helm's template function library, Sprig's functions included.
//!
//! Each group lives in its own file; this file has the argument helpers they share and the one
//! table that names every function. Helm's own context-dependent functions (`include`, `tpl`,
//! `.Files`) are in `engine.rs`.
//!
//! Where Go would refuse an argument of the wrong type (a missing value given to `upper`), we
//! are lenient: a chart that renders with Helm must render here; one that fails with Helm may
//! render here too. Functions that would be random or read the outside world are
//! deterministic: `randAlphaNum` draws from a fixed-seed generator, `now` is the Unix epoch,
//! `lookup` finds nothing, `genCA` returns a clearly fake certificate.

mod collections;
mod encoding;
mod math;
mod strings;

use super::exec::FuncMap;
use super::value::Value;

use super::format::go_string;

pub use encoding::{base64_encode as base64, from_yaml_map, reset_random};

/// A function's result.
pub type FuncResult = Result<Value, String>;

/// All functions of this module, by template name.
pub fn func_map() -> FuncMap {
    let mut m = FuncMap::new();
    strings::register(&mut m);
    collections::register(&mut m);
    math::register(&mut m);
    encoding::register(&mut m);
    m
}

/// Add one function to `m`.
fn add(m: &mut FuncMap, name: &str, f: fn(&[Value]) -> FuncResult) {
    m.insert(name.to_string(), f);
}

/// An execution error from function `name`.
pub fn error(name: &str, msg: impl std::fmt::Display) -> String {
    format!("error calling {name}: {msg}")
}

/// Argument `i`, or nil when absent.
fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Nil)
}

/// The last argument (where Sprig functions take their piped subject), or nil.
fn last(args: &[Value]) -> &Value {
    args.last().unwrap_or(&Value::Nil)
}

/// A `string` parameter: strings as they are, nil as "", anything else as `%v`.
fn str_arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Nil => String::new(),
        other => go_string(other),
    }
}

/// Sprig's `strval` for `interface{}` parameters: like `%v` (nil is `<nil>`).
fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => go_string(other),
    }
}

/// spf13/cast's `ToInt64`: numbers truncated, numeric strings parsed, anything else 0.
fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_int(s.trim()).unwrap_or(0),
        _ => 0,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: decimal, `0x`, `0o`/`0`, `0b`, with a sign.
fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let (radix, body) = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, h.to_string())
    } else if let Some(b) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, b.to_string())
    } else if let Some(o) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        (8, o.to_string())
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, digits[1..].to_string())
    } else {
        (10, digits)
    };
    let n = i64::from_str_radix(&body, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// spf13/cast's `ToFloat64`.
fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Uint(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The items of a list argument (nil is an empty list).
fn list_arg(name: &str, v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(items) => Ok(items.items().to_vec()),
        Value::Nil => Ok(Vec::new()),
        other => Err(error(
            name,
            format!("cannot find {name} on type {}", other.type_name()),
        )),
    }
}

/// Sprig's `strslice`: a list of strings from a list (nils dropped) or a single value.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(items) => items
            .items()
            .iter()
            .filter(|i| !matches!(i, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_parsing_follows_go() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-0x1f"), Some(-31));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("x"), None);
        assert_eq!(to_i64(&Value::Float(2.9)), 2);
        assert_eq!(to_i64(&Value::String("12".into())), 12);
    }

    #[test]
    fn every_function_the_corpus_charts_use_exists() {
        let m = func_map();
        for name in [
            "nindent",
            "toYaml",
            "dict",
            "default",
            "quote",
            "indent",
            "hasKey",
            "dig",
            "list",
            "trimSuffix",
            "trunc",
            "semverCompare",
            "empty",
            "mergeOverwrite",
            "append",
            "contains",
            "get",
            "ternary",
            "b64enc",
            "omit",
            "kindIs",
            "toString",
            "join",
            "has",
            "int",
            "sha256sum",
            "fromYaml",
            "trim",
            "typeIs",
            "merge",
            "set",
            "replace",
            "coalesce",
            "upper",
            "pick",
            "until",
            "concat",
            "first",
            "regexMatch",
            "keys",
            "splitList",
            "uniq",
            "lower",
            "randAlpha",
            "randAlphaNum",
            "mustUniq",
            "add",
            "b64dec",
            "toJson",
            "split",
            "typeOf",
            "sortAlpha",
            "sub",
            "genCA",
            "genSignedCert",
            "regexFind",
            "tuple",
            "without",
            "randNumeric",
            "randAscii",
            "regexReplaceAllLiteral",
            "substr",
            "shuffle",
            "cat",
            "mustMerge",
            "mustMergeOverwrite",
            "regexReplaceAll",
            "reverse",
            "add1",
            "int64",
            "trimPrefix",
            "fromYamlArray",
            "max",
            "mul",
            "mod",
            "now",
            "date",
            "trimAll",
            "mustRegexReplaceAllLiteral",
            "genSelfSignedCert",
            "floor",
            "div",
            "unset",
            "prepend",
            "deepCopy",
            "title",
            "squote",
            "min",
            "float64",
            "toStrings",
            "fromJson",
            "toPrettyJson",
            "uuidv4",
            "hasPrefix",
            "hasSuffix",
            "slice",
            "last",
        ] {
            assert!(m.contains_key(name), "missing {name}");
        }
    }
}

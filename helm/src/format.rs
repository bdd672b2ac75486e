//! Printing values as Go and Helm print them: `%v`, `%q`, `toYaml` (go-yaml v2's block style,
//! through JSON as sigs.k8s.io/yaml does) and `toJson` (encoding/json).
//!
//! Rendered text is parsed again to find images, so what matters most is that the output is
//! valid YAML meaning the same as Helm's; the layout follows Helm's closely enough that
//! `nindent`ed blocks line up the same way.

use std::fmt::Write;
use std::sync::OnceLock;

use super::value::{Tag, Value};
use regex::Regex;

/// Go's `%v` of a value (what `{{ . }}`, `print` and `toString` produce). Nil is `<nil>`.
pub fn go_string(v: &Value) -> String {
    let mut out = String::new();
    write_go(&mut out, v);
    out
}

fn write_go(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => out.push_str(&go_float(*f)),
        Value::String(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.items().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, item);
            }
            out.push(']');
        }
        Value::Map(m) if m.tag() == Tag::KubeVersion => {
            // Go's `%v` of the struct: its fields in order, `Version` twice (Helm keeps the
            // normalised version in an unexported field beside it).
            let field = |k: &str| m.get(k).map(|v| go_string(&v)).unwrap_or_default();
            let version = field("Version");
            let _ = write!(
                out,
                "{{{version} {version} {} {}}}",
                field("Major"),
                field("Minor")
            );
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, v)) in m.snapshot().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(out, v);
            }
            out.push(']');
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is also `%v`: the shortest digits, in
/// exponent form when the decimal exponent is below -4 or at least 6 (`1e+06`, `1e-05`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (mantissa, exp) = shortest_exp(f);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// The shortest scientific form of `f`: (`"1.5"`, exponent).
fn shortest_exp(f: f64) -> (String, i32) {
    let s = format!("{f:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    (m.to_string(), e.parse().unwrap_or(0))
}

/// encoding/json's float format.
fn json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mantissa, exp) = shortest_exp(f);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `%q`: a double-quoted string with Go escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// encoding/json's `Marshal` (with HTML escaping, as Go's default encoder does).
pub fn to_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, true, None, 0);
    out
}

/// `json.MarshalIndent(v, "", "  ")`.
pub fn to_pretty_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, true, Some("  "), 0);
    out
}

/// `toRawJson`: no HTML escaping.
pub fn to_raw_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, false, None, 0);
    out
}

fn write_json(out: &mut String, v: &Value, html: bool, indent: Option<&str>, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(unit) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(unit);
            }
        }
    };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => out.push_str(&json_float(*f)),
        Value::String(s) => json_string(out, s, html),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.items().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_json(out, item, html, indent, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Map(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            let mut entries: Vec<_> = m.snapshot().into_iter().collect();
            if m.tag() == Tag::KubeVersion {
                // A struct's fields in declaration order.
                let rank = |k: &str| ["Version", "Major", "Minor"].iter().position(|f| *f == k);
                entries.sort_by_key(|(k, _)| rank(k));
            }
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                json_string(out, k, html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, item, html, indent, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn json_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Helm's `toYaml`: go-yaml v2 block style (through JSON), keys sorted, no trailing newline.
pub fn to_yaml(v: &Value) -> String {
    yaml_document(v, false)
}

/// Helm's `toYamlPretty`: go-yaml v3 on the value itself, indent 2: sequences indented under
/// their key, floats as Go's `%g` (`1.2345678e+07`, not the JSON round trip's integer).
pub fn to_yaml_pretty(v: &Value) -> String {
    yaml_document(v, true)
}

fn yaml_document(v: &Value, pretty: bool) -> String {
    let mut out = String::new();
    let mut w = YamlWriter {
        out: &mut out,
        step: 2,
        pretty,
    };
    match v {
        Value::Map(m) if !m.is_empty() => w.map(v, 0),
        Value::List(l) if !l.is_empty() => w.list(v, 0),
        other => {
            // A literal block at the top is indented like a mapping's content.
            w.scalar(other, 2);
            w.out.push('\n');
        }
    }
    // Helm trims one newline (`strings.TrimSuffix(s, "\n")`).
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

struct YamlWriter<'a> {
    out: &'a mut String,
    step: usize,
    pretty: bool,
}

impl YamlWriter<'_> {
    fn map(&mut self, v: &Value, at: usize) {
        let Value::Map(m) = v else { return };
        for (k, item) in m.snapshot().iter() {
            pad(self.out, at);
            self.out.push_str(&yaml_key(k));
            self.out.push(':');
            match item {
                Value::Map(inner) if !inner.is_empty() => {
                    self.out.push('\n');
                    self.map(item, at + self.step);
                }
                Value::List(inner) if !inner.is_empty() => {
                    self.out.push('\n');
                    let list_at = if self.pretty { at + self.step } else { at };
                    self.list(item, list_at);
                }
                scalar => {
                    self.out.push(' ');
                    self.scalar(scalar, at + self.step);
                    self.out.push('\n');
                }
            }
        }
    }

    fn list(&mut self, v: &Value, at: usize) {
        let Value::List(items) = v else { return };
        for item in items.items().iter() {
            pad(self.out, at);
            self.out.push_str("- ");
            match item {
                Value::Map(inner) if !inner.is_empty() => {
                    let mut block = String::new();
                    YamlWriter {
                        out: &mut block,
                        step: self.step,
                        pretty: self.pretty,
                    }
                    .map(item, at + 2);
                    self.out.push_str(&block[at + 2..]);
                }
                Value::List(inner) if !inner.is_empty() => {
                    let mut block = String::new();
                    YamlWriter {
                        out: &mut block,
                        step: self.step,
                        pretty: self.pretty,
                    }
                    .list(item, at + 2);
                    self.out.push_str(&block[at + 2..]);
                }
                scalar => {
                    self.scalar(scalar, at + 2);
                    self.out.push('\n');
                }
            }
        }
    }

    /// A scalar (or an empty collection) in block context; `at` is the indentation that a
    /// literal block's lines get.
    fn scalar(&mut self, v: &Value, at: usize) {
        let out = &mut *self.out;
        match v {
            Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Float(f) if self.pretty => out.push_str(&match go_float(*f).as_str() {
                "+Inf" => ".inf".to_string(),
                "-Inf" => "-.inf".to_string(),
                "NaN" => ".nan".to_string(),
                s => s.to_string(),
            }),
            Value::Float(f) => out.push_str(&yaml_float(*f)),
            Value::String(s) => write_yaml_string(out, s, at),
            Value::List(_) => out.push_str("[]"),
            Value::Map(_) => out.push_str("{}"),
        }
    }
}

fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+.inf".into()
        } else {
            "-.inf".into()
        };
    }
    // JSON prints integral floats below 1e21 as integers, which go-yaml reads back as ints.
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        return format!("{}", f as i64);
    }
    go_float(f)
}

fn write_yaml_string(out: &mut String, s: &str, at: usize) {
    if s.contains('\n') && literal_ok(s) {
        let body = s.trim_end_matches('\n');
        let trailing = s.len() - body.len();
        out.push('|');
        match trailing {
            0 => out.push('-'),
            1 => {}
            _ => out.push('+'),
        }
        for line in s[..s.len() - trailing.min(1)].split('\n') {
            out.push('\n');
            if !line.is_empty() {
                pad(out, at);
                out.push_str(line);
            }
        }
        return;
    }
    out.push_str(&yaml_inline_string(s));
}

/// A literal block can hold the string exactly: printable, and its first line does not start
/// with a space (that would need an indentation indicator).
fn literal_ok(s: &str) -> bool {
    !s.starts_with([' ', '\t', '\n'])
        && !s.trim().is_empty()
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
        && !s.contains(" \n")
}

fn yaml_key(k: &str) -> String {
    yaml_inline_string(k)
}

/// A string on one line: plain when YAML reads it back as the same string, else quoted.
fn yaml_inline_string(s: &str) -> String {
    if s.chars().any(|c| c.is_control() && c != '\t') || s.contains('\t') {
        return go_quote(s);
    }
    if resolves_to_non_string(s) {
        return go_quote(s);
    }
    if plain_ok(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first == ' ' {
        // `-x` and `:x` are fine plain, but keep it simple and quote.
        return false;
    }
    !(s.ends_with(' ')
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.contains(",")
            && (s.contains('[') || s.contains('{') || s.contains(']') || s.contains('}')))
}

/// Would a YAML 1.1 reader (go-yaml v2, PyYAML) read this plain scalar as something other than a
/// string: a bool, null, number or timestamp?
fn resolves_to_non_string(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r"^(?:",
            r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            r"|~|null|Null|NULL|<<|=",
            r"|[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?",
            r"|[-+]?0x[0-9a-fA-F_]+|[-+]?0o[0-7_]+|[-+]?0b[01_]+",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?",
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?",
            r")$"
        ))
        .expect("static regex")
    });
    s.is_empty() || re.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{from_yaml, list, string};
    use crate::yaml::parse_document;

    fn yaml(src: &str) -> Value {
        from_yaml(&parse_document(src).unwrap())
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(12345678901.0), "1.2345678901e+10");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(12345678901.0), "12345678901");
    }

    #[test]
    fn go_values() {
        let v = yaml("b: [1, x]\na: {c: null}\n");
        assert_eq!(go_string(&v), "map[a:map[c:<nil>] b:[1 x]]");
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
    }

    #[test]
    fn json() {
        let v = yaml("b: [1, 1.5, '<x>']\na: {}\n");
        assert_eq!(to_json(&v), r#"{"a":{},"b":[1,1.5,"\u003cx\u003e"]}"#);
        assert_eq!(to_raw_json(&string("<")), "\"<\"");
        assert_eq!(
            to_pretty_json(&yaml("a: [1]")),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn yaml_block_style() {
        let v = yaml(
            "z: 1\na:\n  b: [x, {c: 2, d: [3]}, [yy]]\n  e: {}\n  f: []\ns: \"true\"\nt: 'a: b'\nm: \"l1\\nl2\\n\"\nnul: ~\n",
        );
        assert_eq!(
            to_yaml(&v),
            "a:\n  b:\n  - x\n  - c: 2\n    d:\n    - 3\n  - - yy\n  e: {}\n  f: []\nm: |\n  l1\n  l2\nnul: null\ns: \"true\"\nt: 'a: b'\nz: 1"
        );
        assert_eq!(to_yaml(&list(vec![])), "[]");
        assert_eq!(to_yaml(&string("x")), "x");
        // A multi-line string alone is a literal block indented like mapping content.
        assert_eq!(to_yaml(&string("l1\n  l2\n")), "|\n  l1\n    l2");
    }

    #[test]
    fn yaml_round_trips() {
        for src in [
            "a: \"1.0\"\nb: \"yes\"\nc: \"- x\"\nd: \"#x\"\ne: \"x #y\"\nf: \"\"\ng: \" lead\"\nh: \"l1\\n l2\"\ni: \"tab\\tin\"\n",
            "k: \"first\\n\\n  indented\\n\\n\\n\"\nz: 1\n",
            "list: [[], {}, [[a]], {x: {y: [1, 2]}}]\n",
        ] {
            let v = yaml(src);
            let text = to_yaml(&v);
            assert_eq!(yaml(&text), v, "{text}");
        }
    }
}

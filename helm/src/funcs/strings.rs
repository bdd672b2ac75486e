//! Sprig's string functions: case, trimming, quoting, splitting, indentation, regular
//! expressions, paths.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::exec::FuncMap;
use crate::value::{Elem, Value};
use regex::Regex;

use super::{add, arg, error, last, str_arg, strslice, strval, to_i64, FuncResult};
use crate::format::go_quote;
use crate::value::{self, string, string_list};

pub(super) fn register(m: &mut FuncMap) {
    add(m, "upper", |a| Ok(string(str_arg(last(a)).to_uppercase())));
    add(m, "lower", |a| Ok(string(str_arg(last(a)).to_lowercase())));
    add(m, "title", |a| Ok(string(title(&str_arg(last(a))))));
    add(m, "untitle", |a| Ok(string(untitle(&str_arg(last(a))))));
    add(m, "swapcase", |a| Ok(string(swapcase(&str_arg(last(a))))));
    add(m, "trim", |a| Ok(string(str_arg(last(a)).trim())));
    add(m, "trimAll", |a| {
        let cutset: Vec<char> = str_arg(arg(a, 0)).chars().collect();
        Ok(string(str_arg(arg(a, 1)).trim_matches(&cutset[..])))
    });
    add(m, "trimPrefix", |a| {
        let (p, s) = (str_arg(arg(a, 0)), str_arg(arg(a, 1)));
        Ok(string(s.strip_prefix(p.as_str()).unwrap_or(&s)))
    });
    add(m, "trimSuffix", |a| {
        let (p, s) = (str_arg(arg(a, 0)), str_arg(arg(a, 1)));
        Ok(string(s.strip_suffix(p.as_str()).unwrap_or(&s)))
    });
    add(m, "trunc", |a| {
        Ok(string(trunc(to_i64(arg(a, 0)), &str_arg(arg(a, 1)))))
    });
    add(m, "substr", |a| {
        Ok(string(substr(
            to_i64(arg(a, 0)),
            to_i64(arg(a, 1)),
            &str_arg(arg(a, 2)),
        )))
    });
    add(m, "abbrev", |a| {
        let (width, s) = (to_i64(arg(a, 0)), str_arg(arg(a, 1)));
        let chars: Vec<char> = s.chars().collect();
        if width < 4 || chars.len() as i64 <= width {
            return Ok(string(s));
        }
        let keep: String = chars[..(width as usize - 3)].iter().collect();
        Ok(string(format!("{keep}...")))
    });
    add(m, "nospace", |a| {
        Ok(string(
            str_arg(last(a))
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
        ))
    });
    add(m, "repeat", |a| {
        let n = to_i64(arg(a, 0)).max(0) as usize;
        Ok(string(str_arg(arg(a, 1)).repeat(n)))
    });
    add(m, "contains", |a| {
        Ok(Value::Bool(
            str_arg(arg(a, 1)).contains(str_arg(arg(a, 0)).as_str()),
        ))
    });
    add(m, "hasPrefix", |a| {
        Ok(Value::Bool(
            str_arg(arg(a, 1)).starts_with(str_arg(arg(a, 0)).as_str()),
        ))
    });
    add(m, "hasSuffix", |a| {
        Ok(Value::Bool(
            str_arg(arg(a, 1)).ends_with(str_arg(arg(a, 0)).as_str()),
        ))
    });
    add(m, "replace", |a| {
        let (old, new, s) = (str_arg(arg(a, 0)), str_arg(arg(a, 1)), str_arg(arg(a, 2)));
        Ok(string(go_replace(&s, &old, &new)))
    });
    add(m, "quote", |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| go_quote(&strval(v)))
            .collect();
        Ok(string(parts.join(" ")))
    });
    add(m, "squote", |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| format!("'{}'", strval(v)))
            .collect();
        Ok(string(parts.join(" ")))
    });
    add(m, "cat", |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(strval)
            .collect();
        Ok(string(parts.join(" ")))
    });
    add(m, "indent", |a| {
        Ok(string(indent(to_i64(arg(a, 0)), &str_arg(arg(a, 1)))))
    });
    add(m, "nindent", |a| {
        Ok(string(format!(
            "\n{}",
            indent(to_i64(arg(a, 0)), &str_arg(arg(a, 1)))
        )))
    });
    add(m, "toString", |a| Ok(string(strval(last(a)))));
    add(m, "toStrings", |a| match last(a) {
        // Sprig's `strslice` returns a `[]string` argument itself.
        v @ Value::List(l) if l.elem() == Elem::String => Ok(v.clone()),
        v => Ok(string_list(strslice(v))),
    });
    add(m, "split", |a| {
        let (sep, s) = (str_arg(arg(a, 0)), str_arg(arg(a, 1)));
        Ok(numbered_parts(go_split(&s, &sep, -1)))
    });
    add(m, "splitn", |a| {
        let (sep, n, s) = (str_arg(arg(a, 0)), to_i64(arg(a, 1)), str_arg(arg(a, 2)));
        Ok(numbered_parts(go_split(&s, &sep, n)))
    });
    add(m, "splitList", |a| {
        let (sep, s) = (str_arg(arg(a, 0)), str_arg(arg(a, 1)));
        Ok(string_list(go_split(&s, &sep, -1)))
    });
    add(m, "join", |a| {
        let sep = str_arg(arg(a, 0));
        Ok(string(strslice(arg(a, 1)).join(&sep)))
    });
    add(m, "sortAlpha", |a| match last(a) {
        // A `[]string` is sorted in place: every reference to it sees the new order.
        v @ Value::List(l) if l.sort_strings() => Ok(v.clone()),
        v => {
            let mut items = strslice(v);
            items.sort();
            Ok(string_list(items))
        }
    });
    add(m, "plural", |a| {
        let n = to_i64(arg(a, 2));
        Ok(if n == 1 {
            arg(a, 0).clone()
        } else {
            arg(a, 1).clone()
        })
    });
    add(m, "snakecase", |a| {
        Ok(string(words_case(&str_arg(last(a)), '_')))
    });
    add(m, "kebabcase", |a| {
        Ok(string(words_case(&str_arg(last(a)), '-')))
    });
    add(m, "camelcase", |a| {
        let s = str_arg(last(a));
        let out: String = s
            .split(['_', '-', ' '])
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect();
        Ok(string(out))
    });
    add(m, "initials", |a| {
        Ok(string(
            str_arg(last(a))
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .collect::<String>(),
        ))
    });
    add(m, "wrap", |a| {
        Ok(string(wrap(to_i64(arg(a, 0)), &str_arg(arg(a, 1)), "\n")))
    });
    add(m, "wrapWith", |a| {
        Ok(string(wrap(
            to_i64(arg(a, 0)),
            &str_arg(arg(a, 2)),
            &str_arg(arg(a, 1)),
        )))
    });
    add(m, "shuffle", |a| Ok(string(str_arg(last(a)))));

    add(m, "regexMatch", |a| {
        Ok(Value::Bool(
            regex("regexMatch", &str_arg(arg(a, 0)))
                .map(|r| r.is_match(&str_arg(arg(a, 1))))
                .unwrap_or(false),
        ))
    });
    add(m, "mustRegexMatch", |a| {
        let r = regex("mustRegexMatch", &str_arg(arg(a, 0)))?;
        Ok(Value::Bool(r.is_match(&str_arg(arg(a, 1)))))
    });
    add(m, "regexFind", |a| {
        regex_find("regexFind", a).or_else(|_| Ok(string("")))
    });
    add(m, "mustRegexFind", |a| regex_find("mustRegexFind", a));
    add(m, "regexFindAll", |a| {
        regex_find_all("regexFindAll", a).or_else(|_| Ok(string_list([])))
    });
    add(m, "mustRegexFindAll", |a| {
        regex_find_all("mustRegexFindAll", a)
    });
    add(m, "regexReplaceAll", |a| {
        regex_replace("regexReplaceAll", a, false).or_else(|_| Ok(string(str_arg(arg(a, 1)))))
    });
    add(m, "mustRegexReplaceAll", |a| {
        regex_replace("mustRegexReplaceAll", a, false)
    });
    add(m, "regexReplaceAllLiteral", |a| {
        regex_replace("regexReplaceAllLiteral", a, true).or_else(|_| Ok(string(str_arg(arg(a, 1)))))
    });
    add(m, "mustRegexReplaceAllLiteral", |a| {
        regex_replace("mustRegexReplaceAllLiteral", a, true)
    });
    add(m, "regexSplit", |a| {
        let r = regex("regexSplit", &str_arg(arg(a, 0)))?;
        let s = str_arg(arg(a, 1));
        let n = to_i64(arg(a, 2));
        let parts: Vec<String> = if n < 0 {
            r.split(&s).map(str::to_owned).collect()
        } else {
            r.splitn(&s, n as usize).map(str::to_owned).collect()
        };
        Ok(string_list(parts))
    });
    add(m, "regexQuoteMeta", |a| {
        Ok(string(regex::escape(&str_arg(last(a)))))
    });

    add(m, "base", |a| Ok(string(path_base(&str_arg(last(a))))));
    add(m, "osBase", |a| Ok(string(path_base(&str_arg(last(a))))));
    add(m, "dir", |a| Ok(string(path_dir(&str_arg(last(a))))));
    add(m, "osDir", |a| Ok(string(path_dir(&str_arg(last(a))))));
    add(m, "ext", |a| {
        let base = path_base(&str_arg(last(a)));
        Ok(string(base.rfind('.').map(|i| &base[i..]).unwrap_or("")))
    });
    add(m, "clean", |a| Ok(string(path_clean(&str_arg(last(a))))));
    add(m, "isAbs", |a| {
        Ok(Value::Bool(str_arg(last(a)).starts_with('/')))
    });
    // Helm removes Sprig's `env` and `expandenv`: a chart using them does not parse.
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_';
    }
    out
}

fn untitle(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_space = true;
    for c in s.chars() {
        if prev_space {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_space = c.is_whitespace();
    }
    out
}

fn swapcase(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<String>()
            } else {
                c.to_uppercase().collect::<String>()
            }
        })
        .collect()
}

fn words_case(s: &str, sep: char) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c == ' ' || c == '-' || c == '_' {
            if !out.is_empty() && !out.ends_with(sep) {
                out.push(sep);
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(sep);
        }
        out.extend(c.to_lowercase());
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
    }
    out
}

/// Sprig's `trunc`: the first `n` bytes, or the last `-n` when negative.
fn trunc(n: i64, s: &str) -> String {
    let len = s.len() as i64;
    let cut = |i: i64| -> usize {
        let mut i = i.clamp(0, len) as usize;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    if n < 0 && len + n > 0 {
        return s[cut(len + n)..].to_string();
    }
    if n >= 0 && len > n {
        return s[..cut(n)].to_string();
    }
    s.to_string()
}

fn substr(start: i64, end: i64, s: &str) -> String {
    let len = s.len() as i64;
    let clamp = |i: i64| -> usize {
        let mut i = i.clamp(0, len) as usize;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    if start < 0 {
        return s[..clamp(end)].to_string();
    }
    if end < 0 || end > len {
        return s[clamp(start)..].to_string();
    }
    let (a, b) = (clamp(start), clamp(end));
    if a > b {
        return String::new();
    }
    s[a..b].to_string()
}

fn indent(n: i64, s: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// Go's `strings.Replace(s, old, new, -1)` (an empty `old` inserts between characters).
fn go_replace(s: &str, old: &str, new: &str) -> String {
    if !old.is_empty() {
        return s.replace(old, new);
    }
    let mut out = String::from(new);
    for c in s.chars() {
        out.push(c);
        out.push_str(new);
    }
    out
}

/// Go's `strings.SplitN` (`n < 0`: all parts; an empty separator splits into characters).
fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        return s.chars().map(String::from).collect();
    }
    if n < 0 {
        s.split(sep).map(String::from).collect()
    } else {
        s.splitn(n as usize, sep).map(String::from).collect()
    }
}

fn wrap(width: i64, s: &str, newline: &str) -> String {
    let width = width.max(1) as usize;
    let mut out = String::new();
    let mut line_len = 0;
    for word in s.split(' ') {
        if line_len > 0 && line_len + 1 + word.len() > width {
            out.push_str(newline);
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Compile (once per pattern) a Go RE2 pattern; Rust's `regex` accepts the same syntax.
fn regex(name: &str, pattern: &str) -> Result<Regex, String> {
    if let Some(r) = REGEX_CACHE.with(|c| c.borrow().get(pattern).cloned()) {
        return Ok(r);
    }
    let r = Regex::new(pattern).map_err(|e| error(name, e))?;
    REGEX_CACHE.with(|c| c.borrow_mut().insert(pattern.to_string(), r.clone()));
    Ok(r)
}

fn regex_find(name: &str, a: &[Value]) -> FuncResult {
    let r = regex(name, &str_arg(arg(a, 0)))?;
    let s = str_arg(arg(a, 1));
    Ok(string(r.find(&s).map(|m| m.as_str()).unwrap_or("")))
}

fn regex_find_all(name: &str, a: &[Value]) -> FuncResult {
    let r = regex(name, &str_arg(arg(a, 0)))?;
    let s = str_arg(arg(a, 1));
    let n = to_i64(arg(a, 2));
    let found = r.find_iter(&s).map(|m| m.as_str().to_owned());
    Ok(string_list(if n < 0 {
        found.collect::<Vec<_>>()
    } else {
        found.take(n as usize).collect::<Vec<_>>()
    }))
}

fn regex_replace(name: &str, a: &[Value], literal: bool) -> FuncResult {
    let r = regex(name, &str_arg(arg(a, 0)))?;
    let (s, repl) = (str_arg(arg(a, 1)), str_arg(arg(a, 2)));
    Ok(string(if literal {
        r.replace_all(&s, regex::NoExpand(&repl)).into_owned()
    } else {
        r.replace_all(&s, repl.as_str()).into_owned()
    }))
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn path_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => path_clean(&p[..=i]),
        None => ".".into(),
    }
}

/// Go's `path.Clean`.
fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Sprig's `split`/`splitn` result: a dict `{_0: first, _1: second, ...}`.
fn numbered_parts(parts: Vec<String>) -> Value {
    value::map(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}").into(), string(p)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[Value]) -> String {
        let m = {
            let mut m = FuncMap::new();
            register(&mut m);
            m
        };
        let f = m.get(name).unwrap();
        crate::format::go_string(&f(args).unwrap())
    }

    fn s(v: &str) -> Value {
        string(v)
    }

    #[test]
    fn sprig_strings() {
        assert_eq!(call("trunc", &[Value::Int(5), s("abcdefg")]), "abcde");
        assert_eq!(call("trunc", &[Value::Int(-3), s("abcdefg")]), "efg");
        assert_eq!(call("trimSuffix", &[s("-"), s("a-b-")]), "a-b");
        assert_eq!(
            call("quote", &[s("a\"b"), Value::Nil, Value::Int(1)]),
            "\"a\\\"b\" \"1\""
        );
        assert_eq!(call("indent", &[Value::Int(2), s("a\nb")]), "  a\n  b");
        assert_eq!(call("nindent", &[Value::Int(2), s("a")]), "\n  a");
        assert_eq!(call("title", &[s("hello world-x")]), "Hello World-X");
        assert_eq!(call("splitList", &[s(","), s("a,b")]), "[a b]");
        assert_eq!(call("split", &[s(","), s("a,b")]), "map[_0:a _1:b]");
        assert_eq!(
            call("substr", &[Value::Int(1), Value::Int(3), s("abcd")]),
            "bc"
        );
        assert_eq!(call("snakecase", &[s("FooBar baz")]), "foo_bar_baz");
        assert_eq!(call("toString", &[Value::Float(1.0)]), "1");
        assert_eq!(call("replace", &[s("."), s("-"), s("a.b")]), "a-b");
    }

    #[test]
    fn sprig_regexes() {
        assert_eq!(call("regexMatch", &[s("^v[0-9]+"), s("v12")]), "true");
        assert_eq!(call("regexFind", &[s("[0-9]+"), s("ab12cd34")]), "12");
        assert_eq!(
            call(
                "regexReplaceAll",
                &[s("a(x*)b"), s("-ab-axxb-"), s("${1}W")]
            ),
            "-W-xxW-"
        );
        assert_eq!(
            call("regexReplaceAllLiteral", &[s("a"), s("aa"), s("$1")]),
            "$1$1"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(path_base("a/b.txt"), "b.txt");
        assert_eq!(path_dir("a/b/c"), "a/b");
        assert_eq!(path_clean("a//b/../c/"), "a/c");
    }
}

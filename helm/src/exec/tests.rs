//! Template execution tests: Go text/template semantics as Helm configures them.

use super::*;
use crate::value::{as_dict, from_yaml};
use crate::yaml::parse_document;
use gotmpl::parse::Parser;

fn parse(
    name: &str,
    text: &str,
) -> std::result::Result<(ListNode, Vec<(String, ListNode)>), String> {
    let (tree, defines) = Parser::with_name(Some(name), text, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(|e| e.to_string())?;
    Ok((
        tree,
        defines
            .into_iter()
            .map(|d| (d.name.to_string(), d.body))
            .collect(),
    ))
}

fn no_methods(_: &str, _: &Value, _: &[Value]) -> Option<std::result::Result<Value, String>> {
    None
}

/// Run `text` with `data` (YAML) as dot; the output or the error's text.
fn run_with(text: &str, data: &Value) -> std::result::Result<String, String> {
    let (tree, defines) = parse("t", text)?;
    let mut ns = Namespace::new();
    for (name, body) in defines {
        ns.insert(
            name,
            Named {
                body: Arc::new(body),
                file: Arc::from("t"),
            },
        );
    }
    ns.insert(
        "t".into(),
        Named {
            body: Arc::new(tree),
            file: Arc::from("t"),
        },
    );
    let mut funcs = FuncMap::new();
    funcs.insert("set".into(), |a| {
        if let (Some(d), Some(Value::String(k))) = (a.first().and_then(as_dict), a.get(1)) {
            d.insert(k.clone(), a.get(2).cloned().unwrap_or(Value::Nil));
        }
        Ok(a[0].clone())
    });
    let mut exec = Exec::new(Arc::new(ns), &funcs, no_methods, parse);
    exec.execute("t", data.clone()).map_err(|e| e.to_string())
}

fn run(text: &str, data: &str) -> std::result::Result<String, String> {
    run_with(text, &from_yaml(&parse_document(data).unwrap()))
}

#[test]
fn nil_interfaces_refuse_fields_and_no_value_does_not() {
    let err = run("a\n{{ .g.x }}", "{}").unwrap_err();
    assert_eq!(err, "t:2: at <.g.x>: nil pointer evaluating interface {}.x");
    assert!(run("{{ range .l }}{{ .x }}{{ end }}", "l: [null]")
        .unwrap_err()
        .contains("nil pointer evaluating interface {}.x"));
    assert!(run("{{ range $e := .l }}{{ $e.x }}{{ end }}", "l: [null]").is_err());
    assert_eq!(
        run("[{{ $g := .g }}{{ $g.x }}][{{ (.g).x }}][{{ template \"d\" .g }}]{{ define \"d\" }}{{ .x }}{{ end }}", "{}"),
        Ok("[<no value>][<no value>][<no value>]".into())
    );
    assert_eq!(
        run("{{ .s.x }}", "s: text").unwrap_err(),
        "t:1: at <.s.x>: can't evaluate field x in type interface {}"
    );
}

#[test]
fn and_or_stop_at_the_deciding_argument() {
    assert_eq!(
        run(
            "{{ and .g .g.x }}|{{ or 1 .g.x }}|{{ and 1 2 }}|{{ or 0 \"\" }}",
            "{}"
        ),
        Ok("<no value>|1|2|".into())
    );
}

#[test]
fn comparisons_and_index_follow_go() {
    assert_eq!(run("{{ eq 1 1 }} {{ eq \"a\" \"b\" \"a\" }} {{ eq .missing \"x\" }} {{ lt 1 2 }} {{ ne 2 2 }}", "{}"), Ok("true true false true false".into()));
    assert!(run("{{ eq .num 1 }}", "num: 1")
        .unwrap_err()
        .contains("incompatible types for comparison: float64 and int"));
    assert!(run("{{ lt \"a\" 1 }}", "{}")
        .unwrap_err()
        .contains("incompatible types for comparison"));
    assert_eq!(
        run(
            "{{ index .m \"a\" 1 }} {{ index \"ab\" 1 }}",
            "m: {a: [p, q]}"
        ),
        Ok("q 98".into())
    );
    assert!(run("{{ index .m \"z\" \"y\" }}", "m: {}")
        .unwrap_err()
        .contains("index of nil pointer"));
    assert!(run("{{ index .none \"y\" }}", "{}")
        .unwrap_err()
        .contains("index of untyped nil"));
}

#[test]
fn range_binds_per_iteration_and_variables_are_block_scoped() {
    assert_eq!(
        run("{{ range $i, $e := .l }}{{ $i }}{{ $e }}{{ end }} {{ range $k, $v := .m }}{{ $k }}{{ $v }}{{ end }} {{ range 3 }}{{ . }}{{ end }}", "l: [a, b]\nm: {b: 2, a: 1}"),
        Ok("0a1b a1b2 012".into())
    );
    assert_eq!(
        run("{{ range .l }}{{ if eq . 2.0 }}{{ continue }}{{ end }}{{ if eq . 4.0 }}{{ break }}{{ end }}{{ . }}{{ end }}", "l: [1, 2, 3, 4, 5]"),
        Ok("13".into())
    );
    assert_eq!(
        run("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}{{ range .l }}{{ $x = . }}{{ end }}{{ $x }}", "l: [a]"),
        Ok("2a".into())
    );
    assert!(run("{{ if true }}{{ $y := 3 }}{{ end }}{{ $y }}", "{}").is_err());
    assert_eq!(
        run("{{ range .none }}x{{ else }}empty{{ end }}", "{}"),
        Ok("empty".into())
    );
    assert!(run("{{ range .s }}{{ end }}", "s: text")
        .unwrap_err()
        .contains("range can't iterate over text"));
}

#[test]
fn templates_share_the_maps_they_are_given() {
    let data = from_yaml(&parse_document("v: {}").unwrap());
    let out = run_with(
        "{{ define \"s\" }}{{ $_ := set . \"k\" \"from-template\" }}{{ end }}{{ template \"s\" .v }}{{ .v.k }} {{ $_ := include \"s2\" . }}{{ .j }}{{ define \"s2\" }}{{ $_ := set . \"j\" \"from-include\" }}{{ end }}",
        &data,
    );
    assert_eq!(out, Ok("from-template from-include".into()));
    // The caller's data itself changed.
    assert_eq!(data.field("j"), Some(value::string("from-include")));
}

#[test]
fn printf_prints_floats_as_go_does() {
    assert_eq!(
        run(
            "{{ printf \"%v|%d|%5.1f|%s|%v\" .big 3 .f \"s\" .l }}",
            "big: 1000000\nf: 2.25\nl: [0.5, 1e7]"
        ),
        Ok("1e+06|3|  2.2|s|[0.5 1e+07]".into())
    );
}

#[test]
fn errors_name_what_go_names() {
    assert_eq!(
        run("{{ nope }}", "{}").unwrap_err(),
        "t:1: function \"nope\" not defined"
    );
    assert!(run("{{ 1 2 }}", "{}")
        .unwrap_err()
        .contains("can't give argument to non-function 1"));
    assert!(run("{{ template \"missing\" }}", "{}")
        .unwrap_err()
        .contains("no template \"missing\""));
    // Runaway recursion stops at Helm's limit (on a stack as deep as the renderer's).
    let err = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(|| {
            run(
                "{{ include \"r\" . }}{{ define \"r\" }}{{ include \"r\" . }}{{ end }}",
                "{}",
            )
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap_err();
    assert!(err.contains("nested reference name: r"), "{err}");
}

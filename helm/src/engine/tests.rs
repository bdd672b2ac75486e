//! Renderer tests: one `check` helper renders a one-template chart and compares the output.

use std::collections::BTreeMap;

use crate::chart::{Chart, Metadata};
use crate::yaml::{parse_document, Yaml};
use crate::{render_chart, ChartError};

fn chart(values: &str, templates: &[(&str, &str)], files: &[(&str, &str)]) -> Chart {
    Chart {
        metadata: Metadata {
            api_version: "v2".into(),
            name: "t".into(),
            version: "0.1.0".into(),
            app_version: "1.2.3".into(),
            ..Metadata::default()
        },
        values: if values.is_empty() {
            Yaml::Null
        } else {
            parse_document(values).unwrap()
        },
        templates: templates
            .iter()
            .map(|(n, t)| (format!("templates/{n}"), t.to_string()))
            .collect(),
        files: files
            .iter()
            .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
            .collect::<BTreeMap<_, _>>(),
        dependencies: vec![],
    }
}

fn render(values: &str, template: &str) -> Result<String, ChartError> {
    let c = chart(
        values,
        &[("x.yaml", template)],
        &[("files/a.txt", "l1\nl2\n")],
    );
    render_chart(&c, &[]).map(|r| r.files[0].text.clone())
}

fn check(values: &str, template: &str, expected: &str) {
    match render(values, template) {
        Ok(out) => assert_eq!(out, expected, "template: {template}"),
        Err(e) => panic!("template {template}: {e}"),
    }
}

#[test]
fn builtin_objects() {
    check(
        "",
        "{{ .Release.Name }} {{ .Release.Namespace }} {{ .Chart.Name }} {{ .Chart.AppVersion }} {{ .Template.Name }} {{ .Template.BasePath }}",
        "release default t 1.2.3 t/templates/x.yaml t/templates",
    );
    check(
        "",
        "{{ .Capabilities.APIVersions.Has \"policy/v1\" }} {{ .Capabilities.APIVersions.Has \"apps/v1/Deployment\" }} {{ .Capabilities.KubeVersion.Version }}",
        "true false v1.35.0",
    );
    check(
        "",
        "{{ .Files.Get \"files/a.txt\" | trim }}|{{ range .Files.Lines \"files/a.txt\" }}[{{ . }}]{{ end }}|{{ (.Files.Glob \"files/*\").AsConfig }}",
        "l1\nl2|[l1][l2]|a.txt: |\n  l1\n  l2",
    );
}

#[test]
fn values_print_like_go() {
    check(
        "a: 1\nb: 1.5\nbig: 12345678901\nn: null\n",
        "{{ .Values.a }} {{ .Values.b }} {{ .Values.big }} [{{ .Values.n }}] [{{ .Values.missing }}] {{ typeOf .Values.a }}",
        "1 1.5 1.2345678901e+10 [] [] float64",
    );
}

#[test]
fn include_tpl_and_defines() {
    check(
        "name: world\ntext: 'hi {{ .Values.name }}'\n",
        "{{- define \"greet\" }}hello {{ . }}{{ end -}}\n{{ include \"greet\" .Values.name | upper }} {{ tpl .Values.text . }} {{ tpl \"{{ define \\\"x\\\" }}X{{ end }}{{ include \\\"x\\\" . }}\" . }}",
        "HELLO WORLD hi world X",
    );
}

#[test]
fn set_changes_the_map_every_reference_sees() {
    check(
        "",
        "{{- $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" 2 }}{{ $d.b }} {{ $_ := unset $d \"a\" }}{{ hasKey $d \"a\" }}",
        "2 false",
    );
    check(
        "cfg: {}\n",
        "{{- $_ := set .Values.cfg \"k\" \"v\" }}{{ .Values.cfg.k }} {{ $c := .Values.cfg }}{{ $_ := set $c \"inner\" dict }}{{ $_ := set $c.inner \"x\" 1 }}{{ .Values.cfg.inner.x }}",
        "v 1",
    );
    check(
        "",
        "{{- define \"f\" }}{{ $_ := set . \"y\" 2 }}{{ .y }}{{ end }}{{ include \"f\" (dict \"x\" 1) }}",
        "2",
    );
    // A helper's `set` on its dot is the caller's map: through `template`, `include`, `tpl`.
    check(
        "",
        "{{- define \"m\" }}{{ $_ := set . \"mode\" \"a\" }}{{ end }}{{ template \"m\" . }}{{ .mode }} {{ $d := dict }}{{ $_ := include \"m\" $d }}{{ $d.mode }} {{ $_ := tpl \"{{ $_ := set .Values \\\"t\\\" 1 }}\" . }}{{ .Values.t }}",
        "a a 1",
    );
    // A map inside a list is shared too; deepCopy is not.
    check(
        "l: [{a: 1}]\n",
        "{{- $c := deepCopy .Values }}{{ $_ := set (index .Values.l 0) \"b\" 2 }}{{ (index .Values.l 0).b }} {{ (index $c.l 0).b }}",
        "2 ",
    );
}

#[test]
fn errors_name_the_template_and_line() {
    let err = render(
        "",
        "{{- define \"req\" }}\n{{ required \"x is required!\" .Values.x }}{{ end }}\nline2\n{{ include \"req\" . }}",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("chart t: t/templates/x.yaml:4: "),
        "{text}"
    );
    assert!(
        text.contains("t/templates/x.yaml:2: x is required!"),
        "{text}"
    );

    let err = render("", "a\n{{ .Values.x | nope }}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.yaml:2") && err.contains("nope"), "{err}");
    let err = render("", "{{ if }}").unwrap_err().to_string();
    assert!(err.contains("t/templates/x.yaml"), "{err}");
}

#[test]
fn subcharts_get_their_values_and_globals() {
    let mut sub = chart(
        "image: sub-default\nglobal: {registry: sub}\n",
        &[(
            "s.yaml",
            "{{ .Values.image }} {{ .Values.global.registry }} {{ .Chart.Name }}",
        )],
        &[],
    );
    sub.metadata.name = "sub".into();
    let mut lib = chart(
        "",
        &[
            ("_h.tpl", "{{ define \"lib.x\" }}from-lib{{ end }}"),
            ("ignored.yaml", "{{ fail \"no\" }}"),
        ],
        &[],
    );
    lib.metadata.name = "lib".into();
    lib.metadata.chart_type = "library".into();
    let mut off = chart("", &[("o.yaml", "{{ fail \"disabled\" }}")], &[]);
    off.metadata.name = "unused".into();
    let mut top = chart(
        "sub: {image: from-parent}\nglobal: {registry: parent}\nunused: {enabled: false}\n",
        &[("t.yaml", "{{ include \"lib.x\" . }}")],
        &[],
    );
    top.metadata.dependencies = vec![crate::chart::Dependency {
        name: "unused".into(),
        condition: "unused.enabled".into(),
        ..Default::default()
    }];
    top.dependencies = vec![sub, lib, off];
    let rendered = render_chart(&top, &[]).unwrap();
    let texts: Vec<(&str, &str)> = rendered
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("t/charts/sub/templates/s.yaml", "from-parent parent sub"),
            ("t/templates/t.yaml", "from-lib"),
        ]
    );
}

#[test]
fn a_left_trimmed_comment_trims_only_before_it() {
    check("", "a\n  {{- /* c\n c */}}\n  b", "a\n  b");
    check("", "a\n  {{- /* c */ -}}\n  b", "ab");
    check("", "a\n  {{/* c */ -}}\n  b", "a\n  b");
}

#[test]
fn runaway_recursion_is_an_error_not_a_crash() {
    let err = render(
        "",
        "{{ define \"r\" }}{{ include \"r\" . }}{{ end }}{{ include \"r\" . }}",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nested reference name: r"), "{err}");
    assert!(err.len() < 2000, "{err}");
}

#[test]
fn helm_object_methods_and_numbers() {
    check(
        "port: 8080\nratio: 0.5\nbig: 1000000\n",
        "{{ .Values.port }} {{ .Values.ratio }} {{ .Values.big }} {{ int .Values.big }} {{ printf \"%d\" (int .Values.port) }} {{ toYaml .Values }}",
        "8080 0.5 1e+06 1000000 8080 big: 1000000\nport: 8080\nratio: 0.5",
    );
}

#[test]
fn field_access_on_nil_is_an_error_with_the_line() {
    let err = render("", "a\n{{ .Values.global.x }}")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t/templates/x.yaml:2:")
            && err.contains("<.Values.global.x>")
            && err.contains("nil pointer evaluating interface {}.x"),
        "{err}"
    );
    let err = render("l: [null]\n", "{{ range .Values.l }}{{ .x }}{{ end }}")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nil pointer evaluating interface {}.x"),
        "{err}"
    );
    // "No value" is not a nil interface: a variable, a parenthesised pipeline, a nil dot.
    check(
        "",
        "{{ $g := .Values.global }}[{{ $g.x }}][{{ (.Values.global).x }}]{{ define \"d\" }}[{{ .x }}]{{ end }}{{ include \"d\" .Values.global }}",
        "[][][]",
    );
    // and/or stop at the first deciding argument.
    check("", "[{{ and .Values.global .Values.global.x }}]", "[]");
}

#[test]
fn one_top_level_object_per_chart_shared_in_render_order() {
    // Helm renders `zz-defaults.yaml` before `a.yaml` (reverse lexical order at one depth).
    let c = chart(
        "_defaults: {mode: standalone, image: app}\nimage: mine\n",
        &[
            ("a.yaml", "{{ .Values.mode }} {{ .Values.image }} {{ hasKey .Values \"_defaults\" }}"),
            (
                "zz-defaults.yaml",
                "{{- $d := $.Values._defaults }}{{ $_ := unset $.Values \"_defaults\" }}{{ $_ := set $ \"Values\" (mustMergeOverwrite $d $.Values) }}",
            ),
        ],
        &[],
    );
    let rendered = render_chart(&c, &[]).unwrap();
    let texts: Vec<(&str, &str)> = rendered
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("t/templates/zz-defaults.yaml", ""),
            ("t/templates/a.yaml", "standalone mine false"),
        ]
    );
}

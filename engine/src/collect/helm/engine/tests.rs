//! Renderer tests: one `check` helper renders a one-template chart and compares the output.

use std::collections::BTreeMap;

use crate::collect::helm::chart::{Chart, Metadata};
use crate::collect::helm::{render_chart, ChartError};
use crate::collect::yaml::{parse_document, Yaml};

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
fn set_updates_the_variable_or_dot_it_names() {
    check(
        "",
        "{{- $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" 2 }}{{ $d.b }} {{ $_ := unset $d \"a\" }}{{ hasKey $d \"a\" }}",
        "2 false",
    );
    check(
        "cfg: {}\n",
        "{{- $_ := set .Values.cfg \"k\" \"v\" }}{{ .Values.cfg.k }} {{ $c := .Values.cfg }}{{ $_ := set $c.inner \"x\" 1 }}{{ $c.inner.x }}",
        "v 1",
    );
    check(
        "",
        "{{- define \"f\" }}{{ $_ := set . \"y\" 2 }}{{ .y }}{{ end }}{{ include \"f\" (dict \"x\" 1) }}",
        "2",
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
    top.metadata.dependencies = vec![crate::collect::helm::chart::Dependency {
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

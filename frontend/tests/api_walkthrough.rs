//! A guided tour of the frontend's public API, in the order a build uses it.

use seal_frontend::ast::{Args, Keyword};
use seal_frontend::diagnostic::{line_col, render};
use seal_frontend::expand::{expand_word, expand_words, parse_env};
use seal_frontend::lexer::heredoc_marker;
use seal_frontend::{check, parse, parse_checked};

#[test]
fn api_walkthrough() {
    // 1. Parsing never fails: it returns the tree and the syntax errors it found.
    let source = b"ARG ARCH=amd64\nFROM scratch\nCOPY ${ARCH}/bin <<EOF bin\n#!/bin/sh\nEOF\nENV A=1 B=\"x y\"\n";
    let parsed = parse(source);
    assert!(parsed.errors.is_empty());
    let kubefile = &parsed.kubefile;
    assert_eq!(kubefile.escape, '\\');

    // 2. Structural checks are separate; `parse_checked` runs both, stopping after syntax errors.
    assert!(check(kubefile).is_empty());
    assert!(parse_checked(source).errors.is_empty());

    // 3. Every node has a byte span into the original source.
    let copy = &kubefile.instructions[2];
    assert_eq!(copy.keyword, Keyword::Copy);
    let span = copy.keyword_span;
    assert_eq!(&source[span.start..span.end], b"COPY");
    assert_eq!(line_col(source, span.start), (3, 1));

    // 4. Shell-form arguments come as raw text plus raw words (quotes and `$` kept); the i-th
    //    word that is a heredoc marker owns `heredocs[i]`.
    let Args::Shell { text, .. } = &copy.args else {
        panic!("COPY is in shell form here");
    };
    assert_eq!(text, "${ARCH}/bin <<EOF bin");
    let markers: Vec<_> = copy
        .words
        .iter()
        .filter_map(|word| heredoc_marker(&word.text, kubefile.escape))
        .collect();
    assert_eq!(markers.len(), copy.heredocs.len());
    assert_eq!(copy.heredocs[0].content, "#!/bin/sh\n");

    // 5. Expansion is Docker's word processing with a caller-provided lookup.
    let lookup = |name: &str| (name == "ARCH").then(|| "arm64".to_string());
    assert_eq!(
        expand_word(&copy.words[0].text, '\\', &lookup).as_deref(),
        Ok("arm64/bin")
    );
    assert_eq!(
        expand_words("a \"b c\"", '\\', &lookup),
        Ok(vec!["a".into(), "b c".into()])
    );
    let Args::Shell { text: env, .. } = &kubefile.instructions[3].args else {
        panic!("ENV is in shell form");
    };
    assert_eq!(
        parse_env(env, '\\', &lookup),
        Ok(vec![("A".into(), "1".into()), ("B".into(), "x y".into())])
    );

    // 6. Errors render like rustc's, without colours.
    let broken = b"FROM scratch\nCPOY a b\n";
    let parsed = parse(broken);
    let text = render(&parsed.errors[0], "Kubefile", broken);
    assert!(text.starts_with("error: unknown instruction `CPOY`\n --> Kubefile:2:1\n"));
    assert!(text.ends_with("= help: did you mean `COPY`?\n"));
}

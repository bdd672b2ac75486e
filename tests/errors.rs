//! Bad input: every bad Kubefile is a rustc-style diagnostic at the right `Kubefile:L:C`, exit 1,
//! nothing written to the store; every bad command line is exit 2. KUBEFILE.md "Instructions",
//! "COPY semantics".

mod common;

use common::{Ctx, Out, Seal};

/// Build `kubefile` in a context holding `files`; expect a diagnostic at `at` ("L:C") whose text
/// contains `message`.
#[track_caller]
fn check(kubefile: &[u8], files: &[(&str, &str)], at: &str, message: &str) {
    let ctx = Ctx::new();
    for (path, contents) in files {
        ctx.file(path, contents);
    }
    check_ctx(&ctx, kubefile, at, message);
}

/// [`check`] with a context prepared by the caller.
#[track_caller]
fn check_ctx(ctx: &Ctx, kubefile: &[u8], at: &str, message: &str) {
    ctx.file("Kubefile", kubefile);
    let seal = Seal::new();
    let out = seal.build(ctx.path(), "demo:v1", &[]);
    let shown = String::from_utf8_lossy(kubefile);
    assert_eq!(
        out.code, 1,
        "exit code for\n{shown}\nstderr:\n{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "no digest on failure: {}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        !seal.root().exists(),
        "a failed build must not create the store:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(message),
        "expected `{message}` in:\n{}",
        out.stderr
    );
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(" --> Kubefile:{at}\n")),
        "expected Kubefile:{at} in:\n{}",
        out.stderr
    );
    assert_caret(&out, kubefile, at);
}

/// The source line is quoted under its number and the caret sits under column C.
#[track_caller]
fn assert_caret(out: &Out, kubefile: &[u8], at: &str) {
    let (line, col) = at.split_once(':').unwrap();
    let col: usize = col.parse().unwrap();
    let lines: Vec<&str> = out.stderr.lines().collect();
    let quoted = lines
        .iter()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(line)
                .is_some_and(|rest| rest == " |" || rest.starts_with(" | "))
        })
        .unwrap_or_else(|| panic!("line {line} is not quoted in:\n{}", out.stderr));
    let caret_line = lines[quoted + 1];
    let bar = lines[quoted].find('|').unwrap();
    assert_eq!(
        caret_line.find('|'),
        Some(bar),
        "gutters do not line up:\n{}",
        out.stderr
    );
    let caret = caret_line
        .chars()
        .position(|c| c == '^')
        .unwrap_or_else(|| panic!("no caret line in:\n{}", out.stderr));
    assert_eq!(
        caret,
        bar + 2 + col - 1,
        "caret not under column {col}:\n{}",
        out.stderr
    );

    // For plain text, the quoted line is the Kubefile's line, verbatim.
    if let Ok(text) = std::str::from_utf8(kubefile) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if !text.chars().any(|c| c.is_control() && c != '\n') {
            let want = text
                .lines()
                .nth(line.parse::<usize>().unwrap() - 1)
                .unwrap_or("");
            let got = lines[quoted].get(bar + 2..).unwrap_or("");
            assert_eq!(got, want, "quoted line:\n{}", out.stderr);
        }
    }
}

#[test]
fn empty_kubefile() {
    check(b"", &[], "1:1", "the Kubefile is empty");
    check(
        b"# only a comment\n\n   \n",
        &[],
        "1:1",
        "the Kubefile is empty",
    );
    check("\u{feff}".as_bytes(), &[], "1:1", "the Kubefile is empty");
}

#[test]
fn no_from() {
    check(b"ARG A=1\n", &[], "1:1", "no FROM instruction");
}

#[test]
fn instruction_before_from() {
    check(
        b"COPY a b\nFROM scratch\n",
        &[("a", "a")],
        "1:1",
        "`COPY` before the first FROM",
    );
}

#[test]
fn unknown_instruction_suggests_the_nearest() {
    check(
        b"FROM scratch\nCPOY a b\n",
        &[("a", "a")],
        "2:1",
        "unknown instruction `CPOY`",
    );
    check(
        b"FROM scratch\nCPOY a b\n",
        &[("a", "a")],
        "2:1",
        "did you mean `COPY`?",
    );
}

#[test]
fn copy_without_destination() {
    check(
        b"FROM scratch\nCOPY a\n",
        &[("a", "a")],
        "2:6",
        "COPY needs a source and a destination",
    );
}

#[test]
fn source_leaving_the_context() {
    check(
        b"FROM scratch\nCOPY ../x y\n",
        &[],
        "2:6",
        "`../x` is outside the build context",
    );
    check(
        b"FROM scratch\nCOPY a/../../x y\n",
        &[("a/f", "f")],
        "2:6",
        "outside the build context",
    );
}

#[test]
fn absolute_source() {
    check(
        b"FROM scratch\nCOPY /etc/passwd y\n",
        &[],
        "2:6",
        "`/etc/passwd` is an absolute path",
    );
}

#[test]
fn symlink_pointing_outside_the_context() {
    let ctx = Ctx::new();
    ctx.symlink("leak", "/etc/passwd");
    check_ctx(
        &ctx,
        b"FROM scratch\nCOPY leak x\n",
        "2:6",
        "`leak` is outside the build context",
    );

    let ctx = Ctx::new();
    ctx.symlink("sub/leak", "../../../../../../../etc/passwd");
    check_ctx(
        &ctx,
        b"FROM scratch\nCOPY sub/leak x\n",
        "2:6",
        "outside the build context",
    );
}

#[test]
fn glob_without_match() {
    check(
        b"FROM scratch\nCOPY *.nomatch x\n",
        &[("a.yaml", "a")],
        "2:6",
        "`*.nomatch` matches no file",
    );
}

#[test]
fn missing_source() {
    check(
        b"FROM scratch\nCOPY a missing x\n",
        &[("a", "a")],
        "2:8",
        "`missing` not found in the build context",
    );
}

#[test]
fn source_excluded_by_the_ignore_file() {
    check(
        b"FROM scratch\nCOPY a x\n",
        &[("a", "a"), (".dockerignore", "a\n")],
        "2:6",
        "excluded by the ignore file",
    );
}

#[test]
fn unterminated_json_array() {
    check(
        b"FROM scratch\nCOPY [\"a\", \"b\"\n",
        &[("a", "a")],
        "2:6",
        "unterminated JSON array",
    );
}

#[test]
fn unterminated_heredoc() {
    check(
        b"FROM scratch\nCOPY <<EOF x\nhello\n",
        &[],
        "2:6",
        "unterminated heredoc",
    );
}

#[test]
fn continuation_at_end_of_file() {
    check(
        b"FROM scratch\nCOPY a b \\\n",
        &[("a", "a")],
        "2:10",
        "unterminated continuation",
    );
}

#[test]
fn bad_arg_name() {
    check(
        b"FROM scratch\nARG 1abc\n",
        &[],
        "2:5",
        "invalid ARG name `1abc`",
    );
}

#[test]
fn unknown_copy_flag() {
    check(
        b"FROM scratch\nCOPY --chmood=1 a b\n",
        &[("a", "a")],
        "2:6",
        "unknown flag `--chmood` for COPY",
    );
    check(
        b"FROM scratch\nCOPY --chmood=1 a b\n",
        &[("a", "a")],
        "2:6",
        "did you mean --chmod?",
    );
}

#[test]
fn bad_copy_flag_values() {
    check(
        b"FROM scratch\nCOPY --chmod=999 a b\n",
        &[("a", "a")],
        "2:6",
        "--chmod=999",
    );
    check(
        b"FROM scratch\nCOPY --chown=bob a b\n",
        &[("a", "a")],
        "2:6",
        "--chown=bob",
    );
}

#[test]
fn required_variable_not_set() {
    check(
        b"FROM scratch\nCOPY a ${X:?}\n",
        &[("a", "a")],
        "2:8",
        "variable `X` is required",
    );
}

#[test]
fn base_image_not_in_the_store() {
    check(
        b"FROM nosuch:1\nCOPY a x\n",
        &[("a", "a")],
        "1:6",
        "not in the local store",
    );
}

#[test]
fn binary_garbage() {
    check(
        b"\x00\x89PNG\r\n\x1a\n\xff\xfe\x00\x01",
        &[],
        "1:1",
        "this is not a text Kubefile",
    );
    check(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        &[],
        "1:1",
        "this is not a text Kubefile",
    );
    check(
        b"FROM scratch\n\x00\xff\xfe\x01garbage\x00\n",
        &[],
        "2:1",
        "this is not a text Kubefile",
    );

    // Random bytes with NULs: always a diagnostic, never a panic, nothing written.
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..20 {
        let len = 1 + rng.below(300);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let nul = rng.below(len);
        bytes[nul] = 0;
        let ctx = Ctx::new();
        ctx.file("Kubefile", &bytes);
        let seal = Seal::new();
        let out = seal.build(ctx.path(), "demo:v1", &[]);
        assert_eq!(out.code, 1, "{bytes:?}\n{}", out.stderr);
        assert!(
            out.stderr.contains("not a text Kubefile") && out.stderr.contains(" --> Kubefile:"),
            "{bytes:?}\n{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("panicked"),
            "{bytes:?}\n{}",
            out.stderr
        );
        assert!(!seal.root().exists());
    }
}

/// Regression: a malformed `${` in an expanding heredoc used to be copied verbatim, silently.
#[test]
fn bad_variable_in_a_heredoc_is_an_error() {
    for keyword in ["COPY", "ADD"] {
        let kubefile = format!("FROM scratch\n{keyword} <<EOF etc\nvalue ${{X\nEOF\n");
        check(
            kubefile.as_bytes(),
            &[],
            &format!("2:{}", keyword.len() + 2),
            "in heredoc `EOF`",
        );
    }
    // A quoted delimiter means no expansion: the same text is fine.
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY <<'EOF' etc\nvalue ${X\nEOF\n");
    Seal::new().build_ok(ctx.path(), "demo:v1", &[]);
}

#[test]
fn unsupported_instructions() {
    for (kubefile, at) in [
        (
            "FROM scratch\nRUN --mount=type=cache,target=/x echo hi\n",
            "2:1",
        ),
        ("FROM scratch\nAPP app https://example.com/a.yaml\n", "2:9"),
    ] {
        check(kubefile.as_bytes(), &[("a", "a")], at, "not supported yet");
    }
}

/// Kubefile-ish token soup: whatever the parser is fed, it answers with a diagnostic or an
/// image, never a panic; a failure writes nothing. (RUN is left out: random shell text would
/// run on this machine, and a RUN that fails at run time has legitimately opened the store.)
#[test]
fn token_soup_never_panics() {
    const KEYWORDS: &[&str] = &[
        "FROM",
        "from",
        "COPY",
        "ARG",
        "ENV",
        "CMD",
        "LABEL",
        "CMDS",
        "MAINTAINER",
        "CPOY",
        "#",
    ];
    const TOKENS: &[&str] = &[
        " ",
        " ",
        " ",
        "scratch",
        "\\\n",
        "\\",
        "[",
        "]",
        "[\"a\", \"x\"]",
        "\"",
        ",",
        "<<EOF",
        "<<-EOF",
        "\nEOF\n",
        "$",
        "${",
        "}",
        "${A:-b}",
        "$A",
        ":+",
        ":?",
        "=",
        "A=a",
        "--chmod=",
        "--chmod=0644",
        "--chown=1:1",
        "--",
        "#",
        "`",
        "\u{feff}",
        "é",
        "\t",
        "a",
        "b",
        "d",
        "d/.",
        "*",
        "**",
        "?",
        "..",
        "/",
        ".",
        "\r\n",
        "\n",
    ];
    let ctx = Ctx::new();
    ctx.file("a", "a\n").file("b", "b\n").file("d/e", "e\n");
    let mut rng = Rng(0x50u64 << 32 | 0x0b);
    let (mut built, mut diagnosed) = (0, 0);
    for i in 0..200 {
        let mut text = String::new();
        if i % 4 == 0 {
            text.push_str("# escape=`\n");
        }
        if i % 2 == 0 {
            text.push_str("FROM scratch\n");
        }
        for _ in 0..1 + rng.below(4) {
            text.push_str(KEYWORDS[rng.below(KEYWORDS.len())]);
            text.push(' ');
            for _ in 0..rng.below(8) {
                text.push_str(TOKENS[rng.below(TOKENS.len())]);
            }
            text.push('\n');
        }
        ctx.kubefile(&text);
        let seal = Seal::new();
        let out = seal.build(ctx.path(), "demo:v1", &[]);
        assert!(!out.stderr.contains("panicked"), "{text:?}\n{}", out.stderr);
        match out.code {
            0 => {
                out.digest();
                built += 1;
            }
            1 => {
                assert!(out.stderr.contains("error"), "{text:?}\n{}", out.stderr);
                assert!(out.stdout.is_empty(), "{text:?}");
                if out.stderr.contains(" --> Kubefile:") {
                    assert!(out.stderr.contains('^'), "{text:?}\n{}", out.stderr);
                    diagnosed += 1;
                }
                assert!(
                    !seal.root().exists(),
                    "a failed build created the store: {text:?}\n{}",
                    out.stderr
                );
            }
            code => panic!("exit code {code} for {text:?}:\n{}", out.stderr),
        }
    }
    eprintln!("token soup: {built} built, {diagnosed} diagnosed");
}

/// A tiny deterministic xorshift generator: reproducible garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Command-line usage errors: exit 2, and no store.
#[track_caller]
fn usage_error(args: &[&str], message: &str) {
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY a x\n").file("a", "a\n");
    let seal = Seal::new();
    let out = seal.run_in(ctx.path(), args);
    assert_eq!(out.code, 2, "seal {args:?}:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains(message),
        "expected `{message}` in:\n{}",
        out.stderr
    );
    assert!(
        !seal.root().exists(),
        "a usage error must not create the store"
    );
}

#[test]
fn command_line_usage_errors() {
    usage_error(&["build", "--bogus", "-t", "demo:v1", "."], "--bogus");
    usage_error(&["build", "-t", "UPPER:x", "."], "UPPER");
    usage_error(&["build", "."], "--tag");
    usage_error(
        &["build", "-t", "demo:v1", "--max-parallelism", "0", "."],
        "--max-parallelism",
    );
    usage_error(
        &["build", "-t", "demo:v1", "--build-arg", "=x", "."],
        "--build-arg",
    );
    usage_error(
        &["build", "-t", "demo:v1", "--progress", "fancy", "."],
        "fancy",
    );
    usage_error(
        &["build", "-t", "demo:v1", "--compression", "lz4", "."],
        "lz4",
    );
    usage_error(&["frobnicate"], "frobnicate");
}

#[test]
fn runtime_errors_outside_the_kubefile_exit_1_without_a_store() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    for args in [
        vec!["build", "-t", "demo:v1", "/nonexistent/context"],
        vec!["build", "-t", "demo:v1", "-f", "/nonexistent/Kubefile", "."],
        vec!["inspect", "demo:v1"],
        vec!["save", "-o", "out.tar", "demo:v1"],
    ] {
        let out = seal.run_in(ctx.path(), &args);
        assert_eq!(out.code, 1, "seal {args:?}:\n{}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
        assert!(!seal.root().exists(), "seal {args:?} created the store");
    }
}

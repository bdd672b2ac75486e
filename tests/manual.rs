//! `seal completion` and `seal man`: generated from the same clap definitions as the flags the
//! binary accepts, so they must name its commands and flags and be valid for their readers
//! (`bash -n` for the bash script, groff for the roff pages).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Out, Seal};

fn seal(args: &[&str]) -> Out {
    let seal = Seal::new();
    let mut cmd = seal.command();
    cmd.args(args);
    Out::from_command(cmd)
}

/// Run `program args` with `input` on stdin; returns (exit code, stdout, stderr).
fn pipe(program: &str, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("feeding stdin");
    let out = child.wait_with_output().expect("waiting");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Terminal text without grotty's overstrikes (`N\bN` bold, `_\bx` underline).
fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_bash_completion_names_every_command_and_parses() {
    let out = seal(&["completion", "bash"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let script = out.stdout;
    assert!(script.contains("complete -F _seal"), "{script}");
    for word in [
        "build",
        "history",
        "completion",
        "man",
        "prune",
        "--explain",
        "--no-cache-filter",
    ] {
        assert!(script.contains(word), "the script lacks `{word}`");
    }
    let (code, _, stderr) = pipe("bash", &["-n"], &script);
    assert_eq!(code, 0, "bash -n rejects the script: {stderr}");
    // Sourced, it registers the completion function.
    let (code, stdout, stderr) = pipe(
        "bash",
        &["-c", "source /dev/stdin; complete -p seal"],
        &script,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("_seal"), "{stdout}");
}

#[test]
fn zsh_and_fish_scripts_name_the_commands_and_another_shell_is_refused() {
    for (shell, marker) in [("zsh", "#compdef seal"), ("fish", "complete -c seal")] {
        let out = seal(&["completion", shell]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains("history"), "{shell}");
    }
    let out = seal(&["completion", "tcsh"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid value 'tcsh'"),
        "{}",
        out.stderr
    );
}

/// The sections clap_mangen writes, in order.
#[track_caller]
fn assert_roff_page(page: &str, title: &str) {
    assert!(
        page.lines()
            .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
        "no .TH {title} 1 in:\n{page}"
    );
    let at = |section: &str| {
        page.find(&format!(".SH {section}"))
            .unwrap_or_else(|| panic!("no .SH {section} in:\n{page}"))
    };
    assert!(at("NAME") < at("SYNOPSIS"));
    assert!(at("SYNOPSIS") < at("DESCRIPTION"));
    assert!(at("DESCRIPTION") < at("OPTIONS"));
    if installed("groff") {
        // Every warning but `break` (a long path or flag value that cannot be hyphenated to
        // the line's width: typesetting, not a fault of the page).
        let (code, _, stderr) = pipe("groff", &["-man", "-Tutf8", "-ww", "-Wbreak", "-z"], page);
        assert_eq!(code, 0, "groff: {stderr}");
        assert!(stderr.is_empty(), "groff warns: {stderr}");
    }
}

#[test]
fn man_prints_the_page_of_seal_and_of_each_command() {
    let top = seal(&["man"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    assert_roff_page(&top.stdout, "seal");
    assert!(top.stdout.contains(".SH SUBCOMMANDS"), "{}", top.stdout);
    assert!(top.stdout.contains("seal\\-history(1)"), "{}", top.stdout);

    let build = seal(&["man", "build"]);
    assert_eq!(build.code, 0, "{}", build.stderr);
    assert_roff_page(&build.stdout, "seal-build");
    assert!(
        build.stdout.contains("\\fB\\-\\-explain\\fR"),
        "{}",
        build.stdout
    );

    if installed("man") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seal-build.1");
        std::fs::write(&file, &build.stdout).unwrap();
        let out = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .expect("running man");
        let text = plain_text(&String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("NAME") && text.contains("--explain"),
            "{text}"
        );
    }

    let unknown = seal(&["man", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no such command"),
        "{}",
        unknown.stderr
    );
}

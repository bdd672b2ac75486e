//! Structural checks of a parsed Kubefile that need no variable values.
//!
//! `parser` accepts anything that has the shape of an instruction; this module knows what each
//! instruction requires: FROM first, allowed `--flags`, argument counts and forms, ARG/ENV/LABEL
//! word shapes, stage names, and the rules for CMDS, LAUNCH and CMD. What depends on values
//! (a LAUNCH of an app that no APP declares, whether a COPY source exists) is left to `lower`.
//! Diagnostics come back sorted by position.

use crate::ast::usage;
use crate::ast::{Args, Flag, Instruction, Keyword, Kubefile, Span, Word};
use crate::diagnostic::{closest, Diagnostic};

/// Runs every structural check on `kubefile` and returns the problems, in source order.
pub fn check(kubefile: &Kubefile) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    if kubefile.instructions.is_empty() {
        diagnostics.push(
            Diagnostic::new("the Kubefile is empty", Span::new(0, 0))
                .with_label("no instruction in this file")
                .with_help("a Kubefile starts with `FROM <image>` or `FROM scratch`"),
        );
        return diagnostics;
    }
    check_order(kubefile, &mut diagnostics);
    let mut stages = Vec::new();
    for instruction in &kubefile.instructions {
        check_flags(instruction, &mut diagnostics);
        check_arguments(instruction, &mut stages, &mut diagnostics);
    }
    diagnostics.sort_by_key(|diagnostic| diagnostic.span.start);
    diagnostics
}

/// FROM comes first (after ARGs); CMDS and LAUNCH are unique and last; LAUNCH excludes CMD.
fn check_order(kubefile: &Kubefile, diagnostics: &mut Vec<Diagnostic>) {
    let instructions = &kubefile.instructions;
    let Some(first_from) = instructions
        .iter()
        .position(|instruction| instruction.keyword == Keyword::From)
    else {
        let culprit = instructions
            .iter()
            .find(|instruction| instruction.keyword != Keyword::Arg)
            .or(instructions.first());
        let span = culprit.map_or(Span::new(0, 0), |instruction| instruction.keyword_span);
        diagnostics.push(
            Diagnostic::new("no FROM instruction", span)
                .with_label("expected `FROM` before this")
                .with_help("a Kubefile starts with `FROM <image>` or `FROM scratch`"),
        );
        return;
    };
    if let Some(early) = instructions[..first_from]
        .iter()
        .find(|instruction| instruction.keyword != Keyword::Arg)
    {
        diagnostics.push(
            Diagnostic::new(
                format!("`{}` before the first FROM", early.keyword),
                early.keyword_span,
            )
            .with_label("FROM must come first")
            .with_help("only ARG may come before FROM"),
        );
    }
    for keyword in [Keyword::Cmds, Keyword::Launch] {
        let last = instructions.len() - 1;
        for (count, (index, instruction)) in instructions
            .iter()
            .enumerate()
            .filter(|(_, instruction)| instruction.keyword == keyword)
            .enumerate()
        {
            if count > 0 {
                diagnostics.push(
                    Diagnostic::new(
                        format!("only one {keyword} is allowed"),
                        instruction.keyword_span,
                    )
                    .with_label(format!("second {keyword}"))
                    .with_help(format!("merge the {keyword} instructions into one")),
                );
            } else if index != last {
                diagnostics.push(
                    Diagnostic::new(
                        format!("{keyword} must be the last instruction"),
                        instruction.keyword_span,
                    )
                    .with_label("more instructions follow")
                    .with_help(format!("move {keyword} to the end of the Kubefile")),
                );
            }
        }
    }
    let has_cmd = instructions
        .iter()
        .any(|instruction| instruction.keyword == Keyword::Cmd);
    if let Some(launch) = instructions
        .iter()
        .find(|instruction| instruction.keyword == Keyword::Launch)
    {
        if has_cmd {
            diagnostics.push(
                Diagnostic::new(
                    "LAUNCH and CMD cannot be used together",
                    launch.keyword_span,
                )
                .with_label("LAUNCH here, and the Kubefile has a CMD")
                .with_help(
                    "LAUNCH starts apps and CMD runs commands at `sealer run`; keep one of them",
                ),
            );
        }
    }
}

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    /// `--name=value`, at most once.
    Value,
    /// `--name=value`, any number of times (`RUN --mount`).
    Repeated,
    /// `--name`, or `--name=true|false`.
    Switch,
}

/// The flags each instruction accepts.
fn allowed_flags(keyword: Keyword) -> &'static [(&'static str, FlagKind)] {
    use FlagKind::{Repeated, Switch, Value};
    match keyword {
        Keyword::From => &[("platform", Value)],
        Keyword::Copy => &[
            ("from", Value),
            ("chmod", Value),
            ("chown", Value),
            ("link", Switch),
        ],
        Keyword::Add => &[
            ("chmod", Value),
            ("chown", Value),
            ("checksum", Value),
            ("link", Switch),
            ("keep-git-dir", Switch),
        ],
        Keyword::Run => &[("mount", Repeated), ("network", Value), ("security", Value)],
        _ => &[],
    }
}

fn check_flags(instruction: &Instruction, diagnostics: &mut Vec<Diagnostic>) {
    let keyword = instruction.keyword;
    let allowed = allowed_flags(keyword);
    let mut seen: Vec<&str> = Vec::new();
    for flag in &instruction.flags {
        let Some(&(_, kind)) = allowed.iter().find(|(name, _)| *name == flag.name) else {
            diagnostics.push(unknown_flag(keyword, flag, allowed));
            continue;
        };
        if kind != FlagKind::Repeated && seen.contains(&flag.name.as_str()) {
            diagnostics.push(
                Diagnostic::new(
                    format!("duplicate flag `--{}` for {keyword}", flag.name),
                    flag.span,
                )
                .with_label("given twice")
                .with_help(format!("give `--{}` once", flag.name)),
            );
        }
        seen.push(&flag.name);
        match (kind, flag.value.as_deref()) {
            (FlagKind::Value | FlagKind::Repeated, None | Some("")) => diagnostics.push(
                Diagnostic::new(format!("`--{}` needs a value", flag.name), flag.span)
                    .with_label("no value")
                    .with_help(format!("write `--{}=<value>`", flag.name)),
            ),
            (FlagKind::Switch, Some(value)) if value != "true" && value != "false" => diagnostics
                .push(
                    Diagnostic::new(
                        format!("`--{}` is a switch and takes no value", flag.name),
                        flag.span,
                    )
                    .with_label("not `true` or `false`")
                    .with_help(format!(
                        "write `--{0}` (or `--{0}=true`, `--{0}=false`)",
                        flag.name
                    )),
                ),
            _ => {}
        }
    }
}

fn unknown_flag(keyword: Keyword, flag: &Flag, allowed: &[(&str, FlagKind)]) -> Diagnostic {
    let diagnostic = Diagnostic::new(
        format!("unknown flag `--{}` for {keyword}", flag.name),
        flag.span,
    )
    .with_label(format!("not a {keyword} flag"));
    if allowed.is_empty() {
        return diagnostic.with_help(format!("{keyword} accepts no flags"));
    }
    let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
    let listed = names
        .iter()
        .map(|name| format!("--{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let help = match closest(&flag.name, &names) {
        Some(suggestion) => format!("{keyword} accepts {listed} (did you mean --{suggestion}?)"),
        None => format!("{keyword} accepts {listed}"),
    };
    diagnostic.with_help(help)
}

fn check_arguments(
    instruction: &Instruction,
    stages: &mut Vec<String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let keyword = instruction.keyword;
    let words = &instruction.words;
    let args_span = instruction.args.span();
    match (keyword, &instruction.args) {
        (Keyword::From, _) => check_from(instruction, stages, diagnostics),
        (Keyword::Copy | Keyword::Add, args) => {
            let count = match args {
                Args::Shell { .. } => words.len(),
                Args::Json { items, .. } => items.len(),
            };
            if count < 2 {
                diagnostics.push(
                    Diagnostic::new(
                        format!("{keyword} needs a source and a destination"),
                        args_span,
                    )
                    .with_label("only one path")
                    .with_help(format!("write {}", usage(keyword))),
                );
            }
        }
        (
            Keyword::Run | Keyword::Cmd | Keyword::Cmds | Keyword::Launch,
            Args::Json { items, .. },
        ) if items.is_empty() => {
            diagnostics.push(
                Diagnostic::new(format!("`{keyword}` has an empty JSON array"), args_span)
                    .with_label("nothing in here")
                    .with_help(format!("write {}", usage(keyword))),
            );
        }
        (Keyword::Cmds, Args::Shell { .. }) => diagnostics.push(
            Diagnostic::new("CMDS takes a JSON array of commands", args_span)
                .with_label("not a JSON array of strings")
                .with_help(format!("write {}", usage(keyword))),
        ),
        (Keyword::Launch, Args::Shell { text, .. }) if text.starts_with('[') => diagnostics.push(
            Diagnostic::new("LAUNCH takes a JSON array of app names", args_span)
                .with_label("not a JSON array of strings")
                .with_help(format!("write {}", usage(keyword))),
        ),
        (Keyword::AppCmds, Args::Shell { .. }) => diagnostics.push(
            Diagnostic::new(
                "APPCMDS takes an app name and a JSON array of commands",
                args_span,
            )
            .with_label("expected `<app> [\"command\", ...]`")
            .with_help(format!("write {}", usage(keyword))),
        ),
        (Keyword::AppCmds, Args::Json { items, .. }) if items.len() < 2 => diagnostics.push(
            Diagnostic::new("APPCMDS needs at least one command", args_span)
                .with_label("empty command list")
                .with_help(format!("write {}", usage(keyword))),
        ),
        (Keyword::Arg, _) => {
            for word in words {
                check_arg_word(word, diagnostics);
            }
        }
        (Keyword::Env, _) => check_env(words, args_span, diagnostics),
        (Keyword::Label, _) => check_pairs(keyword, words, diagnostics),
        (Keyword::AppEnv, _) => match words.split_first() {
            Some((_, pairs)) if !pairs.is_empty() => check_pairs(keyword, pairs, diagnostics),
            _ => diagnostics.push(
                Diagnostic::new("APPENV needs an app name and `key=value` pairs", args_span)
                    .with_label("no `key=value` pair")
                    .with_help(format!("write {}", usage(keyword))),
            ),
        },
        (Keyword::App | Keyword::Cni | Keyword::Csi, _) if words.len() < 2 => diagnostics.push(
            Diagnostic::new(
                format!("{keyword} needs a name and at least one source"),
                args_span,
            )
            .with_label("no source")
            .with_help(format!("write {}", usage(keyword))),
        ),
        _ => {}
    }
}

/// `FROM image`, `FROM image AS name`; stage names valid and unique.
fn check_from(
    instruction: &Instruction,
    stages: &mut Vec<String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let words = &instruction.words;
    let shape_ok =
        words.len() == 1 || (words.len() == 3 && words[1].text.eq_ignore_ascii_case("as"));
    if !shape_ok {
        diagnostics.push(
            Diagnostic::new(
                "FROM takes an image and an optional `AS <name>`",
                instruction.args.span(),
            )
            .with_label("expected `<image> [AS <name>]`")
            .with_help(format!("write {}", usage(Keyword::From))),
        );
        return;
    }
    let Some(name) = words.get(2) else {
        return;
    };
    let valid = name.text.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        diagnostics.push(
            Diagnostic::new(format!("invalid stage name `{}`", name.text), name.span)
                .with_label("not a stage name")
                .with_help("a stage name starts with a letter and has only letters, digits, `-`, `_` and `.`"),
        );
        return;
    }
    let lower = name.text.to_ascii_lowercase();
    if stages.contains(&lower) {
        diagnostics.push(
            Diagnostic::new(format!("duplicate stage name `{}`", name.text), name.span)
                .with_label("already used by an earlier FROM")
                .with_help("give each stage its own name"),
        );
    } else {
        stages.push(lower);
    }
}

fn check_arg_word(word: &Word, diagnostics: &mut Vec<Diagnostic>) {
    let name = word.text.split('=').next().unwrap_or_default();
    if name.is_empty() {
        diagnostics.push(
            Diagnostic::new("ARG needs a name before `=`", word.span)
                .with_label("no name")
                .with_help(format!("write {}", usage(Keyword::Arg))),
        );
    } else if !is_variable_name(name) {
        let name_end = (word.span.start + name.len()).min(word.span.end);
        diagnostics.push(
            Diagnostic::new(
                format!("invalid ARG name `{name}`"),
                Span::new(word.span.start, name_end),
            )
            .with_label("not a variable name")
            .with_help(
                "an ARG name starts with a letter or `_` and has only letters, digits and `_`",
            ),
        );
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub(crate) fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `ENV NAME=VALUE ...` (every word a pair) or the legacy `ENV NAME VALUE...`.
fn check_env(words: &[Word], args_span: Span, diagnostics: &mut Vec<Diagnostic>) {
    let Some(first) = words.first() else {
        return;
    };
    if first.text.contains('=') {
        check_pairs(Keyword::Env, words, diagnostics);
    } else if words.len() < 2 {
        diagnostics.push(
            Diagnostic::new(format!("`ENV {}` has no value", first.text), args_span)
                .with_label("no value")
                .with_help(format!("write `ENV {}=<value>`", first.text)),
        );
    }
}

/// Every word is `key=value` with a non-empty key.
fn check_pairs(keyword: Keyword, words: &[Word], diagnostics: &mut Vec<Diagnostic>) {
    for word in words {
        match word.text.find('=') {
            None => diagnostics.push(
                Diagnostic::new(format!("{keyword} needs `key=value` pairs"), word.span)
                    .with_label("no `=` in this word")
                    .with_help(format!(
                        "write {}; quote values with spaces: `key=\"a b\"`",
                        usage(keyword)
                    )),
            ),
            Some(0) => diagnostics.push(
                Diagnostic::new(format!("{keyword} needs a key before `=`"), word.span)
                    .with_label("empty key")
                    .with_help(format!("write {}", usage(keyword))),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parser::parse;

    /// Parses `source` (which must be free of syntax errors), runs the checks and compares
    /// `message @ spanned text` for every diagnostic.
    #[track_caller]
    fn check(source: &str, expect: &[&str]) {
        let parsed = parse(source.as_bytes());
        assert_eq!(parsed.errors, [], "syntax errors in the test input");
        let got: Vec<String> = super::check(&parsed.kubefile)
            .iter()
            .map(|diagnostic| {
                let spanned = &source[diagnostic.span.start..diagnostic.span.end];
                format!("{} @ {spanned}", diagnostic.message)
            })
            .collect();
        assert_eq!(got, expect);
    }

    /// Like [`check`], but compares the help line of the only diagnostic.
    #[track_caller]
    fn check_help(source: &str, expect: &str) {
        let parsed = parse(source.as_bytes());
        let diagnostics = super::check(&parsed.kubefile);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].help.as_deref(), Some(expect));
    }

    #[test]
    fn a_good_kubefile_passes() {
        check(
            "ARG V=1\nFROM --platform=linux/amd64 kubernetes:$V AS base\nFROM base\n\
             COPY --from=base --chmod=0644 --chown=0:0 --link a b\nADD --checksum=sha256:x --keep-git-dir=true u d\n\
             RUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b --network=none x\n\
             COPY <<EOF dest\nbody\nEOF\nENV A=1 B=\"2 3\"\nENV LEGACY value with spaces\nLABEL a=b \"c d\"=e\n\
             MAINTAINER me <me@x>\nAPP app local://x\nAPPCMDS app [\"kubectl apply -f x\"]\nAPPENV app k=v\n\
             CNI calico local://c\nKUBEVERSION v1.19\nCMDS [\"a\", \"b\"]\n",
            &[],
        );
    }

    #[test]
    fn empty_file() {
        check("", &["the Kubefile is empty @ "]);
        check("# only a comment\n\n", &["the Kubefile is empty @ "]);
    }

    #[test]
    fn from_comes_first() {
        check("ARG A\nCOPY a b\n", &["no FROM instruction @ COPY"]);
        check("ARG A\n", &["no FROM instruction @ ARG"]);
        check(
            "ARG A\nCOPY a b\nRUN x\nFROM y\n",
            &["`COPY` before the first FROM @ COPY"],
        );
        check_help("RUN x\nFROM y\n", "only ARG may come before FROM");
    }

    #[test]
    fn allowed_flags() {
        check(
            "FROM --platfrom=x y\nCOPY --chmood=1 a b\nLABEL --x a=b\n",
            &[
                "unknown flag `--platfrom` for FROM @ --platfrom=x",
                "unknown flag `--chmood` for COPY @ --chmood=1",
                "unknown flag `--x` for LABEL @ --x",
            ],
        );
        check_help(
            "FROM x\nCOPY --chmood=1 a b\n",
            "COPY accepts --from, --chmod, --chown, --link (did you mean --chmod?)",
        );
        check_help(
            "FROM x\nCOPY --zzz a b\n",
            "COPY accepts --from, --chmod, --chown, --link",
        );
        check_help("FROM x\nCMD --x a\n", "CMD accepts no flags");
    }

    #[test]
    fn flag_values() {
        check(
            "FROM x\nCOPY --from a b\nCOPY --chmod= a b\nCOPY --link=yes a b\nCOPY --from=a --from=b c d\nRUN --mount=a --mount=b x\n",
            &[
                "`--from` needs a value @ --from",
                "`--chmod` needs a value @ --chmod=",
                "`--link` is a switch and takes no value @ --link=yes",
                "duplicate flag `--from` for COPY @ --from=b",
            ],
        );
    }

    #[test]
    fn copy_needs_source_and_destination() {
        check(
            "FROM x\nCOPY a\nADD [\"a\"]\nCOPY <<EOF\nx\nEOF\nCOPY <<EOF d\nx\nEOF\n",
            &[
                "COPY needs a source and a destination @ a",
                "ADD needs a source and a destination @ [\"a\"]",
                "COPY needs a source and a destination @ <<EOF",
            ],
        );
        check_help(
            "FROM x\nCOPY a\n",
            "write `COPY [--from=<stage>] [--chmod=<mode>] [--chown=<uid:gid>] <src>... <dest>`",
        );
    }

    #[test]
    fn arg_names() {
        check(
            "ARG ok _ok2=1 1abc a-b=2 =3 \"q\"\nFROM x\n",
            &[
                "invalid ARG name `1abc` @ 1abc",
                "invalid ARG name `a-b` @ a-b",
                "ARG needs a name before `=` @ =3",
                "invalid ARG name `\"q\"` @ \"q\"",
            ],
        );
    }

    #[test]
    fn env_and_label_pairs() {
        check(
            "FROM x\nENV A\nENV A=1 B\nENV =1\nLABEL a\nLABEL a=1 =2\nAPPENV app\nAPPENV app k\n",
            &[
                "`ENV A` has no value @ A",
                "ENV needs `key=value` pairs @ B",
                "ENV needs a key before `=` @ =1",
                "LABEL needs `key=value` pairs @ a",
                "LABEL needs a key before `=` @ =2",
                "APPENV needs an app name and `key=value` pairs @ app",
                "APPENV needs `key=value` pairs @ k",
            ],
        );
    }

    #[test]
    fn json_only_instructions() {
        check(
            "FROM x\nAPPCMDS app kubectl apply\nAPPCMDS app []\nCMDS a b\n",
            &[
                "APPCMDS takes an app name and a JSON array of commands @ app kubectl apply",
                "APPCMDS needs at least one command @ app []",
                "CMDS takes a JSON array of commands @ a b",
            ],
        );
        check(
            "FROM x\nRUN []\nLAUNCH [a, b]\n",
            &[
                "`RUN` has an empty JSON array @ []",
                "LAUNCH takes a JSON array of app names @ [a, b]",
            ],
        );
    }

    #[test]
    fn cmds_and_launch_are_last_and_unique() {
        check(
            "FROM x\nCMDS [\"a\"]\nRUN y\nCMDS [\"b\"]\n",
            &[
                "CMDS must be the last instruction @ CMDS",
                "only one CMDS is allowed @ CMDS",
            ],
        );
        check(
            "FROM x\nAPP a local://a\nCMD run\nLAUNCH [\"a\"]\n",
            &["LAUNCH and CMD cannot be used together @ LAUNCH"],
        );
    }

    #[test]
    fn from_shape_and_stage_names() {
        check(
            "FROM a b c\nFROM a AS\nFROM a AS 1x\nFROM a AS s\nFROM b as S\n",
            &[
                "FROM takes an image and an optional `AS <name>` @ a b c",
                "FROM takes an image and an optional `AS <name>` @ a AS",
                "invalid stage name `1x` @ 1x",
                "duplicate stage name `S` @ S",
            ],
        );
    }

    #[test]
    fn app_cni_csi_need_a_source() {
        check(
            "FROM x\nAPP a\nCNI calico\nCSI x\n",
            &[
                "APP needs a name and at least one source @ a",
                "CNI needs a name and at least one source @ calico",
                "CSI needs a name and at least one source @ x",
            ],
        );
    }
}

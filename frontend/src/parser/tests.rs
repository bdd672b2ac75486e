//! Unit tests of the parser: one `check_*` helper per kind of expectation, data in the tests.

use super::*;
use crate::diagnostic::render_all;
use crate::dump::dump;

/// Parses `source` without errors and compares the dump with `expect` (indentation-trimmed).
#[track_caller]
fn check(source: &str, expect: &str) {
    let parsed = parse(source.as_bytes());
    assert!(
        parsed.errors.is_empty(),
        "unexpected errors:\n{}",
        render_all(&parsed.errors, "Kubefile", source.as_bytes())
    );
    assert_spans_index_source(&parsed.kubefile, source.as_bytes());
    assert_eq!(dump(&parsed.kubefile).trim_end(), trim_indent(expect));
}

/// Parses `source` and compares the rendered errors with `expect` (indentation-trimmed).
#[track_caller]
fn check_errors(source: &[u8], expect: &str) {
    let parsed = parse(source);
    let rendered = render_all(&parsed.errors, "Kubefile", source);
    assert_eq!(rendered.trim_end(), trim_indent(expect));
}

/// Parses `source` and compares only the error messages.
#[track_caller]
fn check_messages(source: &str, expect: &[&str]) {
    let parsed = parse(source.as_bytes());
    let messages: Vec<&str> = parsed.errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages, expect);
}

fn trim_indent(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|line| line.trim().is_empty())
        .collect();
    let lines = match lines.iter().rposition(|line| !line.trim().is_empty()) {
        Some(last) => &lines[..=last],
        None => &lines[..0],
    };
    let indent = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|line| line.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keyword spans spell the keyword; flag spans start with `--`; JSON item spans are string
/// literals; word spans spell the word unless a continuation runs through it.
fn assert_spans_index_source(kubefile: &Kubefile, source: &[u8]) {
    let at = |span: Span| String::from_utf8_lossy(&source[span.start..span.end]).into_owned();
    for instruction in &kubefile.instructions {
        assert!(at(instruction.keyword_span).eq_ignore_ascii_case(instruction.keyword.as_str()));
        assert!(at(instruction.span).starts_with(&at(instruction.keyword_span)));
        for flag in &instruction.flags {
            assert!(at(flag.span).starts_with("--"), "{flag:?}");
        }
        if let Args::Json { items, .. } = &instruction.args {
            let literals = if instruction.keyword == Keyword::AppCmds {
                items.get(1..).unwrap_or_default()
            } else {
                items
            };
            for item in literals {
                let literal = at(item.span);
                assert!(
                    literal.starts_with('"') && literal.ends_with('"'),
                    "{literal}"
                );
            }
        }
        for word in &instruction.words {
            let spelled = at(word.span);
            if !spelled.contains('\n') {
                assert_eq!(spelled, word.text);
            }
        }
        for heredoc in &instruction.heredocs {
            assert!(at(heredoc.span).trim_end().ends_with(&heredoc.name));
        }
    }
}

#[test]
fn bom_is_skipped_but_counted() {
    check(
        "\u{FEFF}FROM scratch\n",
        r##"
        escape `\`
        FROM 3..15 keyword 3..7
          shell 8..15 "scratch"
            word 8..15 "scratch"
        "##,
    );
}

#[test]
fn keywords_are_case_insensitive() {
    check(
        "from x\nCoPy a b\n",
        r##"
        escape `\`
        FROM 0..6 keyword 0..4
          shell 5..6 "x"
            word 5..6 "x"
        COPY 7..15 keyword 7..11
          shell 12..15 "a b"
            word 12..13 "a"
            word 14..15 "b"
        "##,
    );
}

#[test]
fn comments_blank_lines_and_crlf() {
    check(
        "# a comment\r\n\r\n   \t\r\nFROM x \r\n  # indented comment\r\n  RUN  echo  #not a comment\r\n",
        r##"
        escape `\`
        FROM 21..27 keyword 21..25
          shell 26..27 "x"
            word 26..27 "x"
        RUN 54..79 keyword 54..57
          shell 59..79 "echo  #not a comment"
            word 59..63 "echo"
            word 65..69 "#not"
            word 70..71 "a"
            word 72..79 "comment"
        "##,
    );
}

#[test]
fn escape_directive_with_backtick() {
    check(
        "# syntax=docker/dockerfile:1\n#  ESCAPE = ` \nFROM x\nRUN dir c:\\ `\n  && echo\n",
        r##"
        escape ```
        FROM 44..50 keyword 44..48
          shell 49..50 "x"
            word 49..50 "x"
        RUN 51..74 keyword 51..54
          shell 55..74 "dir c:\\   && echo"
            word 55..58 "dir"
            word 59..62 "c:\\"
            word 67..69 "&&"
            word 70..74 "echo"
        "##,
    );
}

#[test]
fn directives_only_at_the_top() {
    // After a comment that is not a directive, `# escape=` is a comment.
    check(
        "# hello\n# escape=`\nFROM x\nRUN a `\n",
        r##"
        escape `\`
        FROM 19..25 keyword 19..23
          shell 24..25 "x"
            word 24..25 "x"
        RUN 26..33 keyword 26..29
          shell 30..33 "a `"
            word 30..31 "a"
            word 32..33 "`"
        "##,
    );
    check_messages(
        "# escape=\\\n# escape=`\nFROM x\n",
        &["only one `escape` parser directive can be used"],
    );
    check_messages("# escape=x\nFROM x\n", &["invalid escape character `x`"]);
}

#[test]
fn continuation_skips_comment_and_blank_lines() {
    check(
        "RUN apt-get update \\\n# a comment\n\n   # another\n && apt-get install -y \\\n    curl\n",
        r##"
        escape `\`
        RUN 0..80 keyword 0..3
          shell 4..80 "apt-get update  && apt-get install -y     curl"
            word 4..11 "apt-get"
            word 12..18 "update"
            word 48..50 "&&"
            word 51..58 "apt-get"
            word 59..66 "install"
            word 67..69 "-y"
            word 76..80 "curl"
        "##,
    );
}

#[test]
fn json_array_form() {
    check(
        "COPY [\"a b.yaml\", \"manifests/\"]\nRUN [\"sh\", \"-c\", \"echo \\\"hi\\\"\"]\n",
        r##"
        escape `\`
        COPY 0..31 keyword 0..4
          json 5..31
            item 6..16 "a b.yaml"
            item 18..30 "manifests/"
        RUN 32..63 keyword 32..35
          json 36..63
            item 37..41 "sh"
            item 43..47 "-c"
            item 49..62 "echo \"hi\""
        "##,
    );
}

#[test]
fn json_across_a_continuation() {
    check(
        "CMD [\"a\", \\\n     \"b\"]\n",
        r##"
        escape `\`
        CMD 0..21 keyword 0..3
          json 4..21
            item 5..8 "a"
            item 17..20 "b"
        "##,
    );
}

#[test]
fn not_json_falls_back_to_shell() {
    check(
        "RUN [ -f x ] && echo\nCOPY [a] b\nLABEL [x=1\n",
        r##"
        escape `\`
        RUN 0..20 keyword 0..3
          shell 4..20 "[ -f x ] && echo"
            word 4..5 "["
            word 6..8 "-f"
            word 9..10 "x"
            word 11..12 "]"
            word 13..15 "&&"
            word 16..20 "echo"
        COPY 21..31 keyword 21..25
          shell 26..31 "[a] b"
            word 26..29 "[a]"
            word 30..31 "b"
        LABEL 32..42 keyword 32..37
          shell 38..42 "[x=1"
            word 38..42 "[x=1"
        "##,
    );
}

#[test]
fn appcmds_name_then_json() {
    check(
        "APPCMDS mysql [\"kubectl apply -f mysql.yaml\"]\n",
        r##"
        escape `\`
        APPCMDS 0..45 keyword 0..7
          json 8..45
            item 8..13 "mysql"
            item 15..44 "kubectl apply -f mysql.yaml"
        "##,
    );
}

#[test]
fn leading_flags() {
    check(
        "FROM --platform=linux/arm64 x AS build\nCOPY --from=build --chmod=0644 --link a --b\n",
        r##"
        escape `\`
        FROM 0..38 keyword 0..4
          flag --platform="linux/arm64" 5..27
          shell 28..38 "x AS build"
            word 28..29 "x"
            word 30..32 "AS"
            word 33..38 "build"
        COPY 39..82 keyword 39..43
          flag --from="build" 44..56
          flag --chmod="0644" 57..69
          flag --link 70..76
          shell 77..82 "a --b"
            word 77..78 "a"
            word 79..82 "--b"
        "##,
    );
}

#[test]
fn heredoc_run() {
    check(
        "FROM x\nRUN <<EOF\necho $HOME\n  indented\nEOF\nRUN x\n",
        r##"
        escape `\`
        FROM 0..6 keyword 0..4
          shell 5..6 "x"
            word 5..6 "x"
        RUN 7..16 keyword 7..10
          shell 11..16 "<<EOF"
            word 11..16 "<<EOF"
          heredoc "EOF" expand 17..42 "echo $HOME\n  indented\n"
        RUN 43..48 keyword 43..46
          shell 47..48 "x"
            word 47..48 "x"
        "##,
    );
}

#[test]
fn heredoc_copy_chomp_and_quoted() {
    check(
        "COPY <<-\"A\" <<'B' dir/\n\t\tline $X\n\tA\n# not a comment\nB\n",
        r##"
        escape `\`
        COPY 0..22 keyword 0..4
          shell 5..22 "<<-\"A\" <<'B' dir/"
            word 5..11 "<<-\"A\""
            word 12..17 "<<'B'"
            word 18..22 "dir/"
          heredoc "A" literal 23..35 "line $X\n"
          heredoc "B" literal 36..53 "# not a comment\n"
        "##,
    );
}

#[test]
fn heredoc_keeps_crlf_and_empty_body() {
    check(
        "RUN cat <<E\r\nE\r\n",
        r##"
        escape `\`
        RUN 0..11 keyword 0..3
          shell 4..11 "cat <<E"
            word 4..7 "cat"
            word 8..11 "<<E"
          heredoc "E" expand 13..14 ""
        "##,
    );
    check(
        "RUN <<E\r\na\r\nE",
        r##"
        escape `\`
        RUN 0..7 keyword 0..3
          shell 4..7 "<<E"
            word 4..7 "<<E"
          heredoc "E" expand 9..13 "a\r\n"
        "##,
    );
}

#[test]
fn heredocs_only_where_docker_has_them() {
    // CMD has no heredocs, so the delimiter line is read as an instruction.
    check_messages("CMD <<EOF\nEOF\n", &["unknown instruction `EOF`"]);
    let parsed = parse(b"CMD <<EOF\nEOF\n");
    assert!(parsed.kubefile.instructions[0].heredocs.is_empty());
}

#[test]
fn unknown_instruction_with_suggestion() {
    check_errors(
        b"FROM x\n\nCPOY a b\n",
        r##"
        error: unknown instruction `CPOY`
         --> Kubefile:3:1
          |
        3 | CPOY a b
          | ^^^^ not an instruction
          |
          = help: did you mean `COPY`?
        "##,
    );
    check_messages(
        "WORKDIR /x\nxyzzy\n",
        &[
            "unknown instruction `WORKDIR`",
            "unknown instruction `xyzzy`",
        ],
    );
    let parsed = parse(b"xyzzy a\n");
    let help = parsed.errors[0].help.clone().unwrap_or_default();
    assert!(
        help.starts_with("the instructions are FROM, COPY, ADD"),
        "{help}"
    );
}

#[test]
fn instruction_without_arguments() {
    check_errors(
        b"FROM\n",
        r##"
        error: `FROM` needs arguments
         --> Kubefile:1:1
          |
        1 | FROM
          | ^^^^ nothing after this
          |
          = help: write `FROM [--platform=<platform>] <image> [AS <name>]`
        "##,
    );
    check_messages("COPY --from=x   \n", &["`COPY` needs arguments"]);
    check_messages(
        "RUN \\\n\n",
        &[
            "unterminated continuation: the last line ends with `\\`",
            "`RUN` needs arguments",
        ],
    );
}

#[test]
fn unterminated_json_array() {
    check_errors(
        b"FROM x\nRUN [\"sh\", \"-c\"\n",
        r##"
        error: unterminated JSON array
         --> Kubefile:2:5
          |
        2 | RUN ["sh", "-c"
          |     ^ this `[` is never closed
          |
          = help: close the array (`["a", "b"]`) or write the arguments in shell form
        "##,
    );
    check_messages("APPCMDS app [\"x\"\n", &["unterminated JSON array"]);
}

#[test]
fn unterminated_heredoc() {
    check_errors(
        b"RUN cat <<EOF > /x\nhello\n",
        r##"
        error: unterminated heredoc: no line `EOF` closes the heredoc opened here
         --> Kubefile:1:9
          |
        1 | RUN cat <<EOF > /x
          |         ^^^^^ heredoc opened here
          |
          = help: end the heredoc body with a line that is exactly `EOF`
        "##,
    );
}

#[test]
fn continuation_at_end_of_file() {
    check_errors(
        b"FROM x\nRUN a \\  \n\n# c\n",
        r##"
        error: unterminated continuation: the last line ends with `\`
         --> Kubefile:2:7
          |
        2 | RUN a \
          |       ^ continues past the end of the file
          |
          = help: remove the trailing `\` or add the missing line
        "##,
    );
}

#[test]
fn binary_data_stops_parsing() {
    check_errors(
        b"FROM x\nRUN \x00\x01 y\nCPOY\n",
        r##"
        error: this is not a text Kubefile: binary data at byte 11
         --> Kubefile:2:5
          |
        2 | RUN ?? y
          |     ^ control byte 0x00
          |
          = help: a Kubefile is UTF-8 text; check that this is the right file
        "##,
    );
    assert!(parse(b"FROM x\n\x7f").kubefile.instructions.is_empty());
}

#[test]
fn invalid_utf8() {
    check_errors(
        b"FROM caf\xe9\n",
        r##"
        error: this is not a text Kubefile: invalid UTF-8 at byte 8
         --> Kubefile:1:9
          |
        1 | FROM caf?
          |         ^ not UTF-8
          |
          = help: a Kubefile is UTF-8 text; check that this is the right file
        "##,
    );
}

#[test]
fn recovers_and_reports_every_error() {
    let parsed = parse(b"FORM x\nCOPY\nRUN [\"a\"\nRUN ok\nLABEL a=b\n");
    let messages: Vec<&str> = parsed.errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown instruction `FORM`",
            "`COPY` needs arguments",
            "unterminated JSON array"
        ]
    );
    let keywords: Vec<Keyword> = parsed
        .kubefile
        .instructions
        .iter()
        .map(|instruction| instruction.keyword)
        .collect();
    assert_eq!(keywords, [Keyword::Run, Keyword::Label]);
}

/// A tiny xorshift generator, so the fuzz-ish tests need no crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

const SAMPLES: [&str; 3] = [
    "\u{FEFF}# escape=`\nARG V=1\nFROM --platform=linux/amd64 kubernetes:${V} AS base\nCOPY [\"a b\", \"c\"]\nRUN echo `\n  # c\n  hi\nCOPY <<-EOF x/\n\tbody\n\tEOF\n",
    "FROM scratch\nENV A=1 B=\"two words\"\nLABEL a=b\nRUN <<A cat && <<'B' cat\n$A\nA\nB\nB\nAPP app local://x\nAPPCMDS app [\"kubectl apply -f x\"]\nAPPENV app k=v\nLAUNCH [\"app\"]\n",
    "from x\r\ncopy --chmood=1 a\r\nCPOY a b\r\nRUN [\"x\"\r\nRUN cat <<EOF\r\nunterminated\r\nENV A\r\nCMDS echo \\\r\n",
];

/// Everything a caller may do with a parse result must not panic.
fn exercise(source: &[u8]) {
    let parsed = parse(source);
    let _ = dump(&parsed.kubefile);
    let mut diagnostics = parsed.errors.clone();
    diagnostics.extend(crate::check::check(&parsed.kubefile));
    for diagnostic in &diagnostics {
        let _ = crate::diagnostic::render(diagnostic, "Kubefile", source);
        let _ = crate::diagnostic::line_col(source, diagnostic.span.end);
    }
    for instruction in &parsed.kubefile.instructions {
        for span in std::iter::once(instruction.span)
            .chain(std::iter::once(instruction.keyword_span))
            .chain(instruction.words.iter().map(|word| word.span))
            .chain(instruction.flags.iter().map(|flag| flag.span))
            .chain(instruction.heredocs.iter().map(|heredoc| heredoc.span))
        {
            assert!(
                span.start <= span.end && span.end <= source.len(),
                "{span:?}"
            );
        }
        if let Args::Shell { text, .. } = &instruction.args {
            let lookup = |name: &str| name.len().is_multiple_of(2).then(|| "v a l".to_string());
            let _ = crate::expand::expand_words(text, parsed.kubefile.escape, &lookup);
            let _ = crate::expand::expand_word(text, parsed.kubefile.escape, &lookup);
            let _ = crate::expand::parse_key_values(text, parsed.kubefile.escape, &lookup);
            let _ = crate::expand::parse_env(text, parsed.kubefile.escape, &lookup);
        }
    }
    parse_checked(source);
}

#[test]
fn every_prefix_of_the_samples_parses_without_panic() {
    for sample in SAMPLES {
        let bytes = sample.as_bytes();
        for end in 0..=bytes.len() {
            exercise(&bytes[..end]);
        }
    }
}

#[test]
fn random_bytes_and_mutations_parse_without_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    // Mostly-text alphabet, so the parser gets past the binary check and into the interesting
    // paths; one in eight strings is raw random bytes.
    let alphabet: &[u8] = b"FROMCOPYRUNfromcopy <>-\"'`\\$[]{}:=,#\n\r\t EOFab\xc3\xa9\xef\xbb\xbf";
    for round in 0..20_000 {
        let len = rng.below(80);
        let bytes: Vec<u8> = if round % 8 == 0 {
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        };
        exercise(&bytes);
    }
    for round in 0..10_000 {
        let mut bytes = SAMPLES[round % SAMPLES.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = alphabet[rng.below(alphabet.len())],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        exercise(&bytes);
    }
}

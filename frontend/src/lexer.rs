//! Word-level lexing of instruction arguments, shared by `parser`, `check` and `expand`.
//!
//! It owns Docker's rules for where a word ends (unquoted whitespace; quotes and the escape
//! character glue), the leading `--flag` words, quote removal without variable expansion, and
//! recognising heredoc marker words (`<<EOF`, `<<-EOF`, `<<"EOF"`). Variable expansion lives in
//! `expand`; line structure (comments, continuations, heredoc bodies) lives in `parser`.

use std::ops::Range;

/// Splits `text` into words as Docker's `parseWords` does: on unquoted whitespace, keeping
/// quotes and escapes inside the word. Returns byte ranges into `text`.
///
/// An unterminated quote runs to the end of the text.
pub fn raw_words(text: &str, escape: char) -> Vec<Range<usize>> {
    let mut words = Vec::new();
    let mut pos = 0;
    while let Some(start) = next_word_start(text, pos) {
        let end = word_end(text, start, escape);
        words.push(start..end);
        pos = end;
    }
    words
}

/// The end of the word that starts at byte `start` of `text` (see [`raw_words`]).
pub fn word_end(text: &str, start: usize, escape: char) -> usize {
    let mut quote: Option<char> = None;
    let mut chars = text[start..].char_indices();
    while let Some((index, ch)) = chars.next() {
        match quote {
            Some(open) => {
                if ch == open {
                    quote = None;
                } else if ch == escape && open != '\'' {
                    chars.next();
                }
            }
            None => {
                if ch.is_whitespace() {
                    return start + index;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                } else if ch == escape {
                    chars.next();
                }
            }
        }
    }
    text.len()
}

/// A leading `--name[=value]` word of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFlag {
    /// The whole word, as a byte range of the text given to [`leading_flags`].
    pub range: Range<usize>,
    /// The name without `--`.
    pub name: String,
    /// The value after the first `=`, quotes removed; `None` without `=`.
    pub value: Option<String>,
}

/// Splits the leading `--flag` words off `text` (the arguments after the keyword), as Docker's
/// `extractBuilderFlags` does. Returns the flags and the byte offset where the arguments start.
/// A bare `--` word ends the flags and is dropped.
pub fn leading_flags(text: &str, escape: char) -> (Vec<RawFlag>, usize) {
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        let Some(start) = next_word_start(text, pos) else {
            return (flags, text.len());
        };
        if !text[start..].starts_with("--") {
            return (flags, start);
        }
        let end = word_end(text, start, escape);
        let raw = &text[start..end];
        if raw == "--" {
            let rest = next_word_start(text, end).unwrap_or(text.len());
            return (flags, rest);
        }
        let word = unquote(raw, escape);
        let body = word.strip_prefix("--").unwrap_or(&word);
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (body.to_string(), None),
        };
        flags.push(RawFlag {
            range: start..end,
            name,
            value,
        });
        pos = end;
    }
}

/// Removes quotes and escapes from one raw word, without expanding variables: `$X` stays.
///
/// Outside quotes the escape character makes the next char literal; inside double quotes it
/// only escapes `"`, `$` and itself; single quotes are literal.
pub fn unquote(raw: &str, escape: char) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut quote: Option<char> = None;
    let mut chars = raw.chars().peekable();
    while let Some(ch) = chars.next() {
        match quote {
            Some('\'') if ch == '\'' => quote = None,
            Some('\'') => out.push(ch),
            Some(_) if ch == '"' => quote = None,
            Some(_) if ch == escape => match chars.peek() {
                Some(&next) if next == '"' || next == '$' || next == escape => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push(ch),
            },
            Some(_) => out.push(ch),
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == escape => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            None => out.push(ch),
        }
    }
    out
}

/// A word that opens a heredoc: `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, `2<<EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocMarker {
    /// The delimiter, quotes removed.
    pub name: String,
    /// `<<-`: leading tabs are stripped from the body and the delimiter line.
    pub chomp: bool,
    /// False when any part of the delimiter was quoted: the body is not expanded.
    pub expand: bool,
    /// A file descriptor written before `<<` (`3<<EOF`).
    pub fd: Option<u32>,
}

/// Recognises a heredoc marker in one raw word (as split by [`raw_words`]), following
/// Dockerfile 1.4: `^[0-9]*<<-?NAME$` where NAME is non-empty and has no `<`.
pub fn heredoc_marker(word: &str, escape: char) -> Option<HeredocMarker> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest, escape);
    if name.is_empty() {
        return None;
    }
    let quotes = |text: &str| text.chars().filter(|c| *c == '"' || *c == '\'').count();
    let expand = quotes(&name) == quotes(rest);
    let fd = if digits == 0 {
        None
    } else {
        word[..digits].parse().ok()
    };
    Some(HeredocMarker {
        name,
        chomp,
        expand,
        fd,
    })
}

fn next_word_start(text: &str, from: usize) -> Option<usize> {
    text[from..]
        .char_indices()
        .find(|(_, ch)| !ch.is_whitespace())
        .map(|(index, _)| from + index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_words(text: &str, escape: char, expect: &[&str]) {
        let words: Vec<&str> = raw_words(text, escape)
            .into_iter()
            .map(|range| &text[range])
            .collect();
        assert_eq!(words, expect);
    }

    #[test]
    fn words_respect_quotes_and_escapes() {
        check_words("  a  b\tc ", '\\', &["a", "b", "c"]);
        check_words(
            r#"a="x y" 'p q'r s\ t"#,
            '\\',
            &[r#"a="x y""#, "'p q'r", r"s\ t"],
        );
        check_words(r#""a \" b" c"#, '\\', &[r#""a \" b""#, "c"]);
        check_words(r"'a \' b", '\\', &[r"'a \'", "b"]);
        check_words("s` t u", '`', &["s` t", "u"]);
        check_words("\"open quote", '\\', &["\"open quote"]);
        check_words("", '\\', &[]);
    }

    fn check_flags(text: &str, expect_flags: &[(&str, Option<&str>)], expect_rest: &str) {
        let (flags, rest) = leading_flags(text, '\\');
        let got: Vec<(&str, Option<&str>)> = flags
            .iter()
            .map(|flag| (flag.name.as_str(), flag.value.as_deref()))
            .collect();
        assert_eq!(got, expect_flags);
        assert_eq!(&text[rest..], expect_rest);
    }

    #[test]
    fn flags() {
        check_flags(
            " --from=build --chmod=0644 a --b c",
            &[("from", Some("build")), ("chmod", Some("0644"))],
            "a --b c",
        );
        check_flags("--link --x= y", &[("link", None), ("x", Some(""))], "y");
        check_flags(
            r#"--mount="type=cache,target=/a b" x"#,
            &[("mount", Some("type=cache,target=/a b"))],
            "x",
        );
        check_flags(
            "--chown=1:1 -- --not-a-flag",
            &[("chown", Some("1:1"))],
            "--not-a-flag",
        );
        check_flags("--platform=x", &[("platform", Some("x"))], "");
        check_flags("image", &[], "image");
    }

    #[test]
    fn unquoting() {
        assert_eq!(unquote(r#""a b"'c d'e\ f"#, '\\'), "a bc de f");
        assert_eq!(unquote(r#""\$X \" \n""#, '\\'), r#"$X " \n"#);
        assert_eq!(unquote("$X", '\\'), "$X");
        assert_eq!(unquote(r"'\'", '\\'), r"\");
        assert_eq!(unquote("a`", '`'), "a");
    }

    #[test]
    fn heredoc_markers() {
        let marker = |word| heredoc_marker(word, '\\');
        let eof = |chomp, expand, fd| {
            Some(HeredocMarker {
                name: "EOF".to_string(),
                chomp,
                expand,
                fd,
            })
        };
        assert_eq!(marker("<<EOF"), eof(false, true, None));
        assert_eq!(marker("<<-EOF"), eof(true, true, None));
        assert_eq!(marker("<<\"EOF\""), eof(false, false, None));
        assert_eq!(marker("<<-'EOF'"), eof(true, false, None));
        assert_eq!(marker("3<<EOF"), eof(false, true, Some(3)));
        assert_eq!(marker("<<E\"O\"F"), eof(false, false, None));
        assert_eq!(marker("<<"), None);
        assert_eq!(marker("<<-"), None);
        assert_eq!(marker("<<<EOF"), None);
        assert_eq!(marker("<<''"), None);
        assert_eq!(marker("cat<<EOF"), None);
        assert_eq!(marker("'<<EOF'"), None);
    }
}

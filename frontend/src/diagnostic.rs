//! Diagnostics: what went wrong in a Kubefile and where, plus a plain-text renderer.
//!
//! A [`Diagnostic`] is data (message, span, optional label and help), produced by `parser` and
//! `check` and carried to the caller. [`render`] turns one into the rustc-style text block the CLI
//! prints (no colours: the CLI decides about terminals). Choosing which diagnostics to show, and
//! exit codes, is left to the caller.

use std::fmt;

use crate::ast::Span;

/// One error about a Kubefile, pointing at the bytes it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Lower-case, no trailing period: "unknown instruction `CPOY`".
    pub message: String,
    /// The bytes of the source the message is about (may be empty: a position).
    pub span: Span,
    /// A short note printed after the carets ("not an instruction").
    pub label: Option<String>,
    /// A suggestion printed as `= help: ...`.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a message and a span, without label or help.
    pub fn new(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    /// The same diagnostic with a label under the carets.
    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    /// The same diagnostic with a `help:` line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Renders `diag` as a rustc-style block ending with a newline:
///
/// ```text
/// error: unknown instruction `CPOY`
///  --> Kubefile:3:1
///   |
/// 3 | CPOY a b
///   | ^^^^ not an instruction
///   |
///   = help: did you mean `COPY`?
/// ```
///
/// Never panics, whatever the span: it is clamped to the source.
pub fn render(diag: &Diagnostic, file_name: &str, source: &[u8]) -> String {
    let place = locate(source, diag.span.start);
    let caret_end = diag.span.end.clamp(place.offset, place.content_end);
    let caret_width = display_width(&source[place.offset..caret_end]).max(1);
    let shown_line = printable_line(&source[place.content_start..place.content_end]);
    let line_number = place.line.to_string();
    let pad = " ".repeat(line_number.len());

    let mut lines = vec![
        format!("error: {}", diag.message),
        format!("{pad}--> {file_name}:{}:{}", place.line, place.column),
        format!("{pad} |"),
        format!("{line_number} | {shown_line}"),
    ];
    let mut carets = format!(
        "{pad} | {}{}",
        " ".repeat(place.column - 1),
        "^".repeat(caret_width)
    );
    if let Some(label) = &diag.label {
        carets.push(' ');
        carets.push_str(label);
    }
    lines.push(carets);
    if let Some(help) = &diag.help {
        lines.push(format!("{pad} |"));
        lines.push(format!("{pad} = help: {help}"));
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Renders several diagnostics, separated by blank lines.
pub fn render_all(diags: &[Diagnostic], file_name: &str, source: &[u8]) -> String {
    diags
        .iter()
        .map(|diag| render(diag, file_name, source))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 1-based line and column (in chars; a leading BOM does not count) of byte `offset`.
///
/// An offset at the very end of a file that ends with a newline points just after the last
/// char of the last line, not at an empty line after it.
pub fn line_col(source: &[u8], offset: usize) -> (usize, usize) {
    let place = locate(source, offset);
    (place.line, place.column)
}

/// The `did you mean` candidate for `word` among `candidates`, when one is reasonably close
/// (normalized Damerau-Levenshtein, case-insensitive).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_uppercase();
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = strsim::normalized_damerau_levenshtein(&word, &candidate.to_ascii_uppercase());
        if score >= 0.6 && best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Where a byte offset falls: its line and the displayable part of that line.
struct Place {
    line: usize,
    column: usize,
    /// The offset, clamped into `content_start..=content_end`.
    offset: usize,
    /// First byte of the line shown (after a BOM on line 1).
    content_start: usize,
    /// End of the line shown, before `\r\n` / `\n`.
    content_end: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn locate(source: &[u8], offset: usize) -> Place {
    let mut offset = offset.min(source.len());
    if offset == source.len() && source.last() == Some(&b'\n') {
        offset -= 1;
    }
    let line_start = source[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let mut line_end = source[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(source.len(), |newline| offset + newline);
    if line_end > line_start && source[line_end - 1] == b'\r' {
        line_end -= 1;
    }
    let content_start = if line_start == 0 && source.starts_with(BOM) {
        BOM.len()
    } else {
        line_start
    };
    let offset = offset.clamp(content_start, line_end.max(content_start));
    let content_end = line_end.max(content_start);
    let line = source[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
    let column = display_width(&source[content_start..offset]) + 1;
    Place {
        line,
        column,
        offset,
        content_start,
        content_end,
    }
}

/// How many chars `bytes` shows as (invalid UTF-8 decoded lossily).
fn display_width(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes).chars().count()
}

/// The line as shown: tabs become one space (so carets align with the char count), other
/// control chars and undecodable bytes become `?`.
fn printable_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|ch| match ch {
            '\t' => ' ',
            '\u{FFFD}' => '?',
            ch if ch.is_control() => '?',
            ch => ch,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, span: Span, label: Option<&str>, help: Option<&str>, expect: &str) {
        let mut diag = Diagnostic::new("oops", span);
        diag.label = label.map(str::to_string);
        diag.help = help.map(str::to_string);
        assert_eq!(render(&diag, "Kubefile", source.as_bytes()), expect);
    }

    #[test]
    fn renders_like_rustc() {
        check(
            "FROM x\n\nCPOY a b\n",
            Span::new(8, 12),
            Some("not an instruction"),
            Some("did you mean `COPY`?"),
            "error: oops\n --> Kubefile:3:1\n  |\n3 | CPOY a b\n  | ^^^^ not an instruction\n  |\n  = help: did you mean `COPY`?\n",
        );
    }

    #[test]
    fn tabs_and_wide_line_numbers() {
        let source = format!("{}\tRUN é x\n", "\n".repeat(11));
        check(
            &source,
            Span::new(18, 19),
            None,
            None,
            "error: oops\n  --> Kubefile:12:7\n   |\n12 |  RUN é x\n   |       ^\n",
        );
    }

    #[test]
    fn end_of_file_points_after_last_char() {
        check(
            "FROM x\n",
            Span::new(7, 7),
            None,
            None,
            "error: oops\n --> Kubefile:1:7\n  |\n1 | FROM x\n  |       ^\n",
        );
        check(
            "",
            Span::new(0, 0),
            None,
            None,
            "error: oops\n --> Kubefile:1:1\n  |\n1 |\n  | ^\n",
        );
    }

    #[test]
    fn bom_is_not_a_column() {
        assert_eq!(line_col(b"\xEF\xBB\xBFFROM x", 3), (1, 1));
        assert_eq!(line_col(b"\xEF\xBB\xBFFROM x", 8), (1, 6));
        assert_eq!(line_col(b"a\r\nbc\r\n", 5), (2, 3));
    }

    #[test]
    fn binary_lines_are_shown_lossily() {
        let diag = Diagnostic::new("bin", Span::new(5, 6));
        let text = render(&diag, "K", b"FROM \x00\xff x");
        assert!(text.contains("1 | FROM ?? x"), "{text}");
        assert!(text.contains("  |      ^"), "{text}");
    }

    #[test]
    fn never_panics_on_wild_spans() {
        for span in [Span::new(100, 3), Span::new(2, 1), Span::new(0, 99)] {
            let _ = render(&Diagnostic::new("x", span), "K", b"ab\r\n\xEF\xBB");
        }
    }

    #[test]
    fn suggestions() {
        let keywords = ["FROM", "COPY", "RUN"];
        assert_eq!(closest("cpoy", &keywords), Some("COPY"));
        assert_eq!(closest("FORM", &keywords), Some("FROM"));
        assert_eq!(closest("ENTRYPOINT", &keywords), None);
    }
}

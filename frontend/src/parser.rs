//! Kubefile bytes -> [`Kubefile`] syntax tree plus syntax diagnostics.
//!
//! This module owns the line structure of the language, Dockerfile-compatible: the text check
//! (binary data stops parsing), the BOM, parser directives (`# escape=`, `# syntax=`), comment
//! and blank lines, line continuations, keywords, leading flags, shell vs JSON-array form and
//! heredoc bodies. It recovers after an error by skipping to the next instruction, so one run
//! reports every syntax error. Rules that need a whole instruction or the whole file (allowed
//! flags, argument counts, FROM first) are in `check`; variable values are `expand`'s and
//! `lower`'s business.

use crate::ast::{usage, Args, Flag, Heredoc, Instruction, Keyword, Kubefile, Span, Word};
use crate::diagnostic::{closest, Diagnostic};
use crate::lexer::{self, HeredocMarker};
use crate::{check, json};

/// The result of [`parse`]: the tree (whatever could be recovered) and the errors found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The instructions that parsed; an instruction with a syntax error is left out.
    pub kubefile: Kubefile,
    /// Syntax errors, in source order. Empty for a well-formed Kubefile.
    pub errors: Vec<Diagnostic>,
}

/// Parses a Kubefile. Never fails: problems are returned as diagnostics beside the tree.
///
/// Every [`Span`] indexes `source` itself (a leading BOM is skipped but still counted).
/// Input that is not UTF-8 text (invalid UTF-8, NUL or other control bytes except tab, CR and
/// LF) yields one diagnostic and no instructions.
pub fn parse(source: &[u8]) -> Parsed {
    let text = match decode(source) {
        Ok(text) => text,
        Err(diagnostic) => {
            return Parsed {
                kubefile: Kubefile {
                    escape: DEFAULT_ESCAPE,
                    instructions: Vec::new(),
                },
                errors: vec![diagnostic],
            }
        }
    };
    let mut parser = Parser::new(text);
    parser.run();
    Parsed {
        kubefile: Kubefile {
            escape: parser.escape,
            instructions: parser.instructions,
        },
        errors: parser.errors,
    }
}

/// [`parse`], then, when there is no syntax error, [`check()`](crate::check::check): the
/// errors of the first stage that found any. This is what a build should run.
pub fn parse_checked(source: &[u8]) -> Parsed {
    let mut parsed = parse(source);
    if parsed.errors.is_empty() {
        parsed.errors = check::check(&parsed.kubefile);
    }
    parsed
}

const DEFAULT_ESCAPE: char = '\\';
const BOM: &str = "\u{FEFF}";

/// Instructions that take the JSON-array form, falling back to shell form when the text is not
/// a JSON array of strings.
const JSON_CAPABLE: [Keyword; 6] = [
    Keyword::Run,
    Keyword::Cmd,
    Keyword::Cmds,
    Keyword::Copy,
    Keyword::Add,
    Keyword::Launch,
];

/// Instructions whose shell-form arguments may open heredocs.
const HEREDOC_CAPABLE: [Keyword; 3] = [Keyword::Run, Keyword::Copy, Keyword::Add];

/// Dockerfile instructions a Kubefile does not have: named in the error instead of a guess.
const DOCKERFILE_ONLY: [&str; 9] = [
    "ENTRYPOINT",
    "WORKDIR",
    "EXPOSE",
    "VOLUME",
    "USER",
    "SHELL",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "ONBUILD",
];

/// Checks that `source` is UTF-8 text and returns it.
fn decode(source: &[u8]) -> Result<&str, Diagnostic> {
    let (text, utf8_error) = match std::str::from_utf8(source) {
        Ok(text) => (text, None),
        Err(error) => (
            std::str::from_utf8(&source[..error.valid_up_to()]).unwrap_or_default(),
            Some(error),
        ),
    };
    if let Some(at) = text.bytes().position(is_binary) {
        let byte = source.get(at).copied().unwrap_or_default();
        return Err(Diagnostic::new(
            format!("this is not a text Kubefile: binary data at byte {at}"),
            Span::new(at, at + 1),
        )
        .with_label(format!("control byte 0x{byte:02x}"))
        .with_help("a Kubefile is UTF-8 text; check that this is the right file"));
    }
    match utf8_error {
        None => Ok(text),
        Some(error) => {
            let at = error.valid_up_to();
            let len = error.error_len().unwrap_or(source.len() - at);
            Err(Diagnostic::new(
                format!("this is not a text Kubefile: invalid UTF-8 at byte {at}"),
                Span::new(at, at + len),
            )
            .with_label("not UTF-8")
            .with_help("a Kubefile is UTF-8 text; check that this is the right file"))
        }
    }
}

fn is_binary(byte: u8) -> bool {
    (byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\r')) || byte == 0x7f
}

/// One physical line: `start..end` is its content without `\n` / `\r\n`; `next` is where the
/// following line starts.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    next: usize,
}

fn split_lines(text: &str, from: usize) -> Vec<Line> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = from;
    while start < bytes.len() {
        let (content_end, next) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(newline) => (start + newline, start + newline + 1),
            None => (bytes.len(), bytes.len()),
        };
        let end = if content_end > start && bytes[content_end - 1] == b'\r' {
            content_end - 1
        } else {
            content_end
        };
        lines.push(Line { start, end, next });
        start = next;
    }
    lines
}

/// An instruction's text with continuations joined, and the map back to source offsets.
#[derive(Debug, Default)]
struct Logical {
    text: String,
    segments: Vec<Segment>,
}

/// `text[text_start..text_start + len]` was copied from `source[source_start..]`.
#[derive(Debug)]
struct Segment {
    text_start: usize,
    source_start: usize,
    len: usize,
}

impl Logical {
    fn push(&mut self, source_start: usize, piece: &str) {
        if piece.is_empty() {
            return;
        }
        self.segments.push(Segment {
            text_start: self.text.len(),
            source_start,
            len: piece.len(),
        });
        self.text.push_str(piece);
    }

    /// The source span of `text[start..end]`.
    fn span(&self, start: usize, end: usize) -> Span {
        let source_start = self.source_start(start);
        Span::new(source_start, self.source_end(end).max(source_start))
    }

    /// The source offset of the char at text offset `offset` (at a piece boundary: the start
    /// of the next piece).
    fn source_start(&self, offset: usize) -> usize {
        for segment in &self.segments {
            if offset < segment.text_start + segment.len {
                return segment.source_start + offset.saturating_sub(segment.text_start);
            }
        }
        self.end_of_text()
    }

    /// The source offset just after the char before text offset `offset` (at a piece
    /// boundary: the end of the previous piece).
    fn source_end(&self, offset: usize) -> usize {
        for segment in &self.segments {
            if offset <= segment.text_start + segment.len {
                return segment.source_start + offset.saturating_sub(segment.text_start);
            }
        }
        self.end_of_text()
    }

    fn end_of_text(&self) -> usize {
        self.segments
            .last()
            .map_or(0, |segment| segment.source_start + segment.len)
    }
}

struct Parser<'a> {
    text: &'a str,
    lines: Vec<Line>,
    /// Index in `lines` of the next line to read.
    next_line: usize,
    escape: char,
    directives_done: bool,
    seen_directives: Vec<String>,
    instructions: Vec<Instruction>,
    errors: Vec<Diagnostic>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        let body_start = if text.starts_with(BOM) { BOM.len() } else { 0 };
        Parser {
            text,
            lines: split_lines(text, body_start),
            next_line: 0,
            escape: DEFAULT_ESCAPE,
            directives_done: false,
            seen_directives: Vec::new(),
            instructions: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn run(&mut self) {
        while let Some(line) = self.lines.get(self.next_line).copied() {
            if !self.directives_done {
                if self.directive(line) {
                    self.next_line += 1;
                    continue;
                }
                self.directives_done = true;
            }
            let content = self.text[line.start..line.end].trim_start();
            if content.is_empty() || content.starts_with('#') {
                self.next_line += 1;
                continue;
            }
            self.instruction();
        }
    }

    /// Handles `line` if it is a parser directive (`# name=value` with a known name, before
    /// anything else). Returns false when it is not one, which ends the directive section.
    fn directive(&mut self, line: Line) -> bool {
        let content = &self.text[line.start..line.end];
        let indent = content.len() - content.trim_start().len();
        let Some(found) = match_directive(content.trim_start()) else {
            return false;
        };
        let name = found.name.to_ascii_lowercase();
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            return false;
        }
        let value_start = line.start + indent + found.value_offset;
        let value_span = Span::new(value_start, value_start + found.value.len());
        if self.seen_directives.contains(&name) {
            self.errors.push(
                Diagnostic::new(
                    format!("only one `{name}` parser directive can be used"),
                    value_span,
                )
                .with_label("repeated directive"),
            );
            return true;
        }
        self.seen_directives.push(name.clone());
        if name == "escape" {
            match found.value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                other => self.errors.push(
                    Diagnostic::new(format!("invalid escape character `{other}`"), value_span)
                        .with_label("not `\\` or `` ` ``")
                        .with_help("the escape character is `\\` (the default) or `` ` ``"),
                ),
            }
        }
        true
    }

    /// Parses the instruction that starts at the current line, with its continuation lines
    /// and heredoc bodies.
    fn instruction(&mut self) {
        let logical = self.logical_line();
        let text = logical.text.as_str();
        let keyword_start = text.len() - text.trim_start().len();
        let keyword_end = text[keyword_start..]
            .find(char::is_whitespace)
            .map_or(text.len(), |index| keyword_start + index);
        if keyword_start == keyword_end {
            return;
        }
        let keyword_text = &text[keyword_start..keyword_end];
        let keyword_span = logical.span(keyword_start, keyword_end);
        let Some(keyword) = Keyword::parse(keyword_text) else {
            self.errors
                .push(unknown_instruction(keyword_text, keyword_span));
            return;
        };
        let end = text.trim_end().len();
        let span = logical.span(keyword_start, end);

        let after_keyword = &text[keyword_end..end];
        let (raw_flags, args_offset) = lexer::leading_flags(after_keyword, self.escape);
        let flags = raw_flags
            .into_iter()
            .map(|flag| Flag {
                name: flag.name,
                value: flag.value,
                span: logical.span(keyword_end + flag.range.start, keyword_end + flag.range.end),
            })
            .collect();
        let args_start = keyword_end + args_offset;
        if args_start >= end {
            self.errors.push(
                Diagnostic::new(format!("`{keyword}` needs arguments"), keyword_span)
                    .with_label("nothing after this")
                    .with_help(format!("write {}", usage(keyword))),
            );
            return;
        }
        let arguments = Arguments {
            logical: &logical,
            start: args_start,
            text: &text[args_start..end],
            escape: self.escape,
        };
        let parsed_args = if keyword == Keyword::AppCmds {
            arguments.app_cmds()
        } else if JSON_CAPABLE.contains(&keyword) {
            arguments.maybe_json()
        } else {
            Ok(arguments.shell())
        };
        let (args, words) = match parsed_args {
            Ok(parsed) => parsed,
            Err(diagnostic) => {
                self.errors.push(diagnostic);
                return;
            }
        };
        let markers: Vec<(HeredocMarker, Span)> = if HEREDOC_CAPABLE.contains(&keyword) {
            words
                .iter()
                .filter_map(|word| {
                    lexer::heredoc_marker(&word.text, self.escape).map(|marker| (marker, word.span))
                })
                .collect()
        } else {
            Vec::new()
        };
        let heredocs = self.heredoc_bodies(markers);
        self.instructions.push(Instruction {
            keyword,
            keyword_span,
            span,
            flags,
            args,
            heredocs,
            words,
        });
    }

    /// Reads the current line and its continuation lines (skipping comment and blank lines
    /// inside the continuation) into one logical line.
    fn logical_line(&mut self) -> Logical {
        let mut logical = Logical::default();
        let Some(mut line) = self.lines.get(self.next_line).copied() else {
            return logical;
        };
        let first = &self.text[line.start..line.end];
        let mut piece_start = line.start + (first.len() - first.trim_start().len());
        loop {
            self.next_line += 1;
            let piece = &self.text[piece_start..line.end];
            let trimmed = piece.trim_end_matches([' ', '\t']);
            if !trimmed.ends_with(self.escape) {
                logical.push(piece_start, piece);
                return logical;
            }
            let escape_at = piece_start + trimmed.len() - self.escape.len_utf8();
            logical.push(piece_start, &self.text[piece_start..escape_at]);
            loop {
                let Some(next) = self.lines.get(self.next_line).copied() else {
                    self.errors.push(
                        Diagnostic::new(
                            format!(
                                "unterminated continuation: the last line ends with `{}`",
                                self.escape
                            ),
                            Span::new(escape_at, escape_at + self.escape.len_utf8()),
                        )
                        .with_label("continues past the end of the file")
                        .with_help(format!(
                            "remove the trailing `{}` or add the missing line",
                            self.escape
                        )),
                    );
                    return logical;
                };
                let content = self.text[next.start..next.end].trim_start();
                if content.is_empty() || content.starts_with('#') {
                    self.next_line += 1;
                    continue;
                }
                line = next;
                piece_start = next.start;
                break;
            }
        }
    }

    /// Reads one heredoc body per marker from the lines after the instruction.
    fn heredoc_bodies(&mut self, markers: Vec<(HeredocMarker, Span)>) -> Vec<Heredoc> {
        let mut heredocs = Vec::with_capacity(markers.len());
        let mut failed = false;
        for (marker, word_span) in markers {
            let mut content = String::new();
            let mut body_start = None;
            let mut closed = None;
            if !failed {
                while let Some(line) = self.lines.get(self.next_line).copied() {
                    self.next_line += 1;
                    let body_line = &self.text[line.start..line.end];
                    let candidate = if marker.chomp {
                        body_line.trim_start_matches('\t')
                    } else {
                        body_line
                    };
                    body_start.get_or_insert(line.start);
                    if candidate == marker.name {
                        closed = Some(line.end);
                        break;
                    }
                    let raw = &self.text[line.start..line.next];
                    content.push_str(if marker.chomp {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    });
                }
            }
            let end = closed.unwrap_or(self.text.len());
            let start = body_start.unwrap_or(end);
            if closed.is_none() && !failed {
                failed = true;
                self.errors.push(
                    Diagnostic::new(
                        format!(
                            "unterminated heredoc: no line `{}` closes the heredoc opened here",
                            marker.name
                        ),
                        word_span,
                    )
                    .with_label("heredoc opened here")
                    .with_help(format!(
                        "end the heredoc body with a line that is exactly `{}`",
                        marker.name
                    )),
                );
            }
            heredocs.push(Heredoc {
                name: marker.name,
                content,
                expand: marker.expand,
                span: Span::new(start, end),
            });
        }
        heredocs
    }
}

/// The argument text of one instruction (after the flags, trimmed).
struct Arguments<'l> {
    logical: &'l Logical,
    /// Offset of `text` in the logical line.
    start: usize,
    text: &'l str,
    escape: char,
}

impl Arguments<'_> {
    fn span(&self) -> Span {
        self.logical.span(self.start, self.start + self.text.len())
    }

    /// Shell form, with its words.
    fn shell(&self) -> (Args, Vec<Word>) {
        let words = lexer::raw_words(self.text, self.escape)
            .into_iter()
            .map(|range| Word {
                text: self.text[range.clone()].to_string(),
                span: self
                    .logical
                    .span(self.start + range.start, self.start + range.end),
            })
            .collect();
        let args = Args::Shell {
            text: self.text.to_string(),
            span: self.span(),
        };
        (args, words)
    }

    /// JSON-array form when the text is a JSON array of strings, else shell form; an array
    /// that is never closed is an error.
    fn maybe_json(&self) -> Result<(Args, Vec<Word>), Diagnostic> {
        match self.json_items(0)? {
            Some(items) => Ok((
                Args::Json {
                    items,
                    span: self.span(),
                },
                Vec::new(),
            )),
            None => Ok(self.shell()),
        }
    }

    /// `APPCMDS name ["cmd", ...]`: JSON form whose first item is the app name (as written,
    /// with its span), then the commands. Shell form when the rest is not a JSON array, which
    /// `check` rejects.
    fn app_cmds(&self) -> Result<(Args, Vec<Word>), Diagnostic> {
        let name_end = lexer::word_end(self.text, 0, self.escape);
        let rest = &self.text[name_end..];
        let rest_offset = name_end + (rest.len() - rest.trim_start().len());
        let items = match self.json_items(rest_offset)? {
            Some(items) => items,
            None => return Ok(self.shell()),
        };
        let name = Word {
            text: self.text[..name_end].to_string(),
            span: self.logical.span(self.start, self.start + name_end),
        };
        let mut all = vec![name];
        all.extend(items);
        Ok((
            Args::Json {
                items: all,
                span: self.span(),
            },
            Vec::new(),
        ))
    }

    /// The JSON strings of `text[from..]` if it is a JSON array of strings; `None` if it is not
    /// one; an error if it opens an array that nothing closes.
    fn json_items(&self, from: usize) -> Result<Option<Vec<Word>>, Diagnostic> {
        let rest = &self.text[from..];
        if !rest.starts_with('[') {
            return Ok(None);
        }
        if let Some(items) = json::parse_string_array(rest) {
            let base = self.start + from;
            return Ok(Some(
                items
                    .into_iter()
                    .map(|item| Word {
                        text: item.text,
                        span: self
                            .logical
                            .span(base + item.range.start, base + item.range.end),
                    })
                    .collect(),
            ));
        }
        if !rest.contains(']') {
            let at = self.start + from;
            return Err(
                Diagnostic::new("unterminated JSON array", self.logical.span(at, at + 1))
                    .with_label("this `[` is never closed")
                    .with_help(
                        "close the array (`[\"a\", \"b\"]`) or write the arguments in shell form",
                    ),
            );
        }
        Ok(None)
    }
}

struct DirectiveMatch<'a> {
    name: &'a str,
    value: &'a str,
    /// Offset of `value` in the (left-trimmed) line.
    value_offset: usize,
}

/// Matches `#[ \t]*NAME[ \t]*=[ \t]*VALUE[ \t]*` with NAME `[A-Za-z][A-Za-z0-9]*` and a
/// non-empty VALUE, as BuildKit's directive parser does.
fn match_directive(line: &str) -> Option<DirectiveMatch<'_>> {
    let blank = |c: char| c == ' ' || c == '\t';
    let after_hash = line.strip_prefix('#')?;
    let name_part = after_hash.trim_start_matches(blank);
    if !name_part.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let name_len = name_part.len()
        - name_part
            .trim_start_matches(|c: char| c.is_ascii_alphanumeric())
            .len();
    let name = &name_part[..name_len];
    let after_equals = name_part[name_len..]
        .trim_start_matches(blank)
        .strip_prefix('=')?;
    let value_part = after_equals.trim_start_matches(blank);
    let value = value_part.trim_end_matches(blank);
    if value.is_empty() {
        return None;
    }
    Some(DirectiveMatch {
        name,
        value,
        value_offset: line.len() - value_part.len(),
    })
}

fn unknown_instruction(word: &str, span: Span) -> Diagnostic {
    let diagnostic = Diagnostic::new(format!("unknown instruction `{word}`"), span)
        .with_label("not an instruction");
    let upper = word.to_ascii_uppercase();
    if DOCKERFILE_ONLY.contains(&upper.as_str()) {
        return diagnostic.with_help(format!(
            "`{upper}` is a Dockerfile instruction that Kubefiles do not have; the instructions are {}",
            keyword_list()
        ));
    }
    let keywords: Vec<&str> = Keyword::ALL
        .iter()
        .map(|keyword| keyword.as_str())
        .collect();
    match closest(word, &keywords) {
        Some(suggestion) => diagnostic.with_help(format!("did you mean `{suggestion}`?")),
        None => diagnostic.with_help(format!("the instructions are {}", keyword_list())),
    }
}

fn keyword_list() -> String {
    Keyword::ALL
        .iter()
        .map(|keyword| keyword.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;

//! Docker's shell-word processing: quote removal, escapes and `$VAR` expansion in arguments.
//!
//! This module owns the rules of `ProcessWord` / `ProcessWords` from BuildKit's shell lexer, for
//! the instructions whose arguments seal expands itself (FROM, COPY, ADD, ENV, LABEL, ARG, APP*).
//! It does not decide which variables are visible (the caller's `lookup` does) and never touches
//! RUN/CMD shell text, which goes to a real shell. Offsets in [`ExpandError`] are byte offsets
//! into the text that was passed in.
//!
//! Supported: `$X`, `${X}`, `${X:-d}`, `${X-d}`, `${X:+a}`, `${X+a}`, `${X:?msg}`, `${X?msg}`,
//! `'single'` (literal), `"double"` (expansion inside), and the escape character. Unset variables
//! expand to the empty string.

use crate::lexer;

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("missing `}}` for the `${{` at byte {offset}")]
    UnclosedBrace {
        /// The `$` of `${`.
        offset: usize,
    },
    /// A malformed `${...}`: no name, a bad character, or an unsupported modifier.
    #[error("bad substitution at byte {offset}: {reason}")]
    BadSubstitution {
        /// Where the offending char is.
        offset: usize,
        /// What was wrong, lower-case.
        reason: String,
    },
    /// A quote that is never closed.
    #[error("unterminated {quote} quote at byte {offset}")]
    UnterminatedQuote {
        /// `'` or `"`.
        quote: char,
        /// The opening quote.
        offset: usize,
    },
    /// `${X?message}` / `${X:?message}` with `X` unset (or empty, for `:?`).
    #[error("variable `{name}` is required: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message written after `?`, or a default one.
        message: String,
        /// The `$`.
        offset: usize,
    },
    /// A word of a `key=value` list without `=`.
    #[error("`{word}` is not `key=value`")]
    MissingEquals {
        /// The word as written.
        word: String,
        /// Its first byte.
        offset: usize,
    },
}

impl ExpandError {
    /// The byte offset, within the expanded text, that the error is about.
    pub fn offset(&self) -> usize {
        match self {
            ExpandError::UnclosedBrace { offset }
            | ExpandError::BadSubstitution { offset, .. }
            | ExpandError::UnterminatedQuote { offset, .. }
            | ExpandError::Required { offset, .. }
            | ExpandError::MissingEquals { offset, .. } => *offset,
        }
    }

    fn shifted(self, by: usize) -> ExpandError {
        match self {
            ExpandError::UnclosedBrace { offset } => ExpandError::UnclosedBrace {
                offset: offset + by,
            },
            ExpandError::BadSubstitution { offset, reason } => ExpandError::BadSubstitution {
                offset: offset + by,
                reason,
            },
            ExpandError::UnterminatedQuote { quote, offset } => ExpandError::UnterminatedQuote {
                quote,
                offset: offset + by,
            },
            ExpandError::Required {
                name,
                message,
                offset,
            } => ExpandError::Required {
                name,
                message,
                offset: offset + by,
            },
            ExpandError::MissingEquals { word, offset } => ExpandError::MissingEquals {
                word,
                offset: offset + by,
            },
        }
    }
}

/// The variable lookup: `None` is "unset", which differs from "set to empty" for `${X-d}`.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Processes `text` as one word: quotes removed, escapes applied, variables expanded, and
/// whitespace kept as is (Docker's `ProcessWord`).
pub fn expand_word(text: &str, escape: char, lookup: Lookup<'_>) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(text, escape, lookup);
    let mut words = Words::new(false);
    lexer.process(None, &mut words)?;
    Ok(words.into_single())
}

/// Processes `text` into words split on unquoted whitespace, including whitespace that comes out
/// of an unquoted variable (Docker's `ProcessWords`). A quoted empty string (`""`) is a word.
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: Lookup<'_>,
) -> Result<Vec<String>, ExpandError> {
    let mut lexer = Lexer::new(text, escape, lookup);
    let mut words = Words::new(true);
    lexer.process(None, &mut words)?;
    Ok(words.finish())
}

/// Parses `k=v k2="v 2"` pairs (LABEL, ENV, APPENV): each word is split at its first `=`, then
/// key and value are expanded and unquoted.
pub fn parse_key_values(
    text: &str,
    escape: char,
    lookup: Lookup<'_>,
) -> Result<Vec<(String, String)>, ExpandError> {
    let mut pairs = Vec::new();
    for range in lexer::raw_words(text, escape) {
        let word = &text[range.clone()];
        let Some(equals) = word.find('=') else {
            return Err(ExpandError::MissingEquals {
                word: word.to_string(),
                offset: range.start,
            });
        };
        let key = expand_word(&word[..equals], escape, lookup)
            .map_err(|error| error.shifted(range.start))?;
        let value = expand_word(&word[equals + 1..], escape, lookup)
            .map_err(|error| error.shifted(range.start + equals + 1))?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Parses the arguments of ENV in either form: `NAME=VALUE ...`, or the legacy `NAME VALUE...`
/// where the value is the rest of the text (expanded as one word, inner whitespace kept).
pub fn parse_env(
    text: &str,
    escape: char,
    lookup: Lookup<'_>,
) -> Result<Vec<(String, String)>, ExpandError> {
    let words = lexer::raw_words(text, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if text[first.clone()].contains('=') {
        return parse_key_values(text, escape, lookup);
    }
    let name = expand_word(&text[first.clone()], escape, lookup)
        .map_err(|error| error.shifted(first.start))?;
    let value_start = words.get(1).map_or(text.len(), |word| word.start);
    let value = expand_word(text[value_start..].trim_end(), escape, lookup)
        .map_err(|error| error.shifted(value_start))?;
    Ok(vec![(name, value)])
}

/// Parses the arguments of ARG: each word is `NAME` or `NAME=default` (the default expanded).
pub fn parse_arg_declarations(
    text: &str,
    escape: char,
    lookup: Lookup<'_>,
) -> Result<Vec<(String, Option<String>)>, ExpandError> {
    let mut declarations = Vec::new();
    for range in lexer::raw_words(text, escape) {
        let word = &text[range.clone()];
        match word.split_once('=') {
            Some((name, default)) => {
                let default = expand_word(default, escape, lookup)
                    .map_err(|error| error.shifted(range.start + name.len() + 1))?;
                declarations.push((name.to_string(), Some(default)));
            }
            None => declarations.push((word.to_string(), None)),
        }
    }
    Ok(declarations)
}

/// Collects output chars into words.
struct Words {
    split: bool,
    words: Vec<String>,
    current: String,
    in_word: bool,
}

impl Words {
    fn new(split: bool) -> Words {
        Words {
            split,
            words: Vec::new(),
            current: String::new(),
            in_word: false,
        }
    }

    /// Literal or quoted text: never split, and starts a word even when empty.
    fn push_raw(&mut self, text: &str) {
        self.current.push_str(text);
        self.in_word = true;
    }

    fn push_raw_char(&mut self, ch: char) {
        self.current.push(ch);
        self.in_word = true;
    }

    /// The value of an unquoted variable: split on whitespace when splitting.
    fn push_expanded(&mut self, text: &str) {
        if !self.split {
            self.current.push_str(text);
            return;
        }
        for ch in text.chars() {
            if ch.is_whitespace() {
                self.end_word();
            } else {
                self.push_raw_char(ch);
            }
        }
    }

    fn end_word(&mut self) {
        if self.in_word {
            self.words.push(std::mem::take(&mut self.current));
            self.in_word = false;
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.end_word();
        self.words
    }

    fn into_single(self) -> String {
        self.current
    }
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    escape: char,
    lookup: Lookup<'a>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, escape: char, lookup: Lookup<'a>) -> Lexer<'a> {
        Lexer {
            text,
            pos: 0,
            escape,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    /// Processes until `stop` (not consumed) or the end of the text.
    fn process(&mut self, stop: Option<char>, words: &mut Words) -> Result<(), ExpandError> {
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                return Ok(());
            }
            let start = self.pos;
            match ch {
                '\'' => {
                    self.bump();
                    let quoted = self.single_quoted(start)?;
                    words.push_raw(&quoted);
                }
                '"' => {
                    self.bump();
                    let quoted = self.double_quoted(start)?;
                    words.push_raw(&quoted);
                }
                '$' => match self.dollar()? {
                    Dollar::Literal => words.push_raw_char('$'),
                    Dollar::Value(value) => words.push_expanded(&value),
                },
                ch if ch == self.escape => {
                    self.bump();
                    // An escape at the very end is dropped, as Docker does.
                    if let Some(next) = self.bump() {
                        words.push_raw_char(next);
                    }
                }
                ch if words.split && ch.is_whitespace() => {
                    self.bump();
                    words.end_word();
                }
                ch => {
                    self.bump();
                    words.push_raw_char(ch);
                }
            }
        }
        Ok(())
    }

    fn single_quoted(&mut self, open: usize) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ExpandError::UnterminatedQuote {
                        quote: '\'',
                        offset: open,
                    })
                }
                Some('\'') => return Ok(out),
                Some(ch) => out.push(ch),
            }
        }
    }

    fn double_quoted(&mut self, open: usize) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(ExpandError::UnterminatedQuote {
                        quote: '"',
                        offset: open,
                    })
                }
                Some('"') => {
                    self.bump();
                    return Ok(out);
                }
                Some('$') => match self.dollar()? {
                    Dollar::Literal => out.push('$'),
                    Dollar::Value(value) => out.push_str(&value),
                },
                Some(ch) => {
                    self.bump();
                    if ch == self.escape {
                        match self.peek() {
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.bump();
                                out.push(next);
                            }
                            // Other escapes stay as written; an escape at the end is dropped
                            // and the missing quote is reported.
                            Some(_) => out.push(ch),
                            None => {}
                        }
                    } else {
                        out.push(ch);
                    }
                }
            }
        }
    }

    /// At a `$`: a variable reference, or a literal `$` when no name follows.
    fn dollar(&mut self) -> Result<Dollar, ExpandError> {
        let dollar_at = self.pos;
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok(Dollar::Literal);
            }
            return Ok(Dollar::Value(self.get(&name).unwrap_or_default()));
        }
        self.bump();
        let name = self.name();
        let after_name = self.pos;
        let Some(ch) = self.bump() else {
            return Err(ExpandError::UnclosedBrace { offset: dollar_at });
        };
        if name.is_empty() {
            return Err(ExpandError::BadSubstitution {
                offset: after_name,
                reason: "`${` must be followed by a variable name".to_string(),
            });
        }
        if ch == '}' {
            return Ok(Dollar::Value(self.get(&name).unwrap_or_default()));
        }
        let (colon, modifier_at, modifier) = if ch == ':' {
            let at = self.pos;
            match self.bump() {
                Some(modifier) => (true, at, modifier),
                None => return Err(ExpandError::UnclosedBrace { offset: dollar_at }),
            }
        } else {
            (false, after_name, ch)
        };
        if !matches!(modifier, '-' | '+' | '?') {
            let written = if colon {
                format!(":{modifier}")
            } else {
                modifier.to_string()
            };
            return Err(ExpandError::BadSubstitution {
                offset: modifier_at,
                reason: format!(
                    "unsupported modifier `{written}` in `${{{name}...}}` (supported: :- - :+ + :? ?)"
                ),
            });
        }
        let mut word = Words::new(false);
        self.process(Some('}'), &mut word)?;
        if self.bump() != Some('}') {
            return Err(ExpandError::UnclosedBrace { offset: dollar_at });
        }
        let word = word.into_single();
        let value = self.get(&name);
        let is_set = match &value {
            Some(value) => !colon || !value.is_empty(),
            None => false,
        };
        match modifier {
            '-' if is_set => Ok(Dollar::Value(value.unwrap_or_default())),
            '-' => Ok(Dollar::Value(word)),
            '+' if is_set => Ok(Dollar::Value(word)),
            '+' => Ok(Dollar::Value(String::new())),
            _ if is_set => Ok(Dollar::Value(value.unwrap_or_default())),
            _ => Err(ExpandError::Required {
                message: if word.is_empty() {
                    "parameter not set".to_string()
                } else {
                    word
                },
                name,
                offset: dollar_at,
            }),
        }
    }

    /// A variable name: letters, digits and `_` (a leading digit run is a positional name).
    fn name(&mut self) -> String {
        let rest = &self.text[self.pos..];
        let len = if rest.starts_with(|c: char| c.is_ascii_digit()) {
            rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len()
        } else {
            rest.len()
                - rest
                    .trim_start_matches(|c: char| c.is_alphanumeric() || c == '_')
                    .len()
        };
        self.pos += len;
        rest[..len].to_string()
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }
}

enum Dollar {
    Literal,
    Value(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "X" => Some("ex".to_string()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("a  b".to_string()),
            "ARCH" => Some("amd64".to_string()),
            _ => None,
        }
    }

    fn check_word(text: &str, expect: &str) {
        assert_eq!(
            expand_word(text, '\\', &env).as_deref(),
            Ok(expect),
            "{text}"
        );
    }

    fn check_words(text: &str, expect: &[&str]) {
        let got = expand_words(text, '\\', &env);
        assert_eq!(
            got,
            Ok(expect.iter().map(|s| s.to_string()).collect()),
            "{text}"
        );
    }

    fn check_error(text: &str, expect: &str) {
        match expand_word(text, '\\', &env) {
            Ok(word) => panic!("{text} expanded to {word:?}"),
            Err(error) => assert_eq!(error.to_string(), expect, "{text}"),
        }
    }

    #[test]
    fn plain_variables() {
        check_word("$X", "ex");
        check_word("${X}", "ex");
        check_word("a$X.b", "aex.b");
        check_word("${ARCH}/bin", "amd64/bin");
        check_word("$UNSET-", "-");
        check_word("$", "$");
        check_word("a$ b", "a$ b");
        check_word("$1x", "x");
        check_word("ü${X}ü", "üexü");
        // Like Docker, a name runs over any Unicode letter.
        check_word("$Xü", "");
    }

    #[test]
    fn defaults_and_alternatives() {
        check_word("${UNSET:-d}", "d");
        check_word("${EMPTY:-d}", "d");
        check_word("${X:-d}", "ex");
        check_word("${UNSET-d}", "d");
        check_word("${EMPTY-d}", "");
        check_word("${X:+a}", "a");
        check_word("${EMPTY:+a}", "");
        check_word("${EMPTY+a}", "a");
        check_word("${UNSET+a}", "");
        check_word("${UNSET:-$X/${ARCH}}", "ex/amd64");
        check_word("${UNSET:-\"a}b\"}", "a}b");
        check_word("${UNSET:-a\\}b}", "a}b");
        check_word("${X:?}", "ex");
    }

    #[test]
    fn escapes_and_quotes() {
        check_word("\\$X", "$X");
        check_word("\\${X}", "${X}");
        check_word("'$X'", "$X");
        check_word("\"$X\"", "ex");
        check_word("\"a \\\"b\\\" \\$X \\n\"", "a \"b\" $X \\n");
        check_word("'a \\' b", "a \\ b");
        check_word("a\\ b", "a b");
        check_word("it\\'s", "it's");
        check_word("trailing\\", "trailing");
        assert_eq!(expand_word("`$X ${X}", '`', &env).as_deref(), Ok("$X ex"));
    }

    #[test]
    fn splitting() {
        check_words("a  b\tc", &["a", "b", "c"]);
        check_words("\"a  b\" c", &["a  b", "c"]);
        check_words("$SPACED", &["a", "b"]);
        check_words("\"$SPACED\"", &["a  b"]);
        check_words("x$SPACED", &["xa", "b"]);
        check_words("$UNSET", &[]);
        check_words("\"\" a", &["", "a"]);
        check_words("a\\ b c", &["a b", "c"]);
        check_words("", &[]);
        check_word("$SPACED", "a  b");
    }

    #[test]
    fn errors() {
        check_error("${X", "missing `}` for the `${` at byte 0");
        check_error("a ${X:-d", "missing `}` for the `${` at byte 2");
        check_error("${X:", "missing `}` for the `${` at byte 0");
        check_error(
            "${}",
            "bad substitution at byte 2: `${` must be followed by a variable name",
        );
        check_error(
            "${X#a}",
            "bad substitution at byte 3: unsupported modifier `#` in `${X...}` (supported: :- - :+ + :? ?)",
        );
        check_error(
            "${X:=a}",
            "bad substitution at byte 4: unsupported modifier `:=` in `${X...}` (supported: :- - :+ + :? ?)",
        );
        check_error("'abc", "unterminated ' quote at byte 0");
        check_error("x \"abc", "unterminated \" quote at byte 2");
        check_error("${UNSET:?need it}", "variable `UNSET` is required: need it");
        check_error(
            "${EMPTY:?}",
            "variable `EMPTY` is required: parameter not set",
        );
    }

    #[test]
    fn key_values() {
        let pairs = parse_key_values("a=1 b=\"two words\" c=$X d= 'e f'=g", '\\', &env);
        let expect = [
            ("a", "1"),
            ("b", "two words"),
            ("c", "ex"),
            ("d", ""),
            ("e f", "g"),
        ];
        assert_eq!(
            pairs,
            Ok(expect
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect())
        );
        assert_eq!(
            parse_key_values("a=1 oops", '\\', &env),
            Err(ExpandError::MissingEquals {
                word: "oops".to_string(),
                offset: 4
            })
        );
        assert_eq!(
            parse_key_values("a=1 b=${X", '\\', &env).map_err(|e| e.offset()),
            Err(6)
        );
    }

    #[test]
    fn env_forms() {
        let pairs = |text| parse_env(text, '\\', &env);
        let owned = |items: &[(&str, &str)]| {
            Ok(items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect())
        };
        assert_eq!(pairs("A=1 B=$X"), owned(&[("A", "1"), ("B", "ex")]));
        assert_eq!(
            pairs("A  hello  \"big\" $X  "),
            owned(&[("A", "hello  big ex")])
        );
        assert_eq!(pairs("A"), owned(&[("A", "")]));
        assert_eq!(pairs(""), owned(&[]));
    }

    #[test]
    fn arg_declarations() {
        assert_eq!(
            parse_arg_declarations("A B=1 C=${X}-x", '\\', &env),
            Ok(vec![
                ("A".to_string(), None),
                ("B".to_string(), Some("1".to_string())),
                ("C".to_string(), Some("ex-x".to_string())),
            ])
        );
    }
}

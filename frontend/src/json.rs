//! The JSON-array argument form (`["sh", "-c", "echo hi"]`), with the span of every string.
//!
//! serde_json cannot report where each value came from, and diagnostics need that, so this is a
//! small strict parser for exactly one shape: an array of strings with nothing after it. Whether
//! an instruction accepts the form, and what happens when the text is not such an array, is the
//! parser's business.

use std::ops::Range;

/// One string of the array: its unescaped value and the byte range of the literal (quotes
/// included) in the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonString {
    pub text: String,
    pub range: Range<usize>,
}

/// Parses `text` as a JSON array of strings (surrounding whitespace allowed), or `None` when it
/// is anything else: another JSON value, a non-string element, trailing text, a syntax error.
pub(crate) fn parse_string_array(text: &str) -> Option<Vec<JsonString>> {
    let bytes = text.as_bytes();
    let mut pos = skip_whitespace(bytes, 0);
    if bytes.get(pos) != Some(&b'[') {
        return None;
    }
    pos = skip_whitespace(bytes, pos + 1);
    let mut items = Vec::new();
    if bytes.get(pos) == Some(&b']') {
        pos += 1;
    } else {
        loop {
            if bytes.get(pos) != Some(&b'"') {
                return None;
            }
            let (value, end) = parse_string(text, pos)?;
            items.push(JsonString {
                text: value,
                range: pos..end,
            });
            pos = skip_whitespace(bytes, end);
            match bytes.get(pos) {
                Some(b',') => pos = skip_whitespace(bytes, pos + 1),
                Some(b']') => {
                    pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_whitespace(bytes, pos) == bytes.len()).then_some(items)
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// Parses the string literal whose opening quote is at `start`; returns its value and the
/// offset just after the closing quote.
fn parse_string(text: &str, start: usize) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut pos = start + 1;
    // Bytes from `run` to `pos` are copied verbatim; we only cut at ASCII bytes, so every cut is
    // on a char boundary.
    let mut run = pos;
    loop {
        match *bytes.get(pos)? {
            b'"' => {
                out.push_str(text.get(run..pos)?);
                return Some((out, pos + 1));
            }
            b'\\' => {
                out.push_str(text.get(run..pos)?);
                let escaped = *bytes.get(pos + 1)?;
                pos += 2;
                match escaped {
                    b'"' => out.push('"'),
                    b'\\' => out.push('\\'),
                    b'/' => out.push('/'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'u' => {
                        let (ch, used) = unicode_escape(text, pos)?;
                        out.push(ch);
                        pos += used;
                    }
                    _ => return None,
                }
                run = pos;
            }
            0..=0x1f => return None,
            _ => pos += 1,
        }
    }
}

/// Decodes the hex digits after `\u` at `pos` (and a following `\uDCxx` for a surrogate pair).
/// Like Go's encoding/json, a lone surrogate becomes U+FFFD.
fn unicode_escape(text: &str, pos: usize) -> Option<(char, usize)> {
    let high = hex4(text, pos)?;
    if (0xD800..0xDC00).contains(&high) {
        if text.get(pos + 4..pos + 6) == Some("\\u") {
            if let Some(low) = hex4(text, pos + 6) {
                if (0xDC00..0xE000).contains(&low) {
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    return Some((char::from_u32(code).unwrap_or('\u{FFFD}'), 10));
                }
            }
        }
        return Some(('\u{FFFD}', 4));
    }
    Some((char::from_u32(high).unwrap_or('\u{FFFD}'), 4))
}

fn hex4(text: &str, pos: usize) -> Option<u32> {
    let digits = text.get(pos..pos + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Option<&[&str]>) {
        let got = parse_string_array(text);
        let got_texts: Option<Vec<&str>> = got
            .as_ref()
            .map(|items| items.iter().map(|item| item.text.as_str()).collect());
        assert_eq!(got_texts.as_deref(), expect, "{text}");
        for item in got.iter().flatten() {
            let literal = &text[item.range.clone()];
            assert!(
                literal.starts_with('"') && literal.ends_with('"'),
                "{literal}"
            );
        }
    }

    #[test]
    fn arrays_of_strings() {
        check(r#"["a", "b c"]"#, Some(&["a", "b c"]));
        check(" [ ] ", Some(&[]));
        check(
            r#"["\"q\" \\ \/ \n \u00e9 \ud83d\ude00 \ud800"]"#,
            Some(&["\"q\" \\ / \n é 😀 \u{FFFD}"]),
        );
        check(r#"["ünï"]"#, Some(&["ünï"]));
    }

    #[test]
    fn not_arrays_of_strings() {
        for text in [
            "[",
            "[\"a\"",
            "[\"a\",]",
            "[1]",
            "[\"a\"] x",
            "[\"a\" \"b\"]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"tab\there\"]",
            "[ -f x ]",
            "a",
            "",
        ] {
            check(text, None);
        }
    }
}

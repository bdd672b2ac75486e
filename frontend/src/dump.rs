//! A readable, stable text dump of a [`Kubefile`], for golden tests and `--debug` output.
//!
//! One line per node, indented by depth, with byte spans and `{:?}`-quoted strings. The format
//! is for humans and snapshot files, not a serialisation: nothing parses it back.

use std::fmt::Write;

use crate::ast::{Args, Kubefile};

/// Dumps the tree, for example:
///
/// ```text
/// escape `\`
/// COPY 0..20 keyword 0..4
///   flag --from="build" 5..16
///   shell 17..20 "a b"
///     word 17..18 "a"
///     word 19..20 "b"
/// ```
pub fn dump(kubefile: &Kubefile) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored rather than unwrapped.
    let _ = writeln!(out, "escape `{}`", kubefile.escape);
    for instruction in &kubefile.instructions {
        let _ = writeln!(
            out,
            "{} {} keyword {}",
            instruction.keyword,
            range(instruction.span),
            range(instruction.keyword_span)
        );
        for flag in &instruction.flags {
            let value = match &flag.value {
                Some(value) => format!("={value:?}"),
                None => String::new(),
            };
            let _ = writeln!(out, "  flag --{}{value} {}", flag.name, range(flag.span));
        }
        match &instruction.args {
            Args::Shell { text, span } => {
                let _ = writeln!(out, "  shell {} {text:?}", range(*span));
            }
            Args::Json { items, span } => {
                let _ = writeln!(out, "  json {}", range(*span));
                for item in items {
                    let _ = writeln!(out, "    item {} {:?}", range(item.span), item.text);
                }
            }
        }
        for word in &instruction.words {
            let _ = writeln!(out, "    word {} {:?}", range(word.span), word.text);
        }
        for heredoc in &instruction.heredocs {
            let _ = writeln!(
                out,
                "  heredoc {:?} {} {} {:?}",
                heredoc.name,
                if heredoc.expand { "expand" } else { "literal" },
                range(heredoc.span),
                heredoc.content
            );
        }
    }
    out
}

fn range(span: crate::ast::Span) -> String {
    format!("{}..{}", span.start, span.end)
}

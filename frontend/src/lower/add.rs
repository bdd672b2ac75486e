//! Lowering ADD: COPY's destination rules plus archives and downloads.
//!
//! Local sources become a Local source selecting exactly them (as for COPY), and one FileOp
//! with an [`AddAction`] that builds the layer from that selection alone; whether a matched
//! file is an archive to unpack is decided by the engine from its name. `http(s)://` sources
//! are recorded in the action with their `--checksum`; a URL without one makes the FileOp run
//! on every build (never cached), and lowering warns about it.

use seal_llb::url;
use seal_llb::{AddAction, FileAction, FileOp, Op, UrlSource};

use super::{context_source, parse_chmod, Lowering};
use crate::ast::{Instruction, Span};
use crate::diagnostic::Diagnostic;
use crate::lexer;

impl Lowering<'_, '_> {
    pub(super) fn add(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let mut chmod = None;
        let mut chown = None;
        let mut checksum: Option<(String, Span)> = None;
        let mut link = false;
        for flag in &ins.flags {
            match flag.name.as_str() {
                "chmod" => chmod = Some(parse_chmod(flag)?),
                "chown" => chown = Some(self.parse_chown(flag)?),
                "checksum" => {
                    let parsed = url::parse_checksum(&self.flag_value(flag))
                        .map_err(|message| Diagnostic::new(message, flag.span))?;
                    checksum = Some((parsed, flag.span));
                }
                "link" => link = true,
                "keep-git-dir" => {
                    return Err(Diagnostic::new(
                        "ADD --keep-git-dir applies to git sources, which seal does not support",
                        flag.span,
                    )
                    .with_label("not supported")
                    .with_help(
                        "remove the flag; ADD takes local files, archives and http(s) URLs",
                    ))
                }
                // `check` admits only the flags above.
                _ => {}
            }
        }
        let (words, dest) = self.sources_and_dest(ins)?;
        self.warn_file_like_destination(ins, &words);
        let mut sources = Vec::new();
        let mut source_spans = Vec::new();
        let mut urls: Vec<UrlSource> = Vec::new();
        let mut url_lines = Vec::new();
        let mut heredoc_actions = Vec::new();
        let mut heredocs = ins.heredocs.iter();
        for (word, span) in &words {
            if lexer::heredoc_marker(word, self.kubefile.escape).is_some() || word.starts_with("<<")
            {
                let Some(doc) = heredocs.next() else {
                    return Err(Diagnostic::new("heredoc without a body", *span));
                };
                heredoc_actions.push(self.heredoc_file(doc, &dest, chmod.as_ref(), *span)?);
                continue;
            }
            if url::is_url(word) {
                if url::url_file_name(word).is_none() {
                    return Err(Diagnostic::new(
                        format!("ADD source `{word}` names no file"),
                        *span,
                    )
                    .with_label("no file name at the end of the URL's path")
                    .with_help(
                        "a download lands under the last segment of the URL's path; use a URL that ends in a file name",
                    ));
                }
                urls.push(UrlSource {
                    url: word.clone(),
                    checksum: None,
                });
                url_lines.push(self.line_of(span.start));
                continue;
            }
            sources.push(context_source(ins.keyword, word, *span, false)?);
            source_spans.push((span.start, span.end));
        }
        if let Some((value, span)) = checksum {
            if urls.len() != 1 || !sources.is_empty() || !heredoc_actions.is_empty() {
                return Err(Diagnostic::new(
                    "ADD --checksum needs exactly one source, an http(s) URL",
                    span,
                )
                .with_help(
                    "write one ADD per download: `ADD --checksum=sha256:<hex> <url> <dest>`",
                ));
            }
            urls[0].checksum = Some(value);
        }
        for (url, line) in urls.iter().zip(&url_lines) {
            if url.checksum.is_none() {
                self.warnings.push(format!(
                    "ADD {} (line {line}) has no --checksum: it is downloaded on every build and never cached; add --checksum=sha256:<hex> to cache it",
                    url.url
                ));
            }
        }
        let description = format!(
            "[{}/{}] ADD {}",
            self.next_step(),
            self.steps_total,
            self.instruction_text(ins)
        );
        let mut inputs = Vec::new();
        if !sources.is_empty() {
            let local = self.local_source(ins, &sources);
            inputs.push(local);
        }
        let mut actions = Vec::new();
        if !sources.is_empty() || !urls.is_empty() {
            actions.push(FileAction::Add(AddAction {
                sources,
                urls,
                dest,
                chmod,
                chown,
            }));
        }
        actions.extend(heredoc_actions);
        inputs.push(self.rootfs_below(link));
        let op = Op::File(FileOp {
            actions,
            format: self.options.format,
        });
        let mut metadata = self.metadata(ins, description);
        metadata.source_spans = source_spans;
        let node = self.builder.add(op, &inputs, metadata);
        self.push_layer(node);
        self.history(ins, false);
        Ok(())
    }

    /// The 1-based line of a byte offset in the Kubefile.
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.source.len());
        self.source[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }
}

//! The Kubefile syntax tree: instructions with byte spans into the source text.
//!
//! The tree is syntax only: variables are not expanded, sources are not resolved. `lower` turns
//! it into LLB. Every node carries a [`Span`] so a later error can point at the exact bytes.

use std::fmt;

/// A byte range `start..end` into the Kubefile text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// A span covering `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the span covers no byte.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> miette::SourceSpan {
        (span.start, span.len()).into()
    }
}

/// A parsed Kubefile: parser directives and instructions in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubefile {
    /// The escape character chosen by `# escape=` (default `\`).
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// Every instruction of the Kubefile language (KUBEFILE.md "Instructions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    From,
    Copy,
    Add,
    Run,
    Cmd,
    Cmds,
    Label,
    Maintainer,
    Arg,
    Env,
    App,
    AppCmds,
    AppEnv,
    Launch,
    Cni,
    Csi,
    KubeVersion,
}

impl Keyword {
    /// All keywords, in the order of KUBEFILE.md's table.
    pub const ALL: [Keyword; 17] = [
        Keyword::From,
        Keyword::Copy,
        Keyword::Add,
        Keyword::Run,
        Keyword::Cmd,
        Keyword::Cmds,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Arg,
        Keyword::Env,
        Keyword::App,
        Keyword::AppCmds,
        Keyword::AppEnv,
        Keyword::Launch,
        Keyword::Cni,
        Keyword::Csi,
        Keyword::KubeVersion,
    ];

    /// The upper-case spelling, as written in KUBEFILE.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::From => "FROM",
            Keyword::Copy => "COPY",
            Keyword::Add => "ADD",
            Keyword::Run => "RUN",
            Keyword::Cmd => "CMD",
            Keyword::Cmds => "CMDS",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Arg => "ARG",
            Keyword::Env => "ENV",
            Keyword::App => "APP",
            Keyword::AppCmds => "APPCMDS",
            Keyword::AppEnv => "APPENV",
            Keyword::Launch => "LAUNCH",
            Keyword::Cni => "CNI",
            Keyword::Csi => "CSI",
            Keyword::KubeVersion => "KUBEVERSION",
        }
    }

    /// Case-insensitive lookup (`from` == `FROM`).
    pub fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instruction: keyword, leading `--flags`, arguments and heredoc bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: Keyword,
    /// The keyword as written.
    pub keyword_span: Span,
    /// From the keyword to the end of the last continuation line (heredoc bodies excluded).
    pub span: Span,
    /// Leading `--name[=value]` flags, in order.
    pub flags: Vec<Flag>,
    pub args: Args,
    /// Heredoc bodies introduced by `<<NAME` words in the arguments, in order.
    pub heredocs: Vec<Heredoc>,
    /// Shell form only: the argument text split on unquoted whitespace, each word as written
    /// (quotes, escapes and `$` kept) with its source span. Empty for JSON form.
    /// `lexer::heredoc_marker` tells which words open `heredocs` (the i-th marker word is
    /// `heredocs[i]`).
    pub words: Vec<Word>,
}

/// A leading `--name[=value]` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without the leading `--`.
    pub name: String,
    pub value: Option<String>,
    /// The whole `--name=value` word.
    pub span: Span,
}

/// The arguments after the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Shell form: the raw text with continuations joined (escape+newline removed, comment lines
    /// inside the continuation dropped). Quotes and `$` are left for `expand`.
    Shell { text: String, span: Span },
    /// JSON-array form: `["a", "b"]`, strings already unescaped.
    Json { items: Vec<Word>, span: Span },
}

impl Args {
    /// The span of the whole argument text.
    pub fn span(&self) -> Span {
        match self {
            Args::Shell { span, .. } | Args::Json { span, .. } => *span,
        }
    }
}

/// A word with the span it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub span: Span,
}

/// A heredoc body (`<<EOF ... EOF`, Dockerfile 1.4 syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter name, quotes removed.
    pub name: String,
    /// The body, ending with a newline unless empty; leading tabs stripped for `<<-`.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"` / `<<'EOF'`): no variable expansion.
    pub expand: bool,
    /// The body and the closing delimiter line.
    pub span: Span,
}

/// The synopsis of an instruction, for help lines.
pub(crate) fn usage(keyword: Keyword) -> &'static str {
    match keyword {
        Keyword::From => "`FROM [--platform=<platform>] <image> [AS <name>]`",
        Keyword::Copy => {
            "`COPY [--from=<stage>] [--chmod=<mode>] [--chown=<uid:gid>] <src>... <dest>`"
        }
        Keyword::Add => {
            "`ADD [--chmod=<mode>] [--chown=<uid:gid>] [--checksum=<digest>] <src>... <dest>`"
        }
        Keyword::Run => "`RUN <command>` or `RUN [\"executable\", \"arg\", ...]`",
        Keyword::Cmd => "`CMD <command>` or `CMD [\"executable\", \"arg\", ...]`",
        Keyword::Cmds => "`CMDS [\"command\", ...]`",
        Keyword::Label => "`LABEL <key>=<value> ...`",
        Keyword::Maintainer => "`MAINTAINER <name>`",
        Keyword::Arg => "`ARG <name>[=<default>] ...`",
        Keyword::Env => "`ENV <name>=<value> ...`",
        Keyword::App => "`APP <name> local://<path>... | https://<url>...`",
        Keyword::AppCmds => "`APPCMDS <app> [\"command\", ...]`",
        Keyword::AppEnv => "`APPENV <app> <key>=<value> ...`",
        Keyword::Launch => "`LAUNCH [\"app\", ...]`",
        Keyword::Cni => "`CNI <name> <src>...`",
        Keyword::Csi => "`CSI <name> <src>...`",
        Keyword::KubeVersion => "`KUBEVERSION <version>`",
    }
}

//! Kubefile text -> syntax tree (with source spans) -> LLB Definition.
//!
//! **API Boundary.** This crate owns the Kubefile language. [`parse`] turns the bytes of a
//! Kubefile into a [`ast::Kubefile`] (every node carries a byte [`ast::Span`]) plus syntax
//! [`Diagnostic`]s; [`check()`] adds the structural rules that need no variable values;
//! [`expand`] implements Docker's quote and `$VAR` processing for the instructions seal expands
//! itself. Broken input is data: nothing here panics or stops at the first error, except that
//! binary input is refused outright.
//!
//! **Architecture Invariant:** the frontend does no IO (callers hand it bytes) and never touches
//! the store; it does not resolve images, read the build context or run anything.
//!
//! ```
//! use seal_frontend::{check, diagnostic, parse};
//!
//! let source = b"FROM scratch\nCPOY a.yaml manifests\n";
//! let parsed = parse(source);
//! assert_eq!(parsed.kubefile.instructions.len(), 1);
//! let text = diagnostic::render(&parsed.errors[0], "Kubefile", source);
//! assert!(text.contains("did you mean `COPY`?"));
//!
//! let parsed = parse(b"FROM scratch\nCOPY a.yaml manifests\n");
//! assert!(parsed.errors.is_empty() && check(&parsed.kubefile).is_empty());
//! ```

pub mod ast;
pub mod check;
pub mod diagnostic;
pub mod dump;
pub mod expand;
mod json;
pub mod lexer;
pub mod lower;
pub mod parser;

pub use check::check;
pub use diagnostic::Diagnostic;
pub use parser::{parse, parse_checked, Parsed};

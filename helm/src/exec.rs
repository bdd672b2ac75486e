//! Executing parsed templates with Go text/template's semantics, as Helm configures it.
//!
//! gotmpl parses (its trees are `gotmpl::parse`'s); execution is ours, because Helm's data
//! needs what gotmpl's executor cannot give: maps shared by reference ([`Dict`]), so that
//! `set` in a helper is seen by its caller; methods on Helm's objects (`.Files.Get`,
//! `.Capabilities.APIVersions.Has`); and Go's errors with the template and line.
//!
//! What follows Go (`text/template/exec.go`) exactly:
//! - `missingkey=zero` (Helm's setting for `helm template`): a missing map key is a nil
//!   interface; printing nil gives `<no value>`, which the renderer removes as Helm does.
//! - Field access on a nil interface — a missing key or a null value reached through a field
//!   chain (`.Values.global.x` without `global`), or a nil element bound by `range` — is the
//!   error `nil pointer evaluating interface {}.x`. Field access on "no value" (a nil dot
//!   passed to `include`/`template`, a variable holding nil) gives nil, as in Go.
//! - `and`/`or` evaluate their arguments lazily; `eq`/`lt`... refuse mixed kinds (`eq 1 1.0`
//!   is "incompatible types for comparison"); `index` through a missing key is "index of
//!   untyped nil".
//! - Variables are scoped to their block; `range` binds index and element per iteration;
//!   `break`/`continue`; `template` gets a fresh `$`.

use std::collections::HashMap;
use std::sync::Arc;

use gotmpl::parse::{BranchNode, Expr, ListNode, Node, Number, PipeNode, Pos, SmolStr};

use super::format::go_string;
use super::value::{self, type_of, Tag, Value};

mod builtins;

use builtins::*;
pub use builtins::{is_builtin, sprint, to_gotmpl};

/// A template function: Sprig's and Helm's context-free functions. The error is the whole
/// message (`error calling x: ...` where Go would add it).
pub type Func = fn(&[Value]) -> std::result::Result<Value, String>;

/// Functions by template name.
pub type FuncMap = HashMap<String, Func>;

/// A method of one of Helm's objects: `Some` when `receiver` has a method `name`.
pub type MethodFn =
    fn(name: &str, receiver: &Value, args: &[Value]) -> Option<std::result::Result<Value, String>>;

/// Parses `tpl`'s text named by the first argument: its body and `define`s, or the error.
pub type ParseFn =
    fn(&str, &str) -> std::result::Result<(ListNode, Vec<(String, ListNode)>), String>;

/// Templates defined with `define`, or a file's own body, by name.
pub type Namespace = HashMap<String, Named>;

/// Nested `include`s of one name allowed (Helm's `recursionMaxNums`).
const MAX_INCLUDES_OF_ONE_NAME: usize = 1000;

/// Nested template calls allowed in all (Go allows 100000; our stack is the limit).
const MAX_DEPTH: usize = 10_000;

/// A named template: its body and the file it was defined in (for errors).
#[derive(Clone)]
pub struct Named {
    pub body: Arc<ListNode>,
    pub file: Arc<str>,
}

/// An execution error at a template line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError {
    pub file: Arc<str>,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

type Result<T> = std::result::Result<T, ExecError>;

/// How a block ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// A dot or variable value. `in_interface`: it was read out of a map or list, so Go holds it
/// as an `interface {}`: nil is then a nil interface, whose fields are an error (while the nil
/// "no value" of a missing dot gives nil), and a field of a non-map names type `interface {}`.
#[derive(Clone)]
struct Slot {
    value: Value,
    in_interface: bool,
}

impl Slot {
    fn plain(value: Value) -> Slot {
        Slot {
            value,
            in_interface: false,
        }
    }

    fn element(value: Value) -> Slot {
        Slot {
            value,
            in_interface: true,
        }
    }
}

/// One template execution's variables and file.
struct Frame {
    vars: Vec<(SmolStr, Slot)>,
    file: Arc<str>,
}

/// An executor over one namespace of templates (plus the layers `tpl` adds).
pub struct Exec<'a> {
    funcs: &'a FuncMap,
    method: MethodFn,
    layers: Vec<Arc<Namespace>>,
    includes: HashMap<String, usize>,
    depth: usize,
    parse: ParseFn,
}

impl<'a> Exec<'a> {
    /// An executor over `namespace`.
    pub fn new(
        namespace: Arc<Namespace>,
        funcs: &'a FuncMap,
        method: MethodFn,
        parse: ParseFn,
    ) -> Exec<'a> {
        Exec {
            funcs,
            method,
            layers: vec![namespace],
            includes: HashMap::new(),
            depth: 0,
            parse,
        }
    }

    fn lookup(&self, name: &str) -> Option<Named> {
        self.layers.iter().rev().find_map(|l| l.get(name).cloned())
    }

    /// Run template `name` with `data` as dot and `$`.
    pub fn execute(&mut self, name: &str, data: Value) -> Result<String> {
        let named = self.lookup(name).ok_or_else(|| ExecError {
            file: Arc::from(name),
            line: 0,
            message: format!("no template {name:?} associated with template \"gotpl\""),
        })?;
        let mut out = String::new();
        self.run(&named, Slot::plain(data), &mut out)?;
        Ok(out)
    }

    fn run(&mut self, named: &Named, dot: Slot, out: &mut String) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(ExecError {
                file: named.file.clone(),
                line: named.body.pos.line,
                message: format!("exceeded maximum template depth ({MAX_DEPTH})"),
            });
        }
        self.depth += 1;
        let mut frame = Frame {
            vars: vec![(SmolStr::new_static("$"), dot.clone())],
            file: named.file.clone(),
        };
        let body = named.body.clone();
        let result = self.walk(&mut frame, &dot, &body, out);
        self.depth -= 1;
        result.map(|_| ())
    }

    fn err(&self, frame: &Frame, pos: Pos, message: impl Into<String>) -> ExecError {
        ExecError {
            file: frame.file.clone(),
            line: pos.line,
            message: message.into(),
        }
    }

    fn walk(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        list: &ListNode,
        out: &mut String,
    ) -> Result<Flow> {
        for node in &list.nodes {
            let flow = self.walk_node(f, dot, node, out)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_node(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        node: &Node,
        out: &mut String,
    ) -> Result<Flow> {
        match node {
            Node::Text(t) => out.push_str(&t.text),
            Node::Action(a) => {
                let v = self.pipeline(f, dot, &a.pipe)?;
                if a.pipe.decl.is_empty() {
                    print_value(&v, out);
                }
            }
            Node::If(b) => return self.walk_if_with(f, dot, b, false, out),
            Node::With(b) => return self.walk_if_with(f, dot, b, true, out),
            Node::Range(b) => return self.walk_range(f, dot, b, out),
            Node::Template(t) => {
                let data = match &t.pipe {
                    Some(p) => self.pipeline(f, dot, p)?,
                    None => Value::Nil,
                };
                let named = self.lookup(&t.name).ok_or_else(|| {
                    self.err(
                        f,
                        t.pos,
                        format!(
                            "no template {:?} associated with template \"gotpl\"",
                            t.name.as_str()
                        ),
                    )
                })?;
                self.run(&named, Slot::plain(data), out)?;
            }
            Node::List(l) => return self.walk(f, dot, l, out),
            Node::Define(_) => {}
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        b: &BranchNode,
        with: bool,
        out: &mut String,
    ) -> Result<Flow> {
        let mark = f.vars.len();
        let result = (|| {
            let v = self.pipeline(f, dot, &b.pipe)?;
            if v.is_truthy() {
                if with {
                    self.walk(f, &Slot::plain(v), &b.body, out)
                } else {
                    self.walk(f, dot, &b.body, out)
                }
            } else if let Some(e) = &b.else_body {
                self.walk(f, dot, e, out)
            } else {
                Ok(Flow::Normal)
            }
        })();
        f.vars.truncate(mark);
        result
    }

    fn walk_range(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        b: &BranchNode,
        out: &mut String,
    ) -> Result<Flow> {
        let outer = f.vars.len();
        let result = (|| {
            let v = self.pipeline(f, dot, &b.pipe)?;
            let items: Vec<(Value, Slot)> = match &v {
                Value::List(items) => items
                    .items()
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (Value::Int(i as i64), Slot::element(e.clone())))
                    .collect(),
                Value::Map(d) => d
                    .snapshot()
                    .into_iter()
                    .map(|(k, e)| (Value::String(k), Slot::element(e)))
                    .collect(),
                Value::Int(n) => (0..*n)
                    .map(|i| (Value::Int(i), Slot::plain(Value::Int(i))))
                    .collect(),
                Value::Nil => Vec::new(),
                other => {
                    return Err(self.err(
                        f,
                        b.pos,
                        format!("range can't iterate over {}", go_string(other)),
                    ))
                }
            };
            if items.is_empty() {
                return match &b.else_body {
                    Some(e) => self.walk(f, dot, e, out),
                    None => Ok(Flow::Normal),
                };
            }
            let mark = f.vars.len();
            let decl = &b.pipe.decl;
            for (index, elem) in items {
                if b.pipe.is_assign {
                    if decl.len() > 1 {
                        self.set_var(f, b.pos, &decl[0], Slot::plain(index))?;
                        self.set_var(f, b.pos, &decl[1], elem.clone())?;
                    } else if let Some(d) = decl.first() {
                        self.set_var(f, b.pos, d, elem.clone())?;
                    }
                } else {
                    // The pipeline pushed its variables: the element is the last, the index
                    // the one before it.
                    let n = f.vars.len();
                    if !decl.is_empty() {
                        f.vars[n - 1].1 = elem.clone();
                    }
                    if decl.len() > 1 {
                        f.vars[n - 2].1 = Slot::plain(index);
                    }
                }
                let flow = self.walk(f, &elem, &b.body, out);
                f.vars.truncate(mark);
                if flow? == Flow::Break {
                    break;
                }
            }
            Ok(Flow::Normal)
        })();
        f.vars.truncate(outer);
        result
    }

    fn set_var(&self, f: &mut Frame, pos: Pos, name: &str, value: Slot) -> Result<()> {
        match f.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(self.err(f, pos, format!("undefined variable: {name}"))),
        }
    }

    fn var(&self, f: &Frame, pos: Pos, name: &str) -> Result<Slot> {
        f.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(f, pos, format!("undefined variable: {name}")))
    }

    fn pipeline(&mut self, f: &mut Frame, dot: &Slot, pipe: &PipeNode) -> Result<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.commands {
            value = Some(self.command(f, dot, &cmd.args, cmd.pos, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(f, pipe.pos, name, Slot::plain(value.clone()))?;
            } else {
                f.vars.push((name.clone(), Slot::plain(value.clone())));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, f: &Frame, args: &[Expr], last: &Option<Value>) -> Result<()> {
        if args.len() > 1 || last.is_some() {
            return Err(self.err(
                f,
                args[0].pos(),
                format!(
                    "can't give argument to non-function {}",
                    expr_text(&args[0])
                ),
            ));
        }
        Ok(())
    }

    fn command(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        args: &[Expr],
        pos: Pos,
        last: Option<Value>,
    ) -> Result<Value> {
        let Some(first) = args.first() else {
            return Err(self.err(f, pos, "empty command"));
        };
        match first {
            Expr::Field(p, idents) => {
                self.field_chain(f, dot, dot.clone(), idents, args, last, *p, first)
            }
            Expr::Chain(p, inner, idents) => {
                if matches!(**inner, Expr::Nil(_)) {
                    return Err(self.err(
                        f,
                        *p,
                        format!("indirection through explicit nil in {}", expr_text(first)),
                    ));
                }
                let receiver = self.arg(f, dot, inner)?;
                self.field_chain(f, dot, Slot::plain(receiver), idents, args, last, *p, first)
            }
            Expr::Identifier(p, name) => self.call(f, dot, name, &args[1..], last, *p),
            Expr::Variable(p, name, idents) => {
                let v = self.var(f, *p, name)?;
                if idents.is_empty() {
                    self.not_a_function(f, args, &last)?;
                    Ok(v.value)
                } else {
                    self.field_chain(f, dot, v, idents, args, last, *p, first)
                }
            }
            Expr::Pipe(_, p) => {
                self.not_a_function(f, args, &last)?;
                self.pipeline(f, dot, p)
            }
            Expr::Nil(p) => Err(self.err(f, *p, "nil is not a command")),
            other => {
                self.not_a_function(f, args, &last)?;
                Ok(self.constant(dot, other))
            }
        }
    }

    fn constant(&self, dot: &Slot, e: &Expr) -> Value {
        match e {
            Expr::Dot(_) => dot.value.clone(),
            Expr::Bool(_, b) => Value::Bool(*b),
            Expr::Number(_, Number::Int(i)) => Value::Int(*i),
            Expr::Number(_, Number::Float(x)) => Value::Float(*x),
            Expr::Number(_, Number::Uint(u)) => Value::Uint(*u),
            Expr::String(_, s) => Value::String(s.clone()),
            _ => Value::Nil,
        }
    }

    /// An argument of a function or method.
    fn arg(&mut self, f: &mut Frame, dot: &Slot, e: &Expr) -> Result<Value> {
        match e {
            Expr::Field(p, idents) => {
                self.field_chain(f, dot, dot.clone(), idents, &[], None, *p, e)
            }
            Expr::Variable(p, name, idents) => {
                let v = self.var(f, *p, name)?;
                if idents.is_empty() {
                    Ok(v.value)
                } else {
                    self.field_chain(f, dot, v, idents, &[], None, *p, e)
                }
            }
            Expr::Pipe(_, p) => self.pipeline(f, dot, p),
            Expr::Identifier(p, name) => self.call(f, dot, name, &[], None, *p),
            Expr::Chain(..) => self.command(f, dot, std::slice::from_ref(e), e.pos(), None),
            Expr::Nil(_) => Ok(Value::Nil),
            other => Ok(self.constant(dot, other)),
        }
    }

    fn args(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        exprs: &[Expr],
        last: Option<Value>,
    ) -> Result<Vec<Value>> {
        let mut values = Vec::with_capacity(exprs.len() + 1);
        for e in exprs {
            values.push(self.arg(f, dot, e)?);
        }
        values.extend(last);
        Ok(values)
    }

    /// `recv.a.b.c`, the last field getting the command's arguments when it is a method.
    #[allow(clippy::too_many_arguments)]
    fn field_chain(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        receiver: Slot,
        idents: &[SmolStr],
        args: &[Expr],
        last: Option<Value>,
        pos: Pos,
        node: &Expr,
    ) -> Result<Value> {
        let mut receiver = receiver;
        let mut last = last;
        for (i, name) in idents.iter().enumerate() {
            let is_last = i + 1 == idents.len();
            let (call_args, final_arg) = if is_last {
                (args, last.take())
            } else {
                (&[][..], None)
            };
            let v = self.field(f, dot, &receiver, name, call_args, final_arg, pos, node)?;
            receiver = Slot::element(v);
        }
        Ok(receiver.value)
    }

    #[allow(clippy::too_many_arguments)]
    fn field(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        receiver: &Slot,
        name: &str,
        args: &[Expr],
        last: Option<Value>,
        pos: Pos,
        node: &Expr,
    ) -> Result<Value> {
        let has_args = args.len() > 1 || last.is_some();
        match &receiver.value {
            Value::Nil if receiver.in_interface => Err(self.err(
                f,
                pos,
                format!(
                    "at <{}>: nil pointer evaluating interface {{}}.{name}",
                    expr_text(node)
                ),
            )),
            Value::Nil => Ok(Value::Nil),
            recv => {
                let call_args = if args.len() > 1 {
                    self.args(f, dot, &args[1..], last)?
                } else {
                    last.into_iter().collect()
                };
                if let Some(result) = (self.method)(name, recv, &call_args) {
                    return result.map_err(|m| self.err(f, pos, m));
                }
                match recv {
                    Value::Map(d) => {
                        if has_args {
                            return Err(self.err(
                                f,
                                pos,
                                format!("{name} is not a method but has arguments"),
                            ));
                        }
                        Ok(d.get(name).unwrap_or(Value::Nil))
                    }
                    other => Err(self.err(
                        f,
                        pos,
                        format!(
                            "at <{}>: can't evaluate field {name} in type {}",
                            expr_text(node),
                            if receiver.in_interface {
                                "interface {}"
                            } else {
                                type_of(other)
                            }
                        ),
                    )),
                }
            }
        }
    }

    fn call(
        &mut self,
        f: &mut Frame,
        dot: &Slot,
        name: &str,
        exprs: &[Expr],
        last: Option<Value>,
        pos: Pos,
    ) -> Result<Value> {
        if let Some(func) = self.funcs.get(name).copied() {
            let args = self.args(f, dot, exprs, last)?;
            return func(&args).map_err(|m| self.err(f, pos, m));
        }
        match name {
            "and" | "or" => {
                let want = name == "or";
                if exprs.is_empty() && last.is_none() {
                    return Err(self.err(
                        f,
                        pos,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    ));
                }
                let mut v = Value::Nil;
                for e in exprs {
                    v = self.arg(f, dot, e)?;
                    if v.is_truthy() == want {
                        return Ok(v);
                    }
                }
                Ok(last.unwrap_or(v))
            }
            "include" => {
                let args = self.args(f, dot, exprs, last)?;
                self.include(f, pos, &args)
            }
            "tpl" => {
                let args = self.args(f, dot, exprs, last)?;
                self.tpl(f, pos, &args)
            }
            _ => match builtin(name) {
                Some(b) => {
                    let args = self.args(f, dot, exprs, last)?;
                    b(&args).map_err(|m| self.err(f, pos, format!("error calling {name}: {m}")))
                }
                None => Err(self.err(f, pos, format!("function {name:?} not defined"))),
            },
        }
    }

    /// Wrap an error from a nested execution: the caller's line, the inner one in the message.
    fn nested_error(&self, f: &Frame, pos: Pos, function: &str, inner: ExecError) -> ExecError {
        // A runaway recursion keeps its innermost levels only.
        if inner.message.matches("error calling ").count() >= 8 {
            return inner;
        }
        self.err(f, pos, format!("error calling {function}: {inner}"))
    }

    /// Helm's `include NAME DATA`.
    fn include(&mut self, f: &Frame, pos: Pos, args: &[Value]) -> Result<Value> {
        let name = args.first().map(go_string).unwrap_or_default();
        let data = args.get(1).cloned().unwrap_or(Value::Nil);
        let count = self.includes.entry(name.clone()).or_insert(0);
        if *count > MAX_INCLUDES_OF_ONE_NAME {
            return Err(self.err(
                f,
                pos,
                format!("error calling include: rendering template has a nested reference name: {name}: unable to execute template"),
            ));
        }
        *count += 1;
        let result = match self.lookup(&name) {
            Some(named) => {
                let mut out = String::new();
                self.run(&named, Slot::plain(data), &mut out).map(|_| out)
            }
            None => Err(self.err(
                f,
                pos,
                format!("no template {name:?} associated with template \"gotpl\""),
            )),
        };
        if let Some(c) = self.includes.get_mut(&name) {
            *c -= 1;
        }
        result
            .map(value::string)
            .map_err(|e| self.nested_error(f, pos, "include", e))
    }

    /// Helm's `tpl TEXT DATA`: TEXT is parsed as a template, its `define`s visible inside it.
    fn tpl(&mut self, f: &Frame, pos: Pos, args: &[Value]) -> Result<Value> {
        let text = args.first().map(go_string).unwrap_or_default();
        let data = args.get(1).cloned().unwrap_or(Value::Nil);
        let label = format!("{} (tpl)", f.file);
        let (body, defines) = (self.parse)(&label, &text).map_err(|m| {
            self.err(
                f,
                pos,
                format!("error calling tpl: cannot parse template {text:?}: {m}"),
            )
        })?;
        let file: Arc<str> = Arc::from(label.as_str());
        let mut layer = Namespace::new();
        for (name, body) in defines {
            if body.is_empty_tree() && self.lookup(&name).is_some() {
                continue;
            }
            layer.insert(
                name,
                Named {
                    body: Arc::new(body),
                    file: file.clone(),
                },
            );
        }
        self.layers.push(Arc::new(layer));
        let named = Named {
            body: Arc::new(body),
            file,
        };
        let mut out = String::new();
        let result = self.run(&named, Slot::plain(data), &mut out);
        self.layers.pop();
        result.map_err(|e| self.nested_error(f, pos, "tpl", e))?;
        Ok(value::string(out.replace("<no value>", "")))
    }
}

/// Go's printing of an action's value: nil is `<no value>`.
fn print_value(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<no value>"),
        Value::String(s) => out.push_str(s),
        // An action prints a `fmt.Stringer` by its `String()`.
        Value::Map(d) if d.tag() == Tag::KubeVersion => {
            out.push_str(&d.get("Version").map(|v| go_string(&v)).unwrap_or_default())
        }
        other => out.push_str(&go_string(other)),
    }
}

/// The source form of an expression, for error messages (`<.Values.global.x>`).
pub fn expr_text(e: &Expr) -> String {
    let fields = |f: &[SmolStr]| f.iter().map(|s| format!(".{s}")).collect::<String>();
    match e {
        Expr::Dot(_) => ".".into(),
        Expr::Field(_, f) => fields(f),
        Expr::Variable(_, name, f) => format!("{name}{}", fields(f)),
        Expr::Identifier(_, name) => name.to_string(),
        Expr::String(_, s) => format!("{s:?}"),
        Expr::Number(_, Number::Int(i)) => i.to_string(),
        Expr::Number(_, Number::Float(x)) => x.to_string(),
        Expr::Number(_, Number::Uint(u)) => u.to_string(),
        Expr::Bool(_, b) => b.to_string(),
        Expr::Nil(_) => "nil".into(),
        Expr::Pipe(_, p) => format!("({})", pipe_text(p)),
        Expr::Chain(_, inner, f) => format!("{}{}", expr_text(inner), fields(f)),
    }
}

fn pipe_text(p: &PipeNode) -> String {
    p.commands
        .iter()
        .map(|c| c.args.iter().map(expr_text).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests;

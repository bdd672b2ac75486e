//! Rewrites of parsed templates that make gotmpl behave like Go's text/template under Helm.
//!
//! gotmpl is a faithful Go text/template engine for plain data, but Helm's data has methods and
//! shared, mutable maps, and Helm's errors point at lines. Rather than fork the engine, each
//! parsed tree is rewritten once:
//! - **Method calls.** `.Files.Get "x"`, `.Capabilities.APIVersions.Has "v1"` and other field
//!   chains given arguments become `__method "Get" .Files "x"`; the niladic
//!   `(.Files.Glob "x").AsConfig` becomes `__method "AsConfig" (.Files.Glob "x")`.
//! - **Printing.** Every printing action gets a final `| __fmt`, which prints numbers the way
//!   Go's `fmt` does (`1e+06`), not the way Rust does.
//! - **Locations.** Before every action, `if`, `range`, `with` and `template` node, a silent
//!   `{{ __at "file" line }}` records where execution is, so that an error names its line.
//! - **In-place map updates.** Sprig's `set`, `unset`, `merge` and `mergeOverwrite` change their
//!   first argument in place; gotmpl values are immutable. A statement
//!   `{{ $_ := set $m "k" v }}` is followed by `{{ $m = $_ }}` (or `__setPath` for `$m.a.b`),
//!   and one on dot (`set .Values.x ...`, `set . ...`) runs the rest of the block in a
//!   `with` whose dot is the updated value. Changes are therefore visible through the variable
//!   or dot that was written, not through other references to the same map held elsewhere.

use std::sync::Arc;

use gotmpl::parse::{
    ActionNode, BranchNode, CommandNode, Expr, ListNode, Node, Number, PipeNode, Pos, SmolStr,
};

/// Methods without arguments that Helm's objects have (`Files.AsConfig`, `Files.AsSecrets`).
const NILADIC_METHODS: [&str; 2] = ["AsConfig", "AsSecrets"];

/// Functions that update their first argument in place in Go.
const MUTATORS: [&str; 6] = [
    "set",
    "unset",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
];

/// Rewrite a parsed template body that lives in `file`.
pub fn rewrite(list: ListNode, file: &Arc<str>) -> ListNode {
    ListNode {
        pos: list.pos,
        nodes: rewrite_nodes(list.nodes, file),
    }
}

fn rewrite_nodes(nodes: Vec<Node>, file: &Arc<str>) -> Vec<Node> {
    let mut out = Vec::with_capacity(nodes.len() * 2);
    let mut iter = nodes.into_iter();
    while let Some(node) = iter.next() {
        match node {
            Node::Action(mut action) => {
                action.pipe = rewrite_pipe(action.pipe);
                out.push(marker(file, action.pos));
                let write_back = write_back(&action.pipe);
                if action.pipe.decl.is_empty() {
                    action.pipe.commands.push(CommandNode {
                        pos: action.pos,
                        args: vec![Expr::Identifier(action.pos, SmolStr::new_static("__fmt"))],
                    });
                }
                let pos = action.pos;
                out.push(Node::Action(action));
                match write_back {
                    Some(WriteBack::Assign(node)) => out.push(node),
                    Some(WriteBack::Dot { value }) => {
                        // Run the rest of this block with the updated dot.
                        let rest = rewrite_nodes(iter.collect(), file);
                        out.push(Node::With(BranchNode {
                            pos,
                            pipe: pipe(pos, vec![command(pos, vec![value])], vec![]),
                            body: ListNode {
                                pos,
                                nodes: rest.clone(),
                            },
                            else_body: Some(ListNode { pos, nodes: rest }),
                        }));
                        return out;
                    }
                    None => {}
                }
            }
            Node::If(branch) => {
                out.push(marker(file, branch.pos));
                out.push(Node::If(rewrite_branch(branch, file)));
            }
            Node::Range(branch) => {
                out.push(marker(file, branch.pos));
                out.push(Node::Range(rewrite_branch(branch, file)));
            }
            Node::With(branch) => {
                out.push(marker(file, branch.pos));
                out.push(Node::With(rewrite_branch(branch, file)));
            }
            Node::Template(mut t) => {
                t.pipe = t.pipe.map(rewrite_pipe);
                out.push(marker(file, t.pos));
                out.push(Node::Template(t));
            }
            Node::List(list) => out.push(Node::List(rewrite(list, file))),
            other @ (Node::Text(_) | Node::Define(_) | Node::Break(_) | Node::Continue(_)) => {
                out.push(other)
            }
        }
    }
    out
}

fn rewrite_branch(branch: BranchNode, file: &Arc<str>) -> BranchNode {
    BranchNode {
        pos: branch.pos,
        pipe: rewrite_pipe(branch.pipe),
        body: rewrite(branch.body, file),
        else_body: branch.else_body.map(|b| rewrite(b, file)),
    }
}

/// `{{ __at "file" line }}`: prints nothing.
fn marker(file: &Arc<str>, pos: Pos) -> Node {
    Node::Action(ActionNode {
        pos,
        pipe: pipe(
            pos,
            vec![command(
                pos,
                vec![
                    Expr::Identifier(pos, SmolStr::new_static("__at")),
                    Expr::String(pos, file.clone()),
                    Expr::Number(pos, Number::Int(pos.line as i64)),
                ],
            )],
            vec![],
        ),
    })
}

fn pipe(pos: Pos, commands: Vec<CommandNode>, decl: Vec<SmolStr>) -> PipeNode {
    PipeNode {
        pos,
        decl,
        commands,
        is_assign: false,
    }
}

fn command(pos: Pos, args: Vec<Expr>) -> CommandNode {
    CommandNode { pos, args }
}

fn rewrite_pipe(mut pipe: PipeNode) -> PipeNode {
    for (i, cmd) in pipe.commands.iter_mut().enumerate() {
        let args = std::mem::take(&mut cmd.args);
        let mut args: Vec<Expr> = args.into_iter().map(rewrite_expr).collect();
        let takes_arguments = args.len() > 1 || i > 0;
        if takes_arguments {
            if let Some((method, receiver)) = args.first().and_then(split_method) {
                let pos = args[0].pos();
                let mut call = vec![
                    Expr::Identifier(pos, SmolStr::new_static("__method")),
                    Expr::String(pos, Arc::from(method.as_str())),
                    receiver,
                ];
                call.extend(args.drain(1..));
                args = call;
            }
        }
        cmd.args = args;
    }
    pipe
}

fn rewrite_expr(expr: Expr) -> Expr {
    let expr = match expr {
        Expr::Pipe(pos, p) => Expr::Pipe(pos, rewrite_pipe(p)),
        Expr::Chain(pos, inner, fields) => Expr::Chain(pos, Box::new(rewrite_expr(*inner)), fields),
        other => other,
    };
    match split_method(&expr) {
        Some((method, receiver)) if NILADIC_METHODS.contains(&method.as_str()) => {
            let pos = expr.pos();
            Expr::Pipe(
                pos,
                pipe(
                    pos,
                    vec![command(
                        pos,
                        vec![
                            Expr::Identifier(pos, SmolStr::new_static("__method")),
                            Expr::String(pos, Arc::from(method.as_str())),
                            receiver,
                        ],
                    )],
                    vec![],
                ),
            )
        }
        _ => expr,
    }
}

/// Split `recv.Method` into (`Method`, `recv`) for field chains.
fn split_method(expr: &Expr) -> Option<(SmolStr, Expr)> {
    match expr {
        Expr::Field(pos, fields) => {
            let (last, rest) = fields.split_last()?;
            let receiver = if rest.is_empty() {
                Expr::Dot(*pos)
            } else {
                Expr::Field(*pos, rest.to_vec())
            };
            Some((last.clone(), receiver))
        }
        Expr::Variable(pos, name, fields) => {
            let (last, rest) = fields.split_last()?;
            Some((
                last.clone(),
                Expr::Variable(*pos, name.clone(), rest.to_vec()),
            ))
        }
        Expr::Chain(pos, inner, fields) => {
            let (last, rest) = fields.split_last()?;
            let receiver = if rest.is_empty() {
                (**inner).clone()
            } else {
                Expr::Chain(*pos, inner.clone(), rest.to_vec())
            };
            Some((last.clone(), receiver))
        }
        _ => None,
    }
}

enum WriteBack {
    /// A node to put right after the statement.
    Assign(Node),
    /// Run the rest of the block with dot = this expression.
    Dot { value: Expr },
}

/// For `$x := set PLACE ...`, how to store the result back into PLACE.
fn write_back(p: &PipeNode) -> Option<WriteBack> {
    let [cmd] = p.commands.as_slice() else {
        return None;
    };
    let [decl] = p.decl.as_slice() else {
        return None;
    };
    let Some(Expr::Identifier(_, f)) = cmd.args.first() else {
        return None;
    };
    if !MUTATORS.contains(&f.as_str()) || cmd.args.len() < 2 {
        return None;
    }
    let pos = p.pos;
    let result = Expr::Variable(pos, decl.clone(), vec![]);
    let set_path = |root: Expr, fields: &[SmolStr]| {
        let mut args = vec![
            Expr::Identifier(pos, SmolStr::new_static("__setPath")),
            root,
            result.clone(),
        ];
        args.extend(
            fields
                .iter()
                .map(|f| Expr::String(pos, Arc::from(f.as_str()))),
        );
        Expr::Pipe(pos, pipe(pos, vec![command(pos, args)], vec![]))
    };
    match &cmd.args[1] {
        Expr::Variable(_, name, fields) => {
            if fields.is_empty() && name == decl {
                return None;
            }
            let value = if fields.is_empty() {
                result.clone()
            } else {
                set_path(Expr::Variable(pos, name.clone(), vec![]), fields)
            };
            Some(WriteBack::Assign(Node::Action(ActionNode {
                pos,
                pipe: PipeNode {
                    pos,
                    decl: vec![name.clone()],
                    commands: vec![command(pos, vec![value])],
                    is_assign: true,
                },
            })))
        }
        Expr::Dot(_) => Some(WriteBack::Dot { value: result }),
        Expr::Field(_, fields) => Some(WriteBack::Dot {
            value: set_path(Expr::Dot(pos), fields),
        }),
        _ => None,
    }
}

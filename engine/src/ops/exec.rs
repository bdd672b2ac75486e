//! ExecOp (RUN): defined in the LLB, executed by the lite/container/cloud executors of a later
//! issue. Until then a Definition that reaches here fails with a clear error.

use crate::llb::ExecOp;
use crate::output::Output;
use crate::EngineError;

/// Run the command (not supported yet).
pub fn exec(op: &ExecOp, _inputs: &[Output]) -> Result<Output, EngineError> {
    Err(EngineError::NotSupported(format!(
        "executing RUN (`{}`)",
        op.args.join(" ")
    )))
}

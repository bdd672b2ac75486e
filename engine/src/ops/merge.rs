//! MergeOp: stack the inputs' layers in order. No IO; never cached (it is cheaper to redo
//! than to look up).

use crate::output::{LayerChain, Output};
use crate::EngineError;

/// Concatenate the inputs' layer chains; the base config comes from the first input.
pub fn exec(inputs: &[Output]) -> Result<Output, EngineError> {
    let mut chain = LayerChain::default();
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Output::Layers(c) => {
                if i == 0 {
                    chain.base_config = c.base_config.clone();
                }
                chain.layers.extend(c.layers.iter().cloned());
            }
            Output::Context(_) | Output::Images(_) => {
                return Err(EngineError::Internal(
                    "a merge input is not a rootfs".into(),
                ))
            }
        }
    }
    Ok(Output::Layers(chain))
}

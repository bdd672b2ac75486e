//! Layers as bytes and as trees: writing them (`layer`), the metadata they keep (`xattrs`),
//! unpacking them into snapshots (`unpack`) whose files are links to the store's objects
//! (`objects`), an overlay upper dir as a layer (`diff`), local
//! tar archives read safely (`archive`), and each layer's path index (`layer_index`).

pub mod archive;
pub mod diff;
pub mod layer;
pub mod layer_index;
pub mod objects;
pub mod unpack;
pub mod xattrs;

//! Layers as bytes and as trees: writing them (`layer`), the metadata they keep (`xattrs`),
//! unpacking them into snapshots (`unpack`) whose files are links to the store's objects
//! (`objects`) or into one EROFS image file (`erofs`), possibly while the layer is written
//! (`snapshot_tee`), where a layer write's time goes (`phase_times`), an overlay upper dir as a
//! layer (`diff`), local tar archives read safely (`archive`), each layer's path index
//! (`layer_index`), and the content hash of a file (`file_hash`).

pub mod archive;
pub mod diff;
pub mod erofs;
pub mod file_hash;
pub mod layer;
pub mod layer_index;
pub mod objects;
pub mod phase_times;
pub mod snapshot_image;
pub mod snapshot_tee;
pub mod unpack;
pub mod xattrs;

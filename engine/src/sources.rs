//! What COPY and ADD read and where it lands: the build context (`context`: resolving,
//! walking and hashing sources; `ignore`: `.sealignore`/`.dockerignore`), COPY's layer
//! entries (`copy`), ADD's URLs (`download`) and ADD's layer entries (`add`).

pub mod add;
pub mod context;
pub mod copy;
pub mod download;
pub mod ignore;

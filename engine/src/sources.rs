//! What COPY and ADD read: the build context (`context`: resolving, walking and hashing
//! sources; `ignore`: `.sealignore`/`.dockerignore`), ADD's URLs (`download`) and ADD's
//! layer entries (`add`).

pub mod add;
pub mod context;
pub mod download;
pub mod ignore;

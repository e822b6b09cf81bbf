//! Content v2: a per-project chunk store (dedupe across files and
//! versions), manifests in SQLite, and the routes that move many chunks at
//! once. The v1 blob routes serve chunked content through [`content`].

pub mod check;
pub mod content;
mod frames;
mod routes;
pub mod serve;
pub mod small;
pub mod store;
mod verify;

pub use routes::router;
pub use store::ChunkStore;

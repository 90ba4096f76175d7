//! Jobs: admission of signed requests, the durable job store, and the pipeline that drives each job
//! from `Received` to `Minted`.
//!
//! `admission` checks a request before anything is stored; `store` persists every state change in
//! SQLite; `pipeline` runs each job's next step (generate on the `inference` thread, pin, attest,
//! mint) and publishes `events` for the SSE stream. `remote` follows jobs forwarded to peers.

pub mod admission;
pub mod events;
pub mod inference;
pub mod pipeline;
pub mod remote;
pub mod state;
pub mod store;

pub use state::JobState;
pub use store::{JobRecord, JobRoute, JobStore};

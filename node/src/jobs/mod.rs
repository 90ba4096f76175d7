//! Jobs: the bottom of the node's logic. Admission of signed requests, the durable job store, and
//! the service that drives each job from `Received` to `Minted`.
//!
//! ```text
//! submit ─► admission (signature, bounds, model, fee) ─► store (SQLite) ─► a task per job:
//!   local:     Queued ─► generate (inference thread) ─► pin (content store) ─► mint, confirm (chain)
//!   forwarded: place on a peer (forwarder) ─► mirror its reports ─► fail over when it goes silent
//! every state change ─► events (SSE, advertiser, notifier)
//! ```
//! Jobs know nothing of the network, the wire or alloy's providers: they reach the outside through
//! traits they own, each with the product's implementation and a fake for unit tests:
//! [`MintChain`] (real: [`ChainMinter`]), [`Pinner`] (real: any `ipfs::ContentStore`, i.e. Kubo),
//! [`Forwarder`] (real: `network::Network`). Peers reach jobs through [`PeerJobs`].

pub mod admission;
mod backoff;
mod cancel;
mod chain;
mod content;
mod error;
pub mod events;
mod followed;
mod forward;
mod forwarder;
mod generate;
pub mod inference;
mod minting;
mod models;
mod peers;
mod service;
pub mod state;
pub mod store;
#[cfg(test)]
pub(crate) mod testing;

pub use cancel::CancelError;
pub use chain::{ChainMint, ChainMinter, Finality, MintChain};
pub use content::Pinner;
pub use error::{JobError, StepError, SubmitError};
pub use forward::UpdateError;
pub use forwarder::{Candidate, ForwardError, Forwarder, Need, Placement, RemoteStatus, StatusReply};
pub use models::{ModelError, ModelLoader, Models, ServedModel};
pub use peers::{PeerCancelError, PeerJobs};
pub use service::{Jobs, JobsParts, Load};
pub use state::JobState;
pub use store::{JobOutputs, JobRecord, JobRoute, JobStore, PeerRef, StoreError};

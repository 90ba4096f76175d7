//! Peer spot checks: nodes that serve a model re-generate tokens other nodes minted with it and tell
//! the network whether the pixels came out as attested, so a node that mints images its model did
//! not make is found out, visibly.
//!
//! ```text
//! checker (every p2p.spot_check_interval_secs, only while no job waits):
//!   candidates: recent AigcData mints ─► minted by another node, this node's model, not checked
//!               here yet ─► one at random ─► metadata (CID recomputed) ─► the signed request
//!   re-generate at the lowest priority ─► pixel digest ⇄ the mint's attested digest; when they
//!   differ, dHash distance to the minted image: match | similar (other hardware, near) | mismatch
//!   SpotCheck signed by the operator key (signature) ─► job store ─► gossip ─► log
//! receiver: a peer's check (signature and publisher checked by the network) ─► registered checker?
//!   the chain agrees on minter and digest? ─► job store, and gossip forwards it (else rejected)
//! GET /v1/tokens/{id}/provenance ─► report: every check of the token, and any mismatch, visibly
//! ```

mod candidates;
mod checker;
mod receiver;
mod report;
pub mod signature;

use genmint_p2p::spot_check::{Outcome, SpotCheck};

pub use self::checker::SpotChecker;
pub use self::receiver::{RECEIVED_QUEUE, receive};
pub use self::report::{PeerCheck, PeerChecks};

/// Logs a check, made by `whom`: a mismatch as a warning.
fn log(check: &SpotCheck, whom: &str) {
    match check.outcome {
        Outcome::Match => tracing::info!(
            token = %check.token_id,
            minted_by = %check.minted_by,
            checker = %check.checker,
            "spot check by {whom}: the re-generated pixels match the attested ones"
        ),
        Outcome::Similar => tracing::info!(
            token = %check.token_id,
            minted_by = %check.minted_by,
            checker = %check.checker,
            perceptual_distance = ?check.perceptual_distance,
            minted_device = %check.minted_envelope.device_class,
            checker_device = %check.checker_envelope.device_class,
            "spot check by {whom}: other hardware, the same picture (not bit-exact)"
        ),
        Outcome::Mismatch => tracing::warn!(
            token = %check.token_id,
            minted_by = %check.minted_by,
            checker = %check.checker,
            expected = %check.expected_pixel_digest,
            regenerated = %check.regenerated_pixel_digest,
            perceptual_distance = ?check.perceptual_distance,
            same_envelope = check.same_envelope(),
            minted_device = %check.minted_envelope.device_class,
            checker_device = %check.checker_envelope.device_class,
            "spot check by {whom}: the re-generated pixels differ from the attested ones"
        ),
    }
}

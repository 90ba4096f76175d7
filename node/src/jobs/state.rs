//! The durable job states of one request and the moves allowed between them.
//!
//! ```text
//! Received → Queued → Generating → Generated → Pinned → Minting → Confirming → Minted
//!              └──────────┴────────────┴──────────┴────────┴──────────┴──→ Failed
//!   (Cancelled and Expired only before Pinned: from then on the mint may be sent at any moment;
//!    except that a mint stuck unmined past its request's deadline is replaced and the job Expired)
//! ```
//! `Minting` waits for the transaction's receipt; `Confirming` counts the blocks on top of the
//! mint's block until the configured depth (a mint that already has it at its first receipt goes
//! straight to `Minted`). A reorg that takes the mint's block away sends `Confirming` back to
//! `Minting` (the transaction is pending again) or to `Pinned` (the chain forgot it: sent again).
//! A restart resumes from the last durable state: `Generating` goes back to `Queued` (generation is
//! deterministic, so re-running it yields the same pixels), `Minting` and `Confirming` re-check
//! the chain before anything is resent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Received,
    Queued,
    Generating,
    Generated,
    Pinned,
    Minting,
    Confirming,
    Minted,
    Failed,
    Cancelled,
    Expired,
}

impl JobState {
    pub const ALL: [JobState; 11] = [
        JobState::Received,
        JobState::Queued,
        JobState::Generating,
        JobState::Generated,
        JobState::Pinned,
        JobState::Minting,
        JobState::Confirming,
        JobState::Minted,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Received => "received",
            JobState::Queued => "queued",
            JobState::Generating => "generating",
            JobState::Generated => "generated",
            JobState::Pinned => "pinned",
            JobState::Minting => "minting",
            JobState::Confirming => "confirming",
            JobState::Minted => "minted",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Expired => "expired",
        }
    }

    /// No further work happens in a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Minted | JobState::Failed | JobState::Cancelled | JobState::Expired)
    }

    /// Once the attestation is signed the mint may be sent at any moment, so from `Pinned` on
    /// the job can no longer be cancelled or expire: the chain decides.
    pub fn can_cancel(self) -> bool {
        !self.is_terminal() && !matches!(self, JobState::Pinned | JobState::Minting | JobState::Confirming)
    }

    /// Whether the pipeline may move a job from `self` to `next`.
    pub fn allows(self, next: JobState) -> bool {
        use JobState::*;
        match (self, next) {
            (Received, Queued) | (Queued, Generating) | (Generating, Generated) => true,
            (Generated, Pinned) | (Pinned, Minting) | (Minting, Confirming | Minted) => true,
            // Each new confirmation is recorded, until the depth is reached.
            (Confirming, Confirming | Minted) => true,
            // A stuck mint re-priced; one whose request expired replaced by a transfer.
            (Minting, Minting | Expired) => true,
            // Recovery after a restart, a dropped transaction or a reorg.
            (Generating, Queued) | (Minting | Confirming, Pinned) | (Confirming, Minting) => true,
            // A mint found already on chain: recorded from the chain before any further work.
            (Received | Queued | Generated | Pinned, Minted) => true,
            (from, Failed) => !from.is_terminal(),
            (from, Cancelled | Expired) => from.can_cancel(),
            _ => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
    }

    #[test]
    fn the_happy_path_is_allowed_and_terminal_states_are_final() {
        use JobState::*;
        let path = [Received, Queued, Generating, Generated, Pinned, Minting, Confirming, Minted];
        for pair in path.windows(2) {
            assert!(pair[0].allows(pair[1]), "{} -> {}", pair[0], pair[1]);
        }
        for terminal in [Minted, Failed, Cancelled, Expired] {
            assert!(JobState::ALL.iter().all(|next| !terminal.allows(*next)), "{terminal}");
        }
        assert!(!Minting.allows(Cancelled), "a sent mint cannot be cancelled");
        assert!(!Confirming.allows(Cancelled) && !Confirming.allows(Expired), "nor a mined one");
        assert!(Confirming.allows(Pinned), "a reorg that drops the mint sends it again");
        assert!(!Pinned.allows(Cancelled), "a mint about to be sent cannot be cancelled");
        assert!(Generating.allows(Cancelled));
        assert!(Queued.allows(Minted), "a request minted already is recorded from the chain");
        assert!(!Generating.allows(Minted), "a running generation ends first");
    }
}

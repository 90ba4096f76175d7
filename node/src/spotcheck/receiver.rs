//! Peers' spot checks, after the network checked their signature and publisher: the checker must
//! be a registered node and the chain must agree on the token (minted by the named node, with the
//! named pixel digest). Sound checks are kept and gossip forwards them; others are rejected.

use alloy::primitives::{Address, B256};
use genmint_p2p::spot_check::{ReceivedSpotCheck, SpotCheck, Verdict};
use tokio::sync::mpsc;

use super::{SpotCheckChain, SpotCheckNetwork, SpotCheckStore};
use crate::chain::ChainError;
use crate::verify::parse_token_id;

/// Judges, keeps and logs peers' checks until the channel closes or the network stops.
pub async fn receive(
    network: &dyn SpotCheckNetwork,
    chain: &dyn SpotCheckChain,
    store: &SpotCheckStore,
    mut checks: mpsc::Receiver<Box<ReceivedSpotCheck>>,
) {
    while let Some(received) = checks.recv().await {
        let ReceivedSpotCheck { check, publisher, ticket } = *received;
        let verdict = match judge(network, chain, &check).await {
            Ok(()) => match store.record(check.clone()).await {
                Ok(_) => {
                    super::log(&check, "a peer");
                    Verdict::Accept
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep a peer's spot check");
                    Verdict::Ignore
                }
            },
            Err((verdict, reason)) => {
                tracing::debug!(%publisher, token = %check.token_id, reason, ?verdict, "peer's spot check refused");
                verdict
            }
        };
        if network.judge(ticket, verdict).await.is_err() {
            return;
        }
    }
}

/// Whether a peer's check is sound: `Err` carries the verdict and why.
pub(super) async fn judge(
    network: &dyn SpotCheckNetwork,
    chain: &dyn SpotCheckChain,
    check: &SpotCheck,
) -> Result<(), (Verdict, String)> {
    let reject = |reason: String| (Verdict::Reject, reason);
    let not_now = |e: ChainError| (Verdict::Ignore, e.to_string());
    // The network checked the shape: these parse.
    let checker: Address = check.checker.parse().map_err(|e| reject(format!("checker: {e}")))?;
    let minted_by: Address = check.minted_by.parse().map_err(|e| reject(format!("minted_by: {e}")))?;
    let expected: B256 =
        check.expected_pixel_digest.parse().map_err(|e| reject(format!("expected_pixel_digest: {e}")))?;
    let token = parse_token_id(&check.token_id).map_err(reject)?;
    if !network.is_registered(checker).await {
        return Err(reject(format!("the checker {checker} is not a registered node")));
    }
    let record =
        chain.provenance(token).await.map_err(not_now)?.ok_or_else(|| reject("no such token".into()))?;
    if record.node != minted_by {
        return Err(reject(format!("the token was minted by {}, not {minted_by}", record.node)));
    }
    let event =
        chain.minted_event(token).await.map_err(not_now)?.ok_or_else(|| reject("no mint event".into()))?;
    if event.pixel_digest != expected {
        return Err(reject(format!("the mint attested pixels {}, not {expected}", event.pixel_digest)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;
    use genmint_p2p::spot_check::{CheckEnvelope, Outcome, SPOT_CHECK_VERSION};

    use super::*;
    use crate::jobs::testing::lock;
    use crate::spotcheck::candidates::token_hex;
    use crate::spotcheck::testing::{Bench, our_model, painted};

    const MINTER: Address = Address::repeat_byte(0x0e);
    const CHECKER: Address = Address::repeat_byte(0x0c);

    fn check_of(token: alloy::primitives::U256, minted_by: Address, expected: B256) -> SpotCheck {
        let envelope =
            CheckEnvelope { engine: "fake".into(), dtype: "f32".into(), device_class: "cpu".into() };
        SpotCheck {
            version: SPOT_CHECK_VERSION,
            token_id: token_hex(token),
            model_hash: our_model().to_string(),
            minted_by: minted_by.to_string(),
            expected_pixel_digest: expected.to_string(),
            regenerated_pixel_digest: expected.to_string(),
            perceptual_distance: None,
            outcome: Outcome::Match,
            checker: CHECKER.to_string(),
            checker_envelope: envelope.clone(),
            minted_envelope: envelope,
            checked_at: 1,
            signature: String::new(),
            step_check: None,
        }
    }

    #[tokio::test]
    async fn a_sound_check_is_accepted_and_every_unsound_one_says_why() {
        let bench = Bench::new();
        let token = bench.mint(MINTER, 4, our_model(), &painted(4)).await;
        let digest = B256::from(painted(4).pixel_digest());
        let (network, chain) = (bench.network.as_ref(), bench.chain.as_ref());

        let unregistered = judge(network, chain, &check_of(token, MINTER, digest)).await.unwrap_err();
        assert_eq!(unregistered.0, Verdict::Reject);
        assert!(unregistered.1.contains("not a registered node"), "{}", unregistered.1);
        lock(&bench.network.registered).insert(CHECKER);
        judge(network, chain, &check_of(token, MINTER, digest)).await.unwrap();

        let cases = [
            (check_of(token, Address::repeat_byte(1), digest), "minted by"),
            (check_of(token, MINTER, B256::repeat_byte(2)), "attested pixels"),
            (check_of(alloy::primitives::U256::from(5), MINTER, digest), "no such token"),
        ];
        for (check, says) in cases {
            let (verdict, reason) = judge(network, chain, &check).await.unwrap_err();
            assert_eq!(verdict, Verdict::Reject, "{reason}");
            assert!(reason.contains(says), "{reason}");
        }
        *lock(&bench.chain.down) = true;
        let (verdict, _) = judge(network, chain, &check_of(token, MINTER, digest)).await.unwrap_err();
        assert_eq!(verdict, Verdict::Ignore, "a chain that does not answer blames nobody");
    }
}

//! Spot checks on the network, both ways. Ours go out once on the spot-check topic, checked the way
//! peers will check them. Theirs are judged (size, shape, freshness, the publisher's advert binds
//! it to the checking operator, the signature) before the node sees them; the node then gives the
//! final verdict, and gossip forwards only what it accepts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::gossipsub::{self, IdentTopic, PublishError};

use super::NetworkError;
use super::advert_book::{AdvertBook, check_timestamp};
use super::adverts::Refusal;
use crate::Gossiped;
use crate::spot_check::{SpotCheck, SpotCheckVerifier};

/// Checks made longer ago than this are stale: a check is published once, when it is made.
pub(super) const MAX_SPOT_CHECK_AGE: Duration = Duration::from_secs(60 * 60);

pub(super) struct SpotChecks {
    local: PeerId,
    topic: IdentTopic,
    verifier: Arc<dyn SpotCheckVerifier>,
}

impl SpotChecks {
    pub fn new(local: PeerId, network_id: &str, verifier: Arc<dyn SpotCheckVerifier>) -> Self {
        Self { local, topic: IdentTopic::new(format!("genmint/spot-checks/1/{network_id}")), verifier }
    }

    pub fn topic(&self) -> &IdentTopic {
        &self.topic
    }

    /// Publishes one of our checks, refusing one that peers would reject.
    pub fn publish(
        &self,
        gossipsub: &mut gossipsub::Behaviour,
        check: &SpotCheck,
    ) -> Result<(), NetworkError> {
        let refuse = |reason: String| NetworkError::SpotCheck(reason);
        check.validate_shape().map_err(refuse)?;
        let bytes = check.encode().map_err(|e| refuse(e.to_string()))?;
        self.verifier
            .verify(check)
            .map_err(|reason| refuse(format!("the signature is refused: {reason}")))?;
        match gossipsub.publish(self.topic.clone(), bytes) {
            Ok(_) => Ok(()),
            Err(PublishError::NoPeersSubscribedToTopic) => {
                Err(refuse("no peer listens for spot checks yet".into()))
            }
            Err(e) => Err(refuse(e.to_string())),
        }
    }

    /// Decides on a gossip message: `Ok` is a check the node should judge; its publisher's fresh
    /// advert (in `adverts`) must name the check's operator.
    pub fn judge(&self, message: &gossipsub::Message, adverts: &AdvertBook) -> Result<SpotCheck, Refusal> {
        if message.topic != self.topic.hash() {
            return Err(Refusal::Reject(format!("topic {} is not the spot-check topic", message.topic)));
        }
        let check = SpotCheck::decode(&message.data).map_err(|e| Refusal::Reject(e.to_string()))?;
        let publisher =
            message.source.ok_or_else(|| Refusal::Reject("the message names no publisher".into()))?;
        if publisher == self.local {
            return Err(Refusal::Ignore("our own spot check".into()));
        }
        check_timestamp("checked at", check.checked_at, MAX_SPOT_CHECK_AGE).map_err(Refusal::Ignore)?;
        let Some(received) = adverts.get(&publisher, Instant::now()) else {
            return Err(Refusal::Ignore(format!(
                "{publisher} has no fresh advert, so its operator is unknown"
            )));
        };
        if !received.advert.operator.eq_ignore_ascii_case(&check.checker) {
            return Err(Refusal::Reject(format!(
                "a check by operator {} published by {publisher}, which is bound to operator {}",
                check.checker, received.advert.operator
            )));
        }
        self.verifier
            .verify(&check)
            .map_err(|reason| Refusal::Reject(format!("signature refused: {reason}")))?;
        Ok(check)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::advert::Advert;
    use crate::advert::tests::{advert, peer};
    use crate::network::Dilation;
    use crate::network::advert_book::unix_seconds;
    use crate::network::adverts::tests::gossip;
    use crate::spot_check::tests::check;

    const TTL: Duration = Duration::from_secs(30);

    /// Accepts the signature the fixture check carries.
    struct OnlyGood;

    impl SpotCheckVerifier for OnlyGood {
        fn verify(&self, check: &SpotCheck) -> Result<(), String> {
            match check.signature.ends_with("9a") {
                true => Ok(()),
                false => Err("not signed by the checker".into()),
            }
        }
    }

    fn fresh_check() -> SpotCheck {
        SpotCheck { checked_at: unix_seconds(SystemTime::now()), ..check() }
    }

    /// A book holding `peer`'s advert, which binds it to `operator`.
    fn book_with(peer: PeerId, operator: &str) -> AdvertBook {
        let mut book = AdvertBook::new(TTL, 8, Dilation::NONE);
        let advert = Advert { operator: operator.into(), ..advert(&peer, 1) };
        book.store(peer, advert, Instant::now());
        book
    }

    /// A gossip message on the spot-check topic of network "test".
    fn message(source: PeerId, data: Vec<u8>) -> gossipsub::Message {
        gossip("genmint/spot-checks/1/test", source, data)
    }

    #[test]
    fn a_good_check_from_its_operators_node_goes_to_the_node() {
        let (spot_checks, publisher) = (SpotChecks::new(peer(), "test", Arc::new(OnlyGood)), peer());
        let book = book_with(publisher, &fresh_check().checker);
        let judged = spot_checks.judge(&message(publisher, fresh_check().encode().unwrap()), &book);
        assert_eq!(judged.unwrap(), fresh_check());
    }

    #[test]
    fn rule_breakers_are_rejected_and_stale_own_or_unbound_checks_ignored() {
        let spot_checks = SpotChecks::new(peer(), "test", Arc::new(OnlyGood));
        let publisher = peer();
        let book = book_with(publisher, &fresh_check().checker);
        let judge = |message: gossipsub::Message| spot_checks.judge(&message, &book);
        let reject = |message: gossipsub::Message, says: &str| match judge(message) {
            Err(Refusal::Reject(reason)) => assert!(reason.contains(says), "{reason}"),
            other => panic!("expected a rejection saying {says:?}, got {other:?}"),
        };
        let ignore = |message: gossipsub::Message, says: &str| match judge(message) {
            Err(Refusal::Ignore(reason)) => assert!(reason.contains(says), "{reason}"),
            other => panic!("expected to ignore it because {says:?}, got {other:?}"),
        };
        let unsigned = SpotCheck { signature: format!("0x{}", "cd".repeat(65)), ..fresh_check() };
        reject(message(publisher, unsigned.encode().unwrap()), "signature");
        reject(message(publisher, vec![b' '; 5000]), "exceeds");
        reject(message(publisher, b"{}".to_vec()), "malformed");
        let mut elsewhere = message(publisher, fresh_check().encode().unwrap());
        elsewhere.topic = IdentTopic::new("genmint/spot-checks/1/other").hash();
        reject(elsewhere, "topic");
        // Published by a node bound to another operator than the one who signed.
        let other_operator = book_with(publisher, &format!("0x{}", "99".repeat(20)));
        match spot_checks.judge(&message(publisher, fresh_check().encode().unwrap()), &other_operator) {
            Err(Refusal::Reject(reason)) => assert!(reason.contains("bound to operator"), "{reason}"),
            other => panic!("a check relayed as someone else's was taken: {other:?}"),
        }

        ignore(message(peer(), fresh_check().encode().unwrap()), "no fresh advert");
        ignore(message(spot_checks.local, fresh_check().encode().unwrap()), "our own");
        let stale =
            SpotCheck { checked_at: fresh_check().checked_at - MAX_SPOT_CHECK_AGE.as_secs() - 5, ..check() };
        ignore(message(publisher, stale.encode().unwrap()), "fresh");
        let premature = SpotCheck { checked_at: fresh_check().checked_at + 600, ..check() };
        ignore(message(publisher, premature.encode().unwrap()), "future");
    }
}

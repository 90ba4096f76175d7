//! [`SpotCheckNetwork`] on the gossip: this node's checks are published on the spot-check topic,
//! peers' checks judged there, and checkers' registration read from the cached registry.

use alloy::primitives::Address;
use futures_util::future::BoxFuture;
use genmint_p2p::NetworkError;
use genmint_p2p::spot_check::{SpotCheck, SpotCheckTicket, Verdict};

use super::Network;
use crate::spotcheck::SpotCheckNetwork;

impl SpotCheckNetwork for Network {
    fn publish(&self, check: SpotCheck) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(self.handle.publish_spot_check(check))
    }

    fn judge(&self, ticket: SpotCheckTicket, verdict: Verdict) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(self.handle.judge_spot_check(ticket, verdict))
    }

    fn is_registered(&self, operator: Address) -> BoxFuture<'_, bool> {
        Box::pin(Network::is_registered(self, operator))
    }
}

//! Choosing where a job runs: the peers whose adverts can take it, best first.
//!
//! Order, as DESIGN.md asks: the model must match (and the advert's size and step limits cover the
//! request), then price (the advertised price must be within the signed fee; cheaper first), then
//! load (shorter queue first), then latency (lower ping round trip first; unknown last). Peers whose
//! advert shows no free capacity stay candidates, after all the others: a full peer is a reason to
//! wait for room, not a peer that cannot serve the job.

use std::cmp::Ordering;
use std::time::Duration;

use alloy::primitives::U256;
use genmint_p2p::PeerId;
use genmint_p2p::advert::Advert;

use crate::jobs::Need;

/// A peer able to take the job, as its advert describes it.
#[derive(Debug, Clone)]
pub struct Offer {
    pub peer: PeerId,
    pub advert: Advert,
    pub rtt: Option<Duration>,
}

impl Offer {
    fn price(&self) -> Option<U256> {
        self.advert.price_wei.parse().ok()
    }

    fn serves(&self, need: &Need) -> bool {
        let model_hash = need.model_hash.to_string();
        self.advert.models.iter().any(|m| {
            m.hash.eq_ignore_ascii_case(&model_hash)
                && need.width <= m.max_width
                && need.height <= m.max_height
                && need.steps <= m.max_steps
        })
    }
}

/// The offers that can take `need`, best first.
pub fn rank(offers: Vec<Offer>, need: &Need) -> Vec<Offer> {
    let mut able: Vec<Offer> =
        offers.into_iter().filter(|o| o.serves(need) && o.price().is_some_and(|p| p <= need.fee)).collect();
    able.sort_by(|a, b| {
        let full = |o: &Offer| o.advert.capacity == 0;
        full(a)
            .cmp(&full(b))
            .then(a.price().cmp(&b.price()))
            .then(a.advert.queue_depth.cmp(&b.advert.queue_depth))
            .then(match (a.rtt, b.rtt) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
    });
    able
}

#[cfg(test)]
mod tests {
    use genmint_p2p::advert::AdvertisedModel;

    use super::*;

    use genmint_model_runtime::ModelHash;

    const MODEL: ModelHash = ModelHash([0xaa; 32]);

    fn offer(price: u64, queue: u32, capacity: u32, rtt_ms: Option<u64>) -> Offer {
        Offer {
            peer: PeerId::random(),
            advert: Advert {
                peer_id: String::new(),
                operator: String::new(),
                chain_id: 1,
                contract: String::new(),
                binding_signature: String::new(),
                models: vec![AdvertisedModel {
                    hash: MODEL.to_string().to_uppercase().replace("0X", "0x"),
                    name: "m".into(),
                    kind: "pixel_minilm".into(),
                    max_width: 64,
                    max_height: 64,
                    max_steps: 50,
                    defaults: None,
                }],
                devices: vec!["cpu".into()],
                queue_depth: queue,
                capacity,
                price_wei: price.to_string(),
                sequence: 1,
                issued_at: 0,
                refresh_secs: None,
                addresses: Vec::new(),
            },
            rtt: rtt_ms.map(Duration::from_millis),
        }
    }

    fn need(fee: u64) -> Need {
        Need { model_hash: MODEL, width: 32, height: 32, steps: 20, fee: U256::from(fee) }
    }

    #[test]
    fn price_then_load_then_latency() {
        let cheap_busy = offer(1, 9, 5, Some(50));
        let cheap_idle_far = offer(1, 0, 5, Some(40));
        let cheap_idle_near = offer(1, 0, 5, Some(2));
        let dear = offer(5, 0, 5, Some(1));
        let order = [dear.peer, cheap_busy.peer, cheap_idle_far.peer, cheap_idle_near.peer];
        let ranked = rank(vec![dear, cheap_busy, cheap_idle_far, cheap_idle_near], &need(10));
        let peers: Vec<PeerId> = ranked.iter().map(|o| o.peer).collect();
        assert_eq!(peers, vec![order[3], order[2], order[1], order[0]]);
    }

    #[test]
    fn refuses_wrong_model_limits_and_prices_above_the_fee_and_puts_full_nodes_last() {
        let mut other_model = offer(0, 0, 5, None);
        other_model.advert.models[0].hash = ModelHash([0xbb; 32]).to_string();
        let full = offer(0, 3, 0, Some(1));
        let too_dear = offer(11, 0, 5, None);
        let mut unpriced = offer(0, 0, 5, None);
        unpriced.advert.price_wei = "lots".into();
        let fine = offer(10, 0, 5, None);
        let order = [fine.peer, full.peer];
        let ranked = rank(vec![other_model, full, too_dear, unpriced, fine], &need(10));
        assert_eq!(ranked.iter().map(|o| o.peer).collect::<Vec<_>>(), order);
        assert_eq!(rank(vec![offer(0, 0, 5, None)], &Need { width: 128, ..need(10) }).len(), 0);
        assert_eq!(rank(vec![offer(0, 0, 5, None)], &Need { steps: 51, ..need(10) }).len(), 0);
    }
}

//! Adverts on the network, both ways. Ours goes out on the gossip topic when it changes, when a
//! peer joins the topic, and every refresh interval, and its models are announced as Kademlia
//! provider records. The refresh interval is the configured advert interval in a small network
//! and grows with the number of adverts we hold, so that the whole network publishes about
//! `network_advert_rate` adverts a second and each node's gossip traffic stops growing with the
//! network; a load change waits a tenth of it, a change of models goes out at once. Theirs come in as gossip messages that are judged (size, shape, publisher,
//! freshness, binding) before gossip forwards them, and are kept in the [`AdvertBook`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId, kad};

use super::advert_book::{AdvertBook, Stored, unix_seconds};
use super::{Dilation, NetworkError, peer_seed};
use crate::Gossiped;
use crate::advert::{
    Advert, AdvertVerifier, MAX_ADDRESS_BYTES, MAX_ADVERTISED_ADDRESSES, MAX_REFRESH_SECS, ReceivedAdvert,
};
use crate::behaviour::Behaviour;

/// Peers' adverts held; past this the least recently heard makes room.
const MAX_KNOWN_ADVERTS: usize = 4096;
/// The shortest time between two publications of our advert.
const MIN_PUBLISH_GAP: Duration = Duration::from_secs(1);
/// After a change of load or price, our advert goes out once this share of the refresh interval
/// has passed since the last publication.
const CHANGE_GAP: f64 = 0.1;
/// When a peer joins the topic, our advert goes out once this share of the refresh interval has
/// passed since the last publication. Every new connection subscribes, and a publication reaches
/// the whole network, so a short gap would multiply the network's advert rate by the
/// connections each node makes (measured: about tenfold at 100 nodes).
const SUBSCRIBER_GAP: f64 = 0.5;

/// Why a gossip message was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Harmless but not worth keeping or forwarding (stale, our own).
    Ignore(String),
    /// Invalid: the publisher or the forwarder broke the rules.
    Reject(String),
}

pub(super) struct Adverts {
    local: PeerId,
    network_id: String,
    topic: IdentTopic,
    verifier: Arc<dyn AdvertVerifier>,
    book: AdvertBook,
    /// Our advert, republished every refresh interval.
    own: Option<Advert>,
    /// The advert interval configured: the refresh interval of a small network.
    base_interval: Duration,
    /// Adverts a second the whole network should publish; 0 keeps the base interval at any size.
    network_rate: f64,
    /// The network's pace: publication gaps and the refresh ceiling are in its (simulated) time.
    dilation: Dilation,
    /// Spreads republications: each node's interval is stretched by its own 0-10 %.
    jitter: f64,
    last_published: Option<Instant>,
    /// Our advert should go out again once this long has passed since the last publication (at
    /// least MIN_PUBLISH_GAP): its load changed, a peer joined the topic, or nobody was there to
    /// hear the last publication.
    publish_due: Option<Duration>,
    /// Kademlia learned new peers since our models were last announced.
    routing_grew: bool,
    /// Where peers dial us, put into each publication of our advert.
    addresses: Vec<String>,
}

impl Adverts {
    pub fn new(
        local: PeerId,
        network_id: &str,
        (base_interval, ttl, network_rate): (Duration, Duration, f64),
        dilation: Dilation,
        verifier: Arc<dyn AdvertVerifier>,
    ) -> Self {
        let seed = peer_seed(&local);
        Self {
            base_interval,
            network_rate,
            jitter: (seed % 1000) as f64 / 10_000.0,
            local,
            network_id: network_id.to_owned(),
            topic: IdentTopic::new(format!("genmint/adverts/1/{network_id}")),
            verifier,
            book: AdvertBook::new(ttl, MAX_KNOWN_ADVERTS, dilation),
            dilation,
            own: None,
            last_published: None,
            publish_due: None,
            routing_grew: false,
            addresses: Vec::new(),
        }
    }

    pub fn topic(&self) -> &IdentTopic {
        &self.topic
    }

    pub fn book(&self) -> &AdvertBook {
        &self.book
    }

    /// How long until our advert goes out again: the base interval, or as long as the network
    /// needs (the adverts held, ours included, over `network_rate`) to stay near its rate, at most
    /// `MAX_REFRESH_SECS`; stretched by this node's jitter.
    pub fn refresh_interval(&self) -> Duration {
        let nodes = self.book.fresh(Instant::now()).count() + 1;
        let paced = match self.network_rate > 0.0 {
            true => Duration::from_secs_f64(nodes as f64 / self.network_rate),
            false => Duration::ZERO,
        };
        let ceiling = self.dilation.stretch(Duration::from_secs(MAX_REFRESH_SECS));
        paced.max(self.base_interval).min(ceiling).mul_f64(1.0 + self.jitter).min(ceiling)
    }

    /// Takes a new advert of ours: checked like peers will check it, published at once if it
    /// changed, its new models announced and its dropped ones no longer.
    pub fn set(&mut self, behaviour: &mut Behaviour, advert: Advert) -> Result<(), NetworkError> {
        if advert.peer_id != self.local.to_string() {
            let reason = format!("it names peer {} but this node is {}", advert.peer_id, self.local);
            return Err(NetworkError::InvalidAdvert(reason));
        }
        advert.validate_shape().map_err(NetworkError::InvalidAdvert)?;
        advert.encode().map_err(|e| NetworkError::InvalidAdvert(e.to_string()))?;
        self.verifier.verify(&advert).map_err(|reason| {
            NetworkError::InvalidAdvert(format!("the binding signature is refused: {reason}"))
        })?;
        let previous_models = match &self.own {
            Some(current) if current.same_content(&advert) => return Ok(()),
            Some(current) if advert.sequence <= current.sequence => {
                return Err(NetworkError::InvalidAdvert(format!(
                    "it changed but its sequence {} does not exceed the published {}",
                    advert.sequence, current.sequence
                )));
            }
            Some(current) => model_hashes(current),
            None => BTreeSet::new(),
        };
        let models = model_hashes(&advert);
        for gone in previous_models.difference(&models) {
            behaviour.kademlia.stop_providing(&self.provider_key(gone));
        }
        self.announce(&mut behaviour.kademlia, models.difference(&previous_models));
        let models_changed = models != previous_models || self.own.is_none();
        self.own = Some(advert);
        match models_changed {
            true => {
                self.publish(&mut behaviour.gossipsub);
            }
            // Load and price go out with the next publication due: a tenth of the refresh
            // interval at most (a busy peer refuses a job anyway, and the asker tries the next).
            false => self.publish_after(CHANGE_GAP, &mut behaviour.gossipsub),
        }
        Ok(())
    }

    /// Decides on a gossip message: `Ok(Some(_))` is a new advert (a new peer or a higher
    /// sequence), `Ok(None)` a repeat that only kept one fresh; both are stored and forwarded.
    pub fn judge(&mut self, message: &gossipsub::Message) -> Result<Option<ReceivedAdvert>, Refusal> {
        if message.topic != self.topic.hash() {
            return Err(Refusal::Reject(format!("topic {} is not the advert topic", message.topic)));
        }
        let advert = Advert::decode(&message.data).map_err(|e| Refusal::Reject(e.to_string()))?;
        // `decode` checked the shape, so the peer id parses.
        let publisher: PeerId =
            advert.peer_id.parse().map_err(|_| Refusal::Reject("unreadable peer id".into()))?;
        if message.source != Some(publisher) {
            let source = message.source.map_or("nobody".into(), |s| s.to_string());
            return Err(Refusal::Reject(format!("advert of {publisher} published by {source}")));
        }
        if publisher == self.local {
            return Err(Refusal::Ignore("our own advert".into()));
        }
        let now = Instant::now();
        self.book.check(&publisher, &advert, now).map_err(Refusal::Ignore)?;
        self.verifier
            .verify(&advert)
            .map_err(|reason| Refusal::Reject(format!("binding refused: {reason}")))?;
        match self.book.store(publisher, advert, now) {
            Stored::New => Ok(self.book.get(&publisher, now).cloned()),
            Stored::Refreshed => Ok(None),
        }
    }

    pub fn peer_subscribed(&mut self, gossipsub: &mut gossipsub::Behaviour) {
        self.publish_after(SUBSCRIBER_GAP, gossipsub);
    }

    /// Our external addresses changed (a relay reservation came or went, AutoNAT confirmed one):
    /// the advert goes out again with them as soon as it may.
    pub fn set_addresses<'a>(&mut self, addresses: impl Iterator<Item = &'a Multiaddr>) {
        let addresses: Vec<String> = addresses
            .map(ToString::to_string)
            .filter(|a| a.len() <= MAX_ADDRESS_BYTES)
            .take(MAX_ADVERTISED_ADDRESSES)
            .collect();
        if addresses != self.addresses {
            self.addresses = addresses;
            self.publish_due = Some(self.dilation.stretch(MIN_PUBLISH_GAP));
        }
    }

    /// The addresses `peer`'s fresh advert carries.
    pub fn addresses_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        let Some(received) = self.book.get(peer, Instant::now()) else { return Vec::new() };
        received.advert.addresses.iter().filter_map(|a| a.parse().ok()).collect()
    }

    pub fn routing_grew(&mut self) {
        self.routing_grew = true;
    }

    /// The refresh interval passed: say again that we are here, and tell new DHT peers what we
    /// have. Returns when to do it next: the interval this publication announced.
    pub fn republish(&mut self, behaviour: &mut Behaviour) -> Duration {
        let next = self.publish(&mut behaviour.gossipsub);
        if std::mem::take(&mut self.routing_grew)
            && let Some(advert) = &self.own
        {
            self.announce(&mut behaviour.kademlia, model_hashes(advert).iter());
        }
        next
    }

    /// Drops peers' adverts that were not repeated in time, and makes a publication that waited.
    pub fn housekeeping(&mut self, gossipsub: &mut gossipsub::Behaviour) {
        self.book.expire(Instant::now());
        self.publish_if_due(gossipsub);
    }

    /// The DHT key under which nodes of this network announce a model (hash lowercased).
    pub fn provider_key(&self, model_hash: &str) -> RecordKey {
        RecordKey::new(&format!("/genmint/model/1/{}/{}", self.network_id, model_hash.to_lowercase()))
    }

    /// Makes our advert due `share` of the refresh interval after the last publication (or
    /// sooner, if it already was), and publishes it if that time has come.
    fn publish_after(&mut self, share: f64, gossipsub: &mut gossipsub::Behaviour) {
        let gap = self.refresh_interval().mul_f64(share).max(self.dilation.stretch(MIN_PUBLISH_GAP));
        self.publish_due = Some(self.publish_due.map_or(gap, |due| due.min(gap)));
        self.publish_if_due(gossipsub);
    }

    fn publish_if_due(&mut self, gossipsub: &mut gossipsub::Behaviour) {
        let Some(gap) = self.publish_due else { return };
        if self.last_published.is_none_or(|at| at.elapsed() >= gap) {
            self.publish(gossipsub);
        }
    }

    /// Publishes our advert (if we have one yet); returns the refresh interval it announces.
    fn publish(&mut self, gossipsub: &mut gossipsub::Behaviour) -> Duration {
        let refresh = self.refresh_interval();
        let Some(advert) = self.own.as_mut() else { return refresh };
        // Receivers take a repeat only if it is not older than the copy they hold.
        advert.issued_at = advert.issued_at.max(unix_seconds(SystemTime::now()));
        advert.refresh_secs = Some(announced_secs(self.dilation.shrink(refresh)));
        advert.addresses.clone_from(&self.addresses);
        let bytes = match advert.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "our advert cannot be encoded");
                return refresh;
            }
        };
        match gossipsub.publish(self.topic.clone(), bytes) {
            Ok(_) => {
                self.last_published = Some(Instant::now());
                self.publish_due = None;
            }
            Err(PublishError::NoPeersSubscribedToTopic) => {
                self.publish_due = Some(self.dilation.stretch(MIN_PUBLISH_GAP))
            }
            Err(e) => tracing::warn!(error = %e, "advert not published; retrying at the next interval"),
        }
        refresh
    }

    fn announce<'a>(
        &self,
        kademlia: &mut kad::Behaviour<kad::store::MemoryStore>,
        hashes: impl Iterator<Item = &'a String>,
    ) {
        for hash in hashes {
            if let Err(e) = kademlia.start_providing(self.provider_key(hash)) {
                tracing::warn!(model = %hash, error = %e, "cannot announce model");
            }
        }
    }
}

/// The `refresh_secs` an advert repeated every `refresh` announces: rounded up, so that receivers
/// never expire it between two publications, and within what receivers accept.
fn announced_secs(refresh: Duration) -> u64 {
    (refresh.as_secs() + 1).min(MAX_REFRESH_SECS)
}

fn model_hashes(advert: &Advert) -> BTreeSet<String> {
    advert.models.iter().map(|m| m.hash.to_lowercase()).collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::advert::tests::{peer, serving_advert as advert};

    const TTL: Duration = Duration::from_secs(30);

    struct OnlyGood;

    impl AdvertVerifier for OnlyGood {
        fn verify(&self, advert: &Advert) -> Result<(), String> {
            match advert.binding_signature.ends_with("ef") {
                true => Ok(()),
                false => Err("not signed by the operator".into()),
            }
        }
    }

    fn adverts() -> Adverts {
        Adverts::new(peer(), "test", (TTL / 3, TTL, 10.0), Dilation::NONE, Arc::new(OnlyGood))
    }

    /// A gossip message from `source` on the topic named `topic`.
    pub(in crate::network) fn gossip(topic: &str, source: PeerId, data: Vec<u8>) -> gossipsub::Message {
        let topic = IdentTopic::new(topic).hash();
        gossipsub::Message { source: Some(source), data, sequence_number: Some(1), topic }
    }

    /// A gossip message on the advert topic of network "test".
    fn message(source: PeerId, data: Vec<u8>) -> gossipsub::Message {
        gossip("genmint/adverts/1/test", source, data)
    }

    #[test]
    fn a_good_advert_is_new_once_and_a_repeat_only_refreshes() {
        let (mut adverts, publisher) = (adverts(), peer());
        let bytes = advert(&publisher, 1).encode().unwrap();
        let received = adverts.judge(&message(publisher, bytes.clone())).unwrap();
        assert_eq!(received.unwrap().advert, advert(&publisher, 1));
        assert!(matches!(adverts.judge(&message(publisher, bytes)), Ok(None)), "a repeat is no news");
        assert_eq!(adverts.book().fresh(Instant::now()).count(), 1);
    }

    #[test]
    fn rule_breakers_are_rejected_and_stale_or_own_adverts_ignored() {
        let (mut adverts, publisher) = (adverts(), peer());
        let local = adverts.local;
        let reject =
            |adverts: &mut Adverts, message: gossipsub::Message, says: &str| match adverts.judge(&message) {
                Err(Refusal::Reject(reason)) => assert!(reason.contains(says), "{reason}"),
                other => panic!("expected a rejection saying {says:?}, got {other:?}"),
            };
        // Someone else's advert, signed into gossip by another peer.
        let forged = message(peer(), advert(&publisher, 1).encode().unwrap());
        reject(&mut adverts, forged, "published by");
        let unbound = Advert { binding_signature: format!("0x{}", "cd".repeat(65)), ..advert(&publisher, 1) };
        reject(&mut adverts, message(publisher, unbound.encode().unwrap()), "binding");
        reject(&mut adverts, message(publisher, b"{}".to_vec()), "malformed");
        reject(&mut adverts, message(publisher, vec![b' '; 20_000]), "exceeds");
        let mut elsewhere = message(publisher, advert(&publisher, 1).encode().unwrap());
        elsewhere.topic = IdentTopic::new("genmint/adverts/1/other").hash();
        reject(&mut adverts, elsewhere, "topic");
        assert_eq!(adverts.book().fresh(Instant::now()).count(), 0, "nothing refused is kept");

        let own = message(local, advert(&local, 1).encode().unwrap());
        assert!(matches!(adverts.judge(&own), Err(Refusal::Ignore(_))));
        adverts.judge(&message(publisher, advert(&publisher, 2).encode().unwrap())).unwrap();
        let stale = message(publisher, advert(&publisher, 1).encode().unwrap());
        assert!(matches!(adverts.judge(&stale), Err(Refusal::Ignore(_))));
    }

    #[test]
    fn the_refresh_interval_grows_with_the_network_to_hold_its_rate() {
        let mut adverts = adverts();
        let within = |interval: Duration, base: Duration| {
            interval >= base && interval <= base.mul_f64(1.1) + Duration::from_millis(1)
        };
        // A small network: the configured interval (10 s), stretched by this node's jitter.
        assert!(within(adverts.refresh_interval(), TTL / 3), "{:?}", adverts.refresh_interval());
        let now = Instant::now();
        for sequence in 1..=499 {
            let publisher = peer();
            adverts.book.store(publisher, advert(&publisher, sequence), now);
        }
        // 500 nodes at 10 adverts a second: each repeats every 50 s.
        assert!(
            within(adverts.refresh_interval(), Duration::from_secs(50)),
            "{:?}",
            adverts.refresh_interval()
        );
        adverts.network_rate = 0.0;
        assert!(within(adverts.refresh_interval(), TTL / 3), "rate 0 keeps the configured interval");
        adverts.network_rate = 0.01;
        assert_eq!(adverts.refresh_interval(), Duration::from_secs(MAX_REFRESH_SECS), "capped");
        // The longest interval is still announced as one receivers accept.
        let slowest =
            Advert { refresh_secs: Some(announced_secs(adverts.refresh_interval())), ..advert(&peer(), 1) };
        assert_eq!(slowest.validate_shape(), Ok(()));
        assert_eq!(announced_secs(Duration::from_millis(10_400)), 11, "rounded up");
    }

    #[test]
    fn provider_keys_ignore_the_hash_case_and_separate_networks() {
        let (a, b) = (
            adverts(),
            Adverts::new(peer(), "other", (TTL / 3, TTL, 10.0), Dilation::NONE, Arc::new(OnlyGood)),
        );
        assert_eq!(a.provider_key("0xABCD"), a.provider_key("0xabcd"));
        assert_ne!(a.provider_key("0xabcd"), b.provider_key("0xabcd"));
    }
}

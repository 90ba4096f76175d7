//! The protocols a genmint node speaks, composed into one libp2p behaviour, and their settings.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, autonat, connection_limits, dcutr, gossipsub, identify, kad, mdns, ping, relay,
    request_response,
};

use crate::advert::MAX_ADVERT_BYTES;
use crate::codec::JobCodec;
use crate::network::{Dilation, NetworkConfig, NetworkError};
use crate::wire::JOB_PROTOCOL;

/// Identify's protocol version: peers of other networks show up as such in logs.
pub(crate) const IDENTIFY_PROTOCOL: &str = "/genmint/id/1";
/// Kademlia's protocol name; a private DHT keeps genmint's provider records among genmint nodes.
pub(crate) const KAD_PROTOCOL: &str = "/genmint/kad/1";
/// Gossip heartbeat: frequent enough that a new node joins the mesh (and gets adverts) in under a second.
const GOSSIP_HEARTBEAT: Duration = Duration::from_millis(300);
/// Gossip mesh degree: (target, low, high). Each node receives a message about once per mesh
/// peer, so the degree multiplies gossip traffic; 4 still reaches 1,000 nodes in about five hops.
const GOSSIP_MESH: (usize, usize, usize) = (4, 3, 8);
/// Share of the non-mesh topic peers that get IHAVE each heartbeat (at least `gossip_lazy`).
const GOSSIP_FACTOR: f64 = 0.05;
/// Messages at least this large are announced to mesh peers with IDONTWANT once received.
const GOSSIP_IDONTWANT_BYTES: usize = 512;
/// Heartbeats a received message stays available for gossip and IWANT requests (about 3 s).
const GOSSIP_HISTORY: usize = 10;
/// The largest gossip frame: one advert with its signature and key, plus control messages.
const GOSSIP_MAX_TRANSMIT: usize = 4 * MAX_ADVERT_BYTES;
/// How many request timeouts a stream may stay open. The asking side gives up after one (in the
/// handle); the answering side keeps the stream longer, so that the asker sees a timeout and
/// not a stream the other side closed a moment before.
pub(crate) const ANSWER_PATIENCE: u32 = 2;
/// Provider records of a node that left vanish after this; live nodes announce again well before.
const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(30 * 60);
const PROVIDER_REPUBLISH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Connections a node accepts, as a multiple of the `max_connections` it keeps: above that,
/// trimming takes it back down, so a full node (a bootstrap node above all) still lets newcomers
/// in long enough to learn peers from it (with the hard limit at `max_connections`, 1,000
/// simulated nodes joining through 5 bootstrap nodes never formed a network).
const HARD_LIMIT_FACTOR: u32 = 2;
/// Connections to one peer: one per transport, plus room for simultaneous dials, a relayed
/// connection and the direct one hole punching makes beside it.
const MAX_CONNECTIONS_PER_PEER: u32 = 6;
/// A relayed connection lasts at most this long (relay v2's default is 2 minutes): long enough
/// for a forwarded job's submission and its updates; the parties dial again after it.
const MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(10 * 60);
/// Bytes one relayed connection may carry, both ways together (relay v2's default is 128 KiB):
/// job messages, adverts and the DHT's chatter, never images (they travel over IPFS).
const MAX_CIRCUIT_BYTES: u64 = 1 << 20;
/// AutoNAT's first probe: soon after the bootstrap peers are connected (libp2p's default is 15 s).
const AUTONAT_BOOT_DELAY: Duration = Duration::from_secs(5);
/// AutoNAT probes again this often until it is sure (libp2p's default is 90 s).
const AUTONAT_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// libp2p's defaults for the timers genmint keeps, named so that a slowed-down simulation can
/// stretch them: ping's interval and timeout, identify's interval, Kademlia's periodic
/// bootstrap and stream timeout.
const PING_INTERVAL: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(20);
const IDENTIFY_INTERVAL: Duration = Duration::from_secs(5 * 60);
const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(5 * 60);
const KAD_STREAM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    /// libp2p-ping, answering at once over QUIC too ([`crate::ping`]).
    pub ping: crate::ping::Behaviour,
    pub kademlia: kad::Behaviour<kad::store::MemoryStore>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: gossipsub::Behaviour,
    pub jobs: request_response::Behaviour<JobCodec>,
    /// Whether this node is reachable from outside: peers dial it back ([`crate::network`]'s
    /// `nat` module acts on the verdict).
    pub autonat: autonat::v1::Behaviour,
    /// Circuit relay v2, serving: only on nodes that offer it (`relay_service`).
    pub relay: Toggle<relay::Behaviour>,
    /// Circuit relay v2, using one: listening on a relay's `/p2p-circuit` address and dialing
    /// peers through theirs.
    pub relay_client: relay::client::Behaviour,
    /// Hole punching: turns a relayed connection into a direct one when both NATs allow it.
    pub dcutr: dcutr::Behaviour,
}

impl Behaviour {
    /// The behaviour for `config` (its durations already stretched by `dilation`), every protocol
    /// timer stretched by `dilation` too.
    pub fn new(
        keypair: &Keypair,
        config: &NetworkConfig,
        dilation: Dilation,
        relay_client: relay::client::Behaviour,
    ) -> Result<Self, NetworkError> {
        let peer_id = keypair.public().to_peer_id();
        let stretch = |duration| dilation.stretch(duration);
        let hard_limit = config.max_connections.saturating_mul(HARD_LIMIT_FACTOR);
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(hard_limit))
            .with_max_pending_incoming(Some(hard_limit))
            .with_max_pending_outgoing(Some(hard_limit))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER));

        let identify = identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), keypair.public())
            .with_agent_version(format!("genmint/{}", env!("CARGO_PKG_VERSION")))
            .with_interval(stretch(IDENTIFY_INTERVAL));

        let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_config
            .set_query_timeout(config.request_timeout)
            .set_substreams_timeout(stretch(KAD_STREAM_TIMEOUT))
            .set_periodic_bootstrap_interval(Some(stretch(KAD_BOOTSTRAP_INTERVAL)))
            .set_provider_record_ttl(Some(stretch(PROVIDER_RECORD_TTL)))
            .set_provider_publication_interval(Some(stretch(PROVIDER_REPUBLISH_INTERVAL)));
        let mut kademlia =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Nodes on a LAN or loopback never get a confirmed external address, which is what would
        // switch Kademlia to server mode by itself; every genmint node serves the DHT.
        kademlia.set_mode(Some(kad::Mode::Server));

        let mdns = match config.mdns {
            true => Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| NetworkError::Setup(format!("mDNS: {e}")))?,
            ),
            false => None,
        };

        // gossipsub's other timers keep their defaults, stretched.
        let defaults = gossipsub::Config::default();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(stretch(GOSSIP_HEARTBEAT))
            .heartbeat_initial_delay(stretch(GOSSIP_HEARTBEAT))
            .fanout_ttl(stretch(defaults.fanout_ttl()))
            .duplicate_cache_time(stretch(defaults.duplicate_cache_time()))
            .prune_backoff(stretch(defaults.prune_backoff()))
            .unsubscribe_backoff(stretch(defaults.unsubscribe_backoff()))
            .graft_flood_threshold(stretch(defaults.graft_flood_threshold()))
            .iwant_followup_time(stretch(defaults.iwant_followup_time()))
            .publish_queue_duration(stretch(defaults.publish_queue_duration()))
            .forward_queue_duration(stretch(defaults.forward_queue_duration()))
            .history_length(GOSSIP_HISTORY)
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(GOSSIP_MAX_TRANSMIT)
            // Our own messages go to our mesh peers only, not to every subscriber we know: the mesh
            // carries them on, and a publication costs D sends instead of one per connection.
            .flood_publish(false)
            .mesh_n(GOSSIP_MESH.0)
            .mesh_n_low(GOSSIP_MESH.1)
            .mesh_n_high(GOSSIP_MESH.2)
            .mesh_outbound_min(GOSSIP_MESH.1 / 2)
            .gossip_lazy(GOSSIP_MESH.0)
            // IHAVE goes to gossip_lazy peers a heartbeat, not to a quarter of every connected
            // peer: with the DHT's connections a node holds tens of them, and the control traffic
            // would grow with the network.
            .gossip_factor(GOSSIP_FACTOR)
            // An advert (about 800 bytes with its envelope) is worth an IDONTWANT to mesh peers
            // that would otherwise send it again.
            .idontwant_message_size_threshold(GOSSIP_IDONTWANT_BYTES)
            .build()
            .map_err(|e| NetworkError::Setup(format!("gossipsub settings: {e}")))?;
        let gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(keypair.clone()), gossip_config)
                .map_err(|e| NetworkError::Setup(format!("gossipsub: {e}")))?;

        let jobs = request_response::Behaviour::new(
            [(StreamProtocol::new(JOB_PROTOCOL), request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout * ANSWER_PATIENCE),
        );

        let autonat_defaults = autonat::v1::Config::default();
        let autonat = autonat::v1::Behaviour::new(
            peer_id,
            autonat::v1::Config {
                timeout: stretch(autonat_defaults.timeout),
                boot_delay: stretch(AUTONAT_BOOT_DELAY),
                refresh_interval: stretch(autonat_defaults.refresh_interval),
                retry_interval: stretch(AUTONAT_RETRY_INTERVAL),
                throttle_server_period: stretch(autonat_defaults.throttle_server_period),
                throttle_clients_period: stretch(autonat_defaults.throttle_clients_period),
                only_global_ips: !config.nat.private_addresses,
                ..autonat_defaults
            },
        );
        let relay = config.nat.relay_service.then(|| {
            let mut relay = relay::Behaviour::new(
                peer_id,
                relay::Config {
                    max_circuit_duration: stretch(MAX_CIRCUIT_DURATION),
                    max_circuit_bytes: MAX_CIRCUIT_BYTES,
                    ..relay::Config::default()
                },
            );
            // The operator says the node is reachable; without this the relay would wait for an
            // external address AutoNAT confirmed before offering itself.
            relay.set_status(Some(relay::Status::Enable));
            relay
        });

        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(identify),
            ping: crate::ping::Behaviour::new(
                ping::Config::new().with_interval(stretch(PING_INTERVAL)).with_timeout(stretch(PING_TIMEOUT)),
            ),
            kademlia,
            mdns: mdns.into(),
            gossipsub,
            jobs,
            autonat,
            relay: relay.into(),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
        })
    }
}

//! libp2p's ping (`/ipfs/ping/1.0.0`), answering every inbound ping at once on every transport.
//!
//! libp2p-ping 0.48's connection handler, once it has answered a ping, starts reading the next one
//! on the same stream but does not poll that read, so no waker is registered for it. Over yamux
//! (TCP) an earlier waker happens to remain; over QUIC none does, and the second and later pongs
//! waited for the handler's next wake-up, its own 15 s ping interval. [`Handler`] polls the wrapped
//! handler once more whenever it answers `Pending`, which polls that read and registers its waker.
//! Everything else, the protocol and the events included, is libp2p-ping's.

use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::ping;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandlerInEvent, THandlerOutEvent, ToSwarm,
};

/// libp2p-ping's connection handler.
type Inner = <ping::Behaviour as NetworkBehaviour>::ConnectionHandler;

/// libp2p-ping's behaviour on [`Handler`].
pub(crate) struct Behaviour(ping::Behaviour);

impl Behaviour {
    pub fn new(config: ping::Config) -> Self {
        Self(ping::Behaviour::new(config))
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = ping::Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<Handler, ConnectionDenied> {
        self.0.handle_established_inbound_connection(connection, peer, local, remote).map(Handler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<Handler, ConnectionDenied> {
        self.0
            .handle_established_outbound_connection(connection, peer, addr, role_override, port_use)
            .map(Handler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.0.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0.on_connection_handler_event(peer, connection, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

/// libp2p-ping's handler, polled again after it answers `Pending` (see the module docs).
pub(crate) struct Handler(Inner);

impl ConnectionHandler for Handler {
    type FromBehaviour = <Inner as ConnectionHandler>::FromBehaviour;
    type ToBehaviour = <Inner as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.0.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.0.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>> {
        match self.0.poll(cx) {
            // The first poll may have answered a ping and left the next read unpolled.
            Poll::Pending => self.0.poll(cx),
            ready => ready,
        }
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.0.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        self.0.on_connection_event(event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use futures_util::StreamExt;
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Swarm, SwarmBuilder};

    use super::*;

    fn quic_swarm<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
        SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_quic()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    }

    /// Three pings a second apart from a plain libp2p-ping client to `responder` over QUIC: how
    /// long the three pongs took in all.
    async fn three_pongs_over_quic<B: NetworkBehaviour + Send>(responder: B) -> Duration
    where
        B::ToSwarm: Send,
    {
        let mut responder = quic_swarm(responder);
        responder.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()).unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = responder.select_next_some().await {
                break address;
            }
        };
        tokio::spawn(async move {
            loop {
                responder.select_next_some().await;
            }
        });
        let mut client =
            quic_swarm(ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_millis(300))));
        client.dial(addr).unwrap();
        let started = Instant::now();
        let mut pongs = 0;
        while pongs < 3 {
            let event =
                tokio::time::timeout(Duration::from_secs(60), client.select_next_some()).await.unwrap();
            if let SwarmEvent::Behaviour(ping::Event { result: Ok(_), .. }) = event {
                pongs += 1;
            }
        }
        started.elapsed()
    }

    #[tokio::test]
    async fn quic_pings_are_answered_at_once() {
        // The responder's own interval is libp2p's default, 15 s: with the unpolled read, the
        // second pong waited that long.
        let took = three_pongs_over_quic(Behaviour::new(ping::Config::new())).await;
        assert!(took < Duration::from_secs(5), "three pongs over QUIC took {took:?}");
    }
}

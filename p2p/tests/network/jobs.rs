//! The job protocol between two nodes: round trips, timeouts, and peers that send junk.

use std::io;
use std::time::{Duration, Instant};

use genmint_p2p::wire::{JOB_PROTOCOL, JobRequest, JobResponse, JobStatus, MAX_MESSAGE_BYTES};
use genmint_p2p::{NetworkError, NetworkEvent, PeerId};
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm};

use crate::support::{PATIENCE, REQUEST_TIMEOUT, TestNode, bare_swarm, config};

fn status(job_id: &str, state: &str) -> JobStatus {
    JobStatus {
        job_id: job_id.into(),
        state: state.into(),
        step: Some(3),
        steps: Some(20),
        token_id: None,
        tx_hash: None,
        error: None,
        pixel_digest: None,
        image_cid: None,
        metadata_cid: None,
        minted_by: None,
    }
}

/// What the executing node's event loop answers in these tests.
fn executor(_: PeerId, request: JobRequest) -> JobResponse {
    match request {
        JobRequest::Submit { job_id, signed_request } if signed_request.contains("\"creator\"") => {
            JobResponse::Accepted { job_id }
        }
        JobRequest::Submit { job_id, .. } => {
            JobResponse::Rejected { job_id, code: "bad_request".into(), message: "no creator".into() }
        }
        JobRequest::Status { job_id } => JobResponse::Status(status(&job_id, "generating")),
        JobRequest::Cancel { job_id } => JobResponse::Status(status(&job_id, "cancelled")),
        JobRequest::Update(status) if status.state == "minted" => JobResponse::Ack,
        JobRequest::Update(_) => JobResponse::Error { code: "unknown_job".into(), message: "?".into() },
        JobRequest::Pin(pin) => {
            JobResponse::Rejected { job_id: pin.token_id, code: "over_budget".into(), message: "full".into() }
        }
    }
}

#[tokio::test]
async fn submit_status_cancel_and_update_round_trip() {
    let executing = TestNode::start(config()).await;
    let origin = TestNode::joining(&[&executing]).await;
    let (executing_peer, origin_peer) = (executing.peer, origin.peer);
    let executing = executing.serve(executor);
    // The origin records who asked, to show the executor sees the right peer.
    let origin = origin.serve(|peer, request| match request {
        JobRequest::Status { .. } => JobResponse::Error { code: "peer".into(), message: peer.to_string() },
        _ => JobResponse::Ack,
    });

    let submit = JobRequest::Submit { job_id: "0x01".into(), signed_request: r#"{"creator":"0xab"}"#.into() };
    assert_eq!(
        origin.request(executing_peer, submit).await.unwrap(),
        JobResponse::Accepted { job_id: "0x01".into() }
    );
    let unsigned = JobRequest::Submit { job_id: "0x02".into(), signed_request: "{}".into() };
    assert!(matches!(
        origin.request(executing_peer, unsigned).await.unwrap(),
        JobResponse::Rejected { code, .. } if code == "bad_request"
    ));
    let asked = origin.request(executing_peer, JobRequest::Status { job_id: "0x01".into() }).await.unwrap();
    assert_eq!(asked, JobResponse::Status(status("0x01", "generating")));
    let cancelled =
        origin.request(executing_peer, JobRequest::Cancel { job_id: "0x01".into() }).await.unwrap();
    assert_eq!(cancelled, JobResponse::Status(status("0x01", "cancelled")));
    let minted =
        JobStatus { token_id: Some("7".into()), tx_hash: Some("0xfe".into()), ..status("0x01", "minted") };
    assert_eq!(origin.request(executing_peer, JobRequest::Update(minted)).await.unwrap(), JobResponse::Ack);

    // And the other way round, the executor asking the origin, which sees who asked.
    let answer = executing.request(origin_peer, JobRequest::Status { job_id: "0x01".into() }).await.unwrap();
    assert_eq!(answer, JobResponse::Error { code: "peer".into(), message: executing_peer.to_string() });
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_a_dropped_one_is_answered() {
    let mut silent = TestNode::start(config()).await;
    let origin = TestNode::joining(&[&silent]).await;
    let silent_peer = silent.peer;
    let origin = origin.ignore_events();

    let asking = tokio::spawn({
        let origin = origin.clone();
        async move {
            let started = Instant::now();
            let result = origin.request(silent_peer, JobRequest::Status { job_id: "j".into() }).await;
            (result, started.elapsed())
        }
    });
    // The silent node takes the request and holds it without answering.
    let held = loop {
        match tokio::time::timeout(PATIENCE, silent.events.recv()).await.unwrap().unwrap() {
            NetworkEvent::InboundJob(job) => break job,
            _ => continue,
        }
    };
    let (result, took) = asking.await.unwrap();
    assert!(matches!(result, Err(NetworkError::Timeout { peer, .. }) if peer == silent_peer), "{result:?}");
    assert!(took >= REQUEST_TIMEOUT - Duration::from_millis(100), "timed out early: {took:?}");
    assert!(took < REQUEST_TIMEOUT + Duration::from_secs(3), "timed out late: {took:?}");
    // Answering afterwards is harmless.
    held.responder.respond(JobResponse::Ack);

    // A responder dropped unanswered answers an error at once.
    let asking = tokio::spawn({
        let origin = origin.clone();
        async move { origin.request(silent_peer, JobRequest::Cancel { job_id: "j".into() }).await }
    });
    loop {
        if let NetworkEvent::InboundJob(job) = silent.events.recv().await.unwrap() {
            drop(job);
            break;
        }
    }
    let answer = asking.await.unwrap().unwrap();
    assert!(matches!(&answer, JobResponse::Error { code, .. } if code == "no_answer"), "{answer:?}");

    // A node that stopped reading its events refuses jobs instead of leaving them hanging.
    drop(silent.events);
    let answer = origin.request(silent_peer, JobRequest::Status { job_id: "j".into() }).await.unwrap();
    assert!(matches!(&answer, JobResponse::Error { code, .. } if code == "unavailable"), "{answer:?}");
}

#[tokio::test]
async fn requests_to_nobody_fail_clearly() {
    let node = TestNode::start(config()).await;
    let me = node.peer;
    let handle = node.ignore_events();
    let stranger = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
    let started = Instant::now();
    let result = handle.request(stranger, JobRequest::Status { job_id: "j".into() }).await;
    assert!(matches!(result, Err(NetworkError::Remote { peer, .. }) if peer == stranger), "{result:?}");
    assert!(started.elapsed() < REQUEST_TIMEOUT, "an unknown peer should fail at once");
    let result = handle.request(me, JobRequest::Status { job_id: "j".into() }).await;
    assert!(matches!(result, Err(NetworkError::Remote { .. })), "{result:?}");
    let huge = JobRequest::Submit { job_id: "j".into(), signed_request: "x".repeat(MAX_MESSAGE_BYTES) };
    let result = handle.request(stranger, huge).await;
    assert!(matches!(result, Err(NetworkError::Wire(_))), "{result:?}");
}

/// Writes requests as raw bytes, framing and all, and reads whatever comes back.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<Vec<u8>> {
        Err(io::Error::other("this peer only asks"))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        io.take(MAX_MESSAGE_BYTES as u64 + 4).read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&bytes).await?;
        io.flush().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()> {
        Err(io::Error::other("this peer only asks"))
    }
}

type RawPeer = Swarm<request_response::Behaviour<RawCodec>>;

/// Sends `bytes` on the job protocol and returns the answer, if any came.
async fn send_raw(raw: &mut RawPeer, to: PeerId, addr: &Multiaddr, bytes: Vec<u8>) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    if !raw.is_connected(&to) {
        raw.dial(addr.clone()).unwrap();
        loop {
            let event =
                tokio::time::timeout_at(deadline, raw.select_next_some()).await.expect("raw peer stuck");
            match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == to => break,
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("raw peer cannot connect: {error}")
                }
                _ => {}
            }
        }
    }
    let request_id = raw.behaviour_mut().send_request(&to, bytes);
    loop {
        let event = tokio::time::timeout_at(deadline, raw.select_next_some()).await.expect("raw peer stuck");
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { request_id: id, response },
                ..
            }) if id == request_id => return Some(response),
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id: id, .. })
                if id == request_id =>
            {
                return None;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_peer_sending_oversized_or_garbage_frames_is_dropped_and_others_are_still_served() {
    let mut receiver = TestNode::start(config()).await;
    let good = TestNode::joining(&[&receiver]).await;
    let (receiver_peer, addr) = (receiver.peer, receiver.handle.listen_addrs().await.unwrap().remove(0));
    let good = good.ignore_events();
    let mut raw = bare_swarm(|_| {
        request_response::Behaviour::<RawCodec>::new(
            [(StreamProtocol::new(JOB_PROTOCOL), ProtocolSupport::Outbound)],
            request_response::Config::default().with_request_timeout(PATIENCE),
        )
    });

    let mut oversized = ((MAX_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[b'{'; 1024]);
    let mut garbage = 16u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\xff\xfenot json at all");
    for frame in [oversized, garbage] {
        // The receiver drops the stream: no answer, or an empty one where the stream just closed.
        let answer = send_raw(&mut raw, receiver_peer, &addr, frame).await;
        assert!(answer.is_none_or(|bytes| bytes.is_empty()), "the receiver answered junk");

        // The receiver still serves well-behaved peers, and never showed the junk to the node.
        let asking = tokio::spawn({
            let good = good.clone();
            async move { good.request(receiver_peer, JobRequest::Status { job_id: "ok".into() }).await }
        });
        let job = loop {
            match tokio::time::timeout(PATIENCE, receiver.events.recv()).await.unwrap().unwrap() {
                NetworkEvent::InboundJob(job) => break job,
                _ => continue,
            }
        };
        assert_ne!(job.peer, *raw.local_peer_id());
        assert_eq!(job.request, JobRequest::Status { job_id: "ok".into() });
        job.responder.respond(JobResponse::Ack);
        assert_eq!(asking.await.unwrap().unwrap(), JobResponse::Ack);
    }
}

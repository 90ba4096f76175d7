//! Answers the node owes to peers: each inbound job request gets a [`Responder`] for the node and a
//! waiting slot in the swarm task, which sends the answer (or an error when the responder is
//! dropped) on the request's libp2p stream. The slots are bounded in number and in time.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use libp2p::request_response::ResponseChannel;
use tokio::sync::oneshot;

use crate::wire::JobResponse;

/// Sends the node's answer to one inbound job request.
#[derive(Debug)]
pub struct Responder {
    reply: oneshot::Sender<JobResponse>,
}

impl Responder {
    pub fn respond(self, response: JobResponse) {
        if self.reply.send(response).is_err() {
            tracing::debug!(
                "answer to a job request came after the request timed out or the network stopped"
            );
        }
    }
}

/// How the node dealt with a request.
pub(super) type Answer = Result<JobResponse, Unanswered>;

pub(super) enum Unanswered {
    /// The responder was dropped unanswered.
    Dropped,
    /// No answer in time; the asking peer has given up too.
    TimedOut,
}

type Waiting = Pin<Box<dyn Future<Output = (Answer, ResponseChannel<JobResponse>)> + Send>>;

/// The bounded set of requests waiting for the node's answer.
pub(super) struct PendingAnswers {
    waiting: FuturesUnordered<Waiting>,
    limit: usize,
    timeout: Duration,
}

impl PendingAnswers {
    pub fn new(limit: usize, timeout: Duration) -> Self {
        Self { waiting: FuturesUnordered::new(), limit, timeout }
    }

    pub fn is_full(&self) -> bool {
        self.waiting.len() >= self.limit
    }

    /// Opens a slot for the request behind `channel`; the returned responder fills it.
    pub fn open(&mut self, channel: ResponseChannel<JobResponse>) -> Responder {
        let (reply, answer) = oneshot::channel();
        let timeout = self.timeout;
        self.waiting.push(Box::pin(async move {
            let answer = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(_)) => Err(Unanswered::Dropped),
                Err(_) => Err(Unanswered::TimedOut),
            };
            (answer, channel)
        }));
        Responder { reply }
    }

    /// The next answer to send; `None` at once when nothing is waiting.
    pub async fn next(&mut self) -> Option<(Answer, ResponseChannel<JobResponse>)> {
        self.waiting.next().await
    }
}

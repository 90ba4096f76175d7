//! [`MintBatcher`]: an actor that sends the mints that are ready at the same time as one
//! `mintBatch` transaction.
//!
//! Jobs call [`MintBatcher::send`] when they reach the minting step. The actor takes the first
//! waiting mint, then every other mint already queued (up to [`MAX_BATCH_JOBS`]), and sends them as
//! one transaction: one mint is a plain `mint`, several are a `mintBatch`. While a transaction is
//! being sent, new mints queue up and leave together in the next one, so batches form exactly when
//! several jobs finish at once and a lone job waits for no timer. A batch the contract refuses (any
//! job in it) is sent again job by job, so each job learns its own refusal and the good ones mint.

use tokio::sync::{mpsc, oneshot};

use super::client::ChainClient;
use super::error::ChainError;
use super::mint::{MintJob, PendingMint};
use crate::lifecycle::Tasks;

/// The most jobs in one batch transaction (about 1.6 M gas for 20).
pub const MAX_BATCH_JOBS: usize = 20;
/// Mints waiting for the actor before `send` waits for room.
const QUEUE: usize = 256;

struct Submission {
    job: MintJob,
    reply: oneshot::Sender<Result<PendingMint, ChainError>>,
}

/// A cloneable handle to the batching actor; the actor stops at shutdown (after the batch it is
/// sending) or when every handle is dropped.
#[derive(Debug, Clone)]
pub struct MintBatcher {
    queue: mpsc::Sender<Submission>,
}

impl MintBatcher {
    /// Starts the actor as one of `tasks`.
    pub fn spawn(chain: ChainClient, tasks: &Tasks) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tasks.spawn(run(chain, receiver, tasks.clone()));
        Self { queue }
    }

    /// Sends `job`'s mint, alone or in a batch with others waiting, and returns its pending mint
    /// (the transaction hash to store before waiting for the receipt).
    pub async fn send(&self, job: MintJob) -> Result<PendingMint, ChainError> {
        let stopped = || ChainError::Rpc { call: "mint", detail: "the minting task has stopped".into() };
        let (reply, answer) = oneshot::channel();
        self.queue.send(Submission { job, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(chain: ChainClient, mut receiver: mpsc::Receiver<Submission>, tasks: Tasks) {
    loop {
        // A batch being sent finishes; shutdown only stops the wait for the next one.
        let first = tokio::select! {
            first = receiver.recv() => first,
            () = tasks.stopping() => None,
        };
        let Some(first) = first else { return };
        // Let tasks woken together with the first one queue their mints too.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_JOBS {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        send_batch(&chain, batch).await;
    }
}

async fn send_batch(chain: &ChainClient, batch: Vec<Submission>) {
    if batch.len() > 1 {
        let jobs: Vec<MintJob> = batch.iter().map(|s| s.job.clone()).collect();
        match chain.send_mint_batch(&jobs).await {
            Ok(pending) => {
                for (submission, pending) in batch.into_iter().zip(pending) {
                    let _ = submission.reply.send(Ok(pending));
                }
                return;
            }
            Err(ChainError::Rejected { reason }) => {
                tracing::info!(jobs = batch.len(), %reason, "batch refused; sending its jobs one by one");
            }
            Err(e) => {
                for submission in batch {
                    let _ = submission.reply.send(Err(e.clone()));
                }
                return;
            }
        }
    }
    for Submission { job, reply } in batch {
        let result = chain
            .send_mint(&job.request, &job.creator_signature, &job.attestation, &job.node_signature)
            .await;
        let _ = reply.send(result);
    }
}

//! The pipeline: drives each job from its last durable state to `Minted`, one step at a time.
//!
//! ```text
//! Received ─► Queued ─► Generating ─(inference thread)─► Generated ─(PNG on disk)
//!   ─► Pinned (image + metadata on Kubo, CIDs checked locally, attestation signed)
//!   ─► Minting (tx hash stored before waiting) ─► Minted
//! ```
//! A job for a model this node does not serve (or that finds its queue full) is forwarded instead:
//! `remote` places it on the best peer and mirrors the peer's progress into the store, so the
//! creator's status and event stream stay here.
//!
//! Every step re-reads the job from the store and writes its result there before the next one, so a
//! node killed at any point resumes where it stopped. Minting is exactly-once: the token id is the
//! request digest, the contract refuses a second mint, and before (re)sending the pipeline asks the
//! chain whether the token already exists.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use genmint_model_runtime::RuntimeError;
use tracing::{info, warn};

use super::admission::{self, AdmissionContext, Admitted, Rejection};
use super::events::{Events, JobEvent};
use super::inference::{Inference, InferenceError};
use super::remote::RemoteJobs;
use super::state::JobState;
use super::store::{Inserted, JobRecord, JobRoute, JobStore, Outputs, StoreError};
use crate::chain::{ChainClient, ChainError, MintBatcher, MintJob};
use crate::ipfs::{ContentStore, IpfsError, KuboClient};
use crate::network::Network;
use crate::network::router::Need;
use crate::provenance::credentials::Credentials;
use crate::provenance::eip712::{Attestation, SignedRequest, sign_attestation};
use crate::provenance::metadata::{Envelope, MetadataInput, PROVENANCE_VERSION, Provenance, TokenMetadata};
use crate::provenance::png;

/// Attempts for a step that fails for a reason that may pass (Kubo or the RPC endpoint unreachable).
const MAX_ATTEMPTS: u32 = 8;

/// What the pipeline needs from the rest of the node.
pub struct PipelineParts {
    pub store: Arc<JobStore>,
    pub inference: Inference,
    pub ipfs: KuboClient,
    pub chain: ChainClient,
    pub operator: PrivateKeySigner,
    pub chain_id: u64,
    pub contract: Address,
    pub images_dir: PathBuf,
    pub max_prompt_bytes: usize,
    pub max_queued_jobs: usize,
    /// The smallest signed fee this node runs a job for.
    pub min_fee: U256,
    /// Signs the C2PA manifest embedded in every pinned image.
    pub credentials: Credentials,
}

/// The job pipeline; shared by the HTTP API and the job tasks.
pub struct Pipeline {
    parts: PipelineParts,
    /// Sends the mints of jobs that reach `Pinned` together as one batch transaction.
    minter: MintBatcher,
    domain: Eip712Domain,
    events: Events,
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    network: OnceLock<Arc<Network>>,
    remote: RemoteJobs,
}

/// Why a submission was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("this node already has {0} jobs waiting; try again later or submit to another node")]
    Busy(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A step's failure: worth another try, or final for this job.
pub(super) enum StepError {
    Retry(String),
    Fatal(String),
    /// The job was moved to a terminal state by someone else (cancelled): stop quietly.
    Stopped,
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Transition { .. } => StepError::Stopped,
            other => StepError::Retry(other.to_string()),
        }
    }
}

impl From<IpfsError> for StepError {
    fn from(e: IpfsError) -> Self {
        match e {
            IpfsError::CidMismatch { .. } => StepError::Fatal(e.to_string()),
            other => StepError::Retry(other.to_string()),
        }
    }
}

impl From<ChainError> for StepError {
    fn from(e: ChainError) -> Self {
        if e.is_permanent() { StepError::Fatal(e.to_string()) } else { StepError::Retry(e.to_string()) }
    }
}

pub(super) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn hex32(bytes: impl AsRef<[u8]>) -> String {
    format!("0x{}", hex::encode(bytes))
}

impl Pipeline {
    pub fn new(parts: PipelineParts) -> Arc<Self> {
        let domain = crate::provenance::eip712::domain(parts.chain_id, parts.contract);
        let minter = MintBatcher::spawn(parts.chain.clone());
        Arc::new(Self {
            parts,
            minter,
            domain,
            events: Events::default(),
            cancels: Mutex::default(),
            network: OnceLock::new(),
            remote: RemoteJobs::default(),
        })
    }

    /// Joins the pipeline to the peer-to-peer network: from now on jobs it cannot run are
    /// forwarded. Call once, before `resume_all`.
    pub fn attach_network(&self, network: Arc<Network>) {
        if self.network.set(network).is_err() {
            warn!("the pipeline is already attached to a network");
        }
    }

    pub fn network(&self) -> Option<&Arc<Network>> {
        self.network.get()
    }

    pub(super) fn remote(&self) -> &RemoteJobs {
        &self.remote
    }

    pub fn chain(&self) -> &ChainClient {
        &self.parts.chain
    }

    pub fn ipfs(&self) -> &KuboClient {
        &self.parts.ipfs
    }

    /// The smallest fee this node runs a job for.
    pub fn min_fee(&self) -> U256 {
        self.parts.min_fee
    }

    /// Jobs that still need this node's generator, and how many more it takes now.
    pub fn load(&self) -> Result<(usize, usize), StoreError> {
        let queued = self.parts.store.queued()?;
        Ok((queued, self.parts.max_queued_jobs.saturating_sub(queued)))
    }

    pub fn domain(&self) -> &Eip712Domain {
        &self.domain
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    pub fn store(&self) -> &JobStore {
        &self.parts.store
    }

    pub fn inference(&self) -> &Inference {
        &self.parts.inference
    }

    pub fn chain_id(&self) -> u64 {
        self.parts.chain_id
    }

    pub fn contract(&self) -> Address {
        self.parts.contract
    }

    pub fn operator(&self) -> Address {
        self.parts.operator.address()
    }

    fn admission_context(&self) -> AdmissionContext<'_> {
        AdmissionContext {
            domain: &self.domain,
            model: self.parts.inference.descriptor(),
            max_prompt_bytes: self.parts.max_prompt_bytes,
            min_fee: self.parts.min_fee,
            now_unix: now_unix(),
        }
    }

    /// Admits a signed request from a creator and starts its job here, or forwards it to a peer
    /// when this node does not serve the model or is full. A request already known returns its job.
    pub async fn submit(self: &Arc<Self>, signed: &SignedRequest) -> Result<(JobRecord, bool), SubmitError> {
        let serves_model = signed.request.modelHash.0 == self.parts.inference.descriptor().hash.0;
        let local_rejection = match admission::admit(signed, &self.admission_context()) {
            Ok(Admitted { digest, .. }) => {
                if let Some(existing) = self.parts.store.get(&hex32(digest))? {
                    return Ok((existing, false));
                }
                let (queued, free) = self.load()?;
                if free > 0 {
                    return self.insert(hex32(digest), signed, JobRoute::Local, None).await;
                }
                SubmitError::Busy(queued)
            }
            Err(rejection) if rejection.code == "unknown_model" || rejection.code == "fee_too_low" => {
                SubmitError::Rejected(rejection)
            }
            Err(rejection) => return Err(rejection.into()),
        };
        // Not here: a peer may run it. Check what does not depend on the model before asking.
        let Some(network) = self.network() else { return Err(local_rejection) };
        let digest =
            admission::admit_for_forwarding(signed, &self.domain, self.parts.max_prompt_bytes, now_unix())?;
        let id = hex32(digest);
        if let Some(existing) = self.parts.store.get(&id)? {
            return Ok((existing, false));
        }
        if network.candidates(&need(signed), &[]).await.is_empty() {
            return Err(match local_rejection {
                SubmitError::Rejected(r) if r.code == "unknown_model" && !serves_model => Rejection {
                    code: "unknown_model",
                    message: format!(
                        "no node on the network serves model {} with these settings and fee (this node serves {}); \
                         GET /v1/models lists the network's models",
                        signed.request.modelHash,
                        self.parts.inference.descriptor().hash
                    ),
                }
                .into(),
                other => other,
            });
        }
        self.insert(id, signed, JobRoute::Forwarded, None).await
    }

    /// Admits a request a peer forwarded and runs it here; never forwards it again.
    pub async fn submit_from_peer(
        self: &Arc<Self>,
        signed: &SignedRequest,
        origin: &str,
    ) -> Result<(JobRecord, bool), SubmitError> {
        let Admitted { digest, .. } = admission::admit(signed, &self.admission_context())?;
        let id = hex32(digest);
        if let Some(existing) = self.parts.store.get(&id)? {
            return Ok((existing, false));
        }
        let (queued, free) = self.load()?;
        if free == 0 {
            return Err(SubmitError::Busy(queued));
        }
        self.insert(id, signed, JobRoute::Local, Some(origin)).await
    }

    /// Stores and starts a new job, once the creator's deposit covers its fee.
    async fn insert(
        self: &Arc<Self>,
        id: String,
        signed: &SignedRequest,
        route: JobRoute,
        origin: Option<&str>,
    ) -> Result<(JobRecord, bool), SubmitError> {
        self.check_funds(signed).await?;
        let json = serde_json::to_string(signed).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match self.parts.store.insert(&id, &json, route, origin)? {
            Inserted::New(job) => {
                info!(job = %id, ?route, origin, "job received");
                self.events.state(&job);
                self.spawn(id);
                Ok((job, true))
            }
            Inserted::Existing(job) => Ok((job, false)),
        }
    }

    /// The contract moves the signed fee from the creator's deposit at mint: refuse a request the
    /// deposit cannot pay before any work is done. When the chain cannot be asked, the mint decides.
    async fn check_funds(&self, signed: &SignedRequest) -> Result<(), Rejection> {
        let request = &signed.request;
        if request.fee.is_zero() {
            return Ok(());
        }
        match self.parts.chain.funds_of(request.creator).await {
            Ok(funds) if funds < request.fee => Err(Rejection {
                code: "insufficient_funds",
                message: format!(
                    "the creator {} has {funds} wei deposited but the request's fee is {} wei; deposit more \
                     (`deposit` on the contract) or sign a smaller fee",
                    request.creator, request.fee
                ),
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                warn!(creator = %request.creator, error = %e, "cannot read the creator's deposit; admitting");
                Ok(())
            }
        }
    }

    /// Resumes every unfinished job after a start or restart.
    pub fn resume_all(self: &Arc<Self>) -> Result<usize, StoreError> {
        let jobs = self.parts.store.unfinished()?;
        for job in &jobs {
            info!(job = %job.id, state = %job.state, "resuming job");
            self.spawn(job.id.clone());
        }
        Ok(jobs.len())
    }

    /// Cancels a job that has not reached the chain yet (a forwarded one at its executor too).
    pub async fn cancel(&self, id: &str) -> Result<JobRecord, StoreError> {
        if let Some(job) = self.parts.store.get(id)?
            && job.route == JobRoute::Forwarded
            && job.state.can_cancel()
        {
            super::remote::cancel_at_executor(self, &job).await;
        }
        self.cancel_here(id)
    }

    /// Cancels a job in this node's store (and stops its generation if it runs here).
    pub fn cancel_here(&self, id: &str) -> Result<JobRecord, StoreError> {
        if let Some(flag) = self.cancel_flag(id, false) {
            flag.store(true, Ordering::Relaxed);
        }
        let job = self.parts.store.transition(id, JobState::Cancelled, Outputs::default())?;
        self.events.state(&job);
        Ok(job)
    }

    fn cancel_flag(&self, id: &str, create: bool) -> Option<Arc<AtomicBool>> {
        let mut flags = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        if create { Some(flags.entry(id.to_owned()).or_default().clone()) } else { flags.get(id).cloned() }
    }

    fn spawn(self: &Arc<Self>, id: String) {
        let pipeline = self.clone();
        tokio::spawn(async move { pipeline.drive(id).await });
    }

    /// Runs one job to a terminal state.
    async fn drive(self: Arc<Self>, id: String) {
        let mut attempt = 0;
        loop {
            let job = match self.parts.store.get(&id) {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(e) => {
                    warn!(job = %id, error = %e, "cannot read job; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if job.state.is_terminal() {
                self.cancels.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                return;
            }
            match self.step(&job).await {
                Ok(()) => attempt = 0,
                Err(StepError::Stopped) => continue,
                Err(StepError::Fatal(reason)) => self.fail(&id, reason),
                Err(StepError::Retry(reason)) => {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS {
                        self.fail(&id, format!("gave up after {attempt} attempts: {reason}"));
                    } else {
                        let wait = Duration::from_secs(1 << attempt.min(5));
                        warn!(job = %id, state = %job.state, attempt, error = %reason, "step failed; retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    fn fail(&self, id: &str, reason: String) {
        warn!(job = %id, error = %reason, "job failed");
        let outputs = Outputs { error: Some(reason), ..Outputs::default() };
        if let Ok(job) = self.parts.store.transition(id, JobState::Failed, outputs) {
            self.events.state(&job);
        }
    }

    pub(super) fn advance(&self, id: &str, to: JobState, outputs: Outputs) -> Result<JobRecord, StepError> {
        let job = self.parts.store.transition(id, to, outputs)?;
        info!(job = %id, state = %to, "job advanced");
        self.events.state(&job);
        Ok(job)
    }

    async fn step(&self, job: &JobRecord) -> Result<(), StepError> {
        if job.route == JobRoute::Forwarded {
            return super::remote::follow(self, job).await;
        }
        match job.state {
            JobState::Received => self.advance(&job.id, JobState::Queued, Outputs::default()).map(drop),
            JobState::Queued => self.generate(job).await,
            // Killed mid-generation: nothing durable came of it; generation is deterministic, so run it again.
            JobState::Generating => self.advance(&job.id, JobState::Queued, Outputs::default()).map(drop),
            JobState::Generated => self.pin(job).await,
            JobState::Pinned => self.mint(job).await,
            JobState::Minting => self.confirm(job).await,
            JobState::Minted | JobState::Failed | JobState::Cancelled | JobState::Expired => Ok(()),
        }
    }

    pub(super) fn signed(job: &JobRecord) -> Result<SignedRequest, StepError> {
        serde_json::from_str(&job.signed_request)
            .map_err(|e| StepError::Fatal(format!("stored request is unreadable: {e}")))
    }

    fn image_path(&self, id: &str) -> PathBuf {
        self.parts.images_dir.join(format!("{id}.png"))
    }

    async fn generate(&self, job: &JobRecord) -> Result<(), StepError> {
        let signed = Self::signed(job)?;
        if signed.request.deadline <= now_unix() {
            return self.advance(&job.id, JobState::Expired, Outputs::default()).map(drop);
        }
        let params = admission::generation_params(&signed.request, self.parts.inference.descriptor())
            .map_err(|e| StepError::Fatal(e.to_string()))?;
        self.advance(&job.id, JobState::Generating, Outputs::default())?;
        let cancel = self.cancel_flag(&job.id, true).unwrap_or_default();
        let (events, id) = (self.events.clone(), job.id.clone());
        let progress = Box::new(move |p: genmint_model_runtime::Progress| {
            events.publish(JobEvent::Progress { id: id.clone(), step: p.step, total: p.total });
        });
        let image = match self.parts.inference.generate(params, cancel, progress).await {
            Ok(image) => image,
            Err(InferenceError::Runtime(RuntimeError::Cancelled)) => return Err(StepError::Stopped),
            Err(InferenceError::Busy(n)) => {
                // Give the slot back to the queue and try again shortly.
                self.advance(&job.id, JobState::Queued, Outputs::default())?;
                return Err(StepError::Retry(format!("inference queue full ({n})")));
            }
            Err(e) => return Err(StepError::Fatal(e.to_string())),
        };
        let bytes = png::encode(&image).map_err(|e| StepError::Fatal(e.to_string()))?;
        let path = self.image_path(&job.id);
        let tmp = path.with_extension("png.partial");
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| StepError::Retry(format!("writing {tmp:?}: {e}")))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| StepError::Retry(format!("writing {path:?}: {e}")))?;
        let outputs = Outputs { pixel_digest: Some(hex32(image.pixel_digest())), ..Outputs::default() };
        self.advance(&job.id, JobState::Generated, outputs).map(drop)
    }

    async fn pin(&self, job: &JobRecord) -> Result<(), StepError> {
        let signed = Self::signed(job)?;
        let path = self.image_path(&job.id);
        let image =
            tokio::fs::read(&path).await.map_err(|e| StepError::Fatal(format!("reading {path:?}: {e}")))?;
        let pixels = png::decode(&image).map_err(|e| StepError::Fatal(e.to_string()))?;
        let pixel_digest = hex32(pixels.pixel_digest());
        if job.pixel_digest.as_deref() != Some(pixel_digest.as_str()) {
            return Err(StepError::Fatal(format!("{path:?} no longer holds the generated image")));
        }
        let descriptor = self.parts.inference.descriptor();
        let request = &signed.request;
        // The file on disk stays the model's output; the pinned file is that output with its
        // content credentials, the last change before pinning.
        let token = self.parts.credentials.assertion(
            self.parts.chain_id,
            self.parts.contract,
            parse_b256(&job.id)?,
            request.modelHash,
            parse_b256(&pixel_digest)?,
        );
        let image = self
            .parts
            .credentials
            .embed(&image, &token)
            .map_err(|e| StepError::Fatal(format!("cannot embed the content credentials: {e}")))?;
        let image_cid = self.parts.ipfs.add_and_pin(image).await?;
        let provenance = Provenance {
            version: PROVENANCE_VERSION,
            chain_id: self.parts.chain_id,
            contract: self.parts.contract.to_checksum(None),
            request: serde_json::to_value(request).map_err(|e| StepError::Fatal(e.to_string()))?,
            creator_signature: signed.signature.to_string(),
            request_digest: job.id.clone(),
            model_hash: descriptor.hash.to_string(),
            model_name: descriptor.name.clone(),
            pixel_digest: pixel_digest.clone(),
            image_cid: image_cid.to_string(),
            width: pixels.width,
            height: pixels.height,
            node: self.operator().to_checksum(None),
            envelope: Envelope {
                engine: descriptor.envelope.engine.clone(),
                noise: descriptor.envelope.noise.clone(),
                scheduler: request.scheduler.clone(),
                steps: request.steps,
                guidance: request.guidance as f32 / 100.0,
                dtype: descriptor.envelope.dtype.clone(),
                device_class: descriptor.envelope.device_class.clone(),
            },
        };
        let metadata =
            TokenMetadata::new(MetadataInput { prompt: &request.prompt, seed: request.seed, provenance });
        let metadata_bytes = metadata.to_bytes().map_err(|e| StepError::Fatal(e.to_string()))?;
        let metadata_cid = self.parts.ipfs.add_and_pin(metadata_bytes).await?;
        let attestation = Attestation {
            requestDigest: parse_b256(&job.id)?,
            modelHash: request.modelHash,
            pixelDigest: parse_b256(&pixel_digest)?,
            imageCid: image_cid.to_string(),
            metadataCid: metadata_cid.to_string(),
            node: self.operator(),
        };
        let signature = sign_attestation(&self.parts.operator, &attestation, &self.domain)
            .map_err(|e| StepError::Fatal(format!("cannot sign the attestation: {e}")))?;
        let outputs = Outputs {
            image_cid: Some(image_cid.to_string()),
            metadata_cid: Some(metadata_cid.to_string()),
            node_signature: Some(signature.to_string()),
            ..Outputs::default()
        };
        self.advance(&job.id, JobState::Pinned, outputs).map(drop)
    }

    fn attestation(&self, job: &JobRecord, signed: &SignedRequest) -> Result<Attestation, StepError> {
        let missing = |field| StepError::Fatal(format!("pinned job has no {field}"));
        Ok(Attestation {
            requestDigest: parse_b256(&job.id)?,
            modelHash: signed.request.modelHash,
            pixelDigest: parse_b256(job.pixel_digest.as_deref().ok_or_else(|| missing("pixel digest"))?)?,
            imageCid: job.image_cid.clone().ok_or_else(|| missing("image CID"))?,
            metadataCid: job.metadata_cid.clone().ok_or_else(|| missing("metadata CID"))?,
            node: self.operator(),
        })
    }

    async fn mint(&self, job: &JobRecord) -> Result<(), StepError> {
        let token_id = U256::from_be_bytes(parse_b256(&job.id)?.0);
        if self.parts.chain.token_exists(token_id).await? {
            return self.minted_elsewhere(job, token_id).await;
        }
        let signed = Self::signed(job)?;
        let attestation = self.attestation(job, &signed)?;
        let node_signature = job
            .node_signature
            .as_deref()
            .ok_or_else(|| StepError::Fatal("pinned job has no attestation signature".into()))?
            .parse()
            .map_err(|e| StepError::Fatal(format!("stored attestation signature: {e}")))?;
        let mint = MintJob {
            request: signed.request,
            creator_signature: signed.signature,
            attestation,
            node_signature,
        };
        let pending = self.minter.send(mint).await?;
        let outputs = Outputs { tx_hash: Some(pending.tx_hash.to_string()), ..Outputs::default() };
        self.advance(&job.id, JobState::Minting, outputs).map(drop)
    }

    async fn confirm(&self, job: &JobRecord) -> Result<(), StepError> {
        let token_id = U256::from_be_bytes(parse_b256(&job.id)?.0);
        let tx_hash = parse_b256(job.tx_hash.as_deref().unwrap_or_default())?;
        match self.parts.chain.receipt_for(tx_hash, token_id).await {
            Ok(outcome) => {
                let outputs = Outputs { token_id: Some(outcome.token_id.to_string()), ..Outputs::default() };
                self.advance(&job.id, JobState::Minted, outputs).map(drop)
            }
            Err(ChainError::Reverted { .. } | ChainError::ReceiptTimeout { .. })
                if self.parts.chain.token_exists(token_id).await? =>
            {
                self.minted_elsewhere(job, token_id).await
            }
            Err(e @ ChainError::Reverted { .. }) => Err(StepError::Fatal(e.to_string())),
            // Still pending: keep waiting; the chain decides, never a second send.
            Err(ChainError::ReceiptTimeout { .. }) if self.parts.chain.transaction_known(tx_hash).await? => {
                Ok(())
            }
            // Neither mined nor pending: the transaction was dropped; go back and send it again.
            Err(ChainError::ReceiptTimeout { .. }) => {
                warn!(job = %job.id, %tx_hash, "mint transaction dropped; sending it again");
                self.advance(&job.id, JobState::Pinned, Outputs::default()).map(drop)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The token exists already (an earlier attempt of this node, or another node): record the
    /// transaction that minted it.
    pub(super) async fn minted_elsewhere(&self, job: &JobRecord, token_id: U256) -> Result<(), StepError> {
        let event = self.parts.chain.minted_event(token_id).await?;
        let outputs = Outputs {
            token_id: Some(token_id.to_string()),
            tx_hash: event.map(|e| e.tx_hash.to_string()),
            ..Outputs::default()
        };
        self.advance(&job.id, JobState::Minted, outputs).map(drop)
    }
}

/// What a request needs from the node that runs it (for choosing a peer).
pub(super) fn need(signed: &SignedRequest) -> Need {
    let request = &signed.request;
    Need {
        model_hash: request.modelHash.to_string(),
        width: request.width,
        height: request.height,
        steps: request.steps,
        fee: request.fee,
    }
}

pub(super) fn parse_b256(hex: &str) -> Result<B256, StepError> {
    hex.parse().map_err(|e| StepError::Fatal(format!("{hex:?} is not a 32-byte hex value: {e}")))
}

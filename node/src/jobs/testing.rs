//! Test doubles for the traits jobs own, and a harness that builds a [`Jobs`] service over them
//! with a real SQLite store in a temporary directory. Unit tests only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use futures_util::future::BoxFuture;
use genmint_model_runtime::{
    Control, GenerationParams, Generator, Limits, ModelDescriptor, ModelHash, ModelKind, Progress,
    ReproducibilityEnvelope, Rgb8Image, RuntimeError, SchedulerKind, TextFit, Traced,
};

use genmint_model_runtime::trace::{LatentTrace, SampleShape, TraceEntry};

use super::chain::{ChainMint, Finality, MintChain};
use super::events::JobEvent;
use super::forwarder::{Candidate, ForwardError, Forwarder, Need, Placement, StatusReply};
use super::inference::Inference;
use super::models::{ModelLoader, Models, ServedModel};
use super::service::{Jobs, JobsParts};
use super::state::JobState;
use super::store::{JobRecord, JobStore, PeerRef};
use crate::chain::{ChainError, MintJob, MintOutcome, PendingMint, Replacement};
use crate::ipfs::{Cid, MemoryStore};
use crate::lifecycle::Tasks;
use crate::provenance::credentials::Credentials;
use crate::provenance::eip712::{GenerationRequest, SignedCancel, SignedRequest, sign_request};
use crate::provenance::ids::{JobId, PixelDigest, TxHash};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The model the fake generator serves.
pub(crate) const MODEL: ModelHash = ModelHash([0x3c; 32]);

pub(crate) fn descriptor() -> ModelDescriptor {
    ModelDescriptor {
        name: "fake-8".into(),
        author: None,
        kind: ModelKind::Tiny,
        hash: MODEL,
        limits: Limits {
            min_width: 8,
            max_width: 16,
            min_height: 8,
            max_height: 16,
            size_multiple: 8,
            default_width: 8,
            default_height: 8,
            max_steps: 10,
            default_steps: 2,
            default_scheduler: SchedulerKind::Ddim,
            default_guidance: 3.0,
            max_guidance: 10.0,
            max_prompt_bytes: 1000,
            negative_prompt: true,
            schedulers: SchedulerKind::ALL.to_vec(),
        },
        envelope: ReproducibilityEnvelope {
            engine: "fake".into(),
            noise: "none".into(),
            scheduler: SchedulerKind::Ddim,
            dtype: "f32".into(),
            device_class: "cpu".into(),
        },
    }
}

/// How many tokens the fake generator's "text encoder" takes, start and end included: a prompt
/// of more than 6 words is cut.
pub(crate) const FAKE_TOKEN_LENGTH: usize = 8;

/// Paints the seed into every pixel, one step per requested step. Its tokens are words, and it
/// reports a prompt of more than `FAKE_TOKEN_LENGTH − 2` words as cut.
pub(crate) struct FakeGenerator {
    pub descriptor: ModelDescriptor,
}

impl Generator for FakeGenerator {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn text_fit(&self, params: &GenerationParams) -> Result<TextFit, RuntimeError> {
        let dropped = |text: &str| text.split_whitespace().count().saturating_sub(FAKE_TOKEN_LENGTH - 2);
        Ok(TextFit {
            prompt_tokens_dropped: dropped(&params.prompt),
            negative_prompt_tokens_dropped: dropped(&params.negative_prompt),
            token_length: FAKE_TOKEN_LENGTH,
        })
    }

    fn generate(
        &mut self,
        params: &GenerationParams,
        progress: &mut (dyn FnMut(Progress) -> Control + Send),
    ) -> Result<Rgb8Image, RuntimeError> {
        for step in 1..=params.steps {
            if progress(Progress { step, total: params.steps, preview: None }) == Control::Cancel {
                return Err(RuntimeError::Cancelled);
            }
        }
        let byte = (params.seed % 251) as u8;
        Ok(Rgb8Image {
            width: params.width,
            height: params.height,
            pixels: vec![byte; (params.width * params.height * 3) as usize],
        })
    }

    // Traces: entry i holds i·byte in every value, each step adds byte, and the final entry
    // divided by the steps is the picture (records none of its own: see [`fake_trace`]).
    fn initial_entry(&mut self, params: &GenerationParams) -> Result<TraceEntry, RuntimeError> {
        Ok(fake_entry(params, 0))
    }

    fn replay_steps(
        &mut self,
        params: &GenerationParams,
        from: &[(u32, &TraceEntry)],
    ) -> Result<Vec<TraceEntry>, RuntimeError> {
        let byte = f32::from((params.seed % 251) as u8);
        Ok(from
            .iter()
            .map(|(_, entry)| TraceEntry {
                sample: entry.sample.iter().map(|v| v + byte).collect(),
                state: vec![],
            })
            .collect())
    }

    fn decode_entry(
        &mut self,
        params: &GenerationParams,
        entry: &TraceEntry,
    ) -> Result<Rgb8Image, RuntimeError> {
        let pixels =
            entry.sample.iter().map(|v| (v / params.steps as f32).round().clamp(0.0, 255.0) as u8).collect();
        Ok(Rgb8Image { width: params.width, height: params.height, pixels })
    }
}

fn fake_entry(params: &GenerationParams, step: u32) -> TraceEntry {
    let byte = f32::from((params.seed % 251) as u8);
    TraceEntry {
        sample: vec![byte * step as f32; (params.width * params.height * 3) as usize],
        state: vec![],
    }
}

/// [`FakeGenerator`] recording [`fake_trace`] with every image.
struct TracingFake(FakeGenerator);

impl Generator for TracingFake {
    fn descriptor(&self) -> &ModelDescriptor {
        self.0.descriptor()
    }

    fn generate(
        &mut self,
        params: &GenerationParams,
        progress: &mut (dyn FnMut(Progress) -> Control + Send),
    ) -> Result<Rgb8Image, RuntimeError> {
        self.0.generate(params, progress)
    }

    fn generate_batch_traced(
        &mut self,
        batch: &[GenerationParams],
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Traced, RuntimeError>> {
        let images = self.0.generate_batch(batch, progress);
        let traced = images.into_iter().zip(batch);
        traced
            .map(|(image, params)| image.map(|image| Traced { image, trace: Some(fake_trace(params)) }))
            .collect()
    }
}

/// The trace [`FakeGenerator`]'s replays agree with, for `params`.
pub(crate) fn fake_trace(params: &GenerationParams) -> LatentTrace {
    LatentTrace {
        shape: SampleShape { channels: 3, height: params.height, width: params.width },
        carries_state: false,
        entries: (0..=params.steps).map(|i| fake_entry(params, i)).collect(),
    }
}

/// An 8×8, two-step request by `creator` for `model`, deadline an hour away.
pub(crate) fn request(creator: Address, model: B256, seed: u64) -> GenerationRequest {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    GenerationRequest {
        creator,
        modelHash: model,
        prompt: "a red square".into(),
        negativePrompt: String::new(),
        seed,
        width: 8,
        height: 8,
        steps: 2,
        guidance: 300,
        scheduler: "ddim".into(),
        fee: U256::ZERO,
        nonce: U256::from(seed),
        deadline: now + 3600,
    }
}

/// A local job record in `state` with `outputs`, as the store would hold it.
pub(crate) fn record(id: JobId, state: JobState, outputs: super::store::JobOutputs) -> JobRecord {
    JobRecord {
        id,
        state,
        signed_request: "{}".into(),
        created_at: 1,
        updated_at: 2,
        outputs,
        route: super::store::JobRoute::Local,
        executor: None,
        origin: None,
    }
}

/// Loads a fake generator for a model.
pub(crate) struct FakeLoader(pub ModelDescriptor);

impl ModelLoader for FakeLoader {
    fn load(&self) -> BoxFuture<'_, Result<Inference, String>> {
        let generator = Box::new(FakeGenerator { descriptor: self.0.clone() });
        Box::pin(async move { Inference::spawn(generator, 4, 1).map_err(|e| e.to_string()) })
    }
}

/// A served model on the fake generator, loaded already.
pub(crate) fn served_fake(descriptor: ModelDescriptor) -> ServedModel {
    let worker = Inference::spawn(Box::new(FakeGenerator { descriptor: descriptor.clone() }), 4, 1).unwrap();
    ServedModel::new(descriptor.clone(), 1, Box::new(FakeLoader(descriptor)), Some(worker))
}

/// A chain in memory: deposits, minted tokens, and scripted receipts.
#[derive(Default)]
pub(crate) struct FakeChain {
    pub funds: Mutex<HashMap<Address, U256>>,
    /// Minted tokens, as the contract records each.
    pub minted: Mutex<HashMap<U256, ChainMint>>,
    pub sent: Mutex<Vec<MintJob>>,
    /// What `receipt_for` answers next; empty: mined, minting the token.
    pub receipts: Mutex<VecDeque<Result<MintOutcome, ChainError>>>,
    pub known_transactions: Mutex<HashSet<TxHash>>,
    /// Whether a sent mint lands on chain at once.
    pub mints_land: bool,
    /// Whether `receipt_for` waits forever (a transaction that stays pending).
    pub receipts_hang: bool,
    /// What `mint_receipt` answers next (`None`: no receipt); empty: the receipt `receipt_for` gives.
    pub current_receipts: Mutex<VecDeque<Option<MintOutcome>>>,
    /// Blocks mined on top of [`MINT_BLOCK`]: the head is `MINT_BLOCK + blocks_after`.
    pub blocks_after: Mutex<u64>,
    /// Every replacement asked for; what `replace` answers next (empty: [`REPLACEMENT`]).
    pub replaced: Mutex<Vec<(TxHash, Replacement)>>,
    pub replace_answers: Mutex<VecDeque<Result<Option<TxHash>, ChainError>>>,
}

/// The hash of a fake replacement transaction.
pub(crate) const REPLACEMENT: TxHash = TxHash(B256::repeat_byte(0x7e));

/// The block every fake receipt names, unless scripted otherwise.
pub(crate) const MINT_BLOCK: u64 = 1;
pub(crate) const MINT_BLOCK_HASH: B256 = B256::repeat_byte(0xb1);
/// What every fake mint costs.
pub(crate) const MINT_GAS_WEI: u128 = 150_000 * 1_000_000_000;

pub(crate) fn mined(tx_hash: TxHash, token_id: U256) -> MintOutcome {
    MintOutcome {
        tx_hash: tx_hash.0,
        block_number: MINT_BLOCK,
        block_hash: MINT_BLOCK_HASH,
        token_id,
        gas_spent_wei: MINT_GAS_WEI,
    }
}

impl FakeChain {
    pub fn landing() -> Self {
        Self { mints_land: true, ..Self::default() }
    }

    /// Another node's mint of `token` in transaction `tx`; returns what the chain records.
    pub fn mint_elsewhere(&self, token: U256, tx: TxHash) -> ChainMint {
        let mint = ChainMint {
            tx_hash: tx,
            node: Address::repeat_byte(0xe1),
            image_cid: Cid::raw_sha256(b"elsewhere image"),
            metadata_cid: Cid::raw_sha256(b"elsewhere metadata"),
            pixel_digest: PixelDigest(B256::repeat_byte(0xe2)),
            node_signature: Bytes::from(vec![0xe3; 65]),
        };
        lock(&self.minted).insert(token, mint.clone());
        mint
    }
}

pub(crate) fn unreachable() -> ChainError {
    ChainError::Unreachable { url: "fake".into(), detail: "down".into() }
}

impl MintChain for FakeChain {
    fn funds_of(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>> {
        let funds = lock(&self.funds).get(&account).copied().unwrap_or(U256::MAX);
        Box::pin(async move { Ok(funds) })
    }

    fn minted(&self, token_id: U256) -> BoxFuture<'_, Result<Option<ChainMint>, ChainError>> {
        let mint = lock(&self.minted).get(&token_id).cloned();
        Box::pin(async move { Ok(mint) })
    }

    fn send_mint(&self, job: MintJob) -> BoxFuture<'_, Result<PendingMint, ChainError>> {
        let token_id = U256::from_be_bytes(job.attestation.requestDigest.0);
        let tx_hash = B256::repeat_byte(lock(&self.sent).len() as u8 + 1);
        if self.mints_land {
            let attestation = &job.attestation;
            let mint = ChainMint {
                tx_hash: TxHash(tx_hash),
                node: attestation.node,
                image_cid: attestation.imageCid.parse().unwrap(),
                metadata_cid: attestation.metadataCid.parse().unwrap(),
                pixel_digest: PixelDigest(attestation.pixelDigest),
                node_signature: job.node_signature.clone(),
            };
            lock(&self.minted).insert(token_id, mint);
        }
        lock(&self.sent).push(job);
        lock(&self.known_transactions).insert(TxHash(tx_hash));
        Box::pin(async move { Ok(PendingMint { tx_hash, token_id }) })
    }

    fn receipt_for(&self, tx_hash: TxHash, token_id: U256) -> BoxFuture<'_, Result<MintOutcome, ChainError>> {
        if self.receipts_hang {
            return Box::pin(std::future::pending());
        }
        let scripted = lock(&self.receipts).pop_front();
        let answer = scripted.unwrap_or(Ok(mined(tx_hash, token_id)));
        Box::pin(async move { answer })
    }

    fn mint_receipt(
        &self,
        tx_hash: TxHash,
        token_id: U256,
    ) -> BoxFuture<'_, Result<Option<MintOutcome>, ChainError>> {
        let answer = lock(&self.current_receipts).pop_front().unwrap_or(Some(mined(tx_hash, token_id)));
        Box::pin(async move { Ok(answer) })
    }

    fn replace(
        &self,
        tx_hash: TxHash,
        with: Replacement,
    ) -> BoxFuture<'_, Result<Option<TxHash>, ChainError>> {
        lock(&self.replaced).push((tx_hash, with));
        let answer = lock(&self.replace_answers).pop_front().unwrap_or(Ok(Some(REPLACEMENT)));
        Box::pin(async move { answer })
    }

    fn head_block(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        let head = MINT_BLOCK + *lock(&self.blocks_after);
        Box::pin(async move { Ok(head) })
    }

    fn transaction_known(&self, tx_hash: TxHash) -> BoxFuture<'_, Result<bool, ChainError>> {
        let known = lock(&self.known_transactions).contains(&tx_hash);
        Box::pin(async move { Ok(known) })
    }
}

/// Peers in memory: who is a candidate, how each answers an offer, and scripted status replies.
#[derive(Default)]
pub(crate) struct FakeForwarder {
    pub peers: Vec<PeerRef>,
    /// The free capacity every peer advertises (`None`: plenty).
    pub free: Option<usize>,
    pub placements: HashMap<PeerRef, Placement>,
    pub statuses: Mutex<VecDeque<StatusReply>>,
    pub submitted: Mutex<Vec<PeerRef>>,
    pub cancelled: Mutex<Vec<PeerRef>>,
}

impl Forwarder for FakeForwarder {
    fn candidates<'a>(&'a self, _need: &'a Need, exclude: &'a [PeerRef]) -> BoxFuture<'a, Vec<Candidate>> {
        let free = self.free.unwrap_or(16);
        let peers = self
            .peers
            .iter()
            .filter(|p| !exclude.contains(p))
            .map(|peer| Candidate { peer: peer.clone(), free })
            .collect();
        Box::pin(async move { peers })
    }

    fn submit<'a>(&'a self, peer: &'a PeerRef, _id: JobId, _signed: &'a str) -> BoxFuture<'a, Placement> {
        lock(&self.submitted).push(peer.clone());
        let answer = self.placements.get(peer).cloned().unwrap_or(Placement::Accepted);
        Box::pin(async move { answer })
    }

    fn status<'a>(&'a self, _peer: &'a PeerRef, _id: JobId) -> BoxFuture<'a, StatusReply> {
        let answer =
            lock(&self.statuses).pop_front().unwrap_or(StatusReply::Silent(ForwardError("no answer".into())));
        Box::pin(async move { answer })
    }

    fn cancel<'a>(&'a self, peer: &'a PeerRef, _id: JobId) -> BoxFuture<'a, Result<(), ForwardError>> {
        lock(&self.cancelled).push(peer.clone());
        Box::pin(async { Ok(()) })
    }
}

/// A job service over fakes, a real store in a temporary directory, and a creator.
pub(crate) struct Harness {
    pub jobs: Arc<Jobs>,
    pub chain: Arc<FakeChain>,
    pub forwarder: Option<Arc<FakeForwarder>>,
    pub content: MemoryStore,
    pub creator: PrivateKeySigner,
    pub operator: PrivateKeySigner,
    pub tasks: Tasks,
    pub metrics: crate::metrics::JobMetrics,
    pub _dir: tempfile::TempDir,
}

/// How to build a harness.
pub(crate) struct Setup {
    pub chain: FakeChain,
    pub forwarder: Option<FakeForwarder>,
    pub max_queued_jobs: usize,
    pub min_fee: U256,
    /// Models served beside the fake generator's [`MODEL`].
    pub extra_models: Vec<ModelDescriptor>,
    /// Whether those are loaded from the start (or only when a job needs them).
    pub extra_models_loaded: bool,
    pub finality: Finality,
    /// Whether the primary fake records latent traces ([`fake_trace`]).
    pub traces: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            chain: FakeChain::landing(),
            forwarder: None,
            max_queued_jobs: 4,
            min_fee: U256::ZERO,
            extra_models: Vec::new(),
            extra_models_loaded: true,
            finality: Finality { confirmations: 1, poll: Duration::from_millis(5) },
            traces: false,
        }
    }
}

impl Harness {
    pub fn new(setup: Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let operator = PrivateKeySigner::random();
        let store = JobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
        let extra = setup.extra_models.into_iter().map(|model| {
            if setup.extra_models_loaded {
                served_fake(model)
            } else {
                ServedModel::new(model.clone(), 1, Box::new(FakeLoader(model)), None)
            }
        });
        let primary = if setup.traces {
            let worker =
                Inference::spawn(Box::new(TracingFake(FakeGenerator { descriptor: descriptor() })), 4, 1)
                    .unwrap();
            ServedModel::new(descriptor(), 1, Box::new(FakeLoader(descriptor())), Some(worker))
        } else {
            served_fake(descriptor())
        };
        let served = std::iter::once(primary).chain(extra).collect();
        let models = Models::new(served, None);
        let (credentials, _) = Credentials::load_or_create(dir.path(), &operator).unwrap();
        let images_dir = dir.path().join("images");
        std::fs::create_dir_all(&images_dir).unwrap();
        let chain = Arc::new(setup.chain);
        let forwarder = setup.forwarder.map(Arc::new);
        let content = MemoryStore::default();
        let tasks = Tasks::default();
        let metrics = crate::metrics::JobMetrics::default();
        let jobs = Jobs::new(JobsParts {
            store,
            models,
            content: Arc::new(content.clone()),
            chain: chain.clone(),
            finality: setup.finality,
            forwarder: forwarder.clone().map(|f| f as Arc<dyn Forwarder>),
            operator: operator.clone(),
            chain_id: 31337,
            contract: Address::repeat_byte(0xc0),
            images_dir,
            public_url: "http://node.test".into(),
            max_prompt_bytes: 100,
            max_queued_jobs: setup.max_queued_jobs,
            min_fee: setup.min_fee,
            credentials: Arc::new(credentials),
            tasks: tasks.clone(),
            metrics: metrics.clone(),
        });
        Self {
            jobs,
            chain,
            forwarder,
            content,
            creator: PrivateKeySigner::random(),
            operator,
            tasks,
            metrics,
            _dir: dir,
        }
    }

    /// The creator's cancel of job `id`, valid for ten minutes.
    pub fn sign_cancel(&self, id: JobId) -> SignedCancel {
        SignedCancel::sign(&self.creator, id.0, super::service::now_unix() + 600, self.jobs.domain()).unwrap()
    }

    /// Where jobs write the generated images.
    pub fn images_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("images")
    }

    /// A request of the creator's for `model`, deadline an hour away.
    pub fn request(&self, model: ModelHash, seed: u64) -> GenerationRequest {
        request(self.creator.address(), B256::from(model.0), seed)
    }

    pub fn sign(&self, request: GenerationRequest) -> SignedRequest {
        let signature = sign_request(&self.creator, &request, self.jobs.domain()).unwrap();
        SignedRequest { request, signature }
    }

    /// Waits (bounded) until the job reaches `state`.
    pub async fn wait_for(&self, id: JobId, state: JobState) -> JobRecord {
        let mut events = self.jobs.events().subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let job = self.jobs.job(id).await.unwrap().unwrap();
            if job.state == state {
                return job;
            }
            assert!(
                !job.state.is_terminal(),
                "job ended {} ({:?}), not {state}",
                job.state,
                job.outputs.error
            );
            let next = tokio::time::timeout_at(deadline, async {
                loop {
                    if let Ok(JobEvent::State(job)) = events.recv().await
                        && job.id == id
                    {
                        return;
                    }
                }
            });
            assert!(next.await.is_ok(), "job stayed {} instead of reaching {state}", job.state);
        }
    }
}

impl Harness {
    /// Waits (bounded) until the stored job satisfies `done`.
    pub async fn wait_until(&self, id: JobId, done: impl Fn(&JobRecord) -> bool) -> JobRecord {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let job = self.jobs.job(id).await.unwrap().unwrap();
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} stayed {} ({:?})",
                job.state,
                job.executor
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

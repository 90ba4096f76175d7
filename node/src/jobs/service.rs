//! [`Jobs`]: the node's job service. It admits requests (here, or for a peer through the
//! [`Forwarder`]), stores them, and drives each job in its own task, one step at a time, from its
//! last durable state to a terminal one. Every step re-reads the job and writes its result before
//! the next, so a node stopped at any point resumes where it was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use tracing::{info, warn};

use super::admission::{self, AdmissionContext, RefusalCode, Rejection, reject};
use super::backoff;
use super::chain::{Finality, MintChain};
use super::content::Pinner;
use super::error::{StepError, SubmitError};
use super::events::Events;
use super::followed::Followed;
use super::forwarder::{Forwarder, Need};
use super::models::Models;
use super::state::JobState;
use super::store::{Inserted, JobOutputs, JobRecord, JobRoute, JobStore, PeerRef, StoreError};
use crate::lifecycle::Tasks;
use crate::metrics::JobMetrics;
use crate::provenance::credentials::Credentials;
use crate::provenance::eip712::SignedRequest;
use crate::provenance::ids::JobId;

pub(super) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// What the job service needs from the rest of the node.
pub struct JobsParts {
    pub store: JobStore,
    /// The models this node serves, each on its own inference thread.
    pub models: Models,
    pub content: Arc<dyn Pinner>,
    pub chain: Arc<dyn MintChain>,
    /// How deep a mint must be before the job is `Minted`.
    pub finality: Finality,
    /// The network, when the node is on one: jobs it cannot run go to peers.
    pub forwarder: Option<Arc<dyn Forwarder>>,
    pub operator: PrivateKeySigner,
    pub chain_id: u64,
    pub contract: Address,
    pub images_dir: PathBuf,
    /// The base URL of this node's web page: token metadata links each token's page there.
    pub public_url: String,
    pub max_prompt_bytes: usize,
    pub max_queued_jobs: usize,
    /// The smallest signed fee this node runs a job for.
    pub min_fee: U256,
    /// Signs the C2PA manifest embedded in every pinned image.
    pub credentials: Arc<Credentials>,
    /// Where job tasks are spawned; its shutdown stops them at their next step boundary.
    pub tasks: Tasks,
    /// Where state changes, step times and step errors are counted.
    pub metrics: JobMetrics,
}

/// Jobs that need this node's generator, and how many more it takes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub queued: usize,
    pub free: usize,
}

/// The job service; shared by the HTTP API, the network and the job tasks.
pub struct Jobs {
    pub(super) parts: JobsParts,
    pub(super) domain: Eip712Domain,
    pub(super) events: Events,
    cancels: Mutex<HashMap<JobId, Arc<AtomicBool>>>,
    pub(super) followed: Followed,
    /// Held while a job is counted against the queues and stored (or moved here), so that
    /// concurrent requests cannot overfill them.
    pub(super) admitting: tokio::sync::Mutex<()>,
    /// This service, for the job tasks it spawns.
    me: Weak<Jobs>,
}

impl Jobs {
    pub fn new(parts: JobsParts) -> Arc<Self> {
        let domain = crate::provenance::eip712::domain(parts.chain_id, parts.contract);
        Arc::new_cyclic(|me| Self {
            domain,
            events: Events::counted_in(parts.metrics.clone()),
            cancels: Mutex::default(),
            followed: Followed::default(),
            admitting: tokio::sync::Mutex::new(()),
            me: me.clone(),
            parts,
        })
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    pub fn store(&self) -> &JobStore {
        &self.parts.store
    }

    pub fn models(&self) -> &Models {
        &self.parts.models
    }

    pub fn domain(&self) -> &Eip712Domain {
        &self.domain
    }

    pub fn operator(&self) -> Address {
        self.parts.operator.address()
    }

    /// The smallest fee this node runs a job for.
    pub fn min_fee(&self) -> U256 {
        self.parts.min_fee
    }

    pub async fn load(&self) -> Result<Load, StoreError> {
        let queued = self.parts.store.queued().await?;
        Ok(Load { queued, free: self.parts.max_queued_jobs.saturating_sub(queued) })
    }

    pub async fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.parts.store.get(id).await
    }

    pub(super) fn admission_context(&self) -> AdmissionContext<'_> {
        AdmissionContext {
            domain: &self.domain,
            models: self.parts.models.descriptors().collect(),
            max_prompt_bytes: self.parts.max_prompt_bytes,
            min_fee: self.parts.min_fee,
            now_unix: now_unix(),
        }
    }

    /// Admits a signed request from a creator and starts its job here, or forwards it to a peer
    /// when this node does not serve the model or is full. A request already known returns its job
    /// (a failed one starts over). When neither this node nor its peers have room, the request is
    /// refused as busy rather than accepted into a queue nobody can serve.
    pub async fn submit(&self, signed: &SignedRequest) -> Result<(JobRecord, bool), SubmitError> {
        let here = admission::admit(signed, &self.admission_context());
        let id = match &here {
            Ok(admitted) => admitted.id,
            // Not for this node's model or price: a peer may still take it.
            Err(rejection) if rejection.code.is_local() && self.parts.forwarder.is_some() => {
                admission::admit_for_forwarding(
                    signed,
                    &self.domain,
                    self.parts.max_prompt_bytes,
                    now_unix(),
                )?
            }
            Err(rejection) => return Err(rejection.clone().into()),
        };
        if let Some(job) = self.known(id).await? {
            return Ok((job, false));
        }
        if let (Err(rejection), Some(forwarder)) = (&here, &self.parts.forwarder)
            && forwarder.candidates(&Need::of(signed), &[]).await.is_empty()
        {
            return Err(self.no_peer_serves(signed, rejection.clone().into()));
        }
        self.check_funds(signed).await?;
        let _admitting = self.admitting.lock().await;
        let load = self.load().await?;
        let local_refusal = match here {
            Ok(_) if load.free > 0 => return self.insert(id, signed, JobRoute::Local, None).await,
            Ok(_) => SubmitError::Busy(load.queued),
            Err(rejection) => rejection.into(),
        };
        self.submit_to_network(id, signed, local_refusal).await
    }

    /// Not here: a peer may run it. Accepted only while the jobs waiting for a peer are fewer than
    /// the room the peers advertise (and this node's own queue bound).
    async fn submit_to_network(
        &self,
        id: JobId,
        signed: &SignedRequest,
        local_refusal: SubmitError,
    ) -> Result<(JobRecord, bool), SubmitError> {
        let Some(forwarder) = &self.parts.forwarder else { return Err(local_refusal) };
        let candidates = forwarder.candidates(&Need::of(signed), &[]).await;
        if candidates.is_empty() {
            return Err(self.no_peer_serves(signed, local_refusal));
        }
        let room = candidates.iter().map(|c| c.free).sum::<usize>().min(self.parts.max_queued_jobs);
        let waiting = self.parts.store.unplaced().await?;
        if waiting >= room {
            return Err(SubmitError::Busy(self.parts.store.queued().await? + waiting));
        }
        self.insert(id, signed, JobRoute::Forwarded, None).await
    }

    /// What to tell a creator whose request no node on the network can take: the local refusal,
    /// and for a model this node lacks, that no peer serves it either.
    fn no_peer_serves(&self, signed: &SignedRequest, local_refusal: SubmitError) -> SubmitError {
        match local_refusal {
            SubmitError::Rejected(r) if r.code == RefusalCode::UnknownModel => reject(
                RefusalCode::UnknownModel,
                format!(
                    "no node on the network serves model {} with these settings and fee (this node serves {}); \
                     GET /v1/models lists the network's models",
                    signed.request.modelHash,
                    self.parts.models.describe()
                ),
            )
            .into(),
            other => other,
        }
    }

    /// The job stored under `id`, unless there is none or it failed (a failed job may start over).
    async fn known(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.parts.store.get(id).await?.filter(|job| job.state != JobState::Failed))
    }

    /// Admits a request a peer forwarded and runs it here; never forwards it again.
    pub async fn submit_from_peer(
        &self,
        signed: &SignedRequest,
        origin: PeerRef,
    ) -> Result<(JobRecord, bool), SubmitError> {
        let id = admission::admit(signed, &self.admission_context())?.id;
        if let Some(job) = self.known(id).await? {
            return Ok((job, false));
        }
        self.check_funds(signed).await?;
        let _admitting = self.admitting.lock().await;
        let load = self.load().await?;
        if load.free == 0 {
            return Err(SubmitError::Busy(load.queued));
        }
        self.insert(id, signed, JobRoute::Local, Some(origin)).await
    }

    /// Stores and starts a new job (or a failed one again).
    async fn insert(
        &self,
        id: JobId,
        signed: &SignedRequest,
        route: JobRoute,
        origin: Option<PeerRef>,
    ) -> Result<(JobRecord, bool), SubmitError> {
        let json = serde_json::to_string(signed)
            .map_err(|e| StoreError::Corrupt { column: "signed_request", detail: e.to_string() })?;
        match self.parts.store.insert(id, json, route, origin.clone()).await? {
            Inserted::New(job) => {
                info!(job = %id, ?route, origin = ?origin.map(|o| o.0), "job received");
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
            Ok(funds) if funds < request.fee => Err(reject(
                RefusalCode::InsufficientFunds,
                format!(
                    "the creator {} has {funds} wei deposited but the request's fee is {} wei; deposit more \
                     (`deposit` on the contract) or sign a smaller fee",
                    request.creator, request.fee
                ),
            )),
            Ok(_) => Ok(()),
            Err(e) => {
                warn!(creator = %request.creator, error = %e, "cannot read the creator's deposit; admitting");
                Ok(())
            }
        }
    }

    /// Resumes every unfinished job after a start or restart.
    pub async fn resume_all(&self) -> Result<usize, StoreError> {
        let jobs = self.parts.store.unfinished().await?;
        for job in &jobs {
            info!(job = %job.id, state = %job.state, "resuming job");
            self.spawn(job.id);
        }
        Ok(jobs.len())
    }

    /// Cancels a job in this node's store (and stops its generation if it runs here).
    pub async fn cancel_here(&self, id: JobId) -> Result<JobRecord, StoreError> {
        if let Some(flag) = self.cancel_flag(id, false) {
            flag.store(true, Ordering::Relaxed);
        }
        let job = self.parts.store.transition(id, JobState::Cancelled, JobOutputs::default()).await?;
        self.events.state(&job);
        Ok(job)
    }

    pub(super) fn cancel_flag(&self, id: JobId, create: bool) -> Option<Arc<AtomicBool>> {
        let mut flags = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        if create { Some(flags.entry(id).or_default().clone()) } else { flags.get(&id).cloned() }
    }

    fn spawn(&self, id: JobId) {
        // Upgrading fails only while the service is being dropped, when nothing should start.
        if let Some(jobs) = self.me.upgrade() {
            self.parts.tasks.spawn(async move { jobs.drive(id).await });
        }
    }

    pub(super) fn tasks(&self) -> &Tasks {
        &self.parts.tasks
    }

    /// Runs one job until it reaches a terminal state or the node stops.
    async fn drive(self: Arc<Self>, id: JobId) {
        let mut attempt = 0;
        while !self.parts.tasks.is_stopping() {
            let job = match self.parts.store.get(id).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(e) => {
                    warn!(job = %id, error = %e, "cannot read job; retrying");
                    self.parts.tasks.sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if job.state.is_terminal() {
                self.cancels.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                self.followed.forget(id);
                return;
            }
            let started = std::time::Instant::now();
            let outcome = self.step(&job).await;
            let step = job.state.as_str();
            self.parts.metrics.step_took(step, started.elapsed().as_secs_f64());
            match &outcome {
                Err(StepError::Retry(error)) => {
                    self.parts.metrics.step_failed(step, error.source_name(), false)
                }
                Err(StepError::Fatal(error)) => {
                    self.parts.metrics.step_failed(step, error.source_name(), true)
                }
                _ => {}
            }
            match outcome {
                Ok(()) => attempt = 0,
                Err(StepError::Stopped) => {}
                Err(StepError::Fatal(error)) => self.end(id, JobState::Failed, error.to_string()).await,
                // Held, not failed, however long the cause lasts: until the deadline, while the job
                // can still be stopped here; from `Pinned` on (or once a peer runs it) the chain
                // decides, so it waits for the chain or the executor.
                Err(StepError::Retry(error))
                    if job.state.can_cancel() && job.executor.is_none() && Self::past_deadline(&job) =>
                {
                    let reason = format!("the request's deadline passed while the job waited: {error}");
                    self.end(id, JobState::Expired, reason).await;
                }
                Err(StepError::Retry(error)) => {
                    attempt += 1;
                    let wait = backoff::delay(attempt);
                    warn!(job = %id, state = %job.state, attempt, error = %error, "step did not complete; trying again in {wait:?}");
                    self.parts.tasks.sleep(wait).await;
                }
            }
        }
    }

    /// Ends a job in `Failed` or `Expired`, saying why.
    async fn end(&self, id: JobId, state: JobState, reason: String) {
        warn!(job = %id, error = %reason, "job {state}");
        if let Ok(job) = self.parts.store.transition(id, state, JobOutputs::failure(reason)).await {
            self.events.state(&job);
        }
    }

    pub(super) fn past_deadline(job: &JobRecord) -> bool {
        Self::signed(job).is_ok_and(|signed| signed.request.deadline <= now_unix())
    }

    pub(super) async fn advance(
        &self,
        id: JobId,
        to: JobState,
        outputs: JobOutputs,
    ) -> Result<(), StepError> {
        let job = self.parts.store.transition(id, to, outputs).await?;
        info!(job = %id, state = %to, "job advanced");
        self.events.state(&job);
        Ok(())
    }

    async fn step(&self, job: &JobRecord) -> Result<(), StepError> {
        if job.route == JobRoute::Forwarded {
            return self.follow(job).await;
        }
        // A request minted already (a replay, or a peer that won a race) is never generated or
        // pinned again.
        if matches!(job.state, JobState::Received | JobState::Queued | JobState::Generated)
            && self.answered_from_chain(job).await?
        {
            return Ok(());
        }
        match job.state {
            JobState::Received => self.advance(job.id, JobState::Queued, JobOutputs::default()).await,
            JobState::Queued => self.generate(job).await,
            // Stopped mid-generation: nothing durable came of it; generation is deterministic, so run it again.
            JobState::Generating => self.advance(job.id, JobState::Queued, JobOutputs::default()).await,
            JobState::Generated => self.pin(job).await,
            JobState::Pinned => self.mint(job).await,
            JobState::Minting => self.confirm(job).await,
            JobState::Confirming => self.follow_confirmations(job).await,
            JobState::Minted | JobState::Failed | JobState::Cancelled | JobState::Expired => Ok(()),
        }
    }

    pub(super) fn signed(job: &JobRecord) -> Result<SignedRequest, StepError> {
        serde_json::from_str(&job.signed_request)
            .map_err(|e| StepError::invalid(format!("stored request is unreadable: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;
    use genmint_model_runtime::ModelHash;

    use super::*;
    use crate::jobs::forwarder::Placement;
    use crate::jobs::testing::{FakeChain, FakeForwarder, Harness, MODEL, Setup, lock};
    use crate::provenance::eip712::{recover_attestation_signer, request_digest};
    use crate::provenance::ids::TxHash;

    const OTHER_MODEL: ModelHash = ModelHash([0x77; 32]);

    #[tokio::test]
    async fn a_local_job_generates_pins_and_mints_with_its_attestation() {
        let h = Harness::new(Setup::default());
        let signed = h.sign(h.request(MODEL, 7));
        let (job, created) = h.jobs.submit(&signed).await.unwrap();
        assert!(created);
        assert_eq!(job.id, JobId(request_digest(&signed.request, h.jobs.domain())));
        let minted = h.wait_for(job.id, JobState::Minted).await;
        let outputs = &minted.outputs;
        assert_eq!(outputs.token_id, Some(job.id.token_id()));
        let image = h.content.get(outputs.image_cid.as_ref().unwrap()).expect("the image is pinned");
        assert!(
            crate::provenance::credentials::read(&image).unwrap().is_some(),
            "pinned with its credentials"
        );
        let metadata = h.content.get(outputs.metadata_cid.as_ref().unwrap()).expect("the metadata is pinned");
        let metadata: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
        assert_eq!(metadata["provenance"]["requestDigest"], job.id.to_string());
        assert_eq!(
            metadata["external_url"],
            format!("http://node.test/tokens/{}", job.id),
            "links the token page"
        );
        let sent = lock(&h.chain.sent).clone();
        assert_eq!(sent.len(), 1, "one mint sent");
        let signer =
            recover_attestation_signer(&sent[0].attestation, &sent[0].node_signature, h.jobs.domain())
                .unwrap();
        assert_eq!(signer, h.operator.address());
        assert_eq!(sent[0].attestation.pixelDigest, outputs.pixel_digest.unwrap().0);
        // Submitting again returns the job, and nothing runs twice.
        let (again, created) = h.jobs.submit(&signed).await.unwrap();
        assert_eq!((again.id, created), (job.id, false));
        h.tasks.shutdown(Duration::from_secs(5)).await;
        assert_eq!(lock(&h.chain.sent).len(), 1);
    }

    #[tokio::test]
    async fn a_node_with_two_models_runs_jobs_for_both_and_names_both_when_refusing() {
        let second = genmint_model_runtime::ModelDescriptor {
            name: "fake-second".into(),
            hash: OTHER_MODEL,
            ..crate::jobs::testing::descriptor()
        };
        let h = Harness::new(Setup { extra_models: vec![second], ..Setup::default() });
        let (first, _) = h.jobs.submit(&h.sign(h.request(MODEL, 11))).await.unwrap();
        let (other, _) = h.jobs.submit(&h.sign(h.request(OTHER_MODEL, 12))).await.unwrap();
        assert_eq!((first.route, other.route), (JobRoute::Local, JobRoute::Local));
        for job in [first.id, other.id] {
            h.wait_for(job, JobState::Minted).await;
        }
        let sent = lock(&h.chain.sent).clone();
        let models: Vec<B256> = sent.iter().map(|mint| mint.attestation.modelHash).collect();
        assert!(
            models.contains(&B256::from(MODEL.0)) && models.contains(&B256::from(OTHER_MODEL.0)),
            "{models:?}"
        );
        let unknown = ModelHash([0x55; 32]);
        let SubmitError::Rejected(rejection) =
            h.jobs.submit(&h.sign(h.request(unknown, 13))).await.unwrap_err()
        else {
            panic!("not a rejection")
        };
        assert!(
            rejection.message.contains("fake-8") && rejection.message.contains("fake-second"),
            "{rejection}"
        );
    }

    #[tokio::test]
    async fn a_job_for_a_model_not_loaded_waits_while_it_loads_and_says_so() {
        let second = genmint_model_runtime::ModelDescriptor {
            hash: OTHER_MODEL,
            ..crate::jobs::testing::descriptor()
        };
        let h = Harness::new(Setup {
            extra_models: vec![second],
            extra_models_loaded: false,
            ..Setup::default()
        });
        assert!(!h.jobs.models().is_loaded(&OTHER_MODEL.0).await);
        let mut events = h.jobs.events().subscribe();
        let (job, _) = h.jobs.submit(&h.sign(h.request(OTHER_MODEL, 14))).await.unwrap();
        assert_eq!(job.route, JobRoute::Local, "a served model that is not loaded is still this node's");
        h.wait_for(job.id, JobState::Minted).await;
        let mut loading = false;
        while let Ok(event) = events.try_recv() {
            loading |= matches!(event, crate::jobs::events::JobEvent::Loading { id, model } if id == job.id && model == OTHER_MODEL);
        }
        assert!(loading, "the job's events say that its model loads");
        assert!(h.jobs.models().is_loaded(&OTHER_MODEL.0).await);
    }

    #[tokio::test]
    async fn a_full_node_off_the_network_is_busy_and_a_poor_creator_is_told_to_deposit() {
        let h = Harness::new(Setup { max_queued_jobs: 0, ..Setup::default() });
        let err = h.jobs.submit(&h.sign(h.request(MODEL, 1))).await.unwrap_err();
        assert!(matches!(err, SubmitError::Busy(0)), "{err}");

        let h = Harness::new(Setup::default());
        let mut request = h.request(MODEL, 2);
        request.fee = U256::from(100);
        lock(&h.chain.funds).insert(h.creator.address(), U256::from(99));
        let SubmitError::Rejected(rejection) = h.jobs.submit(&h.sign(request)).await.unwrap_err() else {
            panic!("not a rejection")
        };
        assert_eq!(rejection.code, RefusalCode::InsufficientFunds);
        assert!(rejection.message.contains("has 99 wei deposited"), "{rejection}");
    }

    #[tokio::test]
    async fn another_model_is_forwarded_when_a_peer_serves_it_and_refused_when_none_does() {
        let h = Harness::new(Setup::default());
        let err = h.jobs.submit(&h.sign(h.request(OTHER_MODEL, 1))).await.unwrap_err();
        let SubmitError::Rejected(rejection) = err else { panic!("not a rejection") };
        assert!(rejection.message.contains("this node serves"), "off the network: {rejection}");

        let lonely = Harness::new(Setup { forwarder: Some(FakeForwarder::default()), ..Setup::default() });
        let SubmitError::Rejected(rejection) =
            lonely.jobs.submit(&lonely.sign(lonely.request(OTHER_MODEL, 1))).await.unwrap_err()
        else {
            panic!("not a rejection")
        };
        assert_eq!(rejection.code, RefusalCode::UnknownModel);
        assert!(rejection.message.contains("no node on the network serves"), "{rejection}");

        let peer = PeerRef("peer-a".into());
        let forwarder = FakeForwarder { peers: vec![peer.clone()], ..FakeForwarder::default() };
        let h = Harness::new(Setup { forwarder: Some(forwarder), ..Setup::default() });
        let (job, created) = h.jobs.submit(&h.sign(h.request(OTHER_MODEL, 1))).await.unwrap();
        assert_eq!((job.route, created), (JobRoute::Forwarded, true));
        h.wait_until(job.id, |job| job.executor.is_some()).await;
        assert_eq!(lock(&h.forwarder.as_ref().unwrap().submitted).as_slice(), [peer]);
    }

    #[tokio::test]
    async fn a_fee_below_the_price_is_refused_as_such_when_no_peer_would_take_it_whatever_the_deposit() {
        let lonely = FakeForwarder::default();
        let h =
            Harness::new(Setup { forwarder: Some(lonely), min_fee: U256::from(1000), ..Setup::default() });
        let mut request = h.request(MODEL, 6);
        request.fee = U256::from(1);
        lock(&h.chain.funds).insert(h.creator.address(), U256::ZERO);
        let SubmitError::Rejected(rejection) = h.jobs.submit(&h.sign(request)).await.unwrap_err() else {
            panic!("not a rejection")
        };
        assert_eq!(rejection.code, RefusalCode::FeeTooLow, "{rejection}");
    }

    #[tokio::test]
    async fn a_full_node_forwards_while_peers_have_room_and_then_says_busy() {
        let peer = PeerRef("peer-a".into());
        let forwarder = FakeForwarder {
            peers: vec![peer.clone()],
            free: Some(1),
            placements: [(peer, Placement::Busy("full".into()))].into(),
            ..FakeForwarder::default()
        };
        let h = Harness::new(Setup { forwarder: Some(forwarder), max_queued_jobs: 1, ..Setup::default() });
        // A job that waits for this node's generator fills its queue.
        let waiting = h.sign(h.request(MODEL, 1));
        let id = JobId(request_digest(&waiting.request, h.jobs.domain()));
        let json = serde_json::to_string(&waiting).unwrap();
        h.jobs.store().insert(id, json, JobRoute::Local, None).await.unwrap();

        let (job, _) = h.jobs.submit(&h.sign(h.request(MODEL, 3))).await.unwrap();
        assert_eq!(job.route, JobRoute::Forwarded, "the peer advertised room for one");
        let err = h.jobs.submit(&h.sign(h.request(MODEL, 4))).await.unwrap_err();
        assert!(matches!(err, SubmitError::Busy(2)), "no room left anywhere: {err}");
        assert_eq!(h.jobs.job(job.id).await.unwrap().unwrap().state, JobState::Received, "held, not failed");
    }

    #[tokio::test]
    async fn an_outage_holds_a_job_until_it_passes_or_the_deadline_does() {
        let h = Harness::new(Setup::default());
        h.content.set_down(true);
        let (held, _) = h.jobs.submit(&h.sign(h.request(MODEL, 30))).await.unwrap();
        h.wait_for(held.id, JobState::Generated).await;
        // A request that reaches its deadline while Kubo is still away (stored as is: admission
        // wants more time left than this test waits).
        let mut late = h.request(MODEL, 31);
        late.deadline = now_unix() + 3;
        let late = h.sign(late);
        let late_id = JobId(request_digest(&late.request, h.jobs.domain()));
        let json = serde_json::to_string(&late).unwrap();
        h.jobs.store().insert(late_id, json, JobRoute::Local, None).await.unwrap();
        h.jobs.resume_all().await.unwrap();
        let expired = h.wait_until(late_id, |job| job.state.is_terminal()).await;
        assert_eq!(expired.state, JobState::Expired, "{:?}", expired.outputs.error);
        let reason = expired.outputs.error.unwrap_or_default();
        assert!(reason.contains("deadline passed while the job waited"), "{reason}");
        assert_eq!(
            h.jobs.job(held.id).await.unwrap().unwrap().state,
            JobState::Generated,
            "held, not failed"
        );
        assert!(h.metrics.step_errors("generated", "ipfs", "retry") >= 1, "the outage is counted");
        assert_eq!(h.metrics.step_errors("generated", "ipfs", "fatal"), 0);
        h.content.set_down(false);
        h.wait_for(held.id, JobState::Minted).await;
        // A transition is counted as its event goes out, just after the store has it.
        for _ in 0..500 {
            if h.metrics.transitions_into("minted") > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(h.metrics.transitions_into("minted"), 1);
        assert_eq!(h.metrics.transitions_into("expired"), 1);
    }

    #[tokio::test]
    async fn a_failed_job_submitted_again_with_the_same_signature_starts_over() {
        let h = Harness::new(Setup::default());
        let signed = h.sign(h.request(MODEL, 8));
        let id = JobId(request_digest(&signed.request, h.jobs.domain()));
        let json = serde_json::to_string(&signed).unwrap();
        h.jobs.store().insert(id, json, JobRoute::Local, None).await.unwrap();
        h.jobs.store().transition(id, JobState::Failed, JobOutputs::failure("Kubo was down")).await.unwrap();
        let (job, created) = h.jobs.submit(&signed).await.unwrap();
        assert_eq!((job.id, job.state, created), (id, JobState::Received, true));
        let minted = h.wait_for(id, JobState::Minted).await;
        assert_eq!(minted.outputs.error, None);
    }

    #[tokio::test]
    async fn cancelling_stops_a_job_and_a_forwarded_one_at_its_executor() {
        let peer = PeerRef("peer-a".into());
        let forwarder = FakeForwarder {
            peers: vec![peer.clone()],
            placements: [(peer.clone(), Placement::Accepted)].into(),
            ..FakeForwarder::default()
        };
        let h = Harness::new(Setup { forwarder: Some(forwarder), ..Setup::default() });
        let (job, _) = h.jobs.submit(&h.sign(h.request(OTHER_MODEL, 4))).await.unwrap();
        h.wait_until(job.id, |job| job.executor.is_some()).await;
        let cancelled = h.jobs.cancel(job.id, &h.sign_cancel(job.id)).await.unwrap();
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert_eq!(lock(&h.forwarder.as_ref().unwrap().cancelled).as_slice(), [peer]);
        let err = h.jobs.cancel(job.id, &h.sign_cancel(job.id)).await.unwrap_err();
        assert!(matches!(err, crate::jobs::CancelError::Store(StoreError::Transition { .. })), "{err}");
    }

    #[tokio::test]
    async fn shutdown_leaves_a_pending_mint_to_the_next_start() {
        let chain = FakeChain { receipts_hang: true, ..FakeChain::default() };
        let h = Harness::new(Setup { chain, ..Setup::default() });
        let (job, _) = h.jobs.submit(&h.sign(h.request(MODEL, 5))).await.unwrap();
        h.wait_for(job.id, JobState::Minting).await;
        let outcome = h.tasks.shutdown(Duration::from_secs(5)).await;
        assert_eq!(outcome.aborted, 0, "the job task ended on its own");
        let job = h.jobs.job(job.id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Minting, "the transaction hash waits for the next start");
        assert_eq!(job.outputs.tx_hash, Some(TxHash(B256::repeat_byte(1))));
    }
}

//! Assembles a running node from its data dir and wires its parts, downward only: the chain client,
//! Kubo, the model's inference thread, the database, the job service, the peer-to-peer network (the
//! forwarder jobs use, the inbound side that reaches jobs, the spot checks) and the HTTP API. Every
//! task is spawned on the node's [`Tasks`], so [`RunningNode::shutdown`] stops taking work, lets
//! each job reach its next step boundary, and returns once every task has ended.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use futures_util::future::BoxFuture;
use genmint_model_runtime::{ComputeDtype, DeviceChoice, Generator, load_model_with};
use tracing::info;

use crate::api::{ApiState, PageConfig};
use crate::chain::{ChainClient, ChainError, FeePolicy, MintBatcher};
use crate::config::{Config, OPERATOR_KEY_ENV, OPERATOR_KEY_FILE};
use crate::db::Database;
use crate::fs::FileError;
use crate::gallery::{GalleryIndexer, GalleryStore, GalleryStoreError};
use crate::ipfs::{IpfsError, KuboClient};
use crate::jobs::inference::Inference;
use crate::jobs::{
    ChainMinter, Finality, Forwarder, JobStore, Jobs, JobsParts, ModelLoader, Models, ServedModel, StoreError,
};
use crate::lifecycle::{Shutdown, Tasks};
use crate::metrics::Metrics;
use crate::network::{Network, NetworkStartError, NodeOffer};
use crate::provenance::credentials::{Credentials, CredentialsError};
use crate::replication::{ReplicationParts, ReplicationStore, ReplicationStoreError, Replicator};
use crate::spotcheck::{SpotCheckParts, SpotCheckStore, SpotCheckStoreError, SpotChecker};

/// How long the node's tasks get to end at shutdown (open event streams, a job's current step)
/// before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no operator key: {path:?} is unreadable and {OPERATOR_KEY_ENV} is unset; run `genmint init`")]
    NoOperatorKey { path: PathBuf },
    #[error("the operator key in {source_name} is not a 32-byte hex private key")]
    BadOperatorKey { source_name: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Ipfs(#[from] IpfsError),
    #[error("loading the model: {0}")]
    Model(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    SpotChecks(#[from] SpotCheckStoreError),
    #[error(transparent)]
    Gallery(#[from] GalleryStoreError),
    #[error(transparent)]
    Replication(#[from] ReplicationStoreError),
    #[error(transparent)]
    Network(#[from] NetworkStartError),
    #[error(transparent)]
    P2p(#[from] genmint_p2p::NetworkError),
    #[error("cannot listen on {addr}: is another node running there? ({source})")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("a start-up task did not finish: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// A node serving HTTP until [`RunningNode::shutdown`].
pub struct RunningNode {
    pub addr: SocketAddr,
    pub jobs: Arc<Jobs>,
    /// The node's membership of the peer-to-peer network (`p2p.enabled`).
    pub network: Option<Arc<Network>>,
    tasks: Tasks,
    db: Database,
}

impl RunningNode {
    /// The base URL of the HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets every job reach its next step boundary and every task end
    /// (within a bounded time), stops the swarm and the inference thread, and flushes the store. Jobs in flight resume at the
    /// next start.
    pub async fn shutdown(self) -> Shutdown {
        let outcome = self.tasks.shutdown(SHUTDOWN_GRACE).await;
        if outcome.aborted > 0 {
            tracing::warn!(
                aborted = outcome.aborted,
                "tasks still running after {SHUTDOWN_GRACE:?} were aborted"
            );
        }
        if let Some(network) = &self.network {
            network.shutdown().await;
        }
        self.jobs.models().stop().await;
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || {
            db.run_now(|conn| conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot checkpoint the job store"),
            Err(e) => tracing::warn!(error = %e, "cannot checkpoint the job store"),
        }
        info!("node stopped");
        outcome
    }
}

/// Reads the operator key from `GENMINT_OPERATOR_KEY` or `<data dir>/operator.key`.
pub fn operator_key(data_dir: &Path) -> Result<PrivateKeySigner, StartError> {
    let (text, source_name) = match std::env::var(OPERATOR_KEY_ENV) {
        Ok(key) => (key, OPERATOR_KEY_ENV.to_owned()),
        Err(_) => {
            let path = data_dir.join(OPERATOR_KEY_FILE);
            let key = std::fs::read_to_string(&path)
                .map_err(|_| StartError::NoOperatorKey { path: path.clone() })?;
            (key, path.display().to_string())
        }
    };
    text.trim().parse().map_err(|_| StartError::BadOperatorKey { source_name })
}

/// `cpu` or `cuda:N`, as `[model] device` names it.
pub(crate) fn parse_device(name: &str) -> Result<DeviceChoice, StartError> {
    match name {
        "cpu" => Ok(DeviceChoice::Cpu),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => Ok(DeviceChoice::Cuda(index)),
            _ => Err(StartError::Config(format!("model.device = {other:?}: use \"cpu\" or \"cuda:N\""))),
        },
    }
}

/// Connects to the configured contract with the operator key.
async fn connect_chain(config: &Config, operator: &PrivateKeySigner) -> Result<ChainClient, StartError> {
    let contract: Address = config
        .chain
        .contract
        .as_deref()
        .ok_or_else(|| {
            StartError::Config(
                "no contract configured: set chain.contract in genmint.toml, or run `genmint dev`".into(),
            )
        })?
        .parse()
        .map_err(|_| StartError::Config("chain.contract is not an address".into()))?;
    let chain = ChainClient::connect_failover(&config.chain.rpc_urls(), operator.clone(), contract)
        .await?
        .with_receipt_timeout(Duration::from_secs(config.chain.receipt_timeout_secs))
        .with_fee_policy(FeePolicy {
            max_fee_per_gas: config.chain.max_fee_per_gas_wei.map(u128::from),
            priority_fee_per_gas: config.chain.priority_fee_per_gas_wei.into(),
        });
    if !chain.is_node(operator.address()).await? {
        tracing::warn!(operator = %operator.address(), "this operator is not registered on the contract; mints will be refused");
    }
    Ok(chain)
}

/// Loads a model directory with candle once per configured device (off the async threads), each
/// copy on its own inference thread, all fed by the model's one queue.
struct CandleLoader {
    dir: PathBuf,
    devices: Vec<DeviceChoice>,
    dtype: ComputeDtype,
    queue: usize,
    max_batch: usize,
}

impl ModelLoader for CandleLoader {
    fn load(&self) -> BoxFuture<'_, Result<Inference, String>> {
        Box::pin(async move {
            let (dir, devices, dtype) = (self.dir.clone(), self.devices.clone(), self.dtype);
            let generators = tokio::task::spawn_blocking(move || {
                devices
                    .iter()
                    .map(|&device| load_model_with(&dir, device, dtype))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            same_envelope(&generators)?;
            Inference::spawn_workers(generators, self.queue, self.max_batch)
                .map_err(|e| format!("starting the inference threads for {:?}: {e}", self.dir))
        })
    }
}

/// The copies of one model must generate under one reproducibility envelope: the token records
/// one, whichever device ran the job.
fn same_envelope(generators: &[Box<dyn Generator>]) -> Result<(), String> {
    let mut envelopes = generators.iter().map(|g| &g.descriptor().envelope);
    let Some(first) = envelopes.next() else { return Ok(()) };
    match envelopes.find(|envelope| *envelope != first) {
        None => Ok(()),
        Some(other) => Err(format!(
            "model.device lists devices that generate differently ({} {} and {} {}): list devices \
             of one kind for a model, e.g. [\"cuda:0\", \"cuda:1\"]",
            first.device_class, first.dtype, other.device_class, other.dtype
        )),
    }
}

/// The bytes of a model directory's weight files: what loading it costs against the budget.
fn weight_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "safetensors") {
                total += entry.metadata().map(|m| m.len()).unwrap_or_default();
            }
        }
    }
    total
}

/// Every configured model, the first being the primary. Each is loaded once to read what it is
/// (descriptor, hash); those beyond the memory budget are unloaded again until a job needs them.
async fn start_models(data_dir: &Path, config: &Config) -> Result<Models, StartError> {
    let queue = config.limits.max_queued_jobs.max(1);
    let budget =
        (config.limits.model_memory_mb > 0).then(|| config.limits.model_memory_mb.saturating_mul(1 << 20));
    let mut served = Vec::new();
    let mut loaded_bytes = 0u64;
    for model in config.model.all() {
        let dir = Config::model_dir(data_dir, model);
        let loader = CandleLoader {
            dir: dir.clone(),
            devices: model.device.names().iter().map(|name| parse_device(name)).collect::<Result<_, _>>()?,
            dtype: model.dtype,
            queue,
            max_batch: model.max_batch,
        };
        info!(dir = %dir.display(), "loading model");
        let worker = loader.load().await.map_err(StartError::Model)?;
        let mut descriptor = worker.descriptor().clone();
        // One limit, advertised in GET /v1/models and enforced at admission: the node's, within the model's.
        descriptor.limits.max_prompt_bytes =
            descriptor.limits.max_prompt_bytes.min(config.limits.max_prompt_bytes);
        // Every worker holds its own copy of the weights.
        let bytes = weight_bytes(&dir).saturating_mul(model.device.names().len() as u64);
        let keep = budget.is_none_or(|budget| served.is_empty() || loaded_bytes + bytes <= budget);
        info!(name = %descriptor.name, hash = %descriptor.hash, loaded = keep, "serving model");
        let worker = if keep {
            loaded_bytes += bytes;
            Some(worker)
        } else {
            worker.stop().await;
            None
        };
        served.push(ServedModel::new(descriptor, bytes, Box::new(loader), worker));
    }
    if served.is_empty() {
        return Err(StartError::Config("no model configured: add a [model] table with its dir".into()));
    }
    Ok(Models::new(served, budget))
}

/// The stores in the node's database.
struct Stores {
    db: Database,
    jobs: JobStore,
    spot_checks: SpotCheckStore,
    gallery: GalleryStore,
    replication: ReplicationStore,
}

/// The database and the stores in it, opened off the async threads.
async fn open_stores(data_dir: &Path) -> Result<Stores, StartError> {
    let path = data_dir.join("jobs.sqlite");
    let opened = tokio::task::spawn_blocking(move || -> Result<_, StartError> {
        let db = Database::open(&path).map_err(StoreError::from)?;
        Ok(Stores {
            jobs: JobStore::new(db.clone())?,
            spot_checks: SpotCheckStore::new(db.clone())?,
            gallery: GalleryStore::new(db.clone())?,
            replication: ReplicationStore::new(db.clone())?,
            db,
        })
    });
    opened.await?
}

/// The parts a node is wired from, each connected or opened.
struct Services {
    operator: PrivateKeySigner,
    chain: ChainClient,
    ipfs: KuboClient,
    models: Models,
    db: Database,
    store: JobStore,
    spot_checks: SpotCheckStore,
    gallery: GalleryStore,
    replication: ReplicationStore,
    min_fee: U256,
}

impl Services {
    async fn open(data_dir: &Path, config: &Config) -> Result<Self, StartError> {
        let operator = operator_key(data_dir)?;
        let chain = connect_chain(config, &operator).await?;
        let min_fee = config.limits.min_fee_wei.parse().map_err(|_| {
            StartError::Config(format!(
                "limits.min_fee_wei = {:?} is not a decimal wei amount",
                config.limits.min_fee_wei
            ))
        })?;
        let ipfs = KuboClient::new(&config.ipfs.api_url)?;
        let models = start_models(data_dir, config).await?;
        let Stores { db, jobs: store, spot_checks, gallery, replication } = open_stores(data_dir).await?;
        Ok(Self { operator, chain, ipfs, models, db, store, spot_checks, gallery, replication, min_fee })
    }

    /// The job service, minting through a batcher on `tasks` and forwarding through `network`.
    fn jobs(
        &self,
        data_dir: &Path,
        config: &Config,
        public_url: &str,
        network: Option<&Arc<Network>>,
        tasks: &Tasks,
        metrics: &Metrics,
    ) -> Result<Arc<Jobs>, StartError> {
        let (credentials, created) = Credentials::load_or_create(data_dir, &self.operator)?;
        if created {
            info!(sha256 = %credentials.fingerprint(), "created the content-credentials signing certificate");
        }
        let images_dir = data_dir.join("images");
        std::fs::create_dir_all(&images_dir).map_err(FileError::on("creating", &images_dir))?;
        let chain = &self.chain;
        Ok(Jobs::new(JobsParts {
            store: self.store.clone(),
            models: self.models.clone(),
            content: Arc::new(self.ipfs.clone()),
            chain: Arc::new(ChainMinter {
                client: chain.clone(),
                batcher: MintBatcher::spawn(chain.clone(), tasks),
            }),
            finality: Finality {
                confirmations: config.chain.confirmations_for(chain.chain_id()),
                poll: Duration::from_millis(config.chain.poll_interval_ms.max(1)),
            },
            forwarder: network.map(|n| n.clone() as Arc<dyn Forwarder>),
            operator: self.operator.clone(),
            chain_id: chain.chain_id(),
            contract: chain.address(),
            images_dir,
            public_url: public_url.to_owned(),
            max_prompt_bytes: config.limits.max_prompt_bytes,
            max_queued_jobs: config.limits.max_queued_jobs,
            min_fee: self.min_fee,
            credentials: Arc::new(credentials),
            tasks: tasks.clone(),
            metrics: metrics.jobs.clone(),
        }))
    }

    /// Serves the network's side of the node: peers' job requests, adverts, spot checks, and
    /// copies of tokens' content both ways.
    async fn serve_network(
        &self,
        network: &Arc<Network>,
        events: tokio::sync::mpsc::Receiver<genmint_p2p::NetworkEvent>,
        jobs: &Arc<Jobs>,
        config: &Config,
        tasks: &Tasks,
        metrics: &Metrics,
    ) -> Result<(), StartError> {
        let offer = NodeOffer { models: self.models.descriptors().cloned().collect(), min_fee: self.min_fee };
        let (received, pin_requests) =
            network.serve(jobs.clone(), jobs.events().clone(), offer, events, tasks);
        let replication = Arc::new(ReplicationParts {
            network: network.clone(),
            chain: Arc::new(self.chain.clone()),
            content: self.ipfs.clone(),
            store: self.replication.clone(),
            config: config.replication.clone(),
            operator: self.operator.clone(),
            chain_id: self.chain.chain_id(),
            contract: self.chain.address(),
            hold_timeout: Duration::from_secs(config.p2p.request_timeout_secs.saturating_sub(1).max(1)),
            metrics: metrics.replication.clone(),
        });
        let holding = replication.clone();
        tasks.spawn_until_stopped(crate::replication::serve_holder(holding, pin_requests));
        tasks.spawn_until_stopped(Replicator::new(replication).run(jobs.events().clone()));
        let parts = Arc::new(SpotCheckParts {
            network: network.clone(),
            chain: Arc::new(self.chain.clone()),
            content: self.ipfs.clone(),
            checks: self.spot_checks.clone(),
            jobs: self.store.clone(),
            models: self.models.clone(),
            operator: self.operator.clone(),
            domain: jobs.domain().clone(),
            chain_id: self.chain.chain_id(),
            contract: self.chain.address(),
            spot_checks: config.spot_checks.clone(),
        });
        start_spot_checks(parts, received, config.p2p.spot_check_interval_secs, tasks);
        info!(peer = %network.peer_id(), addrs = ?network.bootstrap_addrs().await?, "joined the network");
        Ok(())
    }
}

/// Starts a node from its data dir and configuration.
pub async fn start(data_dir: &Path, config: &Config) -> Result<RunningNode, StartError> {
    let services = Services::open(data_dir, config).await?;
    let tasks = Tasks::default();
    let listen = config.http.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: listen, source })?;
    let public_url = config.http.public_base_url(addr);
    let (network, events) = if config.p2p.enabled {
        let (network, events) =
            Network::start(data_dir, &config.p2p, &services.operator, services.chain.clone()).await?;
        (Some(network), Some(events))
    } else {
        (None, None)
    };
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
    let jobs = services.jobs(data_dir, config, &public_url, network.as_ref(), &tasks, &metrics)?;
    if let (Some(network), Some(events)) = (&network, events) {
        register_remote_services(data_dir, config, &services.ipfs).await;
        services.serve_network(network, events, &jobs, config, &tasks, &metrics).await?;
    }
    let resumed = jobs.resume_all().await?;
    if resumed > 0 {
        info!(resumed, "resumed unfinished jobs");
    }
    let (chain_id, contract) = (services.chain.chain_id(), services.chain.address());
    let indexer = GalleryIndexer {
        chain: services.chain.clone(),
        content: services.ipfs.clone(),
        store: services.gallery.clone(),
    };
    tasks.spawn_until_stopped(indexer.run());
    let state = ApiState {
        jobs: jobs.clone(),
        chain: services.chain,
        ipfs: services.ipfs,
        spot_checks: services.spot_checks,
        gallery: services.gallery,
        replication: services.replication,
        remote_pin_services: config.replication.remote.iter().map(|r| r.name.clone()).collect(),
        network: network.clone(),
        tasks: tasks.clone(),
        page: PageConfig {
            public_url,
            wallet_rpc_url: config.http.wallet_rpc_url.clone(),
            dev_wallet: config.http.dev_wallet,
        },
        limits: Arc::new(crate::api::ApiLimits::new(&config.limits)),
        metrics,
    };
    serve_http(listener, config, state, &tasks);
    info!(%addr, chain_id, %contract, "node listening");
    Ok(RunningNode { addr, jobs, network, tasks, db: services.db })
}

/// Registers each `[[replication.remote]]` pinning service with the node's Kubo (a service that
/// cannot be registered is logged; its pins then fail and are logged too).
async fn register_remote_services(data_dir: &Path, config: &Config, ipfs: &KuboClient) {
    use crate::ipfs::RemotePins;
    for service in &config.replication.remote {
        let path = data_dir.join(&service.key_file);
        let key = match std::fs::read_to_string(&path) {
            Ok(key) => key.trim().to_owned(),
            Err(e) => {
                tracing::warn!(service = %service.name, path = %path.display(), error = %e, "cannot read the remote pinning service's key file");
                continue;
            }
        };
        match ipfs.add_service(&service.name, &service.endpoint, &key).await {
            Ok(()) => {
                info!(service = %service.name, endpoint = %service.endpoint, "remote pinning service registered with Kubo")
            }
            Err(e) => {
                tracing::warn!(service = %service.name, error = %e, "Kubo did not take the remote pinning service")
            }
        }
    }
}

/// Judges peers' spot checks, and (every `interval_secs`, unless 0) checks peers' tokens.
fn start_spot_checks(
    parts: Arc<SpotCheckParts<KuboClient>>,
    received: tokio::sync::mpsc::Receiver<Box<genmint_p2p::spot_check::ReceivedSpotCheck>>,
    interval_secs: u64,
    tasks: &Tasks,
) {
    let judging = parts.clone();
    tasks.spawn_until_stopped(async move {
        crate::spotcheck::receive(judging.network.as_ref(), judging.chain.as_ref(), &judging.checks, received)
            .await
    });
    if interval_secs > 0 {
        tasks.spawn_until_stopped(SpotChecker::new(parts).run(Duration::from_secs(interval_secs)));
    }
}

/// Serves the API and the web page on `listener` on `tasks` until shutdown.
fn serve_http(listener: tokio::net::TcpListener, config: &Config, state: ApiState, tasks: &Tasks) {
    let app = crate::api::router(state, config.limits.max_body_bytes);
    let stop = tasks.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move { stop.stopping().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the HTTP server stopped");
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use genmint_model_runtime::{GenerationParams, SchedulerKind, write_test_model};

    use super::*;

    fn request(seed: u64) -> GenerationParams {
        GenerationParams {
            prompt: "a red fox in a snow forest".into(),
            negative_prompt: String::new(),
            seed,
            width: 64,
            height: 64,
            steps: 12,
            guidance: 4.0,
            scheduler: SchedulerKind::Ddim,
        }
    }

    fn loader(dir: &Path, devices: Vec<DeviceChoice>) -> CandleLoader {
        CandleLoader { dir: dir.to_owned(), devices, dtype: ComputeDtype::F32, queue: 4, max_batch: 1 }
    }

    /// Runs `seeds` at once; each job's pixels with the times of its first and last steps.
    async fn run_together(inference: &Inference, seeds: [u64; 2]) -> Vec<(Vec<u8>, Instant, Instant)> {
        let jobs = seeds.map(|seed| {
            let inference = inference.clone();
            tokio::spawn(async move {
                let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
                let seen = steps.clone();
                let progress = Box::new(move |_| seen.lock().unwrap().push(Instant::now()));
                let generation = inference.generate(request(seed), Arc::default(), progress).await.unwrap();
                let steps = steps.lock().unwrap();
                (generation.image.pixels, steps[0], *steps.last().unwrap())
            })
        });
        let mut outcomes = Vec::new();
        for job in jobs {
            outcomes.push(job.await.unwrap());
        }
        outcomes
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_cpu_workers_run_two_jobs_at_once_with_the_pixels_of_one() {
        let dir = tempfile::tempdir().unwrap();
        write_test_model(dir.path()).unwrap();
        let two = loader(dir.path(), vec![DeviceChoice::Cpu, DeviceChoice::Cpu]).load().await.unwrap();
        let together = run_together(&two, [1, 2]).await;
        let ((_, a_first, a_last), (_, b_first, b_last)) = (&together[0], &together[1]);
        assert!(a_first < b_last && b_first < a_last, "the two jobs did not overlap");
        two.stop().await;

        let one = loader(dir.path(), vec![DeviceChoice::Cpu]).load().await.unwrap();
        let alone = run_together(&one, [1, 2]).await;
        let ((_, a_first, a_last), (_, b_first, b_last)) = (&alone[0], &alone[1]);
        assert!(a_last < b_first || b_last < a_first, "one worker runs one job at a time");
        for (with_two, with_one) in together.iter().zip(&alone) {
            assert!(with_two.0 == with_one.0, "a second worker changed the pixels");
        }
        one.stop().await;
    }

    #[test]
    fn devices_of_one_model_must_generate_alike() {
        let dir = tempfile::tempdir().unwrap();
        write_test_model(dir.path()).unwrap();
        let f32_model = load_model_with(dir.path(), DeviceChoice::Cpu, ComputeDtype::F32).unwrap();
        let f16_model = load_model_with(dir.path(), DeviceChoice::Cpu, ComputeDtype::F16).unwrap();
        let same = [load_model_with(dir.path(), DeviceChoice::Cpu, ComputeDtype::F32).unwrap()];
        assert!(same_envelope(&same).is_ok());
        let error = same_envelope(&[f32_model, f16_model]).unwrap_err();
        assert!(error.contains("cpu f32 and cpu f16"), "{error}");
    }
}

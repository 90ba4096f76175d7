//! What an operator watches: the node's Prometheus metrics (`GET /metrics`, text exposition
//! format). Counters and histograms are recorded where things happen ([`JobMetrics`], held by the
//! job service); gauges that describe the node as it is now (jobs per state, the oldest unfinished
//! job, the generators' queues, peers) are set from their sources just before each scrape
//! ([`Snapshot`]). Every name starts with `genmint_`; the README lists them.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A job state's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// What AutoNAT says of the node: `unknown`, `public` or `private`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReachabilityLabel {
    pub status: String,
}

/// Every reachability, so that each is exported (0 or 1).
const REACHABILITIES: [&str; 3] = ["unknown", "public", "private"];

/// A job step, named by the state it starts from (`queued` generates, `generated` pins,
/// `pinned` sends the mint, `minting` waits for its receipt, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub step: String,
}

/// A step that did not complete: where it failed and whether it will be tried again.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepErrorLabels {
    pub step: String,
    /// `ipfs`, `chain`, `inference`, `peer`, `store` or `other`.
    pub source: String,
    /// `retry` (held and tried again) or `fatal` (the job failed).
    pub outcome: String,
}

/// A served model, by name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: String,
}

/// What the job service records as it works. Clones share their values.
#[derive(Clone)]
pub struct JobMetrics {
    transitions: Family<StateLabel, Counter>,
    step_seconds: Family<StepLabel, Histogram>,
    step_errors: Family<StepErrorLabels, Counter>,
    fees_earned_wei: Counter<f64, AtomicU64>,
    gas_spent_wei: Counter<f64, AtomicU64>,
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self {
            transitions: Family::default(),
            // 10 ms to about 45 minutes.
            step_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 18))),
            step_errors: Family::default(),
            fees_earned_wei: Counter::default(),
            gas_spent_wei: Counter::default(),
        }
    }
}

impl JobMetrics {
    /// A job entered `state` on this node.
    pub fn entered(&self, state: &str) {
        self.transitions.get_or_create(&StateLabel { state: state.to_owned() }).inc();
    }

    /// A step starting from `step` ran for `seconds`, whatever its outcome.
    pub fn step_took(&self, step: &str, seconds: f64) {
        self.step_seconds.get_or_create(&StepLabel { step: step.to_owned() }).observe(seconds);
    }

    /// A step starting from `step` failed in `source`; `fatal` when the job failed with it.
    pub fn step_failed(&self, step: &str, source: &str, fatal: bool) {
        let outcome = if fatal { "fatal" } else { "retry" }.to_owned();
        self.step_errors
            .get_or_create(&StepErrorLabels { step: step.to_owned(), source: source.to_owned(), outcome })
            .inc();
    }

    /// This node minted a token whose request paid it `wei`.
    pub fn fee_earned(&self, wei: f64) {
        self.fees_earned_wei.inc_by(wei);
    }

    /// A mint of this node was mined, costing it `wei` (its share of the transaction).
    pub fn gas_spent(&self, wei: f64) {
        self.gas_spent_wei.inc_by(wei);
    }

    #[cfg(test)]
    pub fn gas_spent_wei(&self) -> f64 {
        self.gas_spent_wei.get()
    }

    #[cfg(test)]
    pub fn transitions_into(&self, state: &str) -> u64 {
        self.transitions.get_or_create(&StateLabel { state: state.to_owned() }).get()
    }

    #[cfg(test)]
    pub fn step_errors(&self, step: &str, source: &str, outcome: &str) -> u64 {
        let labels =
            StepErrorLabels { step: step.to_owned(), source: source.to_owned(), outcome: outcome.to_owned() };
        self.step_errors.get_or_create(&labels).get()
    }
}

/// A pin request's outcome, by which side of it this node was.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PinOutcomeLabels {
    /// `asked` (this node minted and asked a peer) or `held` (a peer asked this node).
    pub role: String,
    /// `pinned`, or the refusal's code (`over_budget`, `unavailable`, `unreachable`, …).
    pub outcome: String,
}

/// What replication records. Clones share their values.
#[derive(Clone, Default)]
pub struct ReplicationMetrics {
    requests: Family<PinOutcomeLabels, Counter>,
    pending: Gauge,
    held_bytes: Gauge,
}

impl ReplicationMetrics {
    /// One pin request ended with `outcome`, asked by this node (`asked`) or of it (`held`).
    pub fn pin_request(&self, role: &str, outcome: &str) {
        let labels = PinOutcomeLabels { role: role.to_owned(), outcome: outcome.to_owned() };
        self.requests.get_or_create(&labels).inc();
    }

    /// Tokens this node minted that still have fewer receipts than `[replication] copies`.
    pub fn set_pending(&self, tokens: i64) {
        self.pending.set(tokens);
    }

    /// Bytes this node pins for other nodes' tokens.
    pub fn set_held_bytes(&self, bytes: i64) {
        self.held_bytes.set(bytes);
    }

    #[cfg(test)]
    pub fn pin_requests(&self, role: &str, outcome: &str) -> u64 {
        let labels = PinOutcomeLabels { role: role.to_owned(), outcome: outcome.to_owned() };
        self.requests.get_or_create(&labels).get()
    }
}

/// The node as it is at a scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Jobs in the store per state (every state, zeros included).
    pub jobs_by_state: Vec<(&'static str, i64)>,
    /// Age of the oldest job not yet in a terminal state.
    pub oldest_unfinished_secs: i64,
    /// Generations waiting for each loaded model's inference thread.
    pub waiting_per_model: Vec<(String, i64)>,
    /// Connected peers; `None` off the network.
    pub peers: Option<i64>,
    /// Connected peers reached only through a relay.
    pub relayed_peers: Option<i64>,
    /// What AutoNAT says of this node (one of [`REACHABILITIES`]); `None` off the network.
    pub reachability: Option<&'static str>,
}

/// The registry and every family in it.
pub struct Metrics {
    registry: Registry,
    pub jobs: JobMetrics,
    pub replication: ReplicationMetrics,
    jobs_by_state: Family<StateLabel, Gauge>,
    oldest_unfinished: Gauge,
    waiting: Family<ModelLabel, Gauge>,
    peers: Gauge,
    relayed_peers: Gauge,
    reachability: Family<ReachabilityLabel, Gauge>,
}

impl Metrics {
    /// The registry for a node of this `version`.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::with_prefix("genmint");
        let jobs = JobMetrics::default();
        registry.register(
            "job_transitions",
            "Jobs that entered each state on this node since it started",
            jobs.transitions.clone(),
        );
        registry.register(
            "job_step_seconds",
            "Wall time of each job step, by the state it starts from (queued = generation, generated = pinning, pinned = sending the mint, minting = waiting for the receipt)",
            jobs.step_seconds.clone(),
        );
        registry.register(
            "job_step_errors",
            "Job steps that did not complete, by step, source (ipfs, chain, inference, peer, store, other) and outcome (retry, fatal)",
            jobs.step_errors.clone(),
        );
        registry.register(
            "fees_earned_wei",
            "Signed fees of the requests this node minted since it started, in wei",
            jobs.fees_earned_wei.clone(),
        );
        registry.register(
            "gas_spent_wei",
            "What this node's mints cost it in gas since it started (each mint's share of its transaction's gas used times the effective gas price), in wei",
            jobs.gas_spent_wei.clone(),
        );
        let replication = ReplicationMetrics::default();
        registry.register(
            "pin_requests",
            "Requests to pin a token's content, by role (asked: this node minted and asked a peer; held: a peer asked this node) and outcome (pinned or the refusal's code)",
            replication.requests.clone(),
        );
        registry.register(
            "replication_pending",
            "Tokens this node minted that have fewer pin receipts than [replication] copies",
            replication.pending.clone(),
        );
        registry.register(
            "pinned_for_peers_bytes",
            "Bytes of other nodes' tokens this node's Kubo pins",
            replication.held_bytes.clone(),
        );
        let jobs_by_state = Family::<StateLabel, Gauge>::default();
        registry.register("jobs", "Jobs in this node's store, by state", jobs_by_state.clone());
        let oldest_unfinished = Gauge::default();
        registry.register(
            "job_oldest_unfinished_seconds",
            "Seconds since the oldest job not yet minted, failed, cancelled or expired was received (0 when there is none)",
            oldest_unfinished.clone(),
        );
        let waiting = Family::<ModelLabel, Gauge>::default();
        registry.register(
            "inference_waiting",
            "Generations waiting for a loaded model's inference thread",
            waiting.clone(),
        );
        let peers = Gauge::default();
        registry.register("peers", "Connected peers (0 off the network)", peers.clone());
        let relayed_peers = Gauge::default();
        registry.register(
            "peers_relayed",
            "Connected peers reached only through a circuit relay (hole punching did not succeed)",
            relayed_peers.clone(),
        );
        let reachability = Family::<ReachabilityLabel, Gauge>::default();
        registry.register(
            "nat_reachability",
            "1 for what AutoNAT says of this node (unknown, public or private), 0 for the others",
            reachability.clone(),
        );
        let info = Family::<Vec<(String, String)>, Gauge>::default();
        info.get_or_create(&vec![("version".to_owned(), version.to_owned())]).set(1);
        registry.register("build_info", "The running genmint version", info);
        Self {
            registry,
            jobs,
            replication,
            jobs_by_state,
            oldest_unfinished,
            waiting,
            peers,
            relayed_peers,
            reachability,
        }
    }

    /// The text exposition of every metric, with the gauges set from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        for (state, count) in &snapshot.jobs_by_state {
            self.jobs_by_state.get_or_create(&StateLabel { state: (*state).to_owned() }).set(*count);
        }
        self.oldest_unfinished.set(snapshot.oldest_unfinished_secs);
        self.waiting.clear();
        for (model, waiting) in &snapshot.waiting_per_model {
            self.waiting.get_or_create(&ModelLabel { model: model.clone() }).set(*waiting);
        }
        self.peers.set(snapshot.peers.unwrap_or(0));
        self.relayed_peers.set(snapshot.relayed_peers.unwrap_or(0));
        for status in REACHABILITIES {
            let current = snapshot.reachability.unwrap_or("unknown") == status;
            self.reachability
                .get_or_create(&ReachabilityLabel { status: status.to_owned() })
                .set(i64::from(current));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_its_values() {
        let metrics = Metrics::new("1.2.3");
        metrics.jobs.entered("minted");
        metrics.jobs.entered("minted");
        metrics.jobs.step_took("queued", 1.5);
        metrics.jobs.step_failed("generated", "ipfs", false);
        metrics.jobs.fee_earned(1e15);
        metrics.jobs.gas_spent(2e14);
        metrics.replication.pin_request("asked", "pinned");
        metrics.replication.set_pending(2);
        metrics.replication.set_held_bytes(4096);
        let text = metrics.render(&Snapshot {
            jobs_by_state: vec![("minted", 2), ("queued", 0)],
            oldest_unfinished_secs: 42,
            waiting_per_model: vec![("genmint-emoji-32".into(), 3)],
            peers: Some(5),
            relayed_peers: Some(2),
            reachability: Some("private"),
        });
        for line in [
            r#"genmint_job_transitions_total{state="minted"} 2"#,
            r#"genmint_job_step_seconds_count{step="queued"} 1"#,
            r#"genmint_job_step_errors_total{step="generated",source="ipfs",outcome="retry"} 1"#,
            "genmint_fees_earned_wei_total 1000000000000000.0",
            "genmint_gas_spent_wei_total 200000000000000.0",
            r#"genmint_jobs{state="minted"} 2"#,
            r#"genmint_jobs{state="queued"} 0"#,
            "genmint_job_oldest_unfinished_seconds 42",
            r#"genmint_inference_waiting{model="genmint-emoji-32"} 3"#,
            "genmint_peers 5",
            "genmint_peers_relayed 2",
            r#"genmint_nat_reachability{status="private"} 1"#,
            r#"genmint_nat_reachability{status="public"} 0"#,
            r#"genmint_pin_requests_total{role="asked",outcome="pinned"} 1"#,
            "genmint_replication_pending 2",
            "genmint_pinned_for_peers_bytes 4096",
            r#"genmint_build_info{version="1.2.3"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with EOF");
    }
}

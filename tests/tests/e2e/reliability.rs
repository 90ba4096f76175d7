//! The reliability suite: real node processes under a burst, SIGKILLs at random moments,
//! outages of Kubo, the chain RPC and peers, and reorgs that drop mints, each test checking that nothing accepted is lost and
//! nothing is minted twice, and printing its figures as `reliability | case | …` lines, which
//! `scripts/reliability.sh` gathers into a table.
//!
//! Sizes come from the environment, small by default so that every test run (CI included) runs
//! the whole suite once in short: `GENMINT_RELIABILITY_REQUESTS` (the burst, default 120),
//! `GENMINT_RELIABILITY_KILLS` (SIGKILL runs, default 3), `GENMINT_RELIABILITY_OUTAGE_SECS` (each
//! outage, default 8) and `GENMINT_RELIABILITY_REORGS` (reorgs that each drop four mints, default 2).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use anyhow::{Context, Result, bail};
use genmint_node::provenance::eip712::SignedRequest;
use serde_json::Value;

use crate::cluster::{Cluster, NodeSpec};
use crate::support::{CuttableProxy, IGenmint, Stack};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "minted" | "failed" | "cancelled" | "expired")
}

/// One row of the table.
fn report(case: &str, figures: &[(&str, String)]) {
    let cells: Vec<String> = figures.iter().map(|(name, value)| format!("{name} {value}")).collect();
    eprintln!("reliability | {case} | {}", cells.join(" | "));
}

/// What became of a set of accepted jobs.
#[derive(Debug, Default)]
struct Outcome {
    minted: usize,
    /// Accepted jobs that ended failed, cancelled or expired, with their records.
    lost: Vec<Value>,
    /// Accepted jobs not yet terminal when the wait ended.
    open: Vec<String>,
    /// Tokens with more than one mint event.
    double: usize,
}

/// Polls each job at the URL it was accepted by until all are terminal or `timeout` passes, then
/// counts each accepted job's mint events on the chain.
async fn settle(
    jobs: &[(String, String)],
    cluster_rpc: &str,
    contract: alloy::primitives::Address,
    timeout: Duration,
) -> Result<Outcome> {
    let client = reqwest::Client::new();
    let mut outcome = Outcome::default();
    let mut open: Vec<(String, String)> = jobs.to_vec();
    let deadline = Instant::now() + timeout;
    while !open.is_empty() && Instant::now() < deadline {
        let mut still_open = Vec::new();
        for (url, id) in open {
            let job: Value = match client.get(format!("{url}/v1/jobs/{id}")).send().await {
                Ok(response) => response.json().await?,
                // A node that is down right now is asked again.
                Err(_) => {
                    still_open.push((url, id));
                    continue;
                }
            };
            match job["state"].as_str().unwrap_or_default() {
                "minted" => outcome.minted += 1,
                state if is_terminal(state) => outcome.lost.push(job),
                _ => still_open.push((url, id)),
            }
        }
        open = still_open;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    outcome.open = open.into_iter().map(|(_, id)| id).collect();
    let provider = ProviderBuilder::new().connect_http(cluster_rpc.parse()?);
    let logs = IGenmint::new(contract, provider).AigcData_filter().from_block(0).query().await?;
    let mut mints: HashMap<U256, usize> = HashMap::new();
    for (event, _) in logs {
        *mints.entry(event.tokenId).or_default() += 1;
    }
    for (_, id) in jobs {
        let token = U256::from_be_bytes(id.parse::<B256>()?.0);
        if mints.get(&token).copied().unwrap_or(0) > 1 {
            outcome.double += 1;
        }
    }
    Ok(outcome)
}

impl Outcome {
    fn check(&self, case: &str, logs: impl FnOnce() -> String) -> Result<()> {
        if !self.lost.is_empty() || !self.open.is_empty() || self.double > 0 {
            bail!(
                "{case}: lost {:#?}, still open {:?}, double mints {}\n{}",
                self.lost,
                self.open,
                self.double,
                logs()
            );
        }
        Ok(())
    }
}

/// The largest resident set a process has had, in MiB (Linux).
fn peak_rss_mib(pid: Option<u32>) -> f64 {
    let Some(status) = pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok()) else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Posts every request at once, each to `urls[i % urls.len()]`: the accepted jobs (with the URL
/// that took them), how many were refused with 503 `busy` and `Retry-After`, and each answer's
/// latency in milliseconds, sorted.
async fn burst(
    urls: &[String],
    requests: Vec<SignedRequest>,
) -> Result<(Vec<(String, String)>, usize, Vec<f64>)> {
    let client = reqwest::Client::new();
    let answers = futures_util::future::join_all(requests.iter().enumerate().map(|(i, signed)| {
        let url = urls[i % urls.len()].clone();
        let request = client.post(format!("{url}/v1/jobs")).json(signed).send();
        async move {
            let started = Instant::now();
            let response = request.await?;
            let latency = started.elapsed().as_secs_f64() * 1000.0;
            let retry_after = response.headers().contains_key("retry-after");
            let status = response.status().as_u16();
            anyhow::Ok((url, status, retry_after, response.json::<Value>().await?, latency))
        }
    }))
    .await;
    let (mut accepted, mut refused, mut latencies) = (Vec::new(), 0, Vec::new());
    for answer in answers {
        let (url, status, retry_after, body, latency) = answer?;
        latencies.push(latency);
        match status {
            200 | 202 => accepted.push((url, body["id"].as_str().context("job id")?.to_owned())),
            503 if retry_after && body["error"]["code"] == "busy" => refused += 1,
            _ => bail!("unexpected answer {status} (Retry-After: {retry_after}): {body}"),
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok((accepted, refused, latencies))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_at_one_node_and_over_three_is_minted_once_or_refused_and_nothing_is_lost() -> Result<()> {
    // Three nodes serve one model, each with room for 8 jobs.
    let requests = setting("GENMINT_RELIABILITY_REQUESTS", 120);
    let spec = NodeSpec { max_queued_jobs: Some(8), ..NodeSpec::default() };
    let mut cluster = Cluster::new(&[spec, spec, spec]).await?;
    cluster.start_all().await?;
    let model = cluster.model("model-x");
    cluster.wait_for_providers(model, 2).await?;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    for (case, targets, first_seed) in [
        ("burst at one node of three", &urls[..1], 1_000),
        ("burst spread over three nodes", &urls[..], 1_000_000),
    ] {
        let signed: Vec<SignedRequest> = (0..requests)
            .map(|i| cluster.signed_request(model, "a burst of light", first_seed + i, 0))
            .collect();
        let started = Instant::now();
        let (accepted, refused, latencies) = burst(targets, signed).await?;
        let outcome =
            settle(&accepted, cluster.anvil.rpc_url(), cluster.contract, Duration::from_secs(600)).await?;
        let rss = cluster
            .nodes
            .iter()
            .map(|n| peak_rss_mib(n.child.as_ref().and_then(|c| c.id())))
            .fold(0.0, f64::max);
        report(
            case,
            &[
                ("requests", requests.to_string()),
                ("accepted", accepted.len().to_string()),
                ("refused 503", refused.to_string()),
                ("minted", outcome.minted.to_string()),
                ("lost", (outcome.lost.len() + outcome.open.len()).to_string()),
                ("double mints", outcome.double.to_string()),
                ("accept p50 ms", format!("{:.0}", percentile(&latencies, 0.5))),
                ("accept p99 ms", format!("{:.0}", percentile(&latencies, 0.99))),
                ("peak RSS MiB", format!("{rss:.0}")),
                ("all settled s", format!("{:.0}", started.elapsed().as_secs_f64())),
            ],
        );
        outcome.check(case, || cluster.logs())?;
        assert!(accepted.len() > 8, "{case}: more than one node's queue was accepted: {}", accepted.len());
    }
    Ok(())
}

/// A small generator of kill moments, seeded from the clock (the seed is printed).
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_no_job_and_mints_none_twice() -> Result<()> {
    let runs = setting("GENMINT_RELIABILITY_KILLS", 3);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let mut moments = Moments(seed);
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let mut jobs = Vec::new();
    let started = Instant::now();
    for run in 0..runs {
        for k in 0..4 {
            let (status, job) =
                stack.submit(&stack.signed_request("killed and restarted", run * 10 + k, 8)).await?;
            assert_eq!(status, 202, "{job}");
            jobs.push((stack.node_url.clone(), job["id"].as_str().context("job id")?.to_owned()));
        }
        // Anywhere from admission to minting: the four jobs take about that long.
        tokio::time::sleep(Duration::from_millis(moments.next_ms(3_000))).await;
        stack.kill_node().await?;
        stack.start_node().await?;
    }
    let outcome = settle(&jobs, stack.anvil.rpc_url(), stack.contract, Duration::from_secs(300)).await?;
    report(
        "kill -9 at random moments",
        &[
            ("runs", runs.to_string()),
            ("jobs", jobs.len().to_string()),
            ("minted", outcome.minted.to_string()),
            ("lost", (outcome.lost.len() + outcome.open.len()).to_string()),
            ("double mints", outcome.double.to_string()),
            ("moments seed", seed.to_string()),
            ("all settled s", format!("{:.0}", started.elapsed().as_secs_f64())),
        ],
    );
    outcome.check("kill -9", || stack.node_log())
}

#[tokio::test(flavor = "multi_thread")]
async fn outages_of_kubo_and_the_chain_rpc_hold_jobs_until_they_pass() -> Result<()> {
    let outage = Duration::from_secs(setting("GENMINT_RELIABILITY_OUTAGE_SECS", 8));
    // One node reaching Kubo and anvil through proxies the test cuts.
    let mut cluster = Cluster::new(&[]).await?;
    let kubo = CuttableProxy::start(cluster.kubo.api_url()).await?;
    let rpc = CuttableProxy::start(cluster.anvil.rpc_url()).await?;
    let spec = NodeSpec { ipfs_api: Some(&kubo.url), rpc_url: Some(&rpc.url), ..NodeSpec::default() };
    cluster.add_node(spec).await?;
    cluster.start_all().await?;
    let model = cluster.model("model-x");
    let url = cluster.nodes[0].url.clone();
    for (case, proxy, first_seed) in [("Kubo outage", &kubo, 100), ("chain RPC outage", &rpc, 200)] {
        let mut jobs = Vec::new();
        for i in 0..4 {
            let (status, job) = cluster
                .submit(0, &cluster.signed_request(model, "held through an outage", first_seed + i, 0))
                .await?;
            assert_eq!(status, 202, "{case}: {job}");
            jobs.push((url.clone(), job["id"].as_str().context("job id")?.to_owned()));
        }
        proxy.set_open(false);
        tokio::time::sleep(outage).await;
        let mut ended_during = 0;
        for (_, id) in &jobs {
            let job = cluster.job(0, id).await?;
            if matches!(job["state"].as_str(), Some("failed" | "cancelled" | "expired")) {
                ended_during += 1;
            }
        }
        proxy.set_open(true);
        let restored = Instant::now();
        let outcome =
            settle(&jobs, cluster.anvil.rpc_url(), cluster.contract, Duration::from_secs(300)).await?;
        report(
            case,
            &[
                ("outage s", outage.as_secs().to_string()),
                ("jobs", jobs.len().to_string()),
                ("failed during it", ended_during.to_string()),
                ("minted", outcome.minted.to_string()),
                ("lost", (outcome.lost.len() + outcome.open.len()).to_string()),
                ("double mints", outcome.double.to_string()),
                ("minted after it s", format!("{:.0}", restored.elapsed().as_secs_f64())),
            ],
        );
        outcome.check(case, || cluster.logs())?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_of_the_only_peers_that_serve_a_model_holds_its_jobs_until_they_return() -> Result<()> {
    let outage = Duration::from_secs(setting("GENMINT_RELIABILITY_OUTAGE_SECS", 8));
    // Node A serves model X; B is the only node that serves model Y.
    let a = NodeSpec::default();
    let b = NodeSpec { model: "model-y", ..NodeSpec::default() };
    let mut cluster = Cluster::new(&[a, b]).await?;
    cluster.start_all().await?;
    let model = cluster.model("model-y");
    cluster.wait_for_providers(model, 1).await?;
    let url = cluster.nodes[0].url.clone();
    let mut jobs = Vec::new();
    for i in 0..4 {
        let (status, job) =
            cluster.submit(0, &cluster.signed_request(model, "waits for its peer", 300 + i, 0)).await?;
        assert_eq!(status, 202, "{job}");
        jobs.push((url.clone(), job["id"].as_str().context("job id")?.to_owned()));
    }
    cluster.nodes[1].kill().await?;
    tokio::time::sleep(outage).await;
    cluster.start(1).await?;
    let restored = Instant::now();
    let outcome = settle(&jobs, cluster.anvil.rpc_url(), cluster.contract, Duration::from_secs(300)).await?;
    report(
        "outage of the only peer serving the model",
        &[
            ("outage s", outage.as_secs().to_string()),
            ("jobs", jobs.len().to_string()),
            ("minted", outcome.minted.to_string()),
            ("lost", (outcome.lost.len() + outcome.open.len()).to_string()),
            ("double mints", outcome.double.to_string()),
            ("minted after it s", format!("{:.0}", restored.elapsed().as_secs_f64())),
        ],
    );
    outcome.check("peer outage", || cluster.logs())
}

#[tokio::test(flavor = "multi_thread")]
async fn reorgs_that_drop_mints_send_each_again_exactly_once() -> Result<()> {
    let rounds = setting("GENMINT_RELIABILITY_REORGS", 2);
    // One node whose mints need 10 confirmations (more than a round's own blocks), on an anvil the
    // test reorganises.
    let mut stack = Stack::start().await?;
    let mut config = genmint_node::config::Config::load(&stack.node_dir())?;
    config.chain.confirmations = Some(10);
    config.chain.poll_interval_ms = 100;
    config.save(&stack.node_dir())?;
    stack.start_node().await?;
    let rpc = ProviderBuilder::new().connect_http(stack.anvil.rpc_url().parse()?);
    let wait = Duration::from_secs(120);
    let (mut jobs, mut resent_within) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Four mints in four blocks, then a reorg (even rounds: `anvil_reorg` replaces the blocks
        // with empty ones; odd rounds: `anvil_rollback` takes them away) deep enough to drop all.
        let mut ids = Vec::new();
        for i in 0..4 {
            let signed = stack.signed_request("a mint the chain forgot", 1000 + round * 10 + i, 2);
            let (status, job) = stack.submit(&signed).await?;
            assert_eq!(status, 202, "{job}");
            ids.push(job["id"].as_str().context("job id")?.to_owned());
        }
        let mut lowest = u64::MAX;
        for id in &ids {
            let job = stack.wait_for(id, |s| s == "confirming", wait).await?;
            lowest = lowest.min(job["mint_block"].as_u64().context("mint block")?);
        }
        let depth = rpc.get_block_number().await? - lowest + 1;
        let (method, params) = if round % 2 == 0 {
            ("anvil_reorg", serde_json::json!([depth, []]))
        } else {
            ("anvil_rollback", serde_json::json!([depth]))
        };
        let lost = Instant::now();
        rpc.raw_request::<_, Value>(method.into(), params).await?;
        for id in &ids {
            stack.wait_for_job(id, |job| job["resends"] == 1 && job["state"] == "confirming", wait).await?;
            resent_within.push(lost.elapsed().as_secs_f64());
        }
        rpc.raw_request::<_, Value>("anvil_mine".into(), (10u64,)).await?;
        jobs.extend(ids.into_iter().map(|id| (stack.node_url.clone(), id)));
    }
    let outcome = settle(&jobs, stack.anvil.rpc_url(), stack.contract, wait).await?;
    let mut resent_once = 0;
    for (_, id) in &jobs {
        resent_once += usize::from(stack.job(id).await?["resends"] == 1);
    }
    resent_within.sort_by(f64::total_cmp);
    report(
        "reorgs",
        &[
            ("reorgs", rounds.to_string()),
            ("mints dropped", jobs.len().to_string()),
            ("sent again once", resent_once.to_string()),
            ("minted", outcome.minted.to_string()),
            ("lost", (outcome.lost.len() + outcome.open.len()).to_string()),
            ("double mints", outcome.double.to_string()),
            ("mined again within s", format!("{:.1}", percentile(&resent_within, 1.0))),
        ],
    );
    outcome.check("reorgs", || stack.node_log())?;
    assert_eq!(resent_once, jobs.len(), "each dropped mint is sent again exactly once");
    Ok(())
}

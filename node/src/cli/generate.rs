//! `genmint generate "prompt"`: build a `GenerationRequest` for the node's model, sign it with the
//! creator key, submit it, and with `--wait` follow the job to its token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use anyhow::{Context, Result, bail};
use clap::Args;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::provenance::eip712::{GenerationRequest, SignedRequest, domain, sign_request};

/// The creator key file inside the data dir, created on first use.
pub const CREATOR_KEY_FILE: &str = "creator.key";

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to generate.
    pub prompt: String,
    /// What to steer away from.
    #[arg(long, default_value = "")]
    pub negative: String,
    /// Noise seed (random if omitted).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Image width in pixels (the model's default if omitted).
    #[arg(long)]
    pub width: Option<u32>,
    /// Image height in pixels (the model's default if omitted).
    #[arg(long)]
    pub height: Option<u32>,
    /// Denoising steps (the model's default if omitted).
    #[arg(long)]
    pub steps: Option<u32>,
    /// Scheduler: ddim, euler, euler_a, dpmpp_2m, dpmpp_2m_karras or lcm (the model's list in
    /// `GET /v1/models`; the model's default if omitted).
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Classifier-free guidance scale, e.g. 7.5 (the model's default if omitted).
    #[arg(long)]
    pub guidance: Option<f32>,
    /// Seconds from now after which the request may no longer be minted.
    #[arg(long, default_value_t = 3600)]
    pub deadline_secs: u64,
    /// The node's HTTP API.
    #[arg(long, env = "GENMINT_NODE", default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// Creator key file (default: creator.key in the data dir, created on first use).
    #[arg(long, env = "GENMINT_CREATOR_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Follow the job until it is minted (or fails) and print the token.
    #[arg(long)]
    pub wait: bool,
    /// The model, by name or hash, among those the node lists (its own or its peers'); default:
    /// the node's own model.
    #[arg(long)]
    pub model: Option<String>,
}

/// Picks the model from the node's `GET /v1/models` list: by name or hash, else the first
/// (the node's own).
fn choose_model<'a>(models: &'a Value, wanted: Option<&str>) -> Result<&'a Value> {
    let list = models["models"].as_array().context("the node's model list is unreadable")?;
    let found = match wanted {
        None => list.first(),
        Some(wanted) => list.iter().find(|m| {
            m["name"].as_str() == Some(wanted)
                || m["hash"].as_str().is_some_and(|h| h.eq_ignore_ascii_case(wanted))
        }),
    };
    found.with_context(|| {
        let names: Vec<String> = list
            .iter()
            .map(|m| format!("{} {}", m["name"].as_str().unwrap_or("?"), m["hash"].as_str().unwrap_or("?")))
            .collect();
        format!(
            "the node and its peers serve no model {:?}; they serve: {}",
            wanted.unwrap_or(""),
            names.join(", ")
        )
    })
}

/// A model's default setting, falling back to its maximum for models only known from adverts.
fn setting<T: std::str::FromStr>(limits: &Value, name: &str) -> Result<T> {
    let value = &limits[format!("default_{name}")];
    if value.is_null() { field(&limits[format!("max_{name}")], name) } else { field(value, name) }
}

pub(super) fn creator_key(data_dir: &Path, key_file: Option<&Path>) -> Result<PrivateKeySigner> {
    let path = key_file.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join(CREATOR_KEY_FILE));
    if key_file.is_none() && !path.exists() {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {data_dir:?}"))?;
        let signer = PrivateKeySigner::random();
        super::init::write_secret(&path, &format!("0x{}\n", hex::encode(signer.to_bytes())))?;
        eprintln!("created a creator key at {} (address {})", path.display(), signer.address());
        return Ok(signer);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading the creator key {path:?}"))?;
    text.trim().parse().with_context(|| format!("{path:?} does not hold a 32-byte hex private key"))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value> {
    let response =
        client.get(url).send().await.with_context(|| format!("cannot reach {url}: is the node running?"))?;
    let status = response.status();
    let body: Value = response.json().await.with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        bail!("{url}: {status}: {}", api_message(&body));
    }
    Ok(body)
}

fn api_message(body: &Value) -> String {
    body["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| body.to_string())
}

fn field<T: std::str::FromStr>(value: &Value, what: &str) -> Result<T> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.parse().map_err(|_| anyhow::anyhow!("the node's {what} ({value}) is unreadable"))
}

/// The EIP-712 domain the node signs under (its chain and contract), from `GET /v1/eip712`.
pub(super) async fn node_domain(client: &reqwest::Client, node: &str) -> Result<Eip712Domain> {
    let eip712 = get_json(client, &format!("{node}/v1/eip712")).await?;
    let chain_id: u64 = field(&eip712["domain"]["chainId"], "chain id")?;
    let contract: Address = field(&eip712["domain"]["verifyingContract"], "contract")?;
    Ok(domain(chain_id, contract))
}

pub async fn run(data_dir: &Path, args: GenerateArgs) -> Result<()> {
    let creator = creator_key(data_dir, args.key_file.as_deref())?;
    let client = reqwest::Client::new();
    let node = args.node.trim_end_matches('/');
    let domain = node_domain(&client, node).await?;
    let models = get_json(&client, &format!("{node}/v1/models")).await?;
    let model = choose_model(&models, args.model.as_deref())?;
    let limits = &model["limits"];
    let guidance = match args.guidance {
        Some(guidance) => guidance,
        None => setting(limits, "guidance").unwrap_or(1.0),
    };
    let request = GenerationRequest {
        creator: creator.address(),
        modelHash: field::<B256>(&model["hash"], "model hash")?,
        prompt: args.prompt.clone(),
        negativePrompt: args.negative.clone(),
        seed: args.seed.unwrap_or_else(rand_seed),
        width: args.width.map_or_else(|| setting(limits, "width"), Ok)?,
        height: args.height.map_or_else(|| setting(limits, "height"), Ok)?,
        steps: args.steps.map_or_else(|| setting(limits, "steps"), Ok)?,
        guidance: (guidance * 100.0).round() as u32,
        scheduler: match &args.scheduler {
            Some(scheduler) => scheduler.clone(),
            // Nodes before default schedulers were advertised sampled with DDIM by default.
            None => limits["default_scheduler"].as_str().unwrap_or("ddim").to_owned(),
        },
        fee: U256::ZERO,
        nonce: U256::from(now_unix()),
        deadline: now_unix() + args.deadline_secs,
    };
    let signature = sign_request(&creator, &request, &domain)?;
    let signed = SignedRequest { request, signature };
    let submitted = Instant::now();
    let job = submit(&client, node, &signed).await?;
    let id = job["id"].as_str().context("the node's answer has no job id")?.to_owned();
    println!("job {id} ({}, seed {})", job["state"].as_str().unwrap_or("?"), signed.request.seed);
    if !args.wait {
        println!("follow it with: curl -N {node}/v1/jobs/{id}/events");
        return Ok(());
    }
    let job = follow(&client, node, &id, submitted).await?;
    match job["state"].as_str() {
        Some("minted") => {
            println!("minted token {}", job["token_id"].as_str().unwrap_or("?"));
            println!("  token id (hex) {id}");
            println!("  transaction    {}", job["tx_hash"].as_str().unwrap_or("?"));
            println!("  image          ipfs://{}", job["image_cid"].as_str().unwrap_or("?"));
            println!("  metadata       ipfs://{}", job["metadata_cid"].as_str().unwrap_or("?"));
            println!("check it with: genmint verify {id}");
            Ok(())
        }
        other => bail!(
            "job {id} ended {}: {}",
            other.unwrap_or("?"),
            job["error"].as_str().unwrap_or("no reason given")
        ),
    }
}

/// How often a busy (503) or rate-limited (429) node is asked again before giving up.
const BUSY_RETRIES: u32 = 10;
/// The longest wait between those tries, whatever `Retry-After` says.
const MAX_RETRY_AFTER_SECS: u64 = 60;

/// Submits the signed request; a node that answers busy or rate-limited is asked again after its
/// `Retry-After` (the same signature: the request is idempotent).
async fn submit(client: &reqwest::Client, node: &str, signed: &SignedRequest) -> Result<Value> {
    let mut tries = 0;
    loop {
        let response = send(client.post(format!("{node}/v1/jobs")).json(signed), node).await?;
        let status = response.status();
        let retryable = status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS;
        if !retryable || tries == BUSY_RETRIES || signed.request.deadline <= now_unix() {
            return read_answer(response, "the node refused the request").await;
        }
        tries += 1;
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            .unwrap_or(5)
            .min(MAX_RETRY_AFTER_SECS);
        eprintln!("the node answered {status}; asking again in {wait} s (try {tries} of {BUSY_RETRIES})");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

/// Sends a request to the node, saying what to check when it cannot be reached.
pub(super) async fn send(request: reqwest::RequestBuilder, node: &str) -> Result<reqwest::Response> {
    request.send().await.with_context(|| format!("cannot reach {node}: is the node running?"))
}

/// The node's JSON answer; a refusal is an error that starts with `refused` and gives the node's
/// reason.
pub(super) async fn read_answer(response: reqwest::Response, refused: &str) -> Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.context("the node did not answer JSON")?;
    if !status.is_success() {
        bail!("{refused} ({status}): {}", api_message(&body));
    }
    Ok(body)
}

/// Follows the job's SSE stream, drawing progress and printing notices (a prompt cut to fit the
/// model, say) and each state with the seconds since `submitted` on stderr, and returns the
/// terminal job record.
async fn follow(client: &reqwest::Client, node: &str, id: &str, submitted: Instant) -> Result<Value> {
    let url = format!("{node}/v1/jobs/{id}/events");
    let response = client.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut stderr = std::io::stderr();
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.context("the event stream broke")?));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut name, mut data) = ("", String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if name.is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            if name == "progress" {
                let _ = write!(stderr, "\r  generating  step {}/{}   ", event["step"], event["total"]);
            } else if name == "confirming" {
                let (so_far, needed) = (&event["confirmations"], &event["confirmations_needed"]);
                let _ = writeln!(
                    stderr,
                    "\r  {name:<12} {:>7.2} s  {so_far}/{needed} blocks",
                    submitted.elapsed().as_secs_f64()
                );
            } else if name == "notice" {
                let _ = writeln!(stderr, "\r  note: {}", event["message"].as_str().unwrap_or("?"));
            } else {
                let _ = writeln!(stderr, "\r  {name:<12} {:>7.2} s", submitted.elapsed().as_secs_f64());
                if matches!(name, "minted" | "failed" | "cancelled" | "expired") {
                    return Ok(event);
                }
            }
            let _ = stderr.flush();
        }
    }
    // The stream ended without a terminal event (node restarted?): read the job once more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    get_json(client, &format!("{node}/v1/jobs/{id}")).await
}

pub(super) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// A fresh seed: std's randomly keyed SipHash over the current time.
fn rand_seed() -> u64 {
    use std::hash::BuildHasher;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    std::collections::hash_map::RandomState::new().hash_one(nanos)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use alloy::primitives::Bytes;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use serde_json::json;

    use super::*;

    /// A node that answers busy `busy_answers` times, then takes the job.
    async fn busy_node(busy_answers: usize) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().route(
            "/v1/jobs",
            post(move || async move {
                let mut headers = HeaderMap::new();
                if counted.fetch_add(1, Ordering::SeqCst) < busy_answers {
                    headers.insert("retry-after", "1".parse().unwrap());
                    let busy = json!({"error": {"code": "busy", "message": "no room"}});
                    return (StatusCode::SERVICE_UNAVAILABLE, headers, axum::Json(busy));
                }
                (StatusCode::ACCEPTED, headers, axum::Json(json!({"id": "0x01", "state": "received"})))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    fn signed() -> SignedRequest {
        let request = GenerationRequest {
            creator: Address::ZERO,
            modelHash: B256::ZERO,
            prompt: "a lighthouse".into(),
            negativePrompt: String::new(),
            seed: 1,
            width: 32,
            height: 32,
            steps: 4,
            guidance: 300,
            scheduler: "ddim".into(),
            fee: U256::ZERO,
            nonce: U256::ZERO,
            deadline: now_unix() + 3600,
        };
        SignedRequest { request, signature: Bytes::new() }
    }

    #[tokio::test]
    async fn a_busy_node_is_asked_again_after_its_retry_after() {
        let (node, calls) = busy_node(1).await;
        let started = Instant::now();
        let job = submit(&reqwest::Client::new(), &node, &signed()).await.unwrap();
        assert_eq!(job["state"], "received");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    }

    #[tokio::test]
    async fn a_node_busy_past_the_deadline_is_a_refusal_with_its_reason() {
        let (node, calls) = busy_node(usize::MAX).await;
        let mut late = signed();
        late.request.deadline = now_unix();
        let err = submit(&reqwest::Client::new(), &node, &late).await.unwrap_err();
        assert!(err.to_string().contains("503") && err.to_string().contains("no room"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

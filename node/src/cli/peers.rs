//! `genmint peers`: the node's own peer id, bootstrap addresses and standing behind NAT, and the
//! peers it is connected to (directly or through a relay) with what they advertise (from the
//! node's `GET /v1/peers`).

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct PeersArgs {
    /// The node's HTTP API.
    #[arg(long, env = "GENMINT_NODE", default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: PeersArgs) -> Result<()> {
    let url = format!("{}/v1/peers", args.node.trim_end_matches('/'));
    let response =
        reqwest::get(&url).await.with_context(|| format!("cannot reach {url}: is the node running?"))?;
    let status = response.status();
    let body: Value = response.json().await.with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        bail!("{url}: {status}: {body}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    if body["enabled"] == Value::Bool(false) {
        println!("this node is not on the peer-to-peer network (p2p.enabled = false)");
        return Ok(());
    }
    println!("this node  {}", body["peer_id"].as_str().unwrap_or("?"));
    for address in body["addresses"].as_array().into_iter().flatten() {
        println!("  bootstrap from  {}", address.as_str().unwrap_or("?"));
    }
    print_nat(&body["nat"]);
    let peers = body["peers"].as_array().cloned().unwrap_or_default();
    println!("{} connected peer(s)", peers.len());
    for peer in &peers {
        let rtt = peer["rtt_ms"].as_f64().map_or("?".to_owned(), |ms| format!("{ms:.1} ms"));
        println!(
            "  {}  {}  rtt {rtt}  {}",
            peer["peer_id"].as_str().unwrap_or("?"),
            peer["connection"].as_str().unwrap_or("?"),
            peer["agent"].as_str().unwrap_or("")
        );
        let advert = &peer["advert"];
        if advert.is_null() {
            println!("      no advert yet");
            continue;
        }
        let registered = match peer["registered"].as_bool() {
            Some(true) => "registered",
            Some(false) => "NOT registered (ignored for routing)",
            None => "registration unknown",
        };
        println!("      operator {} ({registered})", advert["operator"].as_str().unwrap_or("?"));
        println!(
            "      queue {}  capacity {}  price {} wei  devices {}",
            advert["queue_depth"],
            advert["capacity"],
            advert["price_wei"].as_str().unwrap_or("?"),
            advert["devices"]
        );
        for model in advert["models"].as_array().into_iter().flatten() {
            println!(
                "      serves {} {}",
                model["name"].as_str().unwrap_or("?"),
                model["hash"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

/// The node's reachability, its relayed addresses and its hole punches.
fn print_nat(nat: &Value) {
    if nat.is_null() {
        return;
    }
    let public = nat["public_address"].as_str().map(|a| format!(" at {a}")).unwrap_or_default();
    let relay = if nat["relay_service"] == Value::Bool(true) { ", relays for others" } else { "" };
    println!("  reachability  {}{public}{relay}", nat["reachability"].as_str().unwrap_or("?"));
    for address in nat["relayed_addresses"].as_array().into_iter().flatten() {
        println!("  reached through  {}", address.as_str().unwrap_or("?"));
    }
    println!(
        "  hole punches  {} succeeded, {} failed",
        nat["hole_punches_succeeded"], nat["hole_punches_failed"]
    );
}

//! Keeps this node's advert current: published at start and again whenever a job event changes
//! the queue depth or free capacity (the swarm repeats the latest advert on its own interval).

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::U256;
use genmint_model_runtime::ModelDescriptor;
use genmint_p2p::advert::{Advert, AdvertisedModel, ModelDefaults};
use tokio::sync::broadcast::error::RecvError;

use super::Network;
use crate::jobs::events::{Events, JobEvent};
use crate::jobs::{Load, PeerJobs};

/// What this node offers the network: its models and the smallest fee it runs a job for.
#[derive(Debug, Clone)]
pub struct NodeOffer {
    pub models: Vec<ModelDescriptor>,
    pub min_fee: U256,
}

fn advertised(model: &ModelDescriptor) -> AdvertisedModel {
    AdvertisedModel {
        hash: model.hash.to_string(),
        name: model.name.clone(),
        kind: model.kind.as_str().to_owned(),
        max_width: model.limits.max_width,
        max_height: model.limits.max_height,
        max_steps: model.limits.max_steps,
        defaults: Some(ModelDefaults {
            width: model.limits.default_width,
            height: model.limits.default_height,
            steps: model.limits.default_steps,
            guidance_x100: (model.limits.default_guidance * 100.0).round() as u32,
            scheduler: Some(model.limits.default_scheduler.as_str().to_owned()),
        }),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

impl Network {
    /// The advert for `offer` at `load`.
    pub fn advert(&self, offer: &NodeOffer, load: Load, sequence: u64) -> Advert {
        let mut devices: Vec<String> = Vec::new();
        for model in &offer.models {
            if !devices.contains(&model.envelope.device_class) {
                devices.push(model.envelope.device_class.clone());
            }
        }
        Advert {
            peer_id: self.peer_id().to_string(),
            operator: self.operator.to_string(),
            chain_id: self.chain_id,
            contract: self.contract.to_string(),
            binding_signature: self.binding_signature.clone(),
            models: offer.models.iter().map(advertised).collect(),
            devices,
            queue_depth: u32::try_from(load.queued).unwrap_or(u32::MAX),
            capacity: u32::try_from(load.free).unwrap_or(u32::MAX),
            price_wei: offer.min_fee.to_string(),
            sequence,
            issued_at: unix_now(),
            refresh_secs: None,
            addresses: Vec::new(),
        }
    }
}

/// Publishes the advert at start and after every job event that changes the load, until the
/// network or the event stream ends.
pub async fn run(network: &Network, offer: &NodeOffer, jobs: &dyn PeerJobs, events: &Events) {
    let mut events = events.subscribe();
    let mut last: Option<Load> = None;
    // Sequences start at the clock so a restarted node's adverts supersede its old ones.
    let mut sequence =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1);
    loop {
        match jobs.load().await {
            Ok(load) if last != Some(load) => {
                last = Some(load);
                sequence += 1;
                if let Err(e) = network.handle.set_advert(network.advert(offer, load, sequence)).await {
                    tracing::debug!(error = %e, "advertiser stops: the network is down");
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the job load for the advert"),
        }
        // Only state changes move the load; progress, loading and notices do not.
        loop {
            match events.recv().await {
                Ok(JobEvent::State(_)) | Err(RecvError::Lagged(_)) => break,
                Ok(JobEvent::Progress { .. } | JobEvent::Loading { .. } | JobEvent::Notice { .. }) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }
}

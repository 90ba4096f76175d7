//! The models this node serves: one inference worker per model, found by the hash a request
//! names. The first is the node's primary model (what `GET /healthz` names first).

use std::sync::Arc;

use genmint_model_runtime::{ModelDescriptor, ModelHash};

use super::inference::Inference;

/// The served models; cheap to clone.
#[derive(Clone)]
pub struct Models {
    primary: Inference,
    others: Arc<[Inference]>,
}

impl Models {
    /// Serves `primary` and `others`. A model listed twice is served once.
    pub fn new(primary: Inference, others: Vec<Inference>) -> Self {
        let mut kept: Vec<Inference> = Vec::new();
        for worker in others {
            let hash = worker.descriptor().hash;
            if hash != primary.descriptor().hash && kept.iter().all(|k| k.descriptor().hash != hash) {
                kept.push(worker);
            }
        }
        Self { primary, others: kept.into() }
    }

    pub fn primary(&self) -> &Inference {
        &self.primary
    }

    /// Every served model's worker, the primary first.
    pub fn iter(&self) -> impl Iterator<Item = &Inference> {
        std::iter::once(&self.primary).chain(self.others.iter())
    }

    pub fn descriptors(&self) -> impl Iterator<Item = &ModelDescriptor> {
        self.iter().map(Inference::descriptor)
    }

    /// The worker of the model with `hash`, if served here.
    pub fn get(&self, hash: &[u8; 32]) -> Option<&Inference> {
        self.iter().find(|worker| &worker.descriptor().hash.0 == hash)
    }

    /// What this node serves, for messages: `0x… (name), 0x… (name)`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.descriptors().map(|m| format!("{} ({})", m.hash, m.name)).collect();
        names.join(", ")
    }

    pub fn hashes(&self) -> Vec<ModelHash> {
        self.descriptors().map(|m| m.hash).collect()
    }

    /// Stops and joins every worker thread.
    pub async fn stop(&self) {
        for worker in self.iter() {
            worker.stop().await;
        }
    }
}

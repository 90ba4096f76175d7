//! The models this node serves, found by the hash a request names. Each has its descriptor (read
//! when the node starts) and, while loaded, an inference worker. A model is loaded when a job first
//! needs it; when loading it would take the loaded models' weights past the memory budget, the
//! least recently used ones are unloaded first (a generation already running on one finishes: its
//! worker ends when the job lets go of it). The first model is the node's primary one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use genmint_model_runtime::{ModelDescriptor, ModelHash};
use tokio::sync::Mutex;

use super::inference::Inference;

/// Loads a model onto a new inference worker. The product's loader reads the model directory with
/// candle; unit tests load fakes.
pub trait ModelLoader: Send + Sync {
    fn load(&self) -> BoxFuture<'_, Result<Inference, String>>;
}

/// One served model.
pub struct ServedModel {
    pub descriptor: ModelDescriptor,
    /// What its weights take in memory, as counted against the budget.
    pub bytes: u64,
    loader: Box<dyn ModelLoader>,
    worker: Mutex<Option<Inference>>,
    last_used: AtomicU64,
}

impl ServedModel {
    /// A model described by `descriptor`, loaded by `loader`; `loaded` if it is loaded already.
    pub fn new(
        descriptor: ModelDescriptor,
        bytes: u64,
        loader: Box<dyn ModelLoader>,
        loaded: Option<Inference>,
    ) -> Self {
        Self { descriptor, bytes, loader, worker: Mutex::new(loaded), last_used: AtomicU64::new(0) }
    }
}

/// Why a model could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("this node does not serve model {0}")]
    NotServed(ModelHash),
    #[error("loading model {model}: {reason}")]
    Load { model: ModelHash, reason: String },
}

/// The served models; cheap to clone.
#[derive(Clone)]
pub struct Models {
    models: Arc<[ServedModel]>,
    /// Bytes of weights loaded at most at once (`None`: no bound).
    budget: Option<u64>,
    clock: Arc<AtomicU64>,
    /// Serialises loading and unloading, so two loads never overshoot the budget together.
    loading: Arc<Mutex<()>>,
}

impl Models {
    /// Serves `models` (at least one; a model listed twice is served once) within `budget` bytes.
    pub fn new(models: Vec<ServedModel>, budget: Option<u64>) -> Self {
        let mut kept: Vec<ServedModel> = Vec::new();
        for model in models {
            if kept.iter().all(|k| k.descriptor.hash != model.descriptor.hash) {
                kept.push(model);
            }
        }
        Self { models: kept.into(), budget, clock: Arc::default(), loading: Arc::default() }
    }

    /// Every served model's descriptor, the primary first.
    pub fn descriptors(&self) -> impl Iterator<Item = &ModelDescriptor> {
        self.models.iter().map(|m| &m.descriptor)
    }

    /// The primary model: the first configured.
    pub fn primary(&self) -> Option<&ModelDescriptor> {
        self.descriptors().next()
    }

    /// The model with `hash`, if served here.
    pub fn get(&self, hash: &[u8; 32]) -> Option<&ModelDescriptor> {
        self.descriptors().find(|m| &m.hash.0 == hash)
    }

    fn served(&self, hash: &[u8; 32]) -> Result<&ServedModel, ModelError> {
        self.models
            .iter()
            .find(|m| &m.descriptor.hash.0 == hash)
            .ok_or(ModelError::NotServed(ModelHash(*hash)))
    }

    /// What this node serves, for messages: `0x… (name), 0x… (name)`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.descriptors().map(|m| format!("{} ({})", m.hash, m.name)).collect();
        names.join(", ")
    }

    pub fn hashes(&self) -> Vec<ModelHash> {
        self.descriptors().map(|m| m.hash).collect()
    }

    /// Whether the model is loaded now.
    pub async fn is_loaded(&self, hash: &[u8; 32]) -> bool {
        match self.served(hash) {
            Ok(model) => model.worker.lock().await.is_some(),
            Err(_) => false,
        }
    }

    /// The model's worker if it is loaded now, without loading it (spot checks use this: they
    /// never evict a creator's model).
    pub async fn loaded(&self, hash: &[u8; 32]) -> Option<Inference> {
        let model = self.served(hash).ok()?;
        let worker = model.worker.lock().await.clone();
        if worker.is_some() {
            self.touch(model);
        }
        worker
    }

    /// Generations waiting for each loaded model's inference thread, by model name.
    pub async fn waiting(&self) -> Vec<(String, usize)> {
        let mut waiting = Vec::new();
        for model in self.models.iter() {
            if let Some(worker) = model.worker.lock().await.as_ref() {
                waiting.push((model.descriptor.name.clone(), worker.waiting()));
            }
        }
        waiting
    }

    fn touch(&self, model: &ServedModel) {
        model.last_used.store(self.clock.fetch_add(1, Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// The model's worker, loading the model first (and unloading least recently used ones to stay
    /// within the budget) if it is not loaded.
    pub async fn worker(&self, hash: &[u8; 32]) -> Result<Inference, ModelError> {
        let model = self.served(hash)?;
        if let Some(worker) = model.worker.lock().await.clone() {
            self.touch(model);
            return Ok(worker);
        }
        let _loading = self.loading.lock().await;
        if let Some(worker) = model.worker.lock().await.clone() {
            self.touch(model);
            return Ok(worker);
        }
        self.make_room(model).await;
        tracing::info!(model = %model.descriptor.hash, name = %model.descriptor.name, "loading model");
        let worker = model
            .loader
            .load()
            .await
            .map_err(|reason| ModelError::Load { model: model.descriptor.hash, reason })?;
        *model.worker.lock().await = Some(worker.clone());
        self.touch(model);
        Ok(worker)
    }

    /// Unloads the least recently used loaded models until `incoming` fits in the budget.
    async fn make_room(&self, incoming: &ServedModel) {
        let Some(budget) = self.budget else { return };
        loop {
            let mut loaded = Vec::new();
            for model in self.models.iter() {
                if model.worker.lock().await.is_some() {
                    loaded.push(model);
                }
            }
            let used: u64 = loaded.iter().map(|m| m.bytes).sum();
            if used + incoming.bytes <= budget {
                return;
            }
            let Some(oldest) = loaded.into_iter().min_by_key(|m| m.last_used.load(Ordering::Relaxed)) else {
                // Nothing left to unload: the model alone exceeds the budget; load it anyway.
                return;
            };
            tracing::info!(model = %oldest.descriptor.hash, name = %oldest.descriptor.name, "unloading model to stay within the memory budget");
            oldest.worker.lock().await.take();
        }
    }

    /// Stops and joins every loaded worker.
    pub async fn stop(&self) {
        for model in self.models.iter() {
            let worker = model.worker.lock().await.take();
            if let Some(worker) = worker {
                worker.stop().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::jobs::testing::{FakeGenerator, descriptor};

    struct CountingLoader {
        descriptor: ModelDescriptor,
        loads: Arc<AtomicUsize>,
    }

    impl ModelLoader for CountingLoader {
        fn load(&self) -> BoxFuture<'_, Result<Inference, String>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            let generator = Box::new(FakeGenerator { descriptor: self.descriptor.clone() });
            Box::pin(async move { Inference::spawn(generator, 1, 1).map_err(|e| e.to_string()) })
        }
    }

    fn model(byte: u8, loads: &Arc<AtomicUsize>) -> ServedModel {
        let descriptor =
            ModelDescriptor { hash: ModelHash([byte; 32]), name: format!("m{byte}"), ..descriptor() };
        let loader = CountingLoader { descriptor: descriptor.clone(), loads: loads.clone() };
        ServedModel::new(descriptor, 100, Box::new(loader), None)
    }

    #[tokio::test]
    async fn models_load_on_first_use_and_the_least_recently_used_goes_past_the_budget() {
        let loads = Arc::new(AtomicUsize::new(0));
        let models = Models::new(vec![model(1, &loads), model(2, &loads), model(3, &loads)], Some(250));
        assert!(!models.is_loaded(&[1; 32]).await, "nothing loads before it is needed");
        models.worker(&[1; 32]).await.unwrap();
        models.worker(&[2; 32]).await.unwrap();
        models.worker(&[1; 32]).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "a loaded model is not loaded again");
        models.worker(&[3; 32]).await.unwrap();
        assert!(models.is_loaded(&[1; 32]).await && models.is_loaded(&[3; 32]).await);
        assert!(!models.is_loaded(&[2; 32]).await, "the least recently used model was unloaded");
        assert!(models.loaded(&[2; 32]).await.is_none(), "asking without loading does not load");
        assert!(matches!(models.worker(&[9; 32]).await, Err(ModelError::NotServed(ModelHash([9, ..])))));
        models.stop().await;
        assert!(!models.is_loaded(&[1; 32]).await);
    }
}

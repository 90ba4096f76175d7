//! The inference worker: one OS thread owns the model and runs one generation at a time, fed by a
//! bounded queue, so diffusion never blocks the async runtime. [`Inference::stop`] ends the thread
//! after the generation it is running (which its job's cancellation cuts short) and joins it.
//!
//! A generation comes back as a [`Generation`]: the image and how much of the prompts the model's
//! text encoders cut off ([`TextFit`], asked of the generator just before it runs), so the job can
//! tell its creator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use genmint_model_runtime::{
    Control, GenerationParams, Generator, ModelDescriptor, Progress, Rgb8Image, RuntimeError, TextFit,
};
use tokio::sync::oneshot;

/// Called after every denoising step.
pub type ProgressFn = Box<dyn FnMut(Progress) + Send>;

struct Task {
    params: GenerationParams,
    cancel: Arc<AtomicBool>,
    progress: ProgressFn,
    reply: oneshot::Sender<Result<Generation, RuntimeError>>,
}

/// What one generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    pub image: Rgb8Image,
    /// The tokens of the prompt and negative prompt the model did not see.
    pub text_fit: TextFit,
}

/// Why a generation did not produce an image.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("the inference worker is busy: {0} generations are already waiting")]
    Busy(usize),
    #[error("the inference worker stopped")]
    Stopped,
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

enum Message {
    Generate(Task),
    Stop,
}

/// A cloneable handle to the worker thread.
#[derive(Clone)]
pub struct Inference {
    tasks: mpsc::SyncSender<Message>,
    descriptor: Arc<ModelDescriptor>,
    capacity: usize,
    worker: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Inference {
    /// Moves the generator onto its own thread; at most `capacity` generations wait in line.
    pub fn spawn(mut generator: Box<dyn Generator>, capacity: usize) -> std::io::Result<Self> {
        let descriptor = Arc::new(generator.descriptor().clone());
        let (tasks, inbox) = mpsc::sync_channel::<Message>(capacity);
        let worker = std::thread::Builder::new().name("genmint-inference".into()).spawn(move || {
            for message in inbox {
                let Message::Generate(mut task) = message else { return };
                if task.cancel.load(Ordering::Relaxed) {
                    let _ = task.reply.send(Err(RuntimeError::Cancelled));
                    continue;
                }
                // Only a report: a text that cannot be counted fails the generation itself.
                let text_fit = generator.text_fit(&task.params).unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "cannot count the request's tokens");
                    TextFit::default()
                });
                let cancel = task.cancel.clone();
                let result = generator
                    .generate(&task.params, &mut |progress| {
                        (task.progress)(progress);
                        if cancel.load(Ordering::Relaxed) { Control::Cancel } else { Control::Continue }
                    })
                    .map(|image| Generation { image, text_fit });
                // The job may have been dropped meanwhile; nobody is left to tell.
                let _ = task.reply.send(result);
            }
        })?;
        Ok(Self { tasks, descriptor, capacity, worker: Arc::new(Mutex::new(Some(worker))) })
    }

    /// Ends the worker thread once the generations already queued have run or been cancelled, and
    /// waits for it. Later generations fail with [`InferenceError::Stopped`].
    pub async fn stop(&self) {
        let (tasks, worker) = (self.tasks.clone(), self.worker.clone());
        let stopped = tokio::task::spawn_blocking(move || {
            // Fails only if the thread has already ended.
            let _ = tasks.send(Message::Stop);
            let handle = worker.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(handle) = handle
                && handle.join().is_err()
            {
                tracing::warn!("the inference thread panicked");
            }
        });
        if let Err(e) = stopped.await {
            tracing::warn!(error = %e, "stopping the inference thread did not finish");
        }
    }

    /// The model this worker serves.
    pub fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    /// Runs one generation; `cancel` stops it at the next step.
    pub async fn generate(
        &self,
        params: GenerationParams,
        cancel: Arc<AtomicBool>,
        progress: ProgressFn,
    ) -> Result<Generation, InferenceError> {
        let (reply, result) = oneshot::channel();
        self.tasks.try_send(Message::Generate(Task { params, cancel, progress, reply })).map_err(
            |e| match e {
                mpsc::TrySendError::Full(_) => InferenceError::Busy(self.capacity),
                mpsc::TrySendError::Disconnected(_) => InferenceError::Stopped,
            },
        )?;
        Ok(result.await.map_err(|_| InferenceError::Stopped)??)
    }
}

#[cfg(test)]
mod tests {
    use genmint_model_runtime::SchedulerKind;

    use super::*;
    use crate::jobs::testing::{FakeGenerator, descriptor};

    fn params(seed: u64) -> GenerationParams {
        GenerationParams {
            prompt: "p".into(),
            negative_prompt: String::new(),
            seed,
            width: 8,
            height: 8,
            steps: 2,
            guidance: 3.0,
            scheduler: SchedulerKind::Ddim,
        }
    }

    #[tokio::test]
    async fn a_cancelled_generation_stops_and_a_stopped_worker_takes_no_more() {
        let inference = Inference::spawn(Box::new(FakeGenerator { descriptor: descriptor() }), 2).unwrap();
        let generation = inference.generate(params(5), Arc::default(), Box::new(|_| {})).await.unwrap();
        assert_eq!(generation.image.pixels[0], 5);
        assert!(!generation.text_fit.truncated());
        let cancelled = Arc::new(AtomicBool::new(true));
        let err = inference.generate(params(6), cancelled, Box::new(|_| {})).await.unwrap_err();
        assert!(matches!(err, InferenceError::Runtime(RuntimeError::Cancelled)), "{err}");
        inference.stop().await;
        let err = inference.generate(params(7), Arc::default(), Box::new(|_| {})).await.unwrap_err();
        assert!(matches!(err, InferenceError::Stopped), "{err}");
        inference.stop().await;
    }
}

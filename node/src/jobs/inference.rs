//! The inference worker: one OS thread owns the model and runs one generation at a time, fed by a
//! bounded queue, so diffusion never blocks the async runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use genmint_model_runtime::{
    Control, GenerationParams, Generator, ModelDescriptor, Progress, Rgb8Image, RuntimeError,
};
use tokio::sync::oneshot;

/// Called after every denoising step.
pub type ProgressFn = Box<dyn FnMut(Progress) + Send>;

struct Task {
    params: GenerationParams,
    cancel: Arc<AtomicBool>,
    progress: ProgressFn,
    reply: oneshot::Sender<Result<Rgb8Image, RuntimeError>>,
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

/// A cloneable handle to the worker thread.
#[derive(Clone)]
pub struct Inference {
    tasks: mpsc::SyncSender<Task>,
    descriptor: Arc<ModelDescriptor>,
    capacity: usize,
}

impl Inference {
    /// Moves the generator onto its own thread; at most `capacity` generations wait in line.
    pub fn spawn(mut generator: Box<dyn Generator>, capacity: usize) -> std::io::Result<Self> {
        let descriptor = Arc::new(generator.descriptor().clone());
        let (tasks, inbox) = mpsc::sync_channel::<Task>(capacity);
        std::thread::Builder::new().name("genmint-inference".into()).spawn(move || {
            for mut task in inbox {
                if task.cancel.load(Ordering::Relaxed) {
                    let _ = task.reply.send(Err(RuntimeError::Cancelled));
                    continue;
                }
                let cancel = task.cancel.clone();
                let result = generator.generate(&task.params, &mut |progress| {
                    (task.progress)(progress);
                    if cancel.load(Ordering::Relaxed) { Control::Cancel } else { Control::Continue }
                });
                // The job may have been dropped meanwhile; nobody is left to tell.
                let _ = task.reply.send(result);
            }
        })?;
        Ok(Self { tasks, descriptor, capacity })
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
    ) -> Result<Rgb8Image, InferenceError> {
        let (reply, result) = oneshot::channel();
        self.tasks.try_send(Task { params, cancel, progress, reply }).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => InferenceError::Busy(self.capacity),
            mpsc::TrySendError::Disconnected(_) => InferenceError::Stopped,
        })?;
        Ok(result.await.map_err(|_| InferenceError::Stopped)??)
    }
}

//! The inference workers of one model: one OS thread per device owns its copy of the model and
//! runs its generations, all fed by one bounded queue, so diffusion never blocks the async
//! runtime. A worker takes the next waiting request as soon as it is free, so a job never waits
//! while another worker of the model is idle: it goes to the least-loaded one. Requests waiting together that share their
//! timesteps (size, scheduler, steps: [`GenerationParams::batches_with`]) run as one batch, up to
//! the model's `max_batch`, taken in the order they came; each keeps its own seed, progress,
//! cancellation and pixels. [`Inference::stop`] ends the thread after the generations already
//! queued (which their jobs' cancellation cuts short) and joins it. Step checks
//! ([`Inference::check_steps`]: a few denoising steps of another node's trace replayed) queue
//! apart and run only while no generation waits.
//!
//! A generation comes back as a [`Generation`]: the image, the latent trace its denoising went
//! through (where the generator records one: the node pins it for step checks), and how much of
//! the prompts the model's text encoders cut off ([`TextFit`], asked of the generator just before
//! it runs), so the job can tell its creator.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use genmint_model_runtime::trace::check::{Comparison, StepReport, check_steps};
use genmint_model_runtime::trace::{LatentTrace, TraceEntry};
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

/// A step check to run on the worker ([`Inference::check_steps`]).
struct StepTask {
    params: GenerationParams,
    entries: BTreeMap<u32, TraceEntry>,
    steps: Vec<u32>,
    pixel_digest: [u8; 32],
    comparison: Comparison,
    reply: oneshot::Sender<Result<StepReport, RuntimeError>>,
}

/// What a worker takes next.
enum Work {
    Batch(Vec<Task>),
    Check(StepTask),
}

/// What one generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    pub image: Rgb8Image,
    /// The latent trace, where the generator records one.
    pub trace: Option<LatentTrace>,
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

/// The generations waiting for the worker.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Task>,
    /// Step checks, taken only while no generation waits (they are spot checks' work).
    checks: VecDeque<StepTask>,
    /// Set by [`Inference::stop`]: nothing more is taken, and the worker ends once `waiting` is empty.
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A cloneable handle to a model's worker threads.
#[derive(Clone)]
pub struct Inference {
    shared: Arc<Shared>,
    descriptor: Arc<ModelDescriptor>,
    capacity: usize,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Inference {
    /// Moves the generator onto its own thread; at most `capacity` generations wait in line, and
    /// at most `max_batch` (at least 1) run together.
    pub fn spawn(generator: Box<dyn Generator>, capacity: usize, max_batch: usize) -> std::io::Result<Self> {
        Self::spawn_workers(vec![generator], capacity, max_batch)
    }

    /// One thread per generator (each the same model on its own device, so the same descriptor:
    /// the first one's is the handle's), all taking from one queue of at most `capacity`.
    pub fn spawn_workers(
        generators: Vec<Box<dyn Generator>>,
        capacity: usize,
        max_batch: usize,
    ) -> std::io::Result<Self> {
        let descriptor = match generators.first() {
            Some(first) => Arc::new(first.descriptor().clone()),
            None => return Err(std::io::Error::other("a model needs at least one inference worker")),
        };
        debug_assert!(generators.iter().all(|g| g.descriptor() == descriptor.as_ref()));
        let shared = Arc::new(Shared::default());
        let mut workers = Vec::with_capacity(generators.len());
        for (index, mut generator) in generators.into_iter().enumerate() {
            let inbox = shared.clone();
            let spawned =
                std::thread::Builder::new().name(format!("genmint-inference-{index}")).spawn(move || {
                    while let Some(work) = next_work(&inbox, max_batch.max(1)) {
                        match work {
                            Work::Batch(batch) => run_batch(generator.as_mut(), batch),
                            Work::Check(task) => run_check(generator.as_mut(), task),
                        }
                    }
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(e) => {
                    // The threads already started end at once: nothing was queued yet.
                    shared.lock().stopping = true;
                    shared.ready.notify_all();
                    return Err(e);
                }
            }
        }
        Ok(Self { shared, descriptor, capacity, workers: Arc::new(Mutex::new(workers)) })
    }

    /// Ends the worker threads once the generations already queued have run or been cancelled,
    /// and waits for them. Later generations fail with [`InferenceError::Stopped`].
    pub async fn stop(&self) {
        self.shared.lock().stopping = true;
        self.shared.ready.notify_all();
        let workers = self.workers.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            let handles = std::mem::take(&mut *workers.lock().unwrap_or_else(|p| p.into_inner()));
            for handle in handles {
                if handle.join().is_err() {
                    tracing::warn!("an inference thread panicked");
                }
            }
        });
        if let Err(e) = stopped.await {
            tracing::warn!(error = %e, "stopping the inference thread did not finish");
        }
    }

    /// Generations waiting for a worker (not counting the batches they run).
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }

    /// The model this worker serves.
    pub fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    /// Runs a step check of a trace's `entries` on the worker ([`check_steps`]), once no
    /// generation waits; refused as [`InferenceError::Busy`] when `capacity` checks already wait.
    pub async fn check_steps(
        &self,
        params: GenerationParams,
        entries: BTreeMap<u32, TraceEntry>,
        steps: Vec<u32>,
        pixel_digest: [u8; 32],
        comparison: Comparison,
    ) -> Result<StepReport, InferenceError> {
        let (reply, result) = oneshot::channel();
        let task = StepTask { params, entries, steps, pixel_digest, comparison, reply };
        self.enqueue(|queue| &mut queue.checks, task)?;
        Ok(result.await.map_err(|_| InferenceError::Stopped)??)
    }

    /// Puts `task` on the line `line` picks, unless stopping or `capacity` already wait there.
    fn enqueue<T>(
        &self,
        line: impl FnOnce(&mut Queue) -> &mut VecDeque<T>,
        task: T,
    ) -> Result<(), InferenceError> {
        {
            let mut queue = self.shared.lock();
            if queue.stopping {
                return Err(InferenceError::Stopped);
            }
            let waiting = line(&mut queue);
            if waiting.len() >= self.capacity {
                return Err(InferenceError::Busy(self.capacity));
            }
            waiting.push_back(task);
        }
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Runs one generation; `cancel` stops it at the next step.
    pub async fn generate(
        &self,
        params: GenerationParams,
        cancel: Arc<AtomicBool>,
        progress: ProgressFn,
    ) -> Result<Generation, InferenceError> {
        let (reply, result) = oneshot::channel();
        self.enqueue(|queue| &mut queue.waiting, Task { params, cancel, progress, reply })?;
        Ok(result.await.map_err(|_| InferenceError::Stopped)??)
    }
}

/// Waits for work, then takes the oldest waiting generation and, in their order, the others that
/// batch with it, up to `max_batch`, or with no generation waiting the oldest step check; `None`
/// once stopped with nothing left.
fn next_work(shared: &Shared, max_batch: usize) -> Option<Work> {
    let mut queue = shared.lock();
    while queue.waiting.is_empty() && queue.checks.is_empty() && !queue.stopping {
        queue = shared.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
    }
    let Some(first) = queue.waiting.pop_front() else {
        return queue.checks.pop_front().map(Work::Check);
    };
    let mut batch = vec![first];
    let mut index = 0;
    while batch.len() < max_batch && index < queue.waiting.len() {
        if queue.waiting[index].params.batches_with(&batch[0].params) {
            batch.extend(queue.waiting.remove(index));
        } else {
            index += 1;
        }
    }
    Some(Work::Batch(batch))
}

fn run_check(generator: &mut dyn Generator, task: StepTask) {
    let StepTask { params, entries, steps, pixel_digest, comparison, reply } = task;
    let _ = reply.send(check_steps(generator, &params, &entries, &steps, &pixel_digest, comparison));
}

/// Runs a batch and answers each task; a task cancelled while it waited is answered at once.
fn run_batch(generator: &mut dyn Generator, batch: Vec<Task>) {
    let (cancelled, mut tasks): (Vec<Task>, Vec<Task>) =
        batch.into_iter().partition(|task| task.cancel.load(Ordering::Relaxed));
    for task in cancelled {
        let _ = task.reply.send(Err(RuntimeError::Cancelled));
    }
    if tasks.is_empty() {
        return;
    }
    // Only a report: a text that cannot be counted fails the generation itself.
    let text_fits: Vec<TextFit> = tasks
        .iter()
        .map(|task| {
            generator.text_fit(&task.params).unwrap_or_else(|e| {
                tracing::debug!(error = %e, "cannot count the request's tokens");
                TextFit::default()
            })
        })
        .collect();
    let params: Vec<GenerationParams> = tasks.iter().map(|task| task.params.clone()).collect();
    if tasks.len() > 1 {
        tracing::debug!(batch = tasks.len(), "running waiting generations as one batch");
    }
    let outcomes = generator.generate_batch_traced(&params, &mut |index, progress| {
        let task = &mut tasks[index];
        (task.progress)(progress);
        if task.cancel.load(Ordering::Relaxed) { Control::Cancel } else { Control::Continue }
    });
    for ((task, outcome), text_fit) in tasks.into_iter().zip(outcomes).zip(text_fits) {
        // The job may have been dropped meanwhile; nobody is left to tell.
        let generation =
            outcome.map(|traced| Generation { image: traced.image, trace: traced.trace, text_fit });
        let _ = task.reply.send(generation);
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
        let inference = Inference::spawn(Box::new(FakeGenerator { descriptor: descriptor() }), 2, 1).unwrap();
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

#[cfg(test)]
mod batching {
    use std::sync::mpsc;
    use std::time::Duration;

    use genmint_model_runtime::SchedulerKind;

    use super::*;
    use crate::jobs::testing::{FakeGenerator, descriptor};

    /// The fake generator, recording the seeds of each batch it runs; its first batch waits for
    /// the gate, so that the others queue up behind it.
    struct Recorder {
        fake: FakeGenerator,
        batches: Arc<Mutex<Vec<Vec<u64>>>>,
        gate: Option<mpsc::Receiver<()>>,
    }

    impl Generator for Recorder {
        fn descriptor(&self) -> &ModelDescriptor {
            self.fake.descriptor()
        }

        fn generate(
            &mut self,
            params: &GenerationParams,
            progress: &mut (dyn FnMut(Progress) -> Control + Send),
        ) -> Result<Rgb8Image, RuntimeError> {
            self.fake.generate(params, progress)
        }

        fn generate_batch(
            &mut self,
            batch: &[GenerationParams],
            progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
        ) -> Vec<Result<Rgb8Image, RuntimeError>> {
            self.batches.lock().unwrap().push(batch.iter().map(|p| p.seed).collect());
            if let Some(gate) = self.gate.take() {
                gate.recv().unwrap();
            }
            batch
                .iter()
                .enumerate()
                .map(|(i, params)| self.fake.generate(params, &mut |p| progress(i, p)))
                .collect()
        }
    }

    fn params(seed: u64, steps: u32) -> GenerationParams {
        GenerationParams {
            prompt: format!("p{seed}"),
            negative_prompt: String::new(),
            seed,
            width: 8,
            height: 8,
            steps,
            guidance: 3.0,
            scheduler: SchedulerKind::Ddim,
        }
    }

    #[tokio::test]
    async fn waiting_requests_that_share_timesteps_run_together_in_order() {
        let (open, gate) = mpsc::channel();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            fake: FakeGenerator { descriptor: descriptor() },
            batches: batches.clone(),
            gate: Some(gate),
        };
        let inference = Inference::spawn(Box::new(recorder), 8, 3).unwrap();
        let submit = |seed, steps, cancel: Arc<AtomicBool>| {
            let inference = inference.clone();
            let steps_seen = Arc::new(Mutex::new(Vec::new()));
            let seen = steps_seen.clone();
            let progress: ProgressFn = Box::new(move |p| seen.lock().unwrap().push(p.step));
            (
                tokio::spawn(async move { inference.generate(params(seed, steps), cancel, progress).await }),
                steps_seen,
            )
        };
        let first = submit(1, 2, Arc::default());
        while batches.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cancelled = Arc::new(AtomicBool::new(true));
        let waiting: Vec<_> = [(2, 2), (3, 2), (4, 3), (5, 2), (6, 2), (7, 2)]
            .into_iter()
            .map(|(seed, steps)| {
                submit(seed, steps, if seed == 6 { cancelled.clone() } else { Arc::default() })
            })
            .collect();
        // Current-thread runtime: the spawned submissions queue, in order, while this test sleeps.
        tokio::time::sleep(Duration::from_millis(50)).await;
        open.send(()).unwrap();
        for (seed, (task, steps)) in std::iter::once(first).chain(waiting).enumerate() {
            let seed = seed as u64 + 1;
            let outcome = task.await.unwrap();
            if seed == 6 {
                assert!(matches!(outcome, Err(InferenceError::Runtime(RuntimeError::Cancelled))));
                continue;
            }
            assert_eq!(outcome.unwrap().image.pixels[0], seed as u8, "request {seed} got its own image");
            let expected: Vec<u32> = (1..=if seed == 4 { 3 } else { 2 }).collect();
            assert_eq!(*steps.lock().unwrap(), expected, "request {seed} saw its own progress");
        }
        // The cancelled request 6 was taken into the last batch and answered without running.
        assert_eq!(*batches.lock().unwrap(), vec![vec![1], vec![2, 3, 5], vec![4], vec![7]]);
        inference.stop().await;
    }
}

//! The guided denoising loop, for one request or a batch of requests that share their timesteps
//! (the same size, scheduler and step count): each step runs one UNet pass over every request's
//! rows (the unconditional and conditional halves of each guided one, in request order), then
//! each request's own guidance and scheduler step. Every request keeps its own noise, text,
//! guidance, scheduler state and progress, and its sample comes out the same as when it runs
//! alone: each row of a UNet pass is computed without reference to the other rows.
//!
//! A pass that fails for a batch is run again one request at a time, so each request gets its
//! own outcome (a batch too large for the device memory still gives every picture).
//!
//! Asked to, the loop records each request's latent trace ([`crate::trace`]): the sample and
//! the scheduler's state before the first step and after each one, copied to the host as f32.
//! [`DiffusionModel::replay`] runs single steps of a trace again through the same `step`.

use candle_core::{DType, Device, Tensor};

use super::{Decoder, DiffusionModel, TextContext, rgb8};
use crate::noise;
use crate::scheduler::{self, Scheduler, SeededStepNoise};
use crate::trace::{LatentTrace, SampleShape, TraceEntry};
use crate::{Control, GenerationParams, Progress, RuntimeError};

/// A request's denoised sample, and its latent trace when one was recorded.
pub(super) struct Denoised {
    pub sample: Tensor,
    pub trace: Option<LatentTrace>,
}

/// One request's part of a batch, between steps.
struct Member<'a> {
    /// The request's position in the batch, as `progress` is told it.
    index: usize,
    params: &'a GenerationParams,
    /// diffusers' rule: guidance above 1 runs the unconditional pass too.
    guided: bool,
    context: TextContext,
    sample: Tensor,
    scheduler: Box<dyn Scheduler>,
    step_noise: SeededStepNoise,
    /// The entries so far, when recording.
    trace: Option<Vec<TraceEntry>>,
}

impl Member<'_> {
    /// UNet rows this request takes in a pass.
    fn rows(&self) -> usize {
        if self.guided { 2 } else { 1 }
    }

    /// The sample and the scheduler state now, on the host (state zeros before the first step of
    /// a scheduler that carries some).
    fn entry(&self) -> Result<TraceEntry, RuntimeError> {
        let host = |t: &Tensor| -> Result<Vec<f32>, RuntimeError> {
            Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let sample = host(&self.sample)?;
        let state = match (self.scheduler.carries_state(), self.scheduler.state()) {
            (false, _) => Vec::new(),
            (true, Some(state)) => host(state)?,
            (true, None) => vec![0.0; sample.len()],
        };
        Ok(TraceEntry { sample, state })
    }

    fn record(&mut self) -> Result<(), RuntimeError> {
        if self.trace.is_some() {
            let entry = self.entry()?;
            self.trace.get_or_insert_with(Vec::new).push(entry);
        }
        Ok(())
    }

    fn finish(self) -> Result<Denoised, RuntimeError> {
        let trace = match self.trace {
            Some(entries) => {
                let (_, channels, height, width) = self.sample.dims4()?;
                let shape =
                    SampleShape { channels: channels as u32, height: height as u32, width: width as u32 };
                Some(LatentTrace { shape, carries_state: self.scheduler.carries_state(), entries })
            }
            None => None,
        };
        Ok(Denoised { sample: self.sample, trace })
    }
}

impl DiffusionModel {
    /// The samples just before decoding, in `batch` order, for requests that all batch with the
    /// first one ([`GenerationParams::batches_with`]). `progress` gets a request's index in
    /// `batch` with each of its steps; answering [`Control::Cancel`] ends that request alone with
    /// [`RuntimeError::Cancelled`]. With `record`, each comes with its latent trace.
    pub(super) fn denoise(
        &self,
        batch: &[&GenerationParams],
        record: bool,
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Denoised, RuntimeError>> {
        debug_assert!(batch.windows(2).all(|pair| pair[0].batches_with(pair[1])));
        let mut outcomes: Vec<Option<Result<Denoised, RuntimeError>>> = batch.iter().map(|_| None).collect();
        let mut members = Vec::with_capacity(batch.len());
        for (index, params) in batch.iter().enumerate() {
            let started = self.start(index, params).and_then(|mut member| {
                if record {
                    member.trace = Some(Vec::with_capacity(params.steps as usize + 1));
                    member.record()?;
                }
                Ok(member)
            });
            match started {
                Ok(member) => members.push(member),
                Err(e) => outcomes[index] = Some(Err(e)),
            }
        }
        let _span =
            tracing::debug_span!("denoise", model = %self.descriptor.name, batch = members.len()).entered();
        let timesteps = members.first().map(|m| m.scheduler.timesteps().to_vec()).unwrap_or_default();
        for (step, &timestep) in timesteps.iter().enumerate() {
            if members.is_empty() {
                break;
            }
            if let Err(e) = self
                .step(&mut members, step, timestep)
                .and_then(|()| members.iter_mut().try_for_each(Member::record))
            {
                if members.len() == 1 {
                    outcomes[members[0].index] = Some(Err(e));
                    members.clear();
                    break;
                }
                tracing::warn!(error = %e, batch = members.len(), "a batched step failed; running its requests one at a time");
                for member in std::mem::take(&mut members) {
                    let alone = self.denoise(&[member.params], record, &mut |_, p| progress(member.index, p));
                    outcomes[member.index] = alone.into_iter().next();
                }
                break;
            }
            members.retain(|member| {
                let preview = match self.decoder {
                    Decoder::Pixels => rgb8(member.params, &member.sample).ok(),
                    Decoder::Vae { .. } => None,
                };
                let (done, total) = (step as u32 + 1, member.params.steps);
                tracing::trace!(step = done, total, timestep, "denoising step");
                let control = progress(member.index, Progress { step: done, total, preview });
                if control == Control::Cancel {
                    tracing::debug!(step = done, seed = member.params.seed, "generation cancelled");
                    outcomes[member.index] = Some(Err(RuntimeError::Cancelled));
                }
                control == Control::Continue
            });
        }
        for member in members {
            let index = member.index;
            outcomes[index] = Some(member.finish());
        }
        outcomes.into_iter().map(|outcome| outcome.unwrap_or_else(no_outcome)).collect()
    }

    /// Checks the request and sets up its part: text conditioning, seeded noise, scheduler.
    fn start<'a>(&self, index: usize, params: &'a GenerationParams) -> Result<Member<'a>, RuntimeError> {
        self.descriptor.limits.validate(params)?;
        let context = self.conditioning.context(params, params.guidance > 1.0)?;
        let sample = self.initial_sample(params)?;
        self.member(index, params, context, sample)
    }

    /// The request's sample shape `(1, C, h, w)`.
    pub(super) fn sample_shape(&self, params: &GenerationParams) -> (usize, usize, usize, usize) {
        let height = (params.height / self.sample_factor) as usize;
        let width = (params.width / self.sample_factor) as usize;
        (1, self.sample_channels, height, width)
    }

    /// The seeded noise times the scheduler's `init_noise_sigma`: the sample before step 0.
    pub(super) fn initial_sample(&self, params: &GenerationParams) -> Result<Tensor, RuntimeError> {
        let shape = self.sample_shape(params);
        let values = noise::standard_normal(params.seed, shape.1 * shape.2 * shape.3);
        let sample = Tensor::from_vec(values, shape, &self.device)?;
        let init_noise_sigma =
            scheduler::build(params.scheduler, &self.schedule, params.steps)?.init_noise_sigma();
        // At sigma 1 (DDIM, DPM-Solver) the noise is the first sample exactly as drawn.
        if init_noise_sigma != 1.0 {
            return Ok(sample.affine(init_noise_sigma, 0.0)?);
        }
        Ok(sample)
    }

    /// A request's part with its context and a sample to start from, before any step.
    fn member<'a>(
        &self,
        index: usize,
        params: &'a GenerationParams,
        context: TextContext,
        sample: Tensor,
    ) -> Result<Member<'a>, RuntimeError> {
        Ok(Member {
            index,
            params,
            guided: params.guidance > 1.0,
            context,
            sample,
            scheduler: scheduler::build(params.scheduler, &self.schedule, params.steps)?,
            step_noise: SeededStepNoise { seed: params.seed },
            trace: None,
        })
    }

    /// Runs step `i` again from trace entry `i`, for each `(i, entry)`, and returns what entry
    /// `i + 1` must then be: the same UNet pass, guidance and scheduler step as the generation,
    /// with the text conditioning computed once.
    pub(super) fn replay(
        &self,
        params: &GenerationParams,
        from: &[(u32, &TraceEntry)],
    ) -> Result<Vec<TraceEntry>, RuntimeError> {
        self.descriptor.limits.validate(params)?;
        let context = self.conditioning.context(params, params.guidance > 1.0)?;
        let shape = self.sample_shape(params);
        let values = shape.1 * shape.2 * shape.3;
        let mut next = Vec::with_capacity(from.len());
        for &(step, entry) in from {
            if step >= params.steps {
                return Err(RuntimeError::MalformedTrace(format!(
                    "step {step} of a {}-step request",
                    params.steps
                )));
            }
            if entry.sample.len() != values {
                return Err(RuntimeError::MalformedTrace(format!(
                    "entry {step} has {} values, the request's sample {values}",
                    entry.sample.len()
                )));
            }
            let sample = Tensor::from_vec(entry.sample.clone(), shape, &self.device)?;
            let mut member = self.member(0, params, context.clone(), sample)?;
            let expected_state = if member.scheduler.carries_state() { values } else { 0 };
            if entry.state.len() != expected_state {
                return Err(RuntimeError::MalformedTrace(format!(
                    "entry {step} carries {} state values, {} needs {expected_state}",
                    entry.state.len(),
                    params.scheduler
                )));
            }
            // Before step 0 nothing came earlier: the generation's scheduler had no state.
            if expected_state > 0 && step > 0 {
                member.scheduler.restore_state(Tensor::from_vec(entry.state.clone(), shape, &self.device)?);
            }
            let timestep = member.scheduler.timesteps()[step as usize];
            let mut members = [member];
            self.step(&mut members, step as usize, timestep)?;
            next.push(members[0].entry()?);
        }
        Ok(next)
    }

    /// Step `step` for every member: one UNet pass over all their rows, then each member's
    /// guidance and scheduler step.
    fn step(&self, members: &mut [Member<'_>], step: usize, timestep: f64) -> Result<(), RuntimeError> {
        let mut inputs = Vec::with_capacity(members.len() * 2);
        for member in members.iter() {
            let scaled = member.scheduler.scale_model_input(step, &member.sample)?;
            if member.guided {
                inputs.push(scaled.clone());
            }
            inputs.push(scaled);
        }
        let hidden: Vec<&Tensor> = members.iter().map(|m| &m.context.hidden).collect();
        let pooled: Option<Vec<&Tensor>> = members.iter().map(|m| m.context.pooled.as_ref()).collect();
        let context = TextContext {
            hidden: Tensor::cat(&hidden, 0)?,
            pooled: pooled.map(|pooled| Tensor::cat(&pooled, 0)).transpose()?,
        };
        let output = self.unet_forward(&Tensor::cat(&inputs, 0)?, timestep, &context)?;
        let mut row = 0;
        for member in members.iter_mut() {
            let own = output.narrow(0, row, member.rows())?;
            row += member.rows();
            let guided = if member.guided {
                let unconditional = own.narrow(0, 0, 1)?;
                let conditional = own.narrow(0, 1, 1)?;
                (&unconditional + ((&conditional - &unconditional)? * f64::from(member.params.guidance))?)?
            } else {
                own
            };
            member.sample = member.scheduler.step(step, &guided, &member.sample, &mut member.step_noise)?;
        }
        Ok(())
    }
}

/// What a request that was somehow left without an outcome gets (every path gives one).
pub(super) fn no_outcome<T>() -> Result<T, RuntimeError> {
    Err(RuntimeError::Inference(candle_core::Error::Msg(
        "the batch gave this request no outcome".to_string(),
    )))
}

//! The guided denoising loop, for one request or a batch of requests that share their timesteps
//! (the same size, scheduler and step count): each step runs one UNet pass over every request's
//! rows (the unconditional and conditional halves of each guided one, in request order), then
//! each request's own guidance and scheduler step. Every request keeps its own noise, text,
//! guidance, scheduler state and progress, and its sample comes out the same as when it runs
//! alone: each row of a UNet pass is computed without reference to the other rows.
//!
//! A pass that fails for a batch is run again one request at a time, so each request gets its
//! own outcome (a batch too large for the device memory still gives every picture).

use candle_core::Tensor;

use super::{Decoder, DiffusionModel, TextContext, rgb8};
use crate::noise;
use crate::scheduler::{self, Scheduler, SeededStepNoise};
use crate::{Control, GenerationParams, Progress, RuntimeError};

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
}

impl Member<'_> {
    /// UNet rows this request takes in a pass.
    fn rows(&self) -> usize {
        if self.guided { 2 } else { 1 }
    }
}

impl DiffusionModel {
    /// The samples just before decoding, in `batch` order, for requests that all batch with the
    /// first one ([`GenerationParams::batches_with`]). `progress` gets a request's index in
    /// `batch` with each of its steps; answering [`Control::Cancel`] ends that request alone with
    /// [`RuntimeError::Cancelled`].
    pub(super) fn denoise(
        &self,
        batch: &[&GenerationParams],
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Tensor, RuntimeError>> {
        debug_assert!(batch.windows(2).all(|pair| pair[0].batches_with(pair[1])));
        let mut outcomes: Vec<Option<Result<Tensor, RuntimeError>>> = batch.iter().map(|_| None).collect();
        let mut members = Vec::with_capacity(batch.len());
        for (index, params) in batch.iter().enumerate() {
            match self.start(index, params) {
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
            if let Err(e) = self.step(&mut members, step, timestep) {
                if members.len() == 1 {
                    outcomes[members[0].index] = Some(Err(e));
                    members.clear();
                    break;
                }
                tracing::warn!(error = %e, batch = members.len(), "a batched step failed; running its requests one at a time");
                for member in std::mem::take(&mut members) {
                    let alone = self.denoise(&[member.params], &mut |_, p| progress(member.index, p));
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
            outcomes[member.index] = Some(Ok(member.sample));
        }
        outcomes.into_iter().map(|outcome| outcome.unwrap_or_else(no_outcome)).collect()
    }

    /// Checks the request and sets up its part: text conditioning, seeded noise, scheduler.
    fn start<'a>(&self, index: usize, params: &'a GenerationParams) -> Result<Member<'a>, RuntimeError> {
        self.descriptor.limits.validate(params)?;
        let guided = params.guidance > 1.0;
        let context = self.conditioning.context(params, guided)?;
        let height = (params.height / self.sample_factor) as usize;
        let width = (params.width / self.sample_factor) as usize;
        let shape = (1, self.sample_channels, height, width);
        let values = noise::standard_normal(params.seed, shape.1 * shape.2 * shape.3);
        let mut sample = Tensor::from_vec(values, shape, &self.device)?;
        let scheduler = scheduler::build(params.scheduler, &self.schedule, params.steps)?;
        let init_noise_sigma = scheduler.init_noise_sigma();
        // At sigma 1 (DDIM, DPM-Solver) the noise is the first sample exactly as drawn.
        if init_noise_sigma != 1.0 {
            sample = sample.affine(init_noise_sigma, 0.0)?;
        }
        Ok(Member {
            index,
            params,
            guided,
            context,
            sample,
            scheduler,
            step_noise: SeededStepNoise { seed: params.seed },
        })
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

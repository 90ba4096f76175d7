//! Latent traces on real models: recording one changes no pixel (alone or in a batch), every
//! step replayed from its entry gives the next entry bit for bit (DPM-Solver++ 2M, which carries
//! state, and DDIM, which carries none; the default model and the SD-shaped test model with its
//! VAE), the step check passes an honest trace and catches forged ones.

use std::collections::BTreeMap;

use genmint_model_runtime::trace::check::{Comparison, StepFailure, check_steps};
use genmint_model_runtime::trace::{LatentTrace, TraceEntry};
use genmint_model_runtime::{
    Control, DeviceChoice, GenerationParams, Generator, SchedulerKind, Traced, install_default_model,
    load_model, write_test_model,
};

use crate::minilm;

fn request(seed: u64, steps: u32, scheduler: SchedulerKind) -> GenerationParams {
    GenerationParams {
        prompt: "grinning face with smiling eyes".into(),
        negative_prompt: String::new(),
        seed,
        width: 32,
        height: 32,
        steps,
        guidance: 3.0,
        scheduler,
    }
}

/// The default model, installed in a temporary folder (kept while the generator is used).
fn default_model() -> (tempfile::TempDir, Box<dyn Generator>) {
    let dir = tempfile::tempdir().unwrap();
    install_default_model(dir.path(), &minilm()).unwrap();
    let generator = load_model(dir.path(), DeviceChoice::Cpu).unwrap();
    (dir, generator)
}

fn traced(generator: &mut dyn Generator, batch: &[GenerationParams]) -> Vec<Traced> {
    let outcomes = generator.generate_batch_traced(batch, &mut |_, _| Control::Continue);
    outcomes.into_iter().map(Result::unwrap).collect()
}

fn all_entries(trace: &LatentTrace) -> BTreeMap<u32, TraceEntry> {
    trace.entries.iter().cloned().enumerate().map(|(i, e)| (i as u32, e)).collect()
}

/// Every step of `trace` replays to the next entry bit for bit, and the check of all steps passes.
fn assert_replays_exactly(generator: &mut dyn Generator, params: &GenerationParams, traced: &Traced) {
    let trace = traced.trace.as_ref().unwrap();
    assert_eq!(trace.steps(), params.steps);
    assert!(trace.entries[0].bit_identical(&generator.initial_entry(params).unwrap()));
    let from: Vec<(u32, &TraceEntry)> = (0..params.steps).map(|i| (i, &trace.entries[i as usize])).collect();
    let next = generator.replay_steps(params, &from).unwrap();
    for (i, entry) in next.iter().enumerate() {
        assert!(entry.bit_identical(&trace.entries[i + 1]), "step {i} replayed differs");
    }
    let decoded = generator.decode_entry(params, trace.entries.last().unwrap()).unwrap();
    assert_eq!(decoded, traced.image);
    let all: Vec<u32> = (0..params.steps).collect();
    let report = check_steps(
        generator,
        params,
        &all_entries(trace),
        &all,
        &traced.image.pixel_digest(),
        Comparison::Exact,
    )
    .unwrap();
    assert_eq!(report.failure, None);
}

#[test]
fn default_model_traces_replay_bit_for_bit_and_change_no_pixel() {
    let (_dir, mut generator) = default_model();
    let dpm = request(7, 10, SchedulerKind::DpmPp2m);
    let batch = [dpm.clone(), GenerationParams { prompt: "red apple".into(), seed: 8, ..dpm.clone() }];
    let alone = generator.generate(&dpm, &mut |_| Control::Continue).unwrap();
    let in_batch = traced(generator.as_mut(), &batch);
    assert_eq!(in_batch[0].image, alone, "recording a trace changed the pixels");
    let trace = in_batch[0].trace.as_ref().unwrap();
    assert!(trace.carries_state);
    assert_eq!((trace.entries.len(), trace.entries[1].state.len()), (11, 3 * 32 * 32));
    // The batched trace is the one the request gets alone, and replays alone.
    let single = traced(generator.as_mut(), std::slice::from_ref(&dpm));
    assert_eq!(single[0].trace, in_batch[0].trace);
    assert_replays_exactly(generator.as_mut(), &dpm, &in_batch[0]);
    assert_replays_exactly(generator.as_mut(), &batch[1], &in_batch[1]);

    let ddim = request(9, 4, SchedulerKind::Ddim);
    let ddim_traced = traced(generator.as_mut(), std::slice::from_ref(&ddim));
    assert!(!ddim_traced[0].trace.as_ref().unwrap().carries_state);
    assert_replays_exactly(generator.as_mut(), &ddim, &ddim_traced[0]);
}

#[test]
fn the_step_check_catches_forged_traces() {
    let (_dir, mut generator) = default_model();
    let params = request(11, 10, SchedulerKind::DpmPp2m);
    let honest = traced(generator.as_mut(), std::slice::from_ref(&params)).remove(0);
    let trace = honest.trace.as_ref().unwrap();
    let digest = honest.image.pixel_digest();
    let other_noise = generator.initial_entry(&GenerationParams { seed: 12, ..params.clone() }).unwrap();
    let mut check = |entries: &BTreeMap<u32, TraceEntry>, steps: &[u32], digest: &[u8; 32]| {
        check_steps(generator.as_mut(), &params, entries, steps, digest, Comparison::Exact).unwrap()
    };

    // Entry 5 nudged by one ulp in one value: step 4 (which leads to it) and step 5 (from it) fail.
    let mut forged = all_entries(trace);
    let value = &mut forged.get_mut(&5).unwrap().sample[100];
    *value = f32::from_bits(value.to_bits() + 1);
    assert!(matches!(check(&forged, &[4], &digest).failure, Some(StepFailure::Step { step: 4, .. })));
    assert!(matches!(check(&forged, &[5], &digest).failure, Some(StepFailure::Step { step: 5, .. })));
    assert_eq!(check(&forged, &[3, 7], &digest).failure, None, "untouched steps still pass");

    // A state that is not the previous step's prediction.
    let mut forged = all_entries(trace);
    forged.get_mut(&3).unwrap().state[0] += 0.5;
    assert!(matches!(check(&forged, &[2], &digest).failure, Some(StepFailure::Step { step: 2, .. })));

    // Another seed's noise at entry 0; a final latent that is not the attested image.
    let mut forged = all_entries(trace);
    forged.insert(0, other_noise);
    assert_eq!(check(&forged, &[1], &digest).failure, Some(StepFailure::InitialSample));
    assert_eq!(check(&all_entries(trace), &[1], &[0; 32]).failure, Some(StepFailure::Decode));

    // The right entries under another scheduler, or for another prompt.
    let other = GenerationParams { prompt: "red apple".into(), ..params.clone() };
    let report =
        check_steps(generator.as_mut(), &other, &all_entries(trace), &[6], &digest, Comparison::Exact);
    assert!(matches!(report.unwrap().failure, Some(StepFailure::Step { step: 6, .. })));

    // A trace file with a changed byte no longer reads.
    let mut bytes = trace.to_bytes().unwrap();
    let at = bytes.len() - 7;
    bytes[at] ^= 1;
    assert!(LatentTrace::from_bytes(&bytes).is_err());
}

#[test]
fn test_model_traces_replay_through_the_vae() {
    let dir = tempfile::tempdir().unwrap();
    write_test_model(dir.path()).unwrap();
    let mut generator = load_model(dir.path(), DeviceChoice::Cpu).unwrap();
    let params = GenerationParams {
        prompt: "a red fox".into(),
        negative_prompt: "blurry".into(),
        width: 64,
        height: 64,
        guidance: 4.0,
        ..request(3, 6, SchedulerKind::DpmPp2mKarras)
    };
    let honest = traced(generator.as_mut(), std::slice::from_ref(&params)).remove(0);
    assert_eq!(honest.trace.as_ref().unwrap().shape.channels, 4);
    assert_replays_exactly(generator.as_mut(), &params, &honest);
    let euler_a = GenerationParams { scheduler: SchedulerKind::EulerAncestral, ..params };
    let honest = traced(generator.as_mut(), std::slice::from_ref(&euler_a)).remove(0);
    assert_replays_exactly(generator.as_mut(), &euler_a, &honest);
}

#[test]
fn a_step_replayed_on_one_thread_gives_what_the_generation_recorded_on_several() {
    let (_dir, mut generator) = default_model();
    let params = request(13, 4, SchedulerKind::DpmPp2m);
    let on = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let honest = on(3).install(|| traced(generator.as_mut(), std::slice::from_ref(&params)).remove(0));
    let trace = honest.trace.unwrap();
    let from: Vec<(u32, &TraceEntry)> = (0..4).map(|i| (i, &trace.entries[i as usize])).collect();
    let next = on(1).install(|| generator.replay_steps(&params, &from).unwrap());
    for (i, entry) in next.iter().enumerate() {
        assert!(entry.bit_identical(&trace.entries[i + 1]), "step {i} differs on one thread");
    }
}

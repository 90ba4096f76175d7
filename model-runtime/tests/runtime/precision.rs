//! Half precision on the CPU: the UNet in f16 gives nearly the f32 picture, the same bits on any
//! thread count, and an envelope that says so; bf16 is refused with what to do; SDXL's VAE
//! decodes in f32 under f16 unless its config says it is safe (diffusers' `force_upcast`).

use std::path::{Path, PathBuf};

use genmint_model_runtime::{
    ComputeDtype, Control, DeviceChoice, GenerationParams, Generator, RuntimeError, SchedulerKind,
    load_model_with, write_test_model,
};
use serde_json::Value;

use crate::parity::copy_with;

fn fixture(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{family}-tiny"))
}

fn load(dir: &Path, dtype: ComputeDtype) -> Box<dyn Generator> {
    load_model_with(dir, DeviceChoice::Cpu, dtype).unwrap()
}

fn params(prompt: &str) -> GenerationParams {
    GenerationParams {
        prompt: prompt.into(),
        negative_prompt: String::new(),
        seed: 3,
        width: 64,
        height: 64,
        steps: 4,
        guidance: 5.0,
        scheduler: SchedulerKind::Ddim,
    }
}

fn pixels(generator: &mut dyn Generator, params: &GenerationParams) -> Vec<u8> {
    generator.generate(params, &mut |_| Control::Continue).unwrap().pixels
}

fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn f16_on_the_cpu_is_close_to_f32_deterministic_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    write_test_model(dir.path()).unwrap();
    let request = params("a red fox in a snow forest");
    let reference = pixels(load(dir.path(), ComputeDtype::F32).as_mut(), &request);
    let mut half = load(dir.path(), ComputeDtype::F16);
    assert_eq!(half.descriptor().envelope.dtype, "f16");
    let one = on_threads(1, || pixels(half.as_mut(), &request));
    let two = on_threads(2, || pixels(half.as_mut(), &request));
    assert_eq!(one, two, "f16 pixels changed with the thread count");
    let worst = one.iter().zip(&reference).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 8, "f16 is {worst} levels away from f32");
    assert_ne!(one, vec![0; one.len()]);
}

#[test]
fn bf16_on_the_cpu_is_refused_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    write_test_model(dir.path()).unwrap();
    let error = load_model_with(dir.path(), DeviceChoice::Cpu, ComputeDtype::Bf16).err().unwrap();
    assert!(matches!(error, RuntimeError::UnsupportedDtype { dtype: "bf16", .. }), "{error}");
    assert!(error.to_string().contains("dtype = \"f32\""), "{error}");
}

#[test]
fn sdxl_vae_is_upcast_under_f16_unless_it_is_the_fp16_fix() {
    // The fixture's VAE config says force_upcast: true, as SDXL's original VAE does.
    let mut original = load(&fixture("sdxl"), ComputeDtype::F16);
    assert_eq!(original.descriptor().envelope.dtype, "f16+vae-f32");
    let image = pixels(original.as_mut(), &params("an astronaut riding a green horse, photo"));
    assert_eq!(image.len(), 3 * 64 * 64);

    let config_path = fixture("sdxl").join("vae/config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(config_path).unwrap()).unwrap();
    config["force_upcast"] = false.into();
    let fixed = copy_with(&fixture("sdxl"), "vae/config.json", &config);
    assert_eq!(load(fixed.path(), ComputeDtype::F16).descriptor().envelope.dtype, "f16");
    // f32 never needs it, and SD 1.5's pipeline never upcasts.
    assert_eq!(load(&fixture("sdxl"), ComputeDtype::F32).descriptor().envelope.dtype, "f32");
    assert_eq!(load(&fixture("sd15"), ComputeDtype::F16).descriptor().envelope.dtype, "f16");
}

//! genmint model runtime: turn [`GenerationParams`] into pixels, deterministically; load and
//! hash models; assemble and evaluate the default model. Depends on candle only; the node drives
//! it through [`load_model`] and the [`Generator`] trait.
//!
//! # One generation (Stable Diffusion)
//!
//! ```text
//! GenerationParams ── checked against the model's Limits (field, value and range in the error)
//!  prompt, negative prompt ─► tokenizer (fixed length: truncate, pad) ─► CLIP text encoder(s)
//!                          ─► text embeddings [2 or 1, 77, dim]   (negative only when guidance > 1)
//!                          SDXL: + pooled text_embeds [2 or 1, P] and size ids (H, W, 0, 0, H, W)
//!                                (empty negative prompt: zeros, force_zeros_for_empty_prompt)
//!  seed ─► chacha20-normal-v1 on the CPU (own RNG) ─► latents [1, 4, H/8, W/8] on the device
//!      × init_noise_sigma (Euler: the largest σ; DDIM, DPM-Solver, LCM: 1)
//!  the requested scheduler (ddim, euler, euler_a, dpmpp_2m, dpmpp_2m_karras, lcm), `steps`
//!  timesteps:
//!      UNet(scaled latents twice, t, embeddings) ─► ε_uncond, ε_cond ─► ε = ε_u + g·(ε_c − ε_u)
//!      ─► latents = scheduler step (euler_a: + σ_up · chacha20-normal-v1 stream step+1;
//!                                   lcm: + √(1−ᾱ_next) · the same stream, all but the last step)
//!      ─► Progress { step, total, preview } ─► Continue | Cancel
//!  latents / scaling factor ─► VAE decoder ─► [-1, 1] ─► clamp, ×255, round ─► Rgb8Image
//!  ─► pixel digest = sha256(width BE ‖ height BE ‖ RGB8)
//! ```
//!
//! The pixel-space family (`pixel_minilm`, the default model) runs the same loop with two ends
//! swapped: the prompt becomes MiniLM's last hidden state over its tokens `[1, tokens, 384]`
//! (all zeros as the unconditional context, so there is no negative prompt), the noise is the
//! RGB image itself `[1, 3, 32, 32]`, and the denoised sample is converted to RGB8 directly.
//!
//! Everything recorded about an image is reproducible from the request and the
//! [`ReproducibilityEnvelope`]: no framework RNG is used, the only step noise (ancestral Euler,
//! LCM) is drawn from the request seed, and the pixel conversion is exact. The envelope's device class matters: CPU and CUDA kernels sum in
//! different orders, so their pixels differ. On the CPU the pixels do not depend on the thread
//! count, but the matrix kernels are chosen by instruction set (AVX2, AVX-512, NEON), so two
//! different CPU families may still disagree in rare last bits; `device_class` does not record
//! that yet.
//!
//! # Parity with diffusers
//!
//! The claim is that genmint makes the picture diffusers' `StableDiffusionPipeline` (for SDXL,
//! `StableDiffusionXLPipeline`) makes from the same checkpoint, seed noise and request.
//! `tests/runtime/parity.rs` checks it on three checkpoints saved by diffusers and transformers
//! with random weights (made by `model-runtime/parity/sd15.py`, `sd21.py` and `sdxl.py`, which
//! also record diffusers' outputs, started from genmint's own initial noise and, for `euler_a`,
//! fed genmint's per-step noise):
//! `sd15-tiny` (SD 1.5's blocks, quick_gelu CLIP, ε-prediction) and `sd21-tiny` (v-prediction,
//! gelu text encoder padding with `!`, linear projections, attention heads per block), the latter
//! also with stabilityai/sd-turbo's scheduler config (trailing spacing, guidance 0, 1 or 4 steps).
//! Both are 64 px and declare kind `tiny`: the `sd15`/`sd21` kinds only accept 256 px and up,
//! and the kind changes nothing else on this path (one CLIP encoder, last hidden state after
//! the final layer norm, as diffusers' `encode_prompt` without `clip_skip`; the prediction type
//! and spacing come from the scheduler config). `sdxl-tiny` (kind `tiny_xl`, the `sdxl` path at
//! 64 px) has SDXL's two encoders (penultimate states side by side; the second a
//! `CLIPTextModelWithProjection` whose pooled, projected embedding and the size ids go through
//! the UNet's `add_embedding`, `addition_embed_type = "text_time"`), SDXL's block order, and
//! requests with an empty negative prompt (zeros under `force_zeros_for_empty_prompt`); its
//! pooled embeddings match to 7.8e-7. It is also run as SDXL Turbo: stabilityai/sdxl-turbo's
//! scheduler config (Euler ancestral, trailing spacing), guidance 0, 1 and 4 steps.
//!
//! Measured on an x86-64 CPU (AMD EPYC, AVX-512), worst case over each row's requests, with
//! `cargo test -p genmint-model-runtime --test runtime parity -- --nocapture --test-threads=1`
//! (which prints every stage and request):
//!
//! ```text
//! family   scheduler        requests  text embedding  final latents  pixels max  pixels mean
//!                                     max abs         max abs        (of 255)    (of 255)
//! sd15     ddim             5         1.8e-6          9.7e-4         1           1.9e-3
//! sd15     euler            2         1.5e-6          8.0e-4         1           1.1e-3
//! sd15     euler_a          2         1.5e-6          1.1e-3         1           9.8e-4
//! sd15     dpmpp_2m         2         1.5e-6          7.3e-4         1           1.9e-3
//! sd15     dpmpp_2m_karras  2         1.5e-6          1.2e-3         1           1.1e-3
//! sd21     ddim             3         1.7e-6          3.2e-4         1           4.5e-3
//! sd21     euler            2         1.3e-6          3.2e-4         1           3.7e-3
//! sd21     euler_a          1         1.3e-6          2.4e-4         1           4.5e-3
//! sd21     dpmpp_2m         1         1.3e-6          3.6e-4         1           4.2e-3
//! sd21     dpmpp_2m_karras  1         1.3e-6          4.2e-4         1           4.4e-3
//! sd-turbo euler            1         1.2e-6          1.0e-3         1           6.5e-4
//! sd-turbo euler_a          2         1.2e-6          1.0e-3         1           6.5e-4
//! sdxl     ddim             3         7.5e-7          1.6e-4         1           4.9e-4
//! sdxl     euler            3         7.5e-7          1.7e-4         1           4.9e-4
//! sdxl-tb  euler_a          2         7.2e-7          3.8e-4         1           3.3e-4
//! ```
//!
//! (`sdxl-tb`: SDXL Turbo.) Single-file checkpoints (`tests/runtime/single_file.rs`): the three
//! fixtures saved with the original SD names by `model-runtime/parity/single_file.py`, imported
//! by [`import_checkpoint`], against diffusers' `from_single_file` of the same file, DDIM:
//!
//! ```text
//! family  requests  pixels max (of 255)  values that differ   and against the diffusers layout
//! sd15    2         1                    13, 7 of 12288       bit-identical
//! sd21    1         1                    47 of 12288          bit-identical
//! sdxl    2         1                    3, 3 of 12288        bit-identical
//! ```
//!
//! The test's bounds: text embeddings 1e-5, final latents 5e-3, pixels 2 of 255 (a mean of
//! 1e-3 means about one channel value in a thousand is one level off). Not covered: the real
//! SDXL checkpoints themselves (only their architecture at tiny widths), SDXL's non-default size
//! conditioning (genmint always sends original = target = the request's size, crop 0, 0), and
//! CUDA, whose kernels sum in another order. stabilityai/sd-turbo itself
//! is an SD 2.1 network and loads as kind `sd21` (the `sd_turbo` kind is SDXL Turbo's): its
//! 512 px, 1 to 4 steps and guidance 0 are within `sd21`'s bounds but not its defaults, so a
//! request states them.
//!
//! # Modules
//!
//! - `params`: the request ([`GenerationParams`], [`SchedulerKind`]) and progress reporting.
//! - `model`: what a loaded model says about itself: [`ModelKind`], [`ModelHash`], [`Limits`],
//!   [`ReproducibilityEnvelope`], [`ModelDescriptor`].
//! - [`layout`]: the files of a model directory and `genmint-model.json`.
//! - `import`: [`import_checkpoint`], a single-file (LDM-named) `.safetensors` checkpoint to a
//!   model directory, with the configs of its release and the file's sha256 recorded.
//! - [`manifest`]: the canonical manifest and the model hash (`genmint-model-manifest-v1`).
//! - `canonical_json`: the canonical JSON bytes that are hashed.
//! - `configs`: diffusers/transformers `config.json` files to network configurations, read
//!   through typed fields with diffusers' defaults (the scheduler's config too).
//! - `clip`: the CLIP text transformer. `clip_tokenizer`: CLIP's BPE tokenizer from `vocab.json`
//!   and `merges.txt`. `text`: tokenization (fitting to 77 tokens, [`TextFit`]) and text
//!   conditioning.
//! - `bert_text`: BERT token embeddings, the context of pixel-space models.
//! - [`noise`]: the seeded initial and per-step noise (`chacha20-normal-v1`).
//! - `scheduler`: the schedulers (DDIM, Euler, ancestral Euler, DPM-Solver++ 2M, with Karras
//!   σ, LCM), each as diffusers computes it; parity-tested against diffusers.
//! - `unet`: the conditional UNet on candle's blocks, with SDXL's added conditioning.
//! - `pipeline`: [`load_model`] and the one diffusion [`Generator`] both families share.
//! - `precision`: [`ComputeDtype`] (f32, f16, bf16) and when the VAE decodes in f32 instead.
//! - `image`: [`Rgb8Image`], the pixel digest and the float-to-RGB8 conversion.
//! - `test_model`: [`write_test_model`], the deterministic test-size model.
//! - `random_model`: [`write_random_model`], SD 1.5- and SDXL-shaped random weights for speed.
//! - `default_model`: [`install_default_model`], the shipped `genmint-emoji-32`.
//! - [`trace`]: latent traces (`genmint-latent-trace-v1`), their Merkle tree and the step
//!   check that replays a few denoising steps instead of the whole generation.
//! - [`eval`]: the default model's evaluation (adherence, diversity, speed, determinism).

mod bert_text;
mod canonical_json;
mod clip;
mod clip_tokenizer;
mod configs;
mod default_model;
mod error;
pub mod eval;
mod hex_digest;
mod image;
mod import;
mod kernels;
pub mod layout;
pub mod manifest;
mod model;
pub mod noise;
mod params;
mod pipeline;
mod precision;
mod random_model;
mod resnet;
mod scheduler;
mod test_model;
mod text;
pub mod trace;
mod unet;
mod vae;

pub use default_model::{
    DEFAULT_MODEL_NAME, MINILM_WHEEL_MODEL_DIR, default_model_source, install_default_model, minilm_dir,
};
pub use error::RuntimeError;
pub use image::Rgb8Image;
pub use import::{
    CheckpointFamily, ImportOptions, ImportProgress, ImportReport, ImportStage, PredictionType,
    import_checkpoint,
};
pub use layout::{MODEL_CONFIG_FILE, ModelConfig, ModelSource};
pub use manifest::{MANIFEST_FORMAT, ManifestEntry, ModelManifest, model_hash, model_manifest};
pub use model::{Limits, ModelDescriptor, ModelHash, ModelKind, ReproducibilityEnvelope};
pub use noise::NOISE_ALGORITHM;
pub use params::{Control, GenerationParams, Progress, SchedulerKind};
pub use pipeline::{CANDLE_VERSION, DeviceChoice, Generator, Traced, load_model, load_model_with};
#[doc(hidden)]
pub use pipeline::{Stages, load_stages};
pub use precision::ComputeDtype;
pub use random_model::{RandomShape, write_random_model};
pub use test_model::{TEST_MODEL_NAME, write_test_model};
pub use text::TextFit;

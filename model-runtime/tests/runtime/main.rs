//! The model runtime end to end, one test binary: the built-in test model (`tiny`), the
//! pixel-space family on a PyTorch-made fixture UNet (`pixel`), the shipped default model
//! (`default_model`), parity with diffusers on SD 1.5- and SD 2.1-shaped fixtures (`parity`),
//! the SD 1.5 fixture imported from a single-file checkpoint (`single_file`), and half precision
//! with its VAE rule (`precision`).

// Test helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod default_model;
mod parity;
mod pixel;
mod precision;
mod sharded;
mod single_file;
mod tiny;
mod trace;

use std::path::PathBuf;

use genmint_model_runtime::{Control, GenerationParams, Generator, minilm_dir};

/// Generates one image and returns its pixel digest, checking its size.
pub fn digest(generator: &mut dyn Generator, params: &GenerationParams) -> [u8; 32] {
    let image = generator.generate(params, &mut |_| Control::Continue).unwrap();
    assert_eq!((image.width, image.height), (params.width, params.height));
    assert_eq!(image.pixels.len(), 3 * (params.width * params.height) as usize);
    image.pixel_digest()
}

/// Generates `batch` as one batch, cancelling the request at `cancel` after its first step, and
/// checks that every other request gets the pixels it gets alone and its own progress.
pub fn assert_batch_matches_alone(generator: &mut dyn Generator, batch: &[GenerationParams], cancel: usize) {
    let alone: Vec<[u8; 32]> = batch.iter().map(|params| digest(generator, params)).collect();
    let mut steps = vec![0; batch.len()];
    let outcomes = generator.generate_batch(batch, &mut |index, progress| {
        steps[index] += 1;
        assert_eq!(progress.step, steps[index], "request {index} reported its steps in order");
        if index == cancel { Control::Cancel } else { Control::Continue }
    });
    assert_eq!(outcomes.len(), batch.len());
    for (index, outcome) in outcomes.into_iter().enumerate() {
        if index == cancel {
            assert!(
                matches!(outcome, Err(genmint_model_runtime::RuntimeError::Cancelled)),
                "request {index}"
            );
            assert_eq!(steps[index], 1, "a cancelled request takes no further step");
            continue;
        }
        let image = outcome.unwrap();
        assert_eq!(image.pixel_digest(), alone[index], "request {index} in a batch differs from alone");
        assert_eq!(steps[index], batch[index].steps, "request {index} reported every step");
    }
}

/// The all-MiniLM-L6-v2 files `scripts/setup.sh` installs (under `$GENMINT_TOOLS`, else the
/// checkout's `.tools`).
pub fn minilm() -> PathBuf {
    let tools = std::env::var_os("GENMINT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
    let dir = minilm_dir(&tools.join("python"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 is not installed in {}: run scripts/setup.sh (or set GENMINT_TOOLS)",
        dir.display()
    );
    dir
}

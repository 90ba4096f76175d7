//! Prints genmint's noise (`chacha20-normal-v1`) for a seed, so the diffusers parity fixtures
//! (`model-runtime/parity/*.py`) start from exactly the latents genmint draws, and feed the
//! ancestral scheduler exactly the step noise genmint draws, bit for bit, without a second
//! implementation of the algorithm to keep in step.
//!
//! `cargo run --example parity-noise -- <seed> <count>` writes the initial noise,
//! `cargo run --example parity-noise -- <seed> <count> <step>` the noise of step `step` (0-based,
//! [`genmint_model_runtime::noise::step_normal`]): `count` f32 values, little-endian, to stdout;
//! the caller reshapes them row-major to `[1, channels, height, width]`.

use std::io::Write;

use genmint_model_runtime::noise::{standard_normal, step_normal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let values = match args.as_slice() {
        [seed, count] => standard_normal(seed.parse()?, count.parse()?),
        [seed, count, step] => step_normal(seed.parse()?, step.parse()?, count.parse()?),
        _ => return Err("usage: parity-noise <seed> <count> [<step>]".into()),
    };
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::io::stdout().lock().write_all(&bytes)?;
    Ok(())
}

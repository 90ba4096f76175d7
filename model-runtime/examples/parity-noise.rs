//! Prints genmint's initial noise (`chacha20-normal-v1`) for a seed, so the diffusers parity
//! fixtures (`model-runtime/parity/*.py`) start from exactly the latents genmint draws, bit for bit,
//! without a second implementation of the algorithm to keep in step.
//!
//! `cargo run --example parity-noise -- <seed> <count>` writes `count` f32 values, little-endian,
//! to stdout; the caller reshapes them row-major to `[1, channels, height, width]`.

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(seed), Some(count), None) = (args.next(), args.next(), args.next()) else {
        return Err("usage: parity-noise <seed> <count>".into());
    };
    let values = genmint_model_runtime::noise::standard_normal(seed.parse()?, count.parse()?);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::io::stdout().lock().write_all(&bytes)?;
    Ok(())
}

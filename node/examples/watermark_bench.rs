//! The watermark benchmark's measuring side (run by `scripts/bench-watermark.sh`).
//!
//! `mark SRC OUT`: marks every PNG `NNNN.png` of SRC with the tag of token NNNN and writes it to
//! OUT; prints PSNR and SSIM of marked vs unmarked and the embedding time.
//! `detect DIR marked|unmarked`: runs the detector on every image of DIR (PNG, JPEG or WebP) and
//! prints how many name their token (marked) or any token (unmarked: false positives), the mean
//! confidence and the detection time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use alloy::primitives::{Address, B256, U256};
use anyhow::{Context, Result, bail};
use genmint_model_runtime::Rgb8Image;
use genmint_node::provenance::png;
use genmint_node::provenance::watermark::{self, WatermarkTag};

const CHAIN_ID: u64 = 31337;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["mark", src, out] => mark(Path::new(src), Path::new(out)),
        ["detect", dir, "marked"] => detect(Path::new(dir), true),
        ["detect", dir, "unmarked"] => detect(Path::new(dir), false),
        _ => bail!("usage: watermark_bench mark SRC OUT | detect DIR marked|unmarked"),
    }
}

fn tag(number: u64) -> WatermarkTag {
    WatermarkTag::for_token(CHAIN_ID, Address::repeat_byte(0x42), B256::from(U256::from(number)))
}

/// The image files of a folder with their numbers (the file stem), sorted.
fn numbered(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if let Some(number) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()) {
            files.push((number, path));
        }
    }
    files.sort();
    Ok(files)
}

fn load(path: &Path) -> Result<Rgb8Image> {
    let image = image::open(path).with_context(|| format!("decoding {}", path.display()))?.to_rgb8();
    Ok(Rgb8Image { width: image.width(), height: image.height(), pixels: image.into_raw() })
}

fn mark(src: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let (mut psnrs, mut ssims, mut millis) = (Vec::new(), Vec::new(), Vec::new());
    for (number, path) in numbered(src)? {
        let original = load(&path)?;
        let started = Instant::now();
        let marked = watermark::embed(&original, tag(number))?;
        millis.push(started.elapsed().as_secs_f64() * 1e3);
        psnrs.push(psnr(&original, &marked));
        ssims.push(ssim(&original, &marked));
        std::fs::write(out.join(format!("{number:04}.png")), png::encode(&marked)?)?;
    }
    println!(
        "marked {} images: PSNR mean {:.2} dB, min {:.2} dB; SSIM mean {:.4}, min {:.4}; embed {:.1} ms mean, {:.1} ms max",
        psnrs.len(),
        mean(&psnrs),
        psnrs.iter().copied().fold(f64::INFINITY, f64::min),
        mean(&ssims),
        ssims.iter().copied().fold(f64::INFINITY, f64::min),
        mean(&millis),
        millis.iter().copied().fold(0.0, f64::max),
    );
    Ok(())
}

fn detect(dir: &Path, marked: bool) -> Result<()> {
    let (mut right, mut wrong, mut confidences, mut millis) = (0usize, 0usize, Vec::new(), Vec::new());
    let files = numbered(dir)?;
    for (number, path) in &files {
        let image = load(path)?;
        let started = Instant::now();
        let found = watermark::detect(&image)?;
        millis.push(started.elapsed().as_secs_f64() * 1e3);
        confidences.push(found.confidence);
        match found.tag {
            Some(found) if marked && found == tag(*number) => right += 1,
            Some(_) => wrong += 1,
            None => {}
        }
    }
    let total = files.len().max(1) as f64;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    if marked {
        println!(
            "| {name:<15} | {right:>4}/{:<4} | {:>6.1} % | {wrong:>5} | {:.2} | {:>5.1} ms |",
            files.len(),
            100.0 * right as f64 / total,
            mean(&confidences),
            mean(&millis)
        );
    } else {
        println!(
            "| {name:<15} | {wrong:>4}/{:<4} false positives | max confidence {:.3} | {:>5.1} ms |",
            files.len(),
            confidences.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean(&millis)
        );
    }
    Ok(())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn psnr(a: &Rgb8Image, b: &Rgb8Image) -> f64 {
    let squared: f64 =
        a.pixels.iter().zip(&b.pixels).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    let mse = squared / a.pixels.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0 * 255.0 / mse).log10() }
}

/// Mean SSIM of the luma over 8×8 windows stepped by 4 (constants K1 = 0.01, K2 = 0.03).
fn ssim(a: &Rgb8Image, b: &Rgb8Image) -> f64 {
    let luma = |image: &Rgb8Image| -> Vec<f64> {
        image
            .pixels
            .chunks_exact(3)
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .collect()
    };
    let (ya, yb) = (luma(a), luma(b));
    let (width, height) = (a.width as usize, a.height as usize);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut scores = Vec::new();
    for top in (0..height.saturating_sub(7)).step_by(4) {
        for left in (0..width.saturating_sub(7)).step_by(4) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in top..top + 8 {
                for x in left..left + 8 {
                    let (p, q) = (ya[y * width + x], yb[y * width + x]);
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let n = 64.0;
            let (ma, mb) = (sa / n, sb / n);
            let (va, vb, cov) = (saa / n - ma * ma, sbb / n - mb * mb, sab / n - ma * mb);
            scores.push(
                ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2)),
            );
        }
    }
    mean(&scores)
}

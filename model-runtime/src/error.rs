//! The one error type of the model runtime: every failure a caller can see, each naming what was
//! wrong (the parameter and its allowed range, the model file, the config field).

use std::path::PathBuf;

/// Everything that can go wrong while loading, hashing or running a model.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A generation parameter is outside what the model allows.
    #[error("{field} {value} is not allowed: expected {allowed}")]
    InvalidParameter { field: &'static str, value: String, allowed: String },
    /// A file the model layout requires is not there.
    #[error("model file {} is missing", path.display())]
    MissingFile { path: PathBuf },
    /// A model file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (test model).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file is malformed or describes something this runtime does not run.
    #[error("invalid model file {}: {reason}", path.display())]
    InvalidModelFile { path: PathBuf, reason: String },
    /// A single-file checkpoint cannot be imported; the reason says what to do instead.
    #[error("cannot import {}: {reason}", path.display())]
    Import { path: PathBuf, reason: String },
    /// A CUDA device was requested from a build without the `cuda` feature.
    #[error("CUDA device {0} requested, but genmint-model-runtime was built without the `cuda` feature")]
    CudaUnavailable(usize),
    /// The configured compute dtype cannot run on the chosen device.
    #[error("dtype {dtype} cannot be used here: {reason}")]
    UnsupportedDtype { dtype: &'static str, reason: &'static str },
    /// The tokenizer rejected a prompt.
    #[error("cannot tokenize the {field}: {reason}")]
    Tokenize { field: &'static str, reason: String },
    /// The decoded image contained NaN or infinite values: the weights are broken.
    #[error("the model produced non-finite pixel values")]
    NonFinite,
    /// The progress callback asked to stop.
    #[error("generation cancelled")]
    Cancelled,

    #[error("malformed latent trace: {0}")]
    MalformedTrace(String),

    #[error("this generator records no latent traces")]
    TraceUnsupported,
    /// A tensor operation failed (device, shape or kernel error).
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}

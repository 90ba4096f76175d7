//! The safetensors container, read and written as a stream: a checkpoint of several GiB is
//! never held in memory. Reading takes only the header (tensor names, dtypes, shapes and byte
//! ranges); writing copies each output tensor's bytes straight from its range in the source, or,
//! for the one matrix a checkpoint stores the other way round (OpenCLIP's text projection), reads
//! that matrix and writes its elements transposed.
//!
//! ```text
//! file = u64 LE header length ‖ header JSON ‖ tensor bytes
//! header = {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, …}
//! ```
//!
//! What this module writes is a function of the planned tensors only: names in byte order, data
//! in that order, the header as canonical JSON (sorted keys, no whitespace) padded with spaces to
//! a multiple of 8 bytes, no `__metadata__`. So the same checkpoint gives the same bytes on every
//! machine, and the model hash with them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::{RuntimeError, canonical_json};

/// Headers above this are refused (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// One tensor of the source file: where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Absolute file offset of the first byte.
    pub start: u64,
    pub len: u64,
}

/// The tensors of a safetensors file, by name.
pub(crate) type SourceTensors = BTreeMap<String, SourceTensor>;

/// One tensor to write: its dtype and shape, and the source bytes it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub start: u64,
    pub len: u64,
    /// The source bytes are this 2-D tensor's transpose (`[shape[1], shape[0]]`, row-major).
    pub transposed: bool,
}

impl OutTensor {
    /// The tensor whose elements are `source`'s, unchanged.
    pub fn copy_of(source: &SourceTensor) -> Self {
        Self {
            dtype: source.dtype.clone(),
            shape: source.shape.clone(),
            start: source.start,
            len: source.len,
            transposed: false,
        }
    }

    /// The transpose of the 2-D `source`, or `None` when it is not a matrix.
    pub fn transpose_of(source: &SourceTensor) -> Option<Self> {
        let [rows, columns] = source.shape[..] else { return None };
        Some(Self { shape: vec![columns, rows], transposed: true, ..Self::copy_of(source) })
    }
}

/// Bytes per element of a safetensors dtype.
fn dtype_size(dtype: &str) -> Option<u64> {
    match dtype {
        "F64" | "I64" | "U64" => Some(8),
        "F32" | "I32" | "U32" => Some(4),
        "F16" | "BF16" | "I16" | "U16" => Some(2),
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => Some(1),
        _ => None,
    }
}

/// Reads and checks the header of the safetensors file `file` (`path` is for errors).
pub(crate) fn read_header(path: &Path, file: &mut File) -> Result<SourceTensors, RuntimeError> {
    let bad = |reason: String| RuntimeError::Import { path: path.to_path_buf(), reason };
    let read_error = |source| RuntimeError::Read { path: path.to_path_buf(), source };
    let file_len = file.metadata().map_err(read_error)?.len();
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|_| bad("not a safetensors file: shorter than 8 bytes".into()))?;
    let header_len = u64::from_le_bytes(length);
    if header_len > MAX_HEADER_BYTES || header_len + 8 > file_len {
        return Err(bad(format!(
            "not a safetensors file: header length {header_len} does not fit the file ({file_len} bytes)"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(read_error)?;
    let header: Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors file: its header is not JSON ({e})")))?;
    let Value::Object(entries) = header else {
        return Err(bad("not a safetensors file: its header is not a JSON object".into()));
    };
    let data_start = 8 + header_len;
    let mut tensors = SourceTensors::new();
    for (name, entry) in entries.iter().filter(|(name, _)| name.as_str() != "__metadata__") {
        let tensor = parse_entry(entry, data_start, file_len)
            .map_err(|reason| bad(format!("tensor {name}: {reason}")))?;
        tensors.insert(name.clone(), tensor);
    }
    Ok(tensors)
}

/// One header entry, checked against its dtype, shape and the file's length.
fn parse_entry(entry: &Value, data_start: u64, file_len: u64) -> Result<SourceTensor, String> {
    let dtype = entry["dtype"].as_str().ok_or("no dtype")?.to_string();
    let size = dtype_size(&dtype).ok_or_else(|| format!("unknown dtype {dtype}"))?;
    let shape = entry["shape"]
        .as_array()
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or("shape is not a list of sizes"))
        .collect::<Result<Vec<_>, _>>()?;
    let offsets = entry["data_offsets"].as_array().ok_or("no data_offsets")?;
    let (Some(begin), Some(end)) =
        (offsets.first().and_then(Value::as_u64), offsets.get(1).and_then(Value::as_u64))
    else {
        return Err("data_offsets is not [begin, end]".into());
    };
    let elements: u64 = shape.iter().map(|&d| d as u64).product();
    if end < begin || end - begin != elements * size || data_start + end > file_len {
        return Err(format!(
            "data_offsets [{begin}, {end}] do not hold {elements} {dtype} values in this file"
        ));
    }
    Ok(SourceTensor { dtype, shape, start: data_start + begin, len: end - begin })
}

/// The header bytes for `tensors` (in name order), padded to a multiple of 8.
fn header_bytes(tensors: &BTreeMap<String, OutTensor>) -> Vec<u8> {
    let mut offset = 0u64;
    let mut header = serde_json::Map::new();
    for (name, tensor) in tensors {
        header.insert(
            name.clone(),
            json!({"dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.len]}),
        );
        offset += tensor.len;
    }
    let mut bytes = canonical_json::to_vec(&Value::Object(header));
    while !bytes.len().is_multiple_of(8) {
        bytes.push(b' ');
    }
    bytes
}

/// Writes `tensors` as a safetensors file at `path`, copying their bytes from `source`;
/// `copied` is called with the bytes copied so far.
pub(crate) fn write(
    path: &Path,
    source: &mut File,
    source_path: &Path,
    tensors: &BTreeMap<String, OutTensor>,
    copied: &mut dyn FnMut(u64),
) -> Result<(), RuntimeError> {
    let write_error = |source| RuntimeError::Write { path: path.to_path_buf(), source };
    let read_error = |source| RuntimeError::Read { path: source_path.to_path_buf(), source };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(write_error)?);
    let header = header_bytes(tensors);
    out.write_all(&(header.len() as u64).to_le_bytes()).map_err(write_error)?;
    out.write_all(&header).map_err(write_error)?;
    let short =
        || read_error(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the checkpoint ended early"));
    for tensor in tensors.values() {
        source.seek(SeekFrom::Start(tensor.start)).map_err(read_error)?;
        if tensor.transposed {
            let mut bytes = vec![0u8; tensor.len as usize];
            source.read_exact(&mut bytes).map_err(|_| short())?;
            out.write_all(&transposed(&bytes, tensor)).map_err(write_error)?;
        } else {
            let n =
                std::io::copy(&mut Read::by_ref(source).take(tensor.len), &mut out).map_err(write_error)?;
            if n != tensor.len {
                return Err(short());
            }
        }
        copied(tensor.len);
    }
    out.flush().map_err(write_error)
}

/// The row-major bytes of `tensor` (shape `[r, c]`) from `source`, its transpose's (`[c, r]`).
fn transposed(source: &[u8], tensor: &OutTensor) -> Vec<u8> {
    let (rows, columns) = (tensor.shape[0], tensor.shape[1]);
    let size = source.len() / (rows * columns).max(1);
    let mut out = vec![0u8; source.len()];
    for r in 0..rows {
        for c in 0..columns {
            let (to, from) = ((r * columns + c) * size, (c * rows + r) * size);
            out[to..to + size].copy_from_slice(&source[from..from + size]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(start: u64, len: u64, shape: &[usize]) -> OutTensor {
        OutTensor { dtype: "F16".into(), shape: shape.to_vec(), start, len, transposed: false }
    }

    #[test]
    fn written_files_read_back_with_candle_and_here() {
        let dir = tempfile::tempdir().unwrap();
        let source_path = dir.path().join("source.bin");
        let values: Vec<u8> = (0u8..32).collect();
        std::fs::write(&source_path, &values).unwrap();
        let mut source = File::open(&source_path).unwrap();
        let mut tensors = BTreeMap::new();
        tensors.insert("b.weight".to_string(), tensor(0, 8, &[2, 2]));
        tensors.insert("a.bias".to_string(), tensor(20, 4, &[2]));
        let out = dir.path().join("out.safetensors");
        let mut total = 0;
        write(&out, &mut source, &source_path, &tensors, &mut |n| total += n).unwrap();
        assert_eq!(total, 12);

        let bytes = std::fs::read(&out).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        assert_eq!(&bytes[8 + header_len..], &[20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7]);
        let loaded = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
        assert_eq!(loaded["b.weight"].dims(), &[2, 2]);
        let read = read_header(&out, &mut File::open(&out).unwrap()).unwrap();
        assert_eq!(read["a.bias"].start, 8 + header_len as u64);
        assert_eq!(read["b.weight"].len, 8);
    }

    #[test]
    fn transposed_matrices_are_written_transposed() {
        let dir = tempfile::tempdir().unwrap();
        let source_path = dir.path().join("source.bin");
        // A 2 × 3 F16 matrix [[1, 2, 3], [4, 5, 6]], two bytes an element.
        let values: Vec<u8> = [1u8, 2, 3, 4, 5, 6].iter().flat_map(|&v| [v, 0]).collect();
        std::fs::write(&source_path, &values).unwrap();
        let source = SourceTensor { dtype: "F16".into(), shape: vec![2, 3], start: 0, len: 12 };
        assert!(OutTensor::transpose_of(&SourceTensor { shape: vec![12], ..source.clone() }).is_none());
        let tensors = BTreeMap::from([("p".to_string(), OutTensor::transpose_of(&source).unwrap())]);
        let out = dir.path().join("out.safetensors");
        write(&out, &mut File::open(&source_path).unwrap(), &source_path, &tensors, &mut |_| {}).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let data: Vec<u8> = bytes[8 + header_len..].iter().step_by(2).copied().collect();
        assert_eq!(data, [1, 4, 2, 5, 3, 6]);
        let loaded = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
        assert_eq!(loaded["p"].dims(), &[3, 2]);
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        for (bytes, needle) in [
            (b"PK\x03\x04 a zip archive".to_vec(), "header length"),
            (vec![1, 2], "shorter than 8"),
            ([&8u64.to_le_bytes()[..], b"not json"].concat(), "not JSON"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let error = read_header(&path, &mut File::open(&path).unwrap()).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
        let header = br#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
        let bytes = [&(header.len() as u64).to_le_bytes()[..], header, &[0u8; 8]].concat();
        std::fs::write(&path, bytes).unwrap();
        let error = read_header(&path, &mut File::open(&path).unwrap()).unwrap_err().to_string();
        assert!(error.contains("tensor t") && error.contains("4 F32 values"), "{error}");
    }
}

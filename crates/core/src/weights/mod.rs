//! Weights files (`.osw`): the architecture they belong to, every tensor of the network, and a
//! checksum — the project's own small format, read without any other parser.
//!
//! Layout: the magic `ONESHOTW`, a little-endian `u32` header length, the header (JSON: the
//! format version, the [`SiameseConfig`], each tensor's parameter id, shape and encoding, the
//! payload's length and CRC-32), then the payload: every tensor in the network's visiting order,
//! either as `f32` values or, with [`Encoding::Q8`], as 8-bit integers with one `f32` scale per
//! slice of the first axis (a quarter of the size; the shipped network's accuracy is unchanged).
//!
//! The header says *which* architecture a file holds before a tensor is touched; the checksum
//! turns a truncated or damaged download into a clear message instead of garbage weights; every
//! size is checked before it is used, so no file can make the reader panic or allocate without
//! bound; a file of a newer format is refused with a message that says so. Natively, files of
//! format 1 (Burn's burnpack record, before December 2026) still load, for converting them.

mod format;
#[cfg(not(target_arch = "wasm32"))]
mod legacy;
mod tensors;

use burn::tensor::Device;

use crate::model::{Siamese, SiameseConfig};

pub use format::{Encoding, FORMAT_VERSION, MAX_HEADER_BYTES};

/// Why weights could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The bytes do not start like a weights file.
    #[error("not a weights file of this project (it does not start with the ONESHOTW signature)")]
    NotWeights,
    /// The file ends early.
    #[error("the weights file is truncated: {found} bytes where {expected} are needed")]
    Truncated {
        /// Bytes needed.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The header is not valid.
    #[error("the weights file's header is damaged: {0}")]
    Header(String),
    /// The file was written by a newer version of this project.
    #[error(
        "the weights file has format {found}, newer than this version reads (up to {supported}): \
         update the page or the command line"
    )]
    NewerFormat {
        /// The file's format.
        found: u32,
        /// The newest format this version reads.
        supported: u32,
    },
    /// The file was written by an older version, which only the command line converts.
    #[error("the weights file has the old format 1: convert it with `oneshot pack --weights FILE --out NEW`")]
    OldFormat,
    /// The payload does not match its checksum.
    #[error("the weights file is corrupted (checksum mismatch)")]
    Checksum,
    /// The file holds another preset than the one asked for.
    #[error("the weights are for the {found:?} preset, but the {expected:?} preset was asked for")]
    WrongPreset {
        /// Preset in the file.
        found: crate::model::Preset,
        /// Preset asked for.
        expected: crate::model::Preset,
    },
    /// The file's architecture differs from the one asked for (same preset name).
    #[error("the weights are for a different architecture: file has {found}, expected {expected}")]
    WrongArchitecture {
        /// Architecture in the file, as JSON.
        found: String,
        /// Architecture asked for, as JSON.
        expected: String,
    },
    /// The architecture in the file is not one this project can build.
    #[error("the weights file describes an unusable architecture: {0}")]
    Architecture(String),
    /// The tensors do not fit the architecture, or hold values that are not numbers.
    #[error("the weights do not fit the network: {0}")]
    Tensors(String),
    /// A file could not be read or written.
    #[cfg(not(target_arch = "wasm32"))]
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong with it (any of the above, or I/O).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Serialises a network and its architecture, tensors encoded as asked.
///
/// # Panics
/// On a device that cannot read tensors back synchronously (WebGPU): use [`to_bytes_async`].
pub fn to_bytes(model: &Siamese, config: &SiameseConfig, encoding: Encoding) -> Vec<u8> {
    let tensors = tensors::collect(model)
        .into_iter()
        .map(|t| t.read().expect("a synchronous device reads its tensors back"))
        .collect::<Vec<_>>();
    format::write(config, &tensors, encoding)
}

/// Serialises a network that may live on WebGPU, where nothing can be read back synchronously:
/// every tensor, running statistics included, is read back asynchronously, as `f32`.
pub async fn to_bytes_async(model: &Siamese, config: &SiameseConfig) -> Result<Vec<u8>, WeightsError> {
    let mut tensors = Vec::new();
    for tensor in tensors::collect(model) {
        tensors.push(tensor.read_async().await.map_err(WeightsError::Tensors)?);
    }
    Ok(format::write(config, &tensors, Encoding::F32))
}

/// Reads only the architecture of a weights file, checking its integrity.
pub fn read_config(bytes: &[u8]) -> Result<SiameseConfig, WeightsError> {
    format::read(bytes).map(|file| file.config)
}

/// Builds the network stored in `bytes` on `device`. With `expected`, a file of any other
/// architecture is rejected, naming both.
pub fn from_bytes(
    bytes: &[u8],
    expected: Option<&SiameseConfig>,
    device: &Device,
) -> Result<(SiameseConfig, Siamese), WeightsError> {
    #[cfg(not(target_arch = "wasm32"))]
    if format::is_format_1(bytes) {
        let (config, payload) = legacy::split(bytes)?;
        check_expected(&config, expected)?;
        format::check_architecture(&config)?;
        return legacy::load(config, payload, device);
    }
    let file = format::read(bytes)?;
    check_expected(&file.config, expected)?;
    let model = tensors::build(&file.config, &file.tensors, device)?;
    Ok((file.config, model))
}

fn check_expected(config: &SiameseConfig, expected: Option<&SiameseConfig>) -> Result<(), WeightsError> {
    match expected {
        Some(expected) if expected != config => {
            if expected.preset != config.preset {
                return Err(WeightsError::WrongPreset { found: config.preset, expected: expected.preset });
            }
            let json = |c: &SiameseConfig| serde_json::to_string(c).unwrap_or_default();
            Err(WeightsError::WrongArchitecture { found: json(config), expected: json(expected) })
        }
        _ => Ok(()),
    }
}

/// Writes a weights file atomically (a temporary file, then a rename), so a killed process
/// never leaves a half-written file behind.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(
    path: &std::path::Path,
    model: &Siamese,
    config: &SiameseConfig,
    encoding: Encoding,
) -> Result<(), WeightsError> {
    let bytes = to_bytes(model, config, encoding);
    crate::write_atomically(path, &bytes)
        .map_err(|e| WeightsError::File { path: path.to_path_buf(), source: Box::new(e) })
}

/// Reads a weights file; see [`from_bytes`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load(
    path: &std::path::Path,
    expected: Option<&SiameseConfig>,
    device: &Device,
) -> Result<(SiameseConfig, Siamese), WeightsError> {
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| WeightsError::File {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| wrap(Box::new(e)))?;
    from_bytes(&bytes, expected, device).map_err(|e| wrap(Box::new(e)))
}

#[cfg(test)]
mod tests;

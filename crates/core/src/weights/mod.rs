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
//! bound; a file of a newer format is refused with a message that says so. (Files of format 1,
//! Burn's burnpack record before December 2026, are read natively by `oneshot-model`, to convert
//! them.) This module has no Burn in it: the page's first, small build reads weights with it.

pub mod committee;
mod format;

use crate::architecture::SiameseConfig;

pub use format::{
    Encoding, FORMAT_VERSION, MAX_HEADER_BYTES, TensorValues, WeightsFile, check_architecture, is_format_1,
    read, write,
};

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
        found: crate::architecture::Preset,
        /// Preset asked for.
        expected: crate::architecture::Preset,
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
    /// A committee of several networks where one network is needed (training, fine-tuning a
    /// single network, converting).
    #[error(
        "the file is a committee of {0} networks, where one network is needed (take one with `oneshot pack --network N`)"
    )]
    Committee(usize),
    /// A committee whose networks differ in their twin (only their heads' product term may differ).
    #[error("the committee's networks differ in architecture: every network must have the first one's twin")]
    MixedCommittee,
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

/// Reads only the architecture of a weights file (of a committee's first network), checking
/// its integrity.
pub fn read_config(bytes: &[u8]) -> Result<SiameseConfig, WeightsError> {
    let first = committee::members(bytes)?.into_iter().next().ok_or(WeightsError::NotWeights)?;
    read(first).map(|file| file.config)
}

/// Refuses a file whose architecture is not `expected` (when given), naming both; its head may
/// differ in the product term ([`SiameseConfig::same_twin`]).
pub fn check_expected(config: &SiameseConfig, expected: Option<&SiameseConfig>) -> Result<(), WeightsError> {
    match expected {
        Some(expected) if !expected.same_twin(config) => {
            if expected.preset != config.preset {
                return Err(WeightsError::WrongPreset { found: config.preset, expected: expected.preset });
            }
            let json = |c: &SiameseConfig| serde_json::to_string(c).unwrap_or_default();
            Err(WeightsError::WrongArchitecture { found: json(config), expected: json(expected) })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;

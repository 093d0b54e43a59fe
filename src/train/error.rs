//! Why training stops early.

use std::path::PathBuf;

use oneshot_core::weights::WeightsError;
use oneshot_data::DataError;

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data set could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// Another file of the run could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The output folder holds a run with other options.
    #[error("{path} holds a run with other options ({reason}); choose another --out or remove it")]
    OptionsChanged {
        /// The run's folder.
        path: PathBuf,
        /// The first difference.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Invalid(String),
}

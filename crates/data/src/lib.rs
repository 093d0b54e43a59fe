//! Omniglot: the image zips, Lake's one-shot runs, the alphabet splits, random within-alphabet
//! tasks, and Lake's recorded pen strokes.

mod archive;
mod omniglot;
mod runs;
mod split;
mod strokes;
mod tasks;

pub use archive::Archive;
pub use omniglot::{Alphabet, Character, Omniglot};
pub use runs::{OneShotRun, load_runs};
pub use split::{DataSet, LAKE_TEST_ALPHABETS, Split, VALIDATION_ALPHABETS};
pub use strokes::{OMNIGLOT_FRAME, StrokeAlphabet, StrokeCharacter, load_strokes, parse_strokes};
pub use tasks::{PlanSampler, Task, TaskPlan, TaskSampler};

use std::path::{Path, PathBuf};

/// Environment variable naming the Omniglot folder.
pub const DATA_DIR_ENV: &str = "OMNIGLOT_DIR";
/// Where the Omniglot folder is looked for, in order, when neither a flag nor the environment
/// names one: the download folder of `scripts/get-omniglot`, then a copy shared beside the
/// checkout.
pub const DEFAULT_DATA_DIRS: [&str; 2] = ["data/omniglot", "../shared/data/omniglot"];
/// What fetches the data set.
pub const DOWNLOAD_COMMAND: &str = "scripts/get-omniglot";

/// Everything that can go wrong reading the data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No Omniglot folder was found.
    #[error(
        "Omniglot is not in {looked_in}: download it with {DOWNLOAD_COMMAND}, or point --data-dir or \
         OMNIGLOT_DIR at a folder holding images_background.zip, images_evaluation.zip and all_runs.zip"
    )]
    Missing {
        /// The folders tried, comma-separated.
        looked_in: String,
    },
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A zip archive is corrupt or not a zip at all.
    #[error("{path} is not a readable zip archive: {source}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader said.
        source: zip::result::ZipError,
    },
    /// A file inside an archive is not a decodable image.
    #[error("{entry} in {archive} is not a readable PNG image: {reason}")]
    Image {
        /// The archive or folder.
        archive: PathBuf,
        /// The file inside it.
        entry: String,
        /// The decoder's reason.
        reason: String,
    },
    /// The archive's layout is not the one expected.
    #[error("unexpected content in {archive}: {reason}")]
    Layout {
        /// The archive or folder.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An alphabet name that is not in the data set.
    #[error("unknown alphabet {name:?}; known alphabets: {known}")]
    UnknownAlphabet {
        /// The name asked for.
        name: String,
        /// The names there are, comma-separated.
        known: String,
    },
    /// A task was asked for that the alphabets cannot provide.
    #[error("cannot sample {way}-way tasks: no alphabet in the selection has {way} characters")]
    TaskTooWide {
        /// The number of classes asked for.
        way: usize,
    },
}

/// The Omniglot folder: the flag if given, else `$OMNIGLOT_DIR`, else the first of
/// [`DEFAULT_DATA_DIRS`] that exists; an error naming the download command if none does.
pub fn data_dir(flag: Option<&Path>) -> Result<PathBuf, DataError> {
    let named = flag.map(Path::to_path_buf).or_else(|| std::env::var_os(DATA_DIR_ENV).map(PathBuf::from));
    let candidates = match named {
        Some(dir) => vec![dir],
        None => DEFAULT_DATA_DIRS.iter().map(PathBuf::from).collect(),
    };
    candidates.iter().find(|dir| dir.is_dir()).cloned().ok_or_else(|| DataError::Missing {
        looked_in: candidates.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// Decodes a PNG (any colour type) into ink coverage.
fn decode_png(
    bytes: &[u8],
    archive: &Path,
    entry: &str,
) -> Result<oneshot_core::preprocess::InkImage, DataError> {
    let image_error = |reason: String| DataError::Image {
        archive: archive.to_path_buf(),
        entry: entry.to_string(),
        reason,
    };
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| image_error(e.to_string()))?
        .into_luma8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    oneshot_core::preprocess::InkImage::from_luma(w, h, image.as_raw())
        .map_err(|e| image_error(e.to_string()))
}

//! Shared by the integration tests: the data folder, decoded once per test binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use oneshot_data::{self as data, DataSet};

/// The Omniglot folder the tests read (`$OMNIGLOT_DIR`, or the first default folder that
/// exists); without one, the panic message names the command that downloads it.
pub fn data_dir() -> PathBuf {
    data::data_dir(None).unwrap_or_else(|e| panic!("{e}"))
}

/// Both archives, decoded once.
pub fn dataset() -> &'static DataSet {
    static DATA: OnceLock<DataSet> = OnceLock::new();
    DATA.get_or_init(|| DataSet::load(&data_dir()).expect("the Omniglot zips load"))
}

/// A fresh empty folder under the system temp dir.
pub fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(name).tempdir().expect("temp dir")
}

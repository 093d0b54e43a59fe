//! Shared by the integration tests: the data folder, decoded once per test binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use oneshot::data::{self, DataSet};

/// The Omniglot folder the tests read (the default, or `$OMNIGLOT_DIR`).
pub fn data_dir() -> PathBuf {
    data::data_dir(None)
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

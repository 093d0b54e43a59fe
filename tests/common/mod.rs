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

/// `network` (one weights file) with a product term added to its head (`train
/// --product-head`): random weights `u`, seeded, so the term counts. Returns the new file, f32,
/// and `u`.
pub fn with_product_term(network: &[u8], seed: u64) -> (Vec<u8>, Vec<f32>) {
    use oneshot_core::weights::{Encoding, TensorValues, read, write};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    let mut file = read(network).expect("a weights file");
    file.config.product_head = true;
    let mut rng = StdRng::seed_from_u64(seed);
    let u: Vec<f32> = (0..file.config.embedding).map(|_| rng.random_range(-0.5..0.5)).collect();
    file.tensors.push(TensorValues { id: 0, shape: vec![file.config.embedding, 1], values: u.clone() });
    (write(&file.config, &file.tensors, Encoding::F32), u)
}

//! The weights the page embeds: they load as the `web` preset and keep their reported accuracy
//! on Lake's 400 official trials (an evaluation of a few seconds, not a timing).

mod common;

use burn::tensor::Device;
use oneshot::eval::evaluate_runs;
use oneshot_core::architecture::Preset;
use oneshot_data::{Archive, load_runs};
use oneshot_model::recognize::{DEFAULT_VIEWS, Recognizer};
use oneshot_model::weights;

/// The page embeds exactly this file.
const SHIPPED: &[u8] = include_bytes!("../weights/web.osw");
/// Accuracy on Lake's runs reported in the README for the shipped weights with the page's
/// test-time views, in percent.
const REPORTED_LAKE_ACCURACY: f64 = 94.5;

#[test]
fn shipped_weights_load_and_keep_their_accuracy() {
    let device = Device::flex();
    let (config, model) =
        weights::from_bytes(SHIPPED, Some(&Preset::Web.config()), &device).expect("shipped weights load");
    let recognizer = Recognizer::new(model, config, device).with_views(DEFAULT_VIEWS);
    let runs = load_runs(&Archive::open(&common::data_dir().join("all_runs.zip")).unwrap()).unwrap();
    let accuracy = evaluate_runs(&recognizer, &runs).unwrap();
    assert_eq!(accuracy.trials, 400);
    assert!(
        accuracy.percent() >= REPORTED_LAKE_ACCURACY - 1.0,
        "{:.2} % on Lake's runs, README reports {REPORTED_LAKE_ACCURACY} %",
        accuracy.percent()
    );
    assert!(SHIPPED.len() <= 4_000_000, "shipped weights are {} bytes", SHIPPED.len());
}

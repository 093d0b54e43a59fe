use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor, Tolerance};

use super::*;
use crate::build::BuildNetwork;
use oneshot_core::architecture::{Preset, SiameseConfig};

fn device() -> Device {
    let device = Device::flex();
    device.seed(3);
    device
}

fn web() -> (SiameseConfig, Siamese) {
    let config = Preset::Web.config();
    let model = config.init(&device());
    (config, model)
}

/// A batch of random images. Draw it once per test and clone it: the seed is the backend's, shared
/// by every test thread, so two draws can differ when another test draws in between.
fn images() -> Tensor<4> {
    Tensor::<4>::random([3, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device())
}

/// The ids of a module's trainable parameters (what an optimiser's state is keyed by), in
/// visiting order.
fn ids(model: &Siamese) -> Vec<u64> {
    struct Ids(Vec<u64>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().is_require_grad() {
                self.0.push(param.id.val());
            }
        }
    }
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    ids.0
}

#[test]
fn f32_round_trip_is_exact_and_keeps_parameter_ids() {
    let (config, model) = web();
    let bytes = to_bytes(&model, &config, Encoding::F32);
    let (loaded_config, loaded) = from_bytes(&bytes, Some(&config), &device()).unwrap();
    assert_eq!(loaded_config, config);
    let images = images();
    let before = model.valid().embed(images.clone()).into_data();
    let after = loaded.valid().embed(images).into_data();
    before.assert_approx_eq::<f32>(&after, Tolerance::absolute(0.0));
    // An optimiser's state is keyed by the trainable parameters' ids: a resumed run needs them.
    let training = device().autodiff();
    let trained = config.init(&training).train();
    let bytes_ad = to_bytes(&trained, &config, Encoding::F32);
    let (_, reloaded) = from_bytes(&bytes_ad, Some(&config), &training).unwrap();
    let expected = ids(&trained);
    assert_eq!(expected.len(), 4 * 4 + 4, "conv weight and bias, γ and β per stage; dense and head");
    assert_eq!(ids(&reloaded.train()), expected);
}

#[test]
fn q8_is_a_quarter_of_the_size_and_close() {
    let (config, model) = web();
    let exact = to_bytes(&model, &config, Encoding::F32);
    let small = to_bytes(&model, &config, Encoding::Q8);
    assert!(small.len() * 10 < exact.len() * 3, "{} vs {} bytes", small.len(), exact.len());
    let (_, loaded) = from_bytes(&small, Some(&config), &device()).unwrap();
    let images = images();
    let before = model.valid().embed(images.clone()).into_data().try_to_vec::<f32>().unwrap();
    let after = loaded.valid().embed(images).into_data().try_to_vec::<f32>().unwrap();
    let worst = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst > 0.0 && worst < 0.02, "largest difference {worst}");
}

#[test]
fn asynchronous_export_keeps_every_tensor() {
    let device = device();
    let config = Preset::Web.config();
    // Move the running statistics away from their initial values, as training does.
    let model = config.init(&device.clone().autodiff()).train();
    let images = images();
    let _ = model.embed(images.clone().to_device(&device.clone().autodiff()));
    let model = model.valid();
    let exported = block_on(to_bytes_async(&model, &config)).unwrap();
    let (_, loaded) = from_bytes(&exported, Some(&config), &device).unwrap();
    // Inference uses the running statistics, so equal outputs mean equal statistics too.
    let expected = model.embed(images.clone()).into_data();
    loaded.embed(images.clone()).into_data().assert_approx_eq::<f32>(&expected, Tolerance::absolute(0.0));
    // …which a network that did not see the batch does not have.
    let fresh = config.init(&device).embed(images).into_data().try_to_vec::<f32>().unwrap();
    let expected = expected.try_to_vec::<f32>().unwrap();
    assert!(fresh.iter().zip(&expected).any(|(a, b)| (a - b).abs() > 1e-4));
}

/// Runs a future that never waits on I/O (CPU readbacks are ready at once).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut context) {
            return out;
        }
    }
}

#[test]
fn format_1_files_still_load_natively() {
    let (config, model) = web();
    // A format-1 file as the earlier version wrote it: Burn's burnpack record after the header.
    let payload = model.clone().into_record().into_bytes().unwrap();
    let header = serde_json::json!({ "config": config, "payload_len": payload.len(), "payload_crc32": crc32fast::hash(&payload) });
    let json = serde_json::to_vec(&header).unwrap();
    let mut old = b"ONESHOTW".to_vec();
    old.extend((json.len() as u32).to_le_bytes());
    old.extend(json);
    old.extend(payload.iter());
    let (_, loaded) = from_bytes(&old, Some(&config), &device()).unwrap();
    let images = images();
    let before = model.valid().embed(images.clone()).into_data();
    loaded.valid().embed(images).into_data().assert_approx_eq::<f32>(&before, Tolerance::absolute(0.0));
    // Only the readers of the current format refuse it (the page is one).
    assert!(matches!(oneshot_core::weights::read(&old), Err(WeightsError::OldFormat)));
}

#[test]
fn other_presets_and_architectures_are_rejected() {
    let (web, model) = web();
    let bytes = to_bytes(&model, &web, Encoding::F32);
    let koch = Preset::Koch.config();
    let err = from_bytes(&bytes, Some(&koch), &device()).err().unwrap();
    assert!(matches!(err, WeightsError::WrongPreset { .. }));
    assert!(err.to_string().contains("Web") && err.to_string().contains("Koch"), "{err}");
    let wider = SiameseConfig { embedding: 128, ..web.clone() };
    assert!(matches!(
        from_bytes(&bytes, Some(&wider), &device()),
        Err(WeightsError::WrongArchitecture { .. })
    ));
}

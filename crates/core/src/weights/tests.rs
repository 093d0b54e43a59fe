use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor, Tolerance};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::model::Preset;

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
    let before = model.valid().embed(images()).into_data();
    let after = loaded.valid().embed(images()).into_data();
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
    let before = model.valid().embed(images()).into_data().try_to_vec::<f32>().unwrap();
    let after = loaded.valid().embed(images()).into_data().try_to_vec::<f32>().unwrap();
    let worst = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst > 0.0 && worst < 0.02, "largest difference {worst}");
}

#[test]
fn asynchronous_export_keeps_every_tensor() {
    let device = device();
    let config = Preset::Web.config();
    // Move the running statistics away from their initial values, as training does.
    let model = config.init(&device.clone().autodiff()).train();
    let _ = model.embed(images().to_device(&device.clone().autodiff()));
    let model = model.valid();
    let exported = block_on(to_bytes_async(&model, &config)).unwrap();
    let (_, loaded) = from_bytes(&exported, Some(&config), &device).unwrap();
    // Inference uses the running statistics, so equal outputs mean equal statistics too.
    let expected = model.embed(images()).into_data();
    loaded.embed(images()).into_data().assert_approx_eq::<f32>(&expected, Tolerance::absolute(0.0));
    // …which a network that did not see the batch does not have.
    let fresh = config.init(&device).embed(images()).into_data().try_to_vec::<f32>().unwrap();
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

/// The header of a file as JSON, and the payload.
fn parts(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[12..12 + len]).unwrap(), bytes[12 + len..].to_vec())
}

/// A file from a header and a payload, its checksum and length made right (so only the checks
/// after the checksum can refuse it).
fn assemble(mut header: serde_json::Value, payload: &[u8]) -> Vec<u8> {
    header["payload_len"] = payload.len().into();
    header["payload_crc32"] = crc32fast::hash(payload).into();
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = b"ONESHOTW".to_vec();
    out.extend((json.len() as u32).to_le_bytes());
    out.extend(json);
    out.extend(payload);
    out
}

#[test]
fn damaged_files_are_rejected_with_reasons() {
    let (config, model) = web();
    let bytes = to_bytes(&model, &config, Encoding::F32);
    let err = |b: &[u8]| from_bytes(b, Some(&config), &device()).err().unwrap();
    assert!(matches!(err(&bytes[..bytes.len() / 2]), WeightsError::Truncated { .. }));
    assert!(matches!(err(&bytes[..10]), WeightsError::Truncated { .. }));
    assert!(matches!(err(b"PK\x03\x04 not weights"), WeightsError::NotWeights));
    let mut flipped = bytes.clone();
    let last = flipped.len() - 100;
    flipped[last] ^= 0x55;
    assert!(matches!(err(&flipped), WeightsError::Checksum));
    // Re-checksummed damage: a shape, a missing tensor, a non-number.
    let (header, payload) = parts(&bytes);
    let mut wrong_shape = header.clone();
    wrong_shape["tensors"][0]["shape"] = serde_json::json!([3, 3]);
    assert!(matches!(err(&assemble(wrong_shape, &payload)), WeightsError::Tensors(_)));
    let mut fewer = header.clone();
    fewer["tensors"].as_array_mut().unwrap().pop();
    let message = err(&assemble(fewer, &payload)).to_string();
    assert!(message.contains("belong to no tensor"), "{message}");
    let mut nan = payload.clone();
    nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(err(&assemble(header, &nan)).to_string().contains("not finite"));
}

#[test]
fn newer_and_older_formats_say_so() {
    let (config, model) = web();
    let (mut header, payload) = parts(&to_bytes(&model, &config, Encoding::F32));
    header["format"] = 3.into();
    let newer = from_bytes(&assemble(header, &payload), None, &device()).err().unwrap();
    assert!(matches!(newer, WeightsError::NewerFormat { found: 3, supported: 2 }));
    assert!(newer.to_string().contains("newer"), "{newer}");
}

#[test]
fn format_1_files_still_load_natively() {
    let (config, model) = web();
    // A format-1 file as the earlier version wrote it: Burn's burnpack record after the header.
    let payload = model.clone().into_record().into_bytes().unwrap();
    let header = serde_json::json!({ "config": config, "payload_len": 0, "payload_crc32": 0 });
    let old = assemble(header, &payload);
    let (_, loaded) = from_bytes(&old, Some(&config), &device()).unwrap();
    let before = model.valid().embed(images()).into_data();
    loaded.valid().embed(images()).into_data().assert_approx_eq::<f32>(&before, Tolerance::absolute(0.0));
    // Only the readers of the current format refuse it (the page is one).
    assert!(matches!(format::read(&old), Err(WeightsError::OldFormat)));
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
    // An architecture nobody could build is refused before anything is allocated.
    let (mut header, payload) = parts(&bytes);
    header["config"]["stages"][0]["channels"] = 1_000_000.into();
    assert!(matches!(
        from_bytes(&assemble(header, &payload), None, &device()),
        Err(WeightsError::Architecture(_))
    ));
}

/// Random damage to a valid file, with the checksum repaired half of the time so the checks
/// behind it are reached too: the reader never panics, and every refusal says why.
#[test]
fn fuzzed_files_never_panic() {
    let (config, model) = web();
    let valid = [to_bytes(&model, &config, Encoding::F32), to_bytes(&model, &config, Encoding::Q8)];
    let mut rng = StdRng::seed_from_u64(0xF022);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..10_000 {
        let mut bytes = valid[round % 2].clone();
        let (header, payload) = parts(&bytes);
        match rng.random_range(0..6) {
            0 => bytes.truncate(rng.random_range(0..bytes.len())),
            1 => {
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            2 => {
                // Damage inside the payload, checksum repaired.
                let mut payload = payload;
                let at = rng.random_range(0..payload.len());
                payload[at] = rng.random();
                bytes = assemble(header, &payload);
            }
            3 => {
                // A random edit of the header's JSON text, checksum repaired.
                let mut text = serde_json::to_string(&header).unwrap().into_bytes();
                let at = rng.random_range(0..text.len());
                text[at] = b"0123456789-,:[]{}\"e"[rng.random_range(0..19)];
                match serde_json::from_slice::<serde_json::Value>(&text) {
                    Ok(edited) if edited.is_object() => bytes = assemble(edited, &payload),
                    _ => bytes[12 + (at % 40)] ^= 0xFF,
                }
            }
            4 => {
                // A tensor entry with a random shape or encoding.
                let mut header = header;
                let index = rng.random_range(0..header["tensors"].as_array().unwrap().len());
                if rng.random_bool(0.5) {
                    let dims: Vec<u64> =
                        (0..rng.random_range(0..5)).map(|_| rng.random_range(0..5000)).collect();
                    header["tensors"][index]["shape"] = dims.into();
                } else {
                    let flip = if header["tensors"][index]["encoding"] == "f32" { "q8" } else { "f32" };
                    header["tensors"][index]["encoding"] = flip.into();
                }
                bytes = assemble(header, &payload);
            }
            _ => {
                // A huge declared header or payload length.
                let len: u32 = rng.random();
                bytes[8..12].copy_from_slice(&len.to_le_bytes());
            }
        }
        match from_bytes(&bytes, Some(&config), &device()) {
            Ok(_) => accepted += 1,
            Err(error) => {
                assert!(!error.to_string().is_empty());
                refused += 1;
            }
        }
    }
    // Most damage is caught; a byte flipped in a value and re-checksummed is still a network.
    assert!(refused > 8_000, "{refused} refused, {accepted} accepted");
}

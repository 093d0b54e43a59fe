//! The format's checks on damaged, newer and hostile files, on the shipped networks' files, and
//! the shipped committee answering as its networks together: no Burn here, as in the page's
//! first build.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::architecture::Preset;
use crate::recognize::CpuRecognizer;

/// The shipped committee file (two 8-bit networks).
const SHIPPED_FILE: &[u8] = include_bytes!("../../../../weights/web.osw");

/// The committee's first network, a plain weights file.
fn shipped() -> &'static [u8] {
    committee::members(SHIPPED_FILE).unwrap()[0]
}

/// The shipped network's tensors as exact `f32`.
fn exact() -> Vec<u8> {
    let file = read(shipped()).unwrap();
    write(&file.config, &file.tensors, Encoding::F32)
}

/// What the page does with a file: read it and build the CPU recognizer.
fn load(bytes: &[u8]) -> Result<CpuRecognizer, WeightsError> {
    CpuRecognizer::from_bytes(bytes, Some(&Preset::Web.config()))
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
    let bytes = exact();
    let err = |b: &[u8]| load(b).err().unwrap();
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
    let (mut header, payload) = parts(shipped());
    header["format"] = 3.into();
    let newer = read(&assemble(header, &payload)).err().unwrap();
    assert!(matches!(newer, WeightsError::NewerFormat { found: 3, supported: 2 }));
    assert!(newer.to_string().contains("newer"), "{newer}");
}

#[test]
fn unbuildable_architectures_are_refused_before_anything_is_allocated() {
    let (mut header, payload) = parts(shipped());
    header["config"]["stages"][0]["channels"] = 1_000_000.into();
    assert!(matches!(read(&assemble(header, &payload)), Err(WeightsError::Architecture(_))));
}

#[test]
fn q8_and_f32_round_trip() {
    let file = read(shipped()).unwrap();
    let again = read(&write(&file.config, &file.tensors, Encoding::Q8)).unwrap();
    // Re-quantising 8-bit values on the same scales is exact.
    assert_eq!(again.tensors, file.tensors);
    let exact = read(&exact()).unwrap();
    assert_eq!(exact.tensors, file.tensors);
}

/// Random damage to a valid file, with the checksum repaired half of the time so the checks
/// behind it are reached too: the reader never panics, and every refusal says why.
#[test]
fn fuzzed_files_never_panic() {
    let valid = [exact(), shipped().to_vec()];
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
        match load(&bytes) {
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

/// The page runs the shipped committee as one recognizer: a logit is the mean of its two
/// networks' logits, also where only one network's head has the product term, and damage to
/// either network refuses the whole file.
#[test]
fn the_shipped_committee_answers_with_its_networks_mean_logit() {
    let networks = committee::members(SHIPPED_FILE).unwrap();
    assert_eq!(networks.len(), 2);
    let both = load(SHIPPED_FILE).unwrap();
    let each: Vec<CpuRecognizer> = networks.iter().map(|n| load(n).unwrap()).collect();
    assert_eq!((both.networks(), both.embedding_width()), (2, 2 * each[0].embedding_width()));
    let mut rng = StdRng::seed_from_u64(3);
    let side = both.config().input_size;
    let pictures: Vec<Vec<f32>> =
        (0..4).map(|_| (0..side * side).map(|_| rng.random_range(0.0..1.0)).collect()).collect();
    let logits = |r: &CpuRecognizer| {
        let embedded = r.embed_preprocessed(&pictures);
        let width = r.picture_width();
        r.logits(&embedded[..width], &embedded[width..])
    };
    let (a, b, together) = (logits(&each[0]), logits(&each[1]), logits(&both));
    assert_eq!(together.len(), 3);
    assert!(a.iter().zip(&b).any(|(a, b)| (a - b).abs() > 0.1), "the networks differ: {a:?} {b:?}");
    assert_mean(&together, &a, &b);

    // A committee may mix a network whose head has the product term with one whose head has
    // not (the second network gets one here); each still counts with its own head.
    let mut file = read(networks[1]).unwrap();
    file.config.product_head = true;
    let u: Vec<f32> = (0..file.config.embedding).map(|_| rng.random_range(-0.5..0.5)).collect();
    file.tensors.push(TensorValues { id: 0, shape: vec![file.config.embedding, 1], values: u });
    let with_product = write(&file.config, &file.tensors, Encoding::F32);
    let mixed = load(&committee::join(&[networks[0], &with_product])).unwrap();
    let c = logits(&load(&with_product).unwrap());
    assert!(c.iter().zip(&b).any(|(c, b)| (c - b).abs() > 0.1), "the product term counts: {c:?} {b:?}");
    assert_mean(&logits(&mixed), &a, &c);

    let mut damaged = SHIPPED_FILE.to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x55;
    assert!(matches!(load(&damaged), Err(WeightsError::Checksum)));
}

/// Asserts that each of `together` is the mean of `a`'s and `b`'s at its place.
fn assert_mean(together: &[f32], a: &[f32], b: &[f32]) {
    for ((t, a), b) in together.iter().zip(a).zip(b) {
        assert!((t - (a + b) / 2.0).abs() < 1e-4, "{t} is not the mean of {a} and {b}");
    }
}

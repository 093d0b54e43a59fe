//! The bytes of a weights file: signature, header, tensor payload, and every check on them.

use serde::{Deserialize, Serialize};

use super::WeightsError;
use crate::architecture::SiameseConfig;

/// One tensor of a network: its parameter id, shape and values (row-major), in the network's
/// visiting order within a file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorValues {
    /// Burn's parameter id.
    pub id: u64,
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

const MAGIC: &[u8; 8] = b"ONESHOTW";
/// The format this version writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 2;
/// A header longer than this is refused before it is parsed (the `koch` preset's is under 8 KiB).
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// The largest network a file may describe, in parameters (Koch et al.'s has 38,951,745).
const MAX_PARAMETERS: usize = 64_000_000;
/// Tensors with fewer values than this stay `f32` under [`Encoding::Q8`] (biases, batch-norm
/// parameters and statistics: small, and sensitive).
const Q8_MIN_VALUES: usize = 1024;

/// How a file stores its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Every value as a little-endian `f32`: exact (training checkpoints, fine-tuned networks).
    F32,
    /// Large tensors as 8-bit integers with one `f32` scale per slice of the first axis (the
    /// value is `q · scale`, `scale = max |slice| / 127`); small ones as `f32`. For shipping.
    Q8,
}

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TensorEntry {
    /// Burn's parameter id (kept so an optimiser's state still matches after a reload).
    id: u64,
    /// The tensor's shape.
    shape: Vec<usize>,
    /// How its values are stored.
    encoding: Encoding,
}

#[derive(Serialize, Deserialize)]
struct Header {
    /// Absent in format 1.
    #[serde(default = "format_1")]
    format: u32,
    config: SiameseConfig,
    #[serde(default)]
    tensors: Vec<TensorEntry>,
    payload_len: usize,
    payload_crc32: u32,
}

fn format_1() -> u32 {
    1
}

/// A checked file: its architecture and decoded tensors.
#[derive(Clone, Debug)]
pub struct WeightsFile {
    /// The architecture.
    pub config: SiameseConfig,
    /// Every tensor, in the network's visiting order.
    pub tensors: Vec<TensorValues>,
}

/// Encodes a file.
pub fn write(config: &SiameseConfig, tensors: &[TensorValues], encoding: Encoding) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut entries = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let encoding = if tensor.values.len() >= Q8_MIN_VALUES { encoding } else { Encoding::F32 };
        match encoding {
            Encoding::F32 => payload.extend(tensor.values.iter().flat_map(|v| v.to_le_bytes())),
            Encoding::Q8 => {
                encode_q8(&tensor.values, tensor.shape.first().copied().unwrap_or(1), &mut payload)
            }
        }
        entries.push(TensorEntry { id: tensor.id, shape: tensor.shape.clone(), encoding });
    }
    let header = Header {
        format: FORMAT_VERSION,
        config: config.clone(),
        tensors: entries,
        payload_len: payload.len(),
        payload_crc32: crc32fast::hash(&payload),
    };
    let header = serde_json::to_vec(&header).expect("a header always serialises");
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    out
}

/// Whether `bytes` start like a file of format 1 (no `format` field in the header).
pub fn is_format_1(bytes: &[u8]) -> bool {
    split(bytes).is_ok_and(|(header, _)| header.format == 1)
}

/// Checks and decodes a file.
pub fn read(bytes: &[u8]) -> Result<WeightsFile, WeightsError> {
    let (header, payload) = split(bytes)?;
    match header.format {
        1 => return Err(WeightsError::OldFormat),
        FORMAT_VERSION => {}
        found => return Err(WeightsError::NewerFormat { found, supported: FORMAT_VERSION }),
    }
    check_architecture(&header.config)?;
    let mut at = 0usize;
    let mut tensors = Vec::with_capacity(header.tensors.len());
    for (index, entry) in header.tensors.iter().enumerate() {
        let bad = |what: String| WeightsError::Tensors(format!("tensor {index}: {what}"));
        let count = entry
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_PARAMETERS)
            .ok_or_else(|| bad(format!("shape {:?} is too large", entry.shape)))?;
        let rows = entry.shape.first().copied().unwrap_or(1).max(1);
        let len = match entry.encoding {
            Encoding::F32 => count.checked_mul(4),
            Encoding::Q8 => rows.checked_mul(4).and_then(|scales| scales.checked_add(count)),
        };
        let end = len.and_then(|len| at.checked_add(len)).filter(|&end| end <= payload.len());
        let end =
            end.ok_or_else(|| bad(format!("its values run past the payload ({} bytes)", payload.len())))?;
        let raw = &payload[at..end];
        let values = match entry.encoding {
            Encoding::F32 => {
                raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            }
            Encoding::Q8 => decode_q8(raw, rows, count)
                .ok_or_else(|| bad("its 8-bit rows do not divide evenly".into()))?,
        };
        if values.iter().any(|v: &f32| !v.is_finite()) {
            return Err(bad("it holds values that are not finite numbers".into()));
        }
        tensors.push(TensorValues { id: entry.id, shape: entry.shape.clone(), values });
        at = end;
    }
    if at != payload.len() {
        return Err(WeightsError::Tensors(format!(
            "{} bytes of the payload belong to no tensor",
            payload.len() - at
        )));
    }
    Ok(WeightsFile { config: header.config, tensors })
}

/// The signature, header and payload of a file, with the payload's checksum verified.
fn split(bytes: &[u8]) -> Result<(Header, &[u8]), WeightsError> {
    let truncated = |expected| WeightsError::Truncated { expected, found: bytes.len() };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(WeightsError::NotWeights);
    }
    let start = MAGIC.len() + 4;
    let len_bytes: [u8; 4] =
        bytes.get(MAGIC.len()..start).and_then(|b| b.try_into().ok()).ok_or(truncated(start))?;
    let header_len = u32::from_le_bytes(len_bytes) as usize;
    if header_len > MAX_HEADER_BYTES {
        return Err(WeightsError::Header(format!("it claims {header_len} bytes, more than any header has")));
    }
    let header_end = start + header_len;
    let header = bytes.get(start..header_end).ok_or(truncated(header_end))?;
    let header: Header = serde_json::from_slice(header).map_err(|e| WeightsError::Header(e.to_string()))?;
    let end = header_end.checked_add(header.payload_len).ok_or(truncated(usize::MAX))?;
    let payload = bytes.get(header_end..end).ok_or(truncated(end))?;
    if crc32fast::hash(payload) != header.payload_crc32 {
        return Err(WeightsError::Checksum);
    }
    Ok((header, payload))
}

/// Refuses architectures this project could not build, or only with absurd memory: the
/// network is built from the file's description before its tensors are checked against it.
pub fn check_architecture(config: &SiameseConfig) -> Result<(), WeightsError> {
    let bad = |what: &str| Err(WeightsError::Architecture(what.into()));
    if !(1..=512).contains(&config.input_size) {
        return bad("the input side must be 1 to 512 pixels");
    }
    if config.stages.is_empty() || config.stages.len() > 16 {
        return bad("a network has 1 to 16 convolutional stages");
    }
    if config.stages.iter().any(|s| !(1..=4096).contains(&s.channels) || !(1..=32).contains(&s.kernel)) {
        return bad("a stage has 1 to 4096 channels and a kernel of 1 to 32");
    }
    if !(1..=65536).contains(&config.embedding) {
        return bad("the embedding has 1 to 65536 values");
    }
    let Some(side) = config.feature_size() else {
        return bad("its stages shrink the input to nothing");
    };
    // Parameters: convolutions, then the dense embedding and the head.
    let mut channels = 1usize;
    let mut parameters = 0usize;
    for stage in &config.stages {
        parameters += channels * stage.channels * stage.kernel * stage.kernel + 5 * stage.channels;
        channels = stage.channels;
    }
    parameters += channels * side * side * config.embedding + 2 * config.embedding + 1;
    if config.product_head {
        parameters += config.embedding;
    }
    if parameters > MAX_PARAMETERS {
        return bad("it has more parameters than any network this project builds");
    }
    Ok(())
}

fn encode_q8(values: &[f32], rows: usize, out: &mut Vec<u8>) {
    let rows = rows.max(1);
    let per_row = values.len() / rows;
    let scales: Vec<f32> = values
        .chunks(per_row.max(1))
        .map(|row| row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0)
        .collect();
    out.extend(scales.iter().flat_map(|s| s.to_le_bytes()));
    for (row, &scale) in values.chunks(per_row.max(1)).zip(&scales) {
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        out.extend(row.iter().map(|v| (v * inverse).round().clamp(-127.0, 127.0) as i8 as u8));
    }
}

fn decode_q8(raw: &[u8], rows: usize, count: usize) -> Option<Vec<f32>> {
    if !count.is_multiple_of(rows) {
        return None;
    }
    let (scales, values) = raw.split_at(rows * 4);
    let per_row = count / rows;
    let scales = scales.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut out = Vec::with_capacity(count);
    for (scale, row) in scales.zip(values.chunks(per_row.max(1))) {
        out.extend(row.iter().map(|&q| q as i8 as f32 * scale));
    }
    (out.len() == count).then_some(out)
}

//! Weights files: the architecture they belong to, a checksum, and Burn's own record (burnpack).
//!
//! Layout: the magic `ONESHOTW`, a little-endian `u32` header length, the header (JSON: the
//! [`SiameseConfig`], the payload length and its CRC-32), then the burnpack bytes of
//! [`Module::into_record`]. The header lets a loader say *which* architecture a file holds
//! before touching a tensor, and the checksum turns a truncated or damaged download into a clear
//! message instead of garbage weights.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::store::{DTypePolicy, ModuleRecord};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::{Siamese, SiameseConfig};

const MAGIC: &[u8; 8] = b"ONESHOTW";

/// Why weights could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The bytes do not start like a weights file.
    #[error("not a weights file of this project (it does not start with the ONESHOTW signature)")]
    NotWeights,
    /// The file ends early.
    #[error("the weights file is truncated: {found} bytes where {expected} are needed")]
    Truncated {
        /// Bytes needed.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The header is not valid.
    #[error("the weights file's header is damaged: {0}")]
    Header(String),
    /// The payload does not match its checksum.
    #[error("the weights file is corrupted (checksum mismatch)")]
    Checksum,
    /// The file holds another preset than the one asked for.
    #[error("the weights are for the {found:?} preset, but the {expected:?} preset was asked for")]
    WrongPreset {
        /// Preset in the file.
        found: crate::model::Preset,
        /// Preset asked for.
        expected: crate::model::Preset,
    },
    /// The file's architecture differs from the one asked for (same preset name).
    #[error("the weights are for a different architecture: file has {found}, expected {expected}")]
    WrongArchitecture {
        /// Architecture in the file, as JSON.
        found: String,
        /// Architecture asked for, as JSON.
        expected: String,
    },
    /// Burn could not read or apply the record.
    #[error("the weights do not fit the network: {0}")]
    Record(String),
    /// A file could not be read or written.
    #[cfg(not(target_arch = "wasm32"))]
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong with it (any of the above, or I/O).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    config: SiameseConfig,
    payload_len: usize,
    payload_crc32: u32,
}

/// Serialises a network and its architecture.
pub fn to_bytes(model: &Siamese, config: &SiameseConfig) -> Result<Vec<u8>, WeightsError> {
    let payload =
        model.clone().into_record().into_bytes().map_err(|e| WeightsError::Record(e.to_string()))?;
    let header = Header {
        config: config.clone(),
        payload_len: payload.len(),
        payload_crc32: crc32fast::hash(&payload),
    };
    let header = serde_json::to_vec(&header).map_err(|e| WeightsError::Header(e.to_string()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Serialises a network that may live on WebGPU, where nothing can be read back synchronously
/// (so [`Module::into_record`] panics there): every tensor, running statistics included, is read
/// back asynchronously into a copy of the network on the CPU, which [`to_bytes`] then writes.
pub async fn to_bytes_async(model: &Siamese, config: &SiameseConfig) -> Result<Vec<u8>, WeightsError> {
    let mut tensors = CollectTensors(Vec::new());
    model.visit(&mut tensors);
    let mut values = Vec::with_capacity(tensors.0.len());
    for tensor in tensors.0 {
        let data = tensor.into_data_async().await.map_err(|e| WeightsError::Record(format!("{e:?}")))?;
        values.push(data.try_into_vec::<f32>().map_err(|e| WeightsError::Record(format!("{e:?}")))?);
    }
    let mut replace = ReplaceTensors { values: values.into_iter(), error: None };
    let copy = config.init(&Device::flex()).map(&mut replace);
    match replace.error {
        Some(error) => Err(WeightsError::Record(error)),
        None => to_bytes(&copy, config),
    }
}

/// Every float tensor of a module (parameters and running statistics), flattened, in visiting order.
struct CollectTensors(Vec<Tensor<1>>);

impl ModuleVisitor for CollectTensors {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let len = tensor.shape().num_elements();
        self.0.push(tensor.reshape([len]));
    }
}

/// Puts the values [`CollectTensors`] read, in the same order, into a module of the same
/// architecture.
struct ReplaceTensors {
    values: std::vec::IntoIter<Vec<f32>>,
    error: Option<String>,
}

impl ModuleMapper for ReplaceTensors {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let next = self.values.next();
        param.map(|tensor| {
            let shape = tensor.shape();
            match next {
                Some(values) if values.len() == shape.num_elements() => {
                    Tensor::from_data(TensorData::new(values, shape), &tensor.device())
                }
                _ => {
                    self.error
                        .get_or_insert_with(|| "the network's tensors do not match its architecture".into());
                    tensor
                }
            }
        })
    }
}

/// Reads only the architecture of a weights file, checking its integrity.
pub fn read_config(bytes: &[u8]) -> Result<SiameseConfig, WeightsError> {
    split(bytes).map(|(header, _)| header.config)
}

/// Builds the network stored in `bytes` on `device`. With `expected`, a file of any other
/// architecture is rejected, naming both.
pub fn from_bytes(
    bytes: &[u8],
    expected: Option<&SiameseConfig>,
    device: &Device,
) -> Result<(SiameseConfig, Siamese), WeightsError> {
    let (header, payload) = split(bytes)?;
    let config = header.config;
    if let Some(expected) = expected
        && *expected != config
    {
        if expected.preset != config.preset {
            return Err(WeightsError::WrongPreset { found: config.preset, expected: expected.preset });
        }
        let json = |c: &SiameseConfig| serde_json::to_string(c).unwrap_or_default();
        return Err(WeightsError::WrongArchitecture { found: json(&config), expected: json(expected) });
    }
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(payload.to_vec()))
        .map_err(|e| WeightsError::Record(e.to_string()))?
        .with_dtype_policy(DTypePolicy::CastToModule);
    let model =
        config.init(device).try_load_record(record).map_err(|e| WeightsError::Record(e.to_string()))?;
    Ok((config, model))
}

fn split(bytes: &[u8]) -> Result<(Header, &[u8]), WeightsError> {
    let truncated = |expected| WeightsError::Truncated { expected, found: bytes.len() };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(WeightsError::NotWeights);
    }
    let start = MAGIC.len() + 4;
    let len_bytes: [u8; 4] =
        bytes.get(MAGIC.len()..start).ok_or(truncated(start))?.try_into().map_err(|_| truncated(start))?;
    let header_end = start + u32::from_le_bytes(len_bytes) as usize;
    let header = bytes.get(start..header_end).ok_or(truncated(header_end))?;
    let header: Header = serde_json::from_slice(header).map_err(|e| WeightsError::Header(e.to_string()))?;
    let end = header_end + header.payload_len;
    let payload = bytes.get(header_end..end).ok_or(truncated(end))?;
    if crc32fast::hash(payload) != header.payload_crc32 {
        return Err(WeightsError::Checksum);
    }
    Ok((header, payload))
}

/// Writes a weights file atomically (a temporary file, then a rename), so a killed process
/// never leaves a half-written file behind.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(path: &std::path::Path, model: &Siamese, config: &SiameseConfig) -> Result<(), WeightsError> {
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| WeightsError::File {
        path: path.to_path_buf(),
        source,
    };
    let bytes = to_bytes(model, config).map_err(|e| wrap(Box::new(e)))?;
    crate::write_atomically(path, &bytes).map_err(|e| wrap(Box::new(e)))
}

/// Reads a weights file; see [`from_bytes`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load(
    path: &std::path::Path,
    expected: Option<&SiameseConfig>,
    device: &Device,
) -> Result<(SiameseConfig, Siamese), WeightsError> {
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| WeightsError::File {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| wrap(Box::new(e)))?;
    from_bytes(&bytes, expected, device).map_err(|e| wrap(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;
    use burn::tensor::{Distribution, Tensor, Tolerance};

    fn device() -> Device {
        let device = Device::flex();
        device.seed(3);
        device
    }

    #[test]
    fn round_trip_keeps_outputs() {
        let device = device();
        let config = Preset::Web.config();
        let model = config.init(&device);
        let bytes = to_bytes(&model, &config).unwrap();
        let (loaded_config, loaded) = from_bytes(&bytes, Some(&config), &device).unwrap();
        assert_eq!(loaded_config, config);
        let images = Tensor::<4>::random([3, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let before = model.valid().embed(images.clone()).into_data();
        let after = loaded.valid().embed(images).into_data();
        before.assert_approx_eq::<f32>(&after, Tolerance::absolute(0.0));
    }

    #[test]
    fn asynchronous_export_keeps_every_tensor() {
        let device = device();
        let config = Preset::Web.config();
        // Move the running statistics away from their initial values, as training does.
        let model = config.init(&device.clone().autodiff()).train();
        let images = Tensor::<4>::random([4, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let _ = model.embed(images.clone());
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
    fn damaged_files_are_rejected_with_reasons() {
        let device = device();
        let config = Preset::Web.config();
        let bytes = to_bytes(&config.init(&device), &config).unwrap();
        let err = |b: &[u8]| from_bytes(b, Some(&config), &device).err().unwrap();
        assert!(matches!(err(&bytes[..bytes.len() / 2]), WeightsError::Truncated { .. }));
        assert!(matches!(err(&bytes[..10]), WeightsError::Truncated { .. }));
        assert!(matches!(err(b"PK\x03\x04 not weights"), WeightsError::NotWeights));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 100;
        flipped[last] ^= 0x55;
        assert!(matches!(err(&flipped), WeightsError::Checksum));
    }

    #[test]
    fn other_presets_and_architectures_are_rejected() {
        let device = device();
        let web = Preset::Web.config();
        let bytes = to_bytes(&web.init(&device), &web).unwrap();
        let koch = Preset::Koch.config();
        let err = from_bytes(&bytes, Some(&koch), &device).err().unwrap();
        assert!(matches!(err, WeightsError::WrongPreset { .. }));
        assert!(err.to_string().contains("Web") && err.to_string().contains("Koch"), "{err}");
        let wider = SiameseConfig { embedding: 128, ..web.clone() };
        assert!(matches!(
            from_bytes(&bytes, Some(&wider), &device),
            Err(WeightsError::WrongArchitecture { .. })
        ));
    }
}

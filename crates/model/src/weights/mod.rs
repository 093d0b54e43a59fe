//! Weights files from and to Burn networks. The format itself (header, tensor encodings, every
//! check) is `oneshot_core::weights`; here a network's tensors are read out in visiting order,
//! and a checked file is put into a fresh network of its architecture. Natively, files of format
//! 1 (Burn's burnpack record) still load, so old checkpoints can be converted (`oneshot pack`).

#[cfg(not(target_arch = "wasm32"))]
mod legacy;
mod tensors;

use burn::tensor::Device;
use oneshot_core::architecture::SiameseConfig;
use oneshot_core::recognize::CpuRecognizer;
use oneshot_core::weights::{self as format, TensorValues, check_expected};

use crate::network::Siamese;

pub use oneshot_core::weights::committee::{join, members};
pub use oneshot_core::weights::{Encoding, WeightsError, read_config};
pub use tensors::{DeviceTensor, collect};

/// Every tensor of a network on a device that reads back synchronously (the CPU), in visiting
/// order.
///
/// # Panics
/// On a device that cannot read tensors back synchronously (WebGPU in a browser).
pub fn tensor_values(model: &Siamese) -> Vec<TensorValues> {
    collect(model)
        .into_iter()
        .map(|t| t.read().expect("a synchronous device reads its tensors back"))
        .collect()
}

/// Serialises a network and its architecture, tensors encoded as asked.
///
/// # Panics
/// On a device that cannot read tensors back synchronously: use [`to_bytes_async`].
pub fn to_bytes(model: &Siamese, config: &SiameseConfig, encoding: Encoding) -> Vec<u8> {
    format::write(config, &tensor_values(model), encoding)
}

/// Serialises a network that may live on WebGPU, where nothing can be read back synchronously:
/// every tensor, running statistics included, is read back asynchronously, as `f32`.
pub async fn to_bytes_async(model: &Siamese, config: &SiameseConfig) -> Result<Vec<u8>, WeightsError> {
    let mut values = Vec::new();
    for tensor in collect(model) {
        values.push(tensor.read_async().await.map_err(WeightsError::Tensors)?);
    }
    Ok(format::write(config, &values, Encoding::F32))
}

/// Builds the network stored in `bytes` on `device`. With `expected`, a file of any other
/// architecture is rejected, naming both. A committee file of several networks is refused
/// (take its [`members`] one by one).
pub fn from_bytes(
    bytes: &[u8],
    expected: Option<&SiameseConfig>,
    device: &Device,
) -> Result<(SiameseConfig, Siamese), WeightsError> {
    let bytes = match members(bytes)?.as_slice() {
        [only] => *only,
        several => return Err(WeightsError::Committee(several.len())),
    };
    #[cfg(not(target_arch = "wasm32"))]
    if format::is_format_1(bytes) {
        let (config, payload) = legacy::split(bytes)?;
        check_expected(&config, expected)?;
        format::check_architecture(&config)?;
        return legacy::load(config, payload, device);
    }
    let file = format::read(bytes)?;
    check_expected(&file.config, expected)?;
    let model = tensors::build(&file.config, &file.tensors, device)?;
    Ok((file.config, model))
}

/// The Burn-free CPU recognizer of a weights file of any format this version reads (format 1
/// goes through a Burn network to get its values).
pub fn cpu_recognizer(bytes: &[u8], expected: Option<&SiameseConfig>) -> Result<CpuRecognizer, WeightsError> {
    if format::is_format_1(bytes) {
        let (config, model) = from_bytes(bytes, expected, &Device::flex())?;
        return CpuRecognizer::new(config, &tensor_values(&model));
    }
    CpuRecognizer::from_bytes(bytes, expected)
}

/// Reads a weights file into the CPU recognizer; see [`cpu_recognizer`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load_cpu_recognizer(path: &std::path::Path) -> Result<CpuRecognizer, WeightsError> {
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| WeightsError::File {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| wrap(Box::new(e)))?;
    cpu_recognizer(&bytes, None).map_err(|e| wrap(Box::new(e)))
}

/// Writes a weights file atomically (a temporary file, then a rename), so a killed process
/// never leaves a half-written file behind.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(
    path: &std::path::Path,
    model: &Siamese,
    config: &SiameseConfig,
    encoding: Encoding,
) -> Result<(), WeightsError> {
    let bytes = to_bytes(model, config, encoding);
    oneshot_core::write_atomically(path, &bytes)
        .map_err(|e| WeightsError::File { path: path.to_path_buf(), source: Box::new(e) })
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
mod tests;

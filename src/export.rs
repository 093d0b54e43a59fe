//! Hands the network to other stacks, so they can be timed on the very same function: every
//! tensor by name in a safetensors file, and a reference of fixed inputs with the outputs this
//! crate computes from them, which a peer must reproduce (to 1e-4) before it is timed.
//!
//! `scripts/peers/onnx_export.py` builds the ONNX graphs from the first file;
//! `scripts/peers/native.py` checks and times ONNX Runtime and PyTorch against the second;
//! `www/bench.html` does the same in the browser for onnxruntime-web.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use oneshot_model::adam::adam;
use safetensors::tensor::{Dtype, TensorView};

use crate::bench::Workload;
use oneshot_core::architecture::{Preset, SiameseConfig};
use oneshot_model::Siamese;
use oneshot_model::finetune::{FineTuneConfig, FineTuneError, FineTuneScope, FineTuner};
use oneshot_model::objective::image_batch;
use oneshot_model::recognize::{DEFAULT_VIEWS, Recognizer};
use oneshot_model::weights::{self, WeightsError};

/// File of the network's tensors, named by their module path (`twin.stages.0.conv.weight`).
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// File of the reference inputs and outputs.
pub const REFERENCE_FILE: &str = "reference.safetensors";
/// The network as this crate's own weights file, for `oneshot bench --weights`.
pub const MODEL_FILE: &str = "model.osw";
/// Learning rate of the one Adam step whose effect the reference records.
pub const REFERENCE_LEARNING_RATE: f64 = 1e-4;
/// Fine-tuning steps whose losses the reference records (`web` preset).
pub const TUNE_STEPS: usize = 3;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The safetensors writer refused the tensors.
    #[error("could not write {path}: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The writer's reason.
        message: String,
    },
    /// A tensor could not be read back as `f32` values.
    #[error("could not read a tensor back: {0}")]
    Readback(String),
    /// The network could not be serialised as a weights file.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// Fine-tuning the reference drawings could not start.
    #[error("fine-tuning the reference drawings: {0}")]
    FineTune(#[from] FineTuneError),
}

/// A tensor's values with its name and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Name (for parameters, the module path).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

impl NamedTensor {
    fn from_tensor<const D: usize>(name: impl Into<String>, tensor: Tensor<D>) -> Result<Self, ExportError> {
        let shape = tensor.dims().to_vec();
        let values =
            tensor.into_data().try_into_vec::<f32>().map_err(|e| ExportError::Readback(format!("{e:?}")))?;
        Ok(NamedTensor { name: name.into(), shape, values })
    }

    fn from_images(name: &str, images: &[Vec<f32>], size: usize) -> Self {
        NamedTensor {
            name: name.into(),
            shape: vec![images.len(), 1, size, size],
            values: images.iter().flatten().copied().collect(),
        }
    }
}

/// Every float tensor of the network (parameters and batch-norm running statistics) by path.
pub fn named_tensors(model: &Siamese) -> Result<Vec<NamedTensor>, ExportError> {
    let mut visitor = PathVisitor { path: Vec::new(), found: Vec::new() };
    model.visit(&mut visitor);
    visitor
        .found
        .into_iter()
        .map(|(name, shape, tensor)| Ok(NamedTensor { shape, ..NamedTensor::from_tensor(name, tensor)? }))
        .collect()
}

/// Collects float tensors with the module path `enter_module` / `exit_module` trace out.
struct PathVisitor {
    path: Vec<String>,
    found: Vec<(String, Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for PathVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        // Flattened so tensors of every rank fit one list; the shape travels beside it.
        let flat = tensor.reshape([shape.iter().product::<usize>()]);
        self.found.push((self.path.join("."), shape, flat));
    }
}

/// The reference: the workload's inputs and what this crate computes from them.
///
/// - `query_views` `[v, 1, s, s]` → `view_embeddings` `[v, d]` with `v` = [`DEFAULT_VIEWS`] (the
///   twin, inference mode);
/// - `supports` `[20, v · d]`: the support drawings' embeddings (their views' embeddings back to
///   back), as the page caches them; `scores` `[20]`: the query against them, the sigmoid of the
///   mean over the views of the head's logit on the same view of both;
/// - `pair_a`, `pair_b` `[B, 1, s, s]`, `labels` `[B]` → `losses` `[2]`: the pair objective in
///   training mode (batch statistics) before and after one Adam step at
///   [`REFERENCE_LEARNING_RATE`] (β = 0.9, 0.999, ε = 1e-5);
/// - for the `web` preset, the page's fine-tuning: `tune_rgba` `[20, h, w, 4]`, the support
///   drawings as RGBA pictures (ink as opacity), one character each → `tune_losses`
///   `[TUNE_STEPS]`: the losses of the first whole-network fine-tuning steps with the page's
///   settings ([`FineTuneConfig::for_scope`]), on the CPU (the training kernels under Burn's
///   autodiff, as in the page's `cpu` build).
pub fn reference(
    model: &Siamese,
    config: &SiameseConfig,
    workload: &Workload,
) -> Result<Vec<NamedTensor>, ExportError> {
    let device = Device::flex();
    let recognizer = Recognizer::new(model.clone(), config.clone(), device.clone()).with_views(DEFAULT_VIEWS);
    let size = workload.size;
    let views = image_batch(&workload.query_views, size, &device);
    let view_embeddings = recognizer.model().embed(views);
    let supports: Vec<_> = workload.supports.iter().collect();
    let supports = recognizer.embed(&supports).map_err(|e| ExportError::Readback(e.to_string()))?;
    let query = recognizer.embed_views(&workload.query_views);
    let scores = recognizer.scores(query, supports.clone()).flatten::<1>(0, 1);

    let train_device = device.autodiff();
    let trained = model.clone().fork(&train_device).train();
    let before = workload.pair_loss(&trained, &train_device);
    let grads = GradientsParams::from_grads(before.backward(), &trained);
    let mut optimizer: ModuleOptimizer = adam();
    let trained = optimizer.step(REFERENCE_LEARNING_RATE, trained, grads);
    let after = workload.pair_loss(&trained, &train_device);
    let losses = Tensor::cat(vec![before.inner(), after.inner()], 0);

    let mut tensors = vec![
        NamedTensor::from_images("query_views", &workload.query_views, size),
        NamedTensor::from_tensor("view_embeddings", view_embeddings)?,
        NamedTensor::from_tensor("supports", supports)?,
        NamedTensor::from_tensor("scores", scores)?,
        NamedTensor::from_images("pair_a", &workload.pair_a, size),
        NamedTensor::from_images("pair_b", &workload.pair_b, size),
        NamedTensor {
            name: "labels".into(),
            shape: vec![workload.labels.len()],
            values: workload.labels.clone(),
        },
        NamedTensor::from_tensor("losses", losses)?,
    ];
    if config.preset == Preset::Web {
        tensors.extend(tuning_reference(model, config, workload)?);
    }
    Ok(tensors)
}

/// `tune_rgba` and `tune_losses` of [`reference`].
fn tuning_reference(
    model: &Siamese,
    config: &SiameseConfig,
    workload: &Workload,
) -> Result<Vec<NamedTensor>, ExportError> {
    let classes = workload.supports.iter().map(|drawing| vec![drawing.clone()]).collect();
    let settings = FineTuneConfig::for_scope(FineTuneScope::Whole);
    let mut tuner = FineTuner::new(model, config.input_size, classes, settings, &Device::flex())?;
    let mut losses = Vec::with_capacity(TUNE_STEPS);
    for _ in 0..TUNE_STEPS {
        let loss = tuner.step().into_data().try_into_vec::<f32>();
        losses.extend(loss.map_err(|e| ExportError::Readback(format!("{e:?}")))?);
    }
    let first = &workload.supports[0];
    let (height, width) = (first.height(), first.width());
    let mut rgba = Vec::with_capacity(workload.supports.len() * height * width * 4);
    for drawing in &workload.supports {
        assert_eq!((drawing.height(), drawing.width()), (height, width), "synthetic drawings share a size");
        rgba.extend(drawing.ink().iter().flat_map(|&ink| [0.0, 0.0, 0.0, f32::from(ink)]));
    }
    Ok(vec![
        NamedTensor {
            name: "tune_rgba".into(),
            shape: vec![workload.supports.len(), height, width, 4],
            values: rgba,
        },
        NamedTensor { name: "tune_losses".into(), shape: vec![TUNE_STEPS], values: losses },
    ])
}

/// Writes tensors as `f32` safetensors, with string metadata.
pub fn write_safetensors(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<(), ExportError> {
    let failed = |message: String| ExportError::Safetensors { path: path.to_path_buf(), message };
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            Ok((
                t.name.clone(),
                TensorView::new(Dtype::F32, t.shape.clone(), b).map_err(|e| failed(e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| failed(e.to_string()))?;
    oneshot_core::write_atomically(path, &bytes)
        .map_err(|source| ExportError::Io { path: path.to_path_buf(), source })
}

/// Writes [`WEIGHTS_FILE`] (metadata `config`: the architecture as JSON), [`REFERENCE_FILE`]
/// and [`MODEL_FILE`] into `dir`, creating it.
pub fn export(dir: &Path, model: &Siamese, config: &SiameseConfig) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Io { path: dir.to_path_buf(), source })?;
    let config_json = serde_json::to_string(config).map_err(|e| ExportError::Readback(e.to_string()))?;
    let metadata = HashMap::from([("config".to_owned(), config_json)]);
    write_safetensors(&dir.join(WEIGHTS_FILE), &named_tensors(model)?, metadata.clone())?;
    let workload = Workload::new(config);
    write_safetensors(&dir.join(REFERENCE_FILE), &reference(model, config, &workload)?, metadata)?;
    weights::save(&dir.join(MODEL_FILE), model, config, weights::Encoding::F32)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oneshot_core::architecture::Preset;
    use oneshot_model::BuildNetwork;

    #[test]
    fn tensors_are_named_by_module_path_with_their_shapes() {
        let device = Device::flex();
        let model = Preset::Web.config().init(&device);
        let tensors = named_tensors(&model).unwrap();
        let find = |name: &str| {
            tensors.iter().find(|t| t.name == name).unwrap_or_else(|| {
                panic!("{name} in {:?}", tensors.iter().map(|t| &t.name).collect::<Vec<_>>())
            })
        };
        assert_eq!(find("twin.stages.0.conv.weight").shape, [64, 1, 3, 3]);
        assert_eq!(find("twin.embed.weight").shape, [128 * 2 * 2, 256]);
        assert_eq!(find("twin.stages.3.norm.running_var").values, vec![1.0; 128]);
        assert_eq!(find("head.weight").values.len(), 256);
        let total: usize = tensors.iter().map(|t| t.values.len()).sum();
        // Burn counts the batch norms' running statistics among the parameters.
        assert_eq!(total, model.num_params());
    }

    #[test]
    fn export_writes_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = Preset::Web.config();
        let model = config.init(&Device::flex());
        export(dir.path(), &model, &config).unwrap();
        let bytes = std::fs::read(dir.path().join(REFERENCE_FILE)).unwrap();
        let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(reference.tensor("scores").unwrap().shape(), &[20]);
        assert_eq!(reference.tensor("query_views").unwrap().shape(), &[DEFAULT_VIEWS, 1, 32, 32]);
        let losses = reference.tensor("losses").unwrap();
        let losses: Vec<f32> =
            losses.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert!(losses[1] < losses[0], "one Adam step lowers the loss on its own batch: {losses:?}");
        weights::load(&dir.path().join(MODEL_FILE), Some(&config), &Device::flex()).unwrap();
    }
}

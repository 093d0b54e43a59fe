//! One-shot recognition with a trained network: embed drawings once, score queries against them.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use oneshot_core::architecture::SiameseConfig;
use oneshot_core::preprocess::{Distortion, InkImage, PreprocessError, Preprocessor};
use oneshot_core::recognize::CpuRecognizer;

use crate::network::Siamese;
use crate::objective::image_batch;
use crate::weights::tensor_values;

pub use oneshot_core::recognize::DEFAULT_VIEWS;

/// Images embedded per forward pass, to bound memory on large evaluations.
const EMBED_CHUNK: usize = 256;

/// A trained network in inference mode, with the preprocessing its input size needs.
#[derive(Debug, Clone)]
pub struct Recognizer {
    model: Siamese,
    /// The same network with its batch norms folded away: what inference runs on a GPU (and
    /// the scoring head everywhere).
    folded: Siamese,
    /// On the CPU backend, the same network through the project's kernels
    /// (`oneshot_core::recognize`), which embed in a fraction of the time Burn's generic CPU
    /// convolution takes.
    cpu: Option<CpuRecognizer>,
    config: SiameseConfig,
    preprocessor: Preprocessor,
    views: Vec<Distortion>,
    device: Device,
}

impl Recognizer {
    /// Wraps a network (switched to inference mode) built from `config`.
    pub fn new(model: Siamese, config: SiameseConfig, device: Device) -> Self {
        let preprocessor = Preprocessor::new(config.input_size);
        let model = model.valid();
        let folded = model.folded();
        let cpu = (device == Device::flex())
            .then(|| CpuRecognizer::new(config.clone(), &tensor_values(&model)).ok())
            .flatten();
        Self { model, folded, cpu, config, preprocessor, views: vec![Distortion::NONE], device }
    }

    /// Embeds every picture as the mean embedding of `n` fixed views (test-time augmentation,
    /// see [`Distortion::views`]); 1 is the plain picture.
    pub fn with_views(mut self, n: usize) -> Self {
        self.views = Distortion::views(n, self.preprocessor.size());
        self
    }

    /// The network (in inference mode), as loaded: to fine-tune or save.
    pub fn model(&self) -> &Siamese {
        &self.model
    }

    /// The architecture.
    pub fn config(&self) -> &SiameseConfig {
        &self.config
    }

    /// How many views each picture is embedded from.
    pub fn views(&self) -> usize {
        self.views.len()
    }

    /// The preprocessing in front of the network.
    pub fn preprocessor(&self) -> Preprocessor {
        self.preprocessor
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds pictures: `[n, embedding]`.
    pub fn embed(&self, images: &[&InkImage]) -> Result<Tensor<2>, PreprocessError> {
        let mut inputs = Vec::with_capacity(images.len() * self.views.len());
        for image in images {
            inputs.extend(self.render_views(image)?);
        }
        Ok(self.embed_views(&inputs))
    }

    /// What the network sees of a picture: one preprocessed input (`size²` values) per view.
    pub fn render_views(&self, image: &InkImage) -> Result<Vec<Vec<f32>>, PreprocessError> {
        self.views.iter().map(|view| self.preprocessor.render_distorted(image, view)).collect()
    }

    /// Embeds pictures given as their [`render_views`](Self::render_views), concatenated
    /// (`views()` inputs per picture): `[n, embedding]`, each the mean over its views.
    pub fn embed_views(&self, inputs: &[Vec<f32>]) -> Tensor<2> {
        let views = self.views.len();
        let pictures = inputs.len() / views;
        let embeddings = self.embed_preprocessed(inputs);
        if views == 1 {
            return embeddings;
        }
        let [_, width] = embeddings.dims();
        embeddings.reshape([pictures, views, width]).mean_dim(1).reshape([pictures, width])
    }

    /// Embeds already preprocessed inputs (`size²` values each), one embedding per input.
    pub fn embed_preprocessed(&self, inputs: &[Vec<f32>]) -> Tensor<2> {
        if let Some(cpu) = &self.cpu {
            let shape = [inputs.len(), cpu.embedding_width()];
            return Tensor::from_data(TensorData::new(cpu.embed_preprocessed(inputs), shape), &self.device);
        }
        let chunks: Vec<Tensor<2>> = inputs
            .chunks(EMBED_CHUNK)
            .map(|chunk| self.folded.embed(image_batch(chunk, self.preprocessor.size(), &self.device)))
            .collect();
        Tensor::cat(chunks, 0)
    }

    /// Same-character probabilities of every query against every support: `[q, s]`.
    pub fn scores(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        self.folded.cross_scores(queries, supports)
    }
}

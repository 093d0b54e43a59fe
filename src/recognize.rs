//! One-shot recognition with a trained network: embed drawings once, score queries against them.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::model::{Siamese, SiameseConfig};
use crate::objective::image_batch;
use crate::preprocess::{InkImage, PreprocessError, Preprocessor};

/// Images embedded per forward pass, to bound memory on large evaluations.
const EMBED_CHUNK: usize = 256;

/// A trained network in inference mode, with the preprocessing its input size needs.
#[derive(Debug, Clone)]
pub struct Recognizer {
    model: Siamese,
    config: SiameseConfig,
    preprocessor: Preprocessor,
    device: Device,
}

impl Recognizer {
    /// Wraps a network (switched to inference mode) built from `config`.
    pub fn new(model: Siamese, config: SiameseConfig, device: Device) -> Self {
        let preprocessor = Preprocessor::new(config.input_size);
        Self { model: model.valid(), config, preprocessor, device }
    }

    /// The architecture.
    pub fn config(&self) -> &SiameseConfig {
        &self.config
    }

    /// The preprocessing in front of the network.
    pub fn preprocessor(&self) -> Preprocessor {
        self.preprocessor
    }

    /// The network.
    pub fn model(&self) -> &Siamese {
        &self.model
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds pictures: `[n, embedding]`.
    pub fn embed(&self, images: &[&InkImage]) -> Result<Tensor<2>, PreprocessError> {
        let inputs =
            images.iter().map(|image| self.preprocessor.render(image)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.embed_preprocessed(&inputs))
    }

    /// Embeds already preprocessed inputs (`size²` values each).
    pub fn embed_preprocessed(&self, inputs: &[Vec<f32>]) -> Tensor<2> {
        let chunks: Vec<Tensor<2>> = inputs
            .chunks(EMBED_CHUNK)
            .map(|chunk| self.model.embed(image_batch(chunk, self.preprocessor.size(), &self.device)))
            .collect();
        Tensor::cat(chunks, 0)
    }

    /// Same-character probabilities of every query against every support: `[q, s]`.
    pub fn scores(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        self.model.cross_scores(queries, supports)
    }
}

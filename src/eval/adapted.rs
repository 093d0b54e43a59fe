//! One-shot accuracy with the network's batch-norm statistics taken partly from each task's
//! supports (Li et al.'s "AdaBN"): a new alphabet's strokes shift the convolutions' activations
//! away from the background alphabets' statistics the norms learnt, and the supports, one
//! drawing per character, are a sample of that alphabet. No training, no query seen.

use burn::tensor::Device;
use oneshot_core::architecture::SiameseConfig;
use oneshot_core::preprocess::{InkImage, PreprocessError};
use oneshot_model::network::Siamese;
use oneshot_model::objective::image_batch;
use oneshot_model::recognize::Recognizer;

use super::OneShotClassifier;

/// A network whose norms take their statistics from each task's supports before it answers.
#[derive(Clone, Debug)]
pub struct NormsAdaptedPerTask {
    /// The network every task starts from.
    pub model: Siamese,
    /// Its architecture.
    pub config: SiameseConfig,
    /// How far the statistics move toward the supports' (0: not at all, 1: all the way).
    pub blend: f64,
    /// Views each picture is seen through, for the statistics and the scores alike.
    pub views: usize,
}

impl NormsAdaptedPerTask {
    /// The network adapted to `supports`: their every view makes the batch.
    pub fn adapted(&self, supports: &[&InkImage]) -> Result<Recognizer, PreprocessError> {
        let device = Device::flex();
        let plain =
            Recognizer::new(self.model.clone(), self.config.clone(), device.clone()).with_views(self.views);
        let mut inputs = Vec::with_capacity(supports.len() * self.views);
        for support in supports {
            inputs.extend(plain.render_views(support)?);
        }
        let batch = image_batch(&inputs, self.config.input_size, &device);
        let model = self.model.clone().with_norm_statistics(batch, self.blend);
        Ok(Recognizer::new(model, self.config.clone(), device).with_views(self.views))
    }
}

impl OneShotClassifier for NormsAdaptedPerTask {
    fn name(&self) -> String {
        format!(
            "{}, norm statistics {:.0} % from each task's supports",
            super::siamese_name(self.config.preset, self.views, 1, &[0]),
            100.0 * self.blend
        )
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        self.adapted(supports)?.classify(supports, queries)
    }
}

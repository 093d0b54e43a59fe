//! One-shot accuracy after the page's **Fine-tune**: for every task, a copy of the network is
//! fine-tuned on that task's supports alone (one drawing per character, as a user gives them),
//! then classifies the task's queries. The queries are never seen while tuning.

use burn::tensor::Device;
use oneshot_core::architecture::SiameseConfig;
use oneshot_core::preprocess::{InkImage, PreprocessError};
use oneshot_model::finetune::{FineTuneConfig, FineTuneError, FineTuner};
use oneshot_model::network::Siamese;
use oneshot_model::recognize::Recognizer;

use super::OneShotClassifier;

/// A network that is fine-tuned on each task's supports before it answers that task.
#[derive(Clone, Debug)]
pub struct FineTunedPerTask {
    /// The network every task starts from.
    pub model: Siamese,
    /// Its architecture.
    pub config: SiameseConfig,
    /// What to tune, how fast; the seed is the same for every task.
    pub settings: FineTuneConfig,
    /// Optimisation steps per task (the page's default is 30).
    pub steps: usize,
    /// Views each picture is seen through when classifying ([`Recognizer::with_views`]).
    pub views: usize,
    /// Pens each picture is also seen with when classifying ([`Recognizer::with_pens`]), as
    /// the page re-embeds its drawings after fine-tuning.
    pub pens: Vec<i8>,
}

impl FineTunedPerTask {
    /// The network after `steps` fine-tuning steps on `supports`, one character each (as it
    /// is when there is only one character: nothing to tell apart, nothing to tune).
    fn tuned(&self, supports: &[&InkImage]) -> Result<Recognizer, PreprocessError> {
        let device = Device::flex();
        let classes = supports.iter().map(|&s| vec![s.clone()]).collect();
        let model = match FineTuner::new(
            &self.model,
            self.config.input_size,
            classes,
            self.settings.clone(),
            &device,
        ) {
            Ok(mut tuner) => {
                for _ in 0..self.steps {
                    tuner.step();
                }
                tuner.model()
            }
            Err(FineTuneError::TooFewClasses) => self.model.clone(),
            Err(FineTuneError::Drawing { source, .. }) => return Err(source),
        };
        Ok(Recognizer::new(model, self.config.clone(), device).with_views(self.views).with_pens(&self.pens))
    }
}

impl OneShotClassifier for FineTunedPerTask {
    fn name(&self) -> String {
        format!(
            "{}, fine-tuned {} steps ({:?}, lr {:e}) on each task's supports",
            super::siamese_name(self.config.preset, self.views * self.pens.len().max(1), 1, &self.pens),
            self.steps,
            self.settings.scope,
            self.settings.learning_rate
        )
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        self.tuned(supports)?.classify(supports, queries)
    }
}

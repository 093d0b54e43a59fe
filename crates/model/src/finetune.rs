//! Fine-tuning on a user's own drawings: a few dozen steps of the episode objective on pairs
//! built from the support set, natively or in the page.
//!
//! Each step draws two views of every class — two different drawings when the class has more
//! than one, otherwise the same drawing twice — each through Koch et al.'s random distortions, so
//! one drawing per class already gives same-class pairs, and the other classes give the
//! different-class pairs. Batch-norm statistics stay frozen: a handful of drawings would
//! otherwise overwrite what the running statistics learnt from Omniglot.

use crate::adam::adam;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::network::Siamese;
use crate::objective::{episode_loss, image_batch};
use oneshot_core::preprocess::{Distortion, DistortionConfig, InkImage, PreprocessError, Preprocessor};

/// Which weights fine-tuning changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FineTuneScope {
    /// Only the similarity head: fast and safe with very few drawings.
    Head,
    /// The whole twin and the head (batch-norm statistics stay frozen).
    Whole,
}

/// A scope name other than `head` or `whole`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown fine-tuning scope {0:?}")]
pub struct UnknownScope(pub String);

/// `head` or `whole`, as the page and the command line name the scopes.
impl std::str::FromStr for FineTuneScope {
    type Err = UnknownScope;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "head" => Ok(Self::Head),
            "whole" => Ok(Self::Whole),
            other => Err(UnknownScope(other.to_string())),
        }
    }
}

/// Settings of a fine-tuning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// What to train.
    pub scope: FineTuneScope,
    /// Seed of the pair sampling and distortions.
    pub seed: u64,
}

impl FineTuneConfig {
    /// Defaults for a scope: the head alone takes a larger step than the whole network, whose
    /// features a large step would wash out.
    pub fn for_scope(scope: FineTuneScope) -> Self {
        let learning_rate = match scope {
            FineTuneScope::Head => 1e-3,
            FineTuneScope::Whole => 1e-4,
        };
        Self { learning_rate, scope, seed: 0 }
    }
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self::for_scope(FineTuneScope::Whole)
    }
}

/// Why fine-tuning cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FineTuneError {
    /// Fewer than two classes have drawings.
    #[error("fine-tuning needs drawings of at least two characters")]
    TooFewClasses,
    /// A drawing cannot be preprocessed.
    #[error("drawing {drawing} of character {class}: {source}")]
    Drawing {
        /// Index of the class.
        class: usize,
        /// Index of the drawing within it.
        drawing: usize,
        /// Why.
        source: PreprocessError,
    },
}

/// A fine-tuning run in progress: call [`step`](Self::step) as often as wanted, then take the
/// [`model`](Self::model).
pub struct FineTuner {
    model: Siamese,
    optimizer: ModuleOptimizer,
    classes: Vec<Vec<InkImage>>,
    preprocessor: Preprocessor,
    distortion: DistortionConfig,
    config: FineTuneConfig,
    device: Device,
    rng: StdRng,
    steps: usize,
}

impl FineTuner {
    /// Prepares `model` (any device) for training on `device.autodiff()` with the drawings of
    /// each class. Classes without drawings are left out.
    pub fn new(
        model: &Siamese,
        input_size: usize,
        classes: Vec<Vec<InkImage>>,
        config: FineTuneConfig,
        device: &Device,
    ) -> Result<Self, FineTuneError> {
        let preprocessor = Preprocessor::new(input_size);
        let classes: Vec<Vec<InkImage>> = classes.into_iter().filter(|c| !c.is_empty()).collect();
        if classes.len() < 2 {
            return Err(FineTuneError::TooFewClasses);
        }
        // Fail now, with the drawing named, rather than in the middle of a step.
        for (class, drawings) in classes.iter().enumerate() {
            for (drawing, image) in drawings.iter().enumerate() {
                preprocessor.render(image).map_err(|source| FineTuneError::Drawing {
                    class,
                    drawing,
                    source,
                })?;
            }
        }
        let device = device.clone().autodiff();
        let model = model.clone().fork(&device).train();
        let model = match config.scope {
            FineTuneScope::Head => model.freeze_twin(),
            FineTuneScope::Whole => model.freeze_norms(),
        };
        Ok(Self {
            model,
            optimizer: adam(),
            classes,
            preprocessor,
            distortion: DistortionConfig::default(),
            rng: StdRng::seed_from_u64(config.seed),
            config,
            device,
            steps: 0,
        })
    }

    /// One optimisation step on a fresh episode; returns its loss as a one-element tensor, to
    /// be read back synchronously natively or asynchronously in the page.
    pub fn step(&mut self) -> Tensor<1> {
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for drawings in &self.classes {
            let a = self.rng.random_range(0..drawings.len());
            let b = if drawings.len() > 1 {
                (a + self.rng.random_range(1..drawings.len())) % drawings.len()
            } else {
                a
            };
            for (index, out) in [(a, &mut first), (b, &mut second)] {
                let distortion =
                    Distortion::sample(&self.distortion, self.preprocessor.size(), &mut self.rng);
                let input = self.preprocessor.render_distorted(&drawings[index], &distortion);
                out.push(input.expect("checked in new"));
            }
        }
        first.extend(second);
        let batch: Tensor<4> = image_batch(&first, self.preprocessor.size(), &self.device);
        let loss = episode_loss(&self.model, vec![batch], 2, 0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.config.learning_rate, self.model.clone(), grads);
        self.steps += 1;
        loss.detach()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The fine-tuned network, for inference.
    pub fn model(&self) -> Siamese {
        self.model.valid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_by_their_page_names() {
        assert_eq!("head".parse(), Ok(FineTuneScope::Head));
        assert_eq!("whole".parse(), Ok(FineTuneScope::Whole));
        let unknown = "Whole".parse::<FineTuneScope>().unwrap_err();
        assert_eq!(unknown.to_string(), r#"unknown fine-tuning scope "Whole""#);
    }
}

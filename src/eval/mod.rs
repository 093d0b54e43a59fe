//! One-shot evaluation: Lake's runs and random within-alphabet tasks, for the Siamese network
//! and for a nearest-neighbour baseline on the same preprocessed pixels; [`strokes`]: the same
//! tasks given as human pen strokes painted at several sizes; [`rerank`]: test-time variants
//! measured against the plain network (committees, hub demotion).

use burn::tensor::Tensor;
use oneshot_core::architecture::Preset;
use oneshot_core::preprocess::{InkImage, PreprocessError, Preprocessor};
use oneshot_core::recognize::{CpuRecognizer, argmax};
use oneshot_data::{OneShotRun, Task};
use oneshot_model::recognize::{Committee, Recognizer};
use rayon::prelude::*;

pub mod adapted;
pub mod calibrate;
pub mod rerank;
pub mod strokes;
pub mod tuned;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] oneshot_data::DataError),
    /// A drawing could not be painted or preprocessed.
    #[error(transparent)]
    Drawing(#[from] PreprocessError),
}

/// Something that picks, for each query, the support it shows the same character as (from
/// several threads at once: tasks are classified in parallel).
pub trait OneShotClassifier: Sync {
    /// A short name for tables.
    fn name(&self) -> String;
    /// The index of the chosen support for each query.
    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError>;
}

/// The table name of a Siamese network seeing each picture through `views` symmetries for
/// each of `pens`.
fn siamese_name(preset: Preset, views: usize, networks: usize, pens: &[i8]) -> String {
    let views = match views / pens.len().max(1) {
        1 => String::new(),
        n => format!(", {n} views"),
    };
    let name = match networks {
        1 => format!("siamese ({}{views})", preset.name()),
        n => format!("siamese ({}{views}, committee of {n})", preset.name()),
    };
    if pens == [0] {
        return name;
    }
    let pens: Vec<String> = pens.iter().map(i8::to_string).collect();
    format!("{name}, pens {}", pens.join(","))
}

/// For each query, the support of the highest logit, from every picture's embedding (supports
/// first, then queries) and the logits of queries against supports. Ranked by logits: the
/// sigmoid rounds confident matches to exactly 1, which would tie.
fn classify_embedded(
    embeddings: Tensor<2>,
    supports: usize,
    queries: usize,
    logits: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<2>,
) -> Vec<usize> {
    let logits = logits(embeddings.clone().narrow(0, supports, queries), embeddings.narrow(0, 0, supports));
    let values = logits.into_data().try_to_vec::<f32>().expect("logits are f32");
    values.chunks(supports).map(argmax).collect()
}

/// The Burn-free recognizer (what `eval` runs, and the page on the CPU).
impl OneShotClassifier for CpuRecognizer {
    fn name(&self) -> String {
        siamese_name(self.config().preset, self.views(), self.networks(), self.pens())
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        CpuRecognizer::classify(self, supports, queries)
    }
}

/// A network in training, on any Burn device.
impl OneShotClassifier for Recognizer {
    fn name(&self) -> String {
        siamese_name(self.config().preset, self.views(), 1, self.pens())
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        let all: Vec<&InkImage> = supports.iter().chain(queries).copied().collect();
        let logits = |q, s| self.logits(q, s);
        Ok(classify_embedded(self.embed(&all)?, supports.len(), queries.len(), logits))
    }
}

/// A committee on any Burn device (what the page runs on WebGPU).
impl OneShotClassifier for Committee {
    fn name(&self) -> String {
        siamese_name(self.config().preset, self.views(), self.members().len(), self.pens())
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        let all: Vec<&InkImage> = supports.iter().chain(queries).copied().collect();
        let logits = |q, s| self.logits(q, s);
        Ok(classify_embedded(self.embed(&all)?, supports.len(), queries.len(), logits))
    }
}

/// 1-nearest-neighbour in L2 distance on the preprocessed pixels: the floor any learned
/// similarity has to clear, and a check on the task loaders.
#[derive(Clone, Copy, Debug)]
pub struct NearestNeighbour {
    /// The preprocessing (and so the input size) to compare pixels after.
    pub preprocessor: Preprocessor,
}

impl OneShotClassifier for NearestNeighbour {
    fn name(&self) -> String {
        format!("1-NN on {0}×{0} pixels", self.preprocessor.size())
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        let render = |images: &[&InkImage]| {
            images.iter().map(|i| self.preprocessor.render(i)).collect::<Result<Vec<_>, _>>()
        };
        let supports = render(supports)?;
        render(queries).map(|queries| {
            queries
                .iter()
                .map(|q| {
                    let negative_distance =
                        |s: &Vec<f32>| -q.iter().zip(s).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
                    argmax(&supports.iter().map(negative_distance).collect::<Vec<_>>())
                })
                .collect()
        })
    }
}

/// Correct answers out of trials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accuracy {
    /// Queries answered correctly.
    pub correct: usize,
    /// Queries asked.
    pub trials: usize,
}

impl Accuracy {
    /// The fraction correct, in percent.
    pub fn percent(&self) -> f64 {
        100.0 * self.correct as f64 / self.trials.max(1) as f64
    }

    pub(crate) fn add(&mut self, predicted: &[usize], truth: impl Iterator<Item = usize>) {
        for (p, t) in predicted.iter().zip(truth) {
            self.trials += 1;
            self.correct += usize::from(*p == t);
        }
    }
}

/// Whether each trial was answered correctly, trial by trial in a fixed order, so that two
/// classifiers asked the same trials can be compared trial by trial ([`PairedDifference`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcomes(pub Vec<bool>);

impl Outcomes {
    /// Correct answers out of trials.
    pub fn accuracy(&self) -> Accuracy {
        Accuracy { correct: self.0.iter().filter(|&&right| right).count(), trials: self.0.len() }
    }
}

/// Two classifiers on the same trials, compared trial by trial: only the trials one of them
/// answers right and the other wrong tell them apart. On the same 10,000 trials two committees
/// of one recipe disagree on about 200, so the standard error of their difference is about 0.15
/// point, half that of either accuracy alone (`eval` prints it when it scores several networks;
/// docs/training.md, "Comparing on the same trials").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairedDifference {
    /// Trials the other classifier answered right and the reference wrong.
    pub gained: usize,
    /// Trials the reference answered right and the other wrong.
    pub lost: usize,
    /// Trials both were asked.
    pub trials: usize,
}

impl PairedDifference {
    /// `other` against `reference`, trial by trial (the trials both were asked: the shorter
    /// list's length).
    pub fn between(reference: &Outcomes, other: &Outcomes) -> Self {
        let mut difference = Self::default();
        for (&a, &b) in reference.0.iter().zip(&other.0) {
            difference.trials += 1;
            difference.gained += usize::from(b && !a);
            difference.lost += usize::from(a && !b);
        }
        difference
    }

    /// The other's accuracy minus the reference's, in percentage points.
    pub fn points(&self) -> f64 {
        100.0 * (self.gained as f64 - self.lost as f64) / self.trials.max(1) as f64
    }

    /// The standard error of [`points`](Self::points): the sample deviation of the per-trial
    /// differences (each +1, −1 or 0) over the square root of the trials, in points.
    pub fn standard_error(&self) -> f64 {
        let n = self.trials as f64;
        if self.trials < 2 {
            return f64::NAN;
        }
        let (gained, lost) = (self.gained as f64, self.lost as f64);
        let mean = (gained - lost) / n;
        let variance = (gained + lost - n * mean * mean) / (n - 1.0);
        100.0 * (variance.max(0.0) / n).sqrt()
    }
}

/// Accuracy on one-shot runs such as Lake's, each query scored on its own.
pub fn evaluate_runs(
    classifier: &dyn OneShotClassifier,
    runs: &[OneShotRun],
) -> Result<Accuracy, PreprocessError> {
    Ok(answer_runs(classifier, runs)?.accuracy())
}

/// Accuracy on sampled tasks.
pub fn evaluate_tasks(
    classifier: &dyn OneShotClassifier,
    tasks: &[Task],
) -> Result<Accuracy, PreprocessError> {
    Ok(answer_tasks(classifier, tasks)?.accuracy())
}

/// Each query of one-shot runs such as Lake's, answered right or wrong, run by run.
pub fn answer_runs(
    classifier: &dyn OneShotClassifier,
    runs: &[OneShotRun],
) -> Result<Outcomes, PreprocessError> {
    answer(classifier, runs, |run| {
        let supports = run.supports.iter().collect();
        (supports, run.queries.iter().map(|(q, c)| (q, *c)).collect())
    })
}

/// Each query of sampled tasks, answered right or wrong, task by task.
pub fn answer_tasks(classifier: &dyn OneShotClassifier, tasks: &[Task]) -> Result<Outcomes, PreprocessError> {
    answer(classifier, tasks, |task| (task.supports.clone(), task.queries.clone()))
}

/// The supports of one trial set, and its queries with the index of their true support.
type Trial<'a> = (Vec<&'a InkImage>, Vec<(&'a InkImage, usize)>);

/// Classifies every trial set in parallel, then lists the answers in order.
fn answer<'a, T: Sync>(
    classifier: &dyn OneShotClassifier,
    sets: &'a [T],
    trial: impl Fn(&'a T) -> Trial<'a> + Sync,
) -> Result<Outcomes, PreprocessError> {
    let answers = sets
        .par_iter()
        .map(|set| {
            let (supports, queries) = trial(set);
            let images: Vec<&InkImage> = queries.iter().map(|(q, _)| *q).collect();
            Ok((classifier.classify(&supports, &images)?, queries))
        })
        .collect::<Result<Vec<_>, PreprocessError>>()?;
    Ok(Outcomes(
        answers
            .iter()
            .flat_map(|(predicted, queries)| predicted.iter().zip(queries).map(|(p, (_, c))| p == c))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paired_difference_counts_only_the_trials_the_two_disagree_on() {
        let reference = Outcomes(vec![true, true, false, false, true, true]);
        let other = Outcomes(vec![true, false, true, true, true, true]);
        let difference = PairedDifference::between(&reference, &other);
        assert_eq!(difference, PairedDifference { gained: 2, lost: 1, trials: 6 });
        assert!((difference.points() - 100.0 / 6.0).abs() < 1e-9, "{}", difference.points());
        // Per trial 0, −1, +1, +1, 0, 0: mean 1/6, sample variance (3 − 6 · (1/6)²) / 5.
        let expected = 100.0 * ((3.0 - 6.0 / 36.0) / 5.0 / 6.0f64).sqrt();
        assert!((difference.standard_error() - expected).abs() < 1e-9, "{}", difference.standard_error());
        assert_eq!(reference.accuracy(), Accuracy { correct: 4, trials: 6 });
        assert_eq!(other.accuracy(), Accuracy { correct: 5, trials: 6 });
    }

    #[test]
    fn the_same_answers_differ_by_nothing_however_many_are_wrong() {
        let answers = Outcomes(vec![true, false, false, true]);
        let difference = PairedDifference::between(&answers, &answers);
        assert_eq!((difference.points(), difference.standard_error()), (0.0, 0.0));
    }
}

//! The `train` command: sample within-alphabet pairs or episodes from the background alphabets,
//! optimise with Adam, validate on the validation alphabets, keep the best network.
//!
//! Everything a run needs to continue lives in its output folder (`state.json`, the latest
//! network and optimiser state, the best network), written atomically at every validation, so a
//! killed run resumes where its last validation left it. Each step's random draws are seeded
//! from the run's seed and the step number, so a resumed run draws what an unbroken one would.

mod error;
mod options;
mod run;
mod sampling;

pub use error::TrainError;
pub use options::{Objective, Schedule, Symmetries, SymmetryScope, TrainOptions};
pub use run::{RunState, ValidationPoint, files, plot_history};
pub use sampling::{Augmentation, PairBatch, sample_episode, sample_pairs};

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use oneshot_core::preprocess::{DistortionConfig, Framing, Preprocessor};
use oneshot_data::{Alphabet, DataSet, Split, Task, TaskSampler};
use oneshot_model::Siamese;
use oneshot_model::objective::{episode_loss, image_batch, pair_loss};
use oneshot_model::recognize::Recognizer;

use run::Checkpoint;
use sampling::step_rng;

use crate::eval::evaluate_tasks;

/// Trains as the options say, resuming a run found in the output folder. Returns the final state.
pub fn train(options: &TrainOptions, data: &DataSet) -> Result<RunState, TrainError> {
    options.check()?;
    let background = data.alphabets(Split::Background, &[])?;
    let validation_alphabets = data.alphabets(Split::Validation, &[])?;
    let mut sampler = TaskSampler::new(&validation_alphabets, 20, 20, options.seed)?;
    let val_tasks: Vec<Task> = (0..options.val_tasks).map(|_| sampler.sample()).collect();

    let config = options.architecture()?;
    let device = Device::flex().autodiff();
    device.seed(options.seed);
    let Checkpoint { mut model, mut optimizer, mut state } = run::start_or_resume(options, &config, &device)?;
    let sampler = StepSampler::new(options, &background, Preprocessor::new(config.input_size));
    let mut progress = Progress::new(options, &state);
    // Drawing a step's data (rendering and distorting its drawings) is serial work that the
    // network's kernels do not need: a second thread draws the next steps while this one
    // trains, on cores the kernels leave idle. Each step's data depends on the seed and the
    // step alone, so the run draws exactly what it drew on one thread.
    std::thread::scope(|scope| {
        let steps = state.iteration..options.iterations;
        let (sender, prepared) = std::sync::mpsc::sync_channel(PREFETCHED_STEPS);
        let sampler = &sampler;
        scope.spawn(move || {
            for iteration in steps {
                if sender.send(sampler.draw(iteration)).is_err() {
                    break; // training stopped early (an error); nobody waits for more
                }
            }
        });
        while state.iteration < options.iterations {
            let data = prepared.recv().map_err(|_| TrainError::Invalid("the data thread stopped".into()))?;
            let (loss, pairs) = data.loss(&model, config.input_size, &device);
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(options.learning_rate_at(state.iteration), model, grads);
            state.iteration += 1;
            progress.step(loss_value, pairs, &state);
            if state.iteration % options.eval_every == 0 || state.iteration == options.iterations {
                // Framed as in training, as when the shipped networks' best points were chosen,
                // so that `scripts/train-web` keeps giving those networks bit for bit (the page
                // frames closer; docs/training.md, "The wider embedding and the framing").
                let recognizer = Recognizer::new(model.clone(), config.clone(), device.clone().inner())
                    .with_framing(Framing::Training);
                let accuracy = evaluate_tasks(&recognizer, &val_tasks)
                    .map_err(|e| TrainError::Invalid(format!("validation image: {e}")))?
                    .percent();
                let (point, improved) = progress.validated(&mut state, accuracy);
                run::save_checkpoint(&options.out, &model, &config, &optimizer, &state, improved)?;
                progress.report(&point, improved);
            }
        }
        Ok::<(), TrainError>(())
    })?;
    progress.finish();
    Ok(state)
}

/// Steps drawn ahead of training: enough to hide one slow draw, little memory (a step's
/// pictures are tens of kilobytes).
const PREFETCHED_STEPS: usize = 2;

/// One step's training pictures, drawn and preprocessed, before they become tensors.
enum StepData {
    /// Koch et al.'s pairs.
    Pairs(PairBatch),
    /// Episodes: each a list of pictures, `drawings` rows of the same characters, and the
    /// classification margin (`--margin`).
    Episodes { groups: Vec<Vec<Vec<f32>>>, drawings: usize, margin: f32 },
}

impl StepData {
    /// The step's loss on the network and the number of scored pairs behind it.
    fn loss(self, model: &Siamese, size: usize, device: &Device) -> (Tensor<1>, usize) {
        match self {
            StepData::Pairs(batch) => {
                let n = batch.labels.len();
                let (a, b) = (image_batch(&batch.a, size, device), image_batch(&batch.b, size, device));
                let labels = Tensor::from_data(TensorData::new(batch.labels, [n]), device);
                (pair_loss(model, a, b, labels), n)
            }
            StepData::Episodes { groups, drawings, margin } => {
                let pairs = groups
                    .iter()
                    .map(|images| {
                        let k = images.len() / drawings;
                        k * k * drawings * (drawings - 1) / 2
                    })
                    .sum();
                let groups = groups.iter().map(|images| image_batch(images, size, device)).collect();
                (episode_loss(model, groups, drawings, margin), pairs)
            }
        }
    }
}

/// Draws each step's training data.
struct StepSampler<'a> {
    options: &'a TrainOptions,
    background: &'a [&'a Alphabet],
    preprocessor: Preprocessor,
    augmentation: Augmentation,
}

impl<'a> StepSampler<'a> {
    fn new(options: &'a TrainOptions, background: &'a [&'a Alphabet], preprocessor: Preprocessor) -> Self {
        let augmentation = Augmentation {
            distortion: (!options.no_distortions).then(DistortionConfig::default),
            stroke_widths: options.stroke_widths,
            elastic: options.elastic,
            fragments: options.fragments,
            chimeras: options.chimeras,
            twins: options.twins,
        };
        Self { options, background, preprocessor, augmentation }
    }

    /// The pictures of step `iteration`, drawn from the run's seed and the step alone.
    fn draw(&self, iteration: usize) -> StepData {
        let options = self.options;
        let mut rng = step_rng(options.seed, iteration);
        match options.objective {
            Objective::Pairs => StepData::Pairs(sample_pairs(
                self.background,
                options.batch_size,
                &self.preprocessor,
                &self.augmentation,
                &mut rng,
            )),
            Objective::Episodes => {
                let symmetries = (options.symmetries, options.symmetry_per);
                let groups = (0..options.episodes_per_step)
                    .map(|_| {
                        sample_episode(
                            self.background,
                            (options.way, options.drawings),
                            symmetries,
                            &self.preprocessor,
                            &self.augmentation,
                            &mut rng,
                        )
                    })
                    .collect();
                StepData::Episodes {
                    groups,
                    drawings: options.drawings,
                    margin: options.margin.unwrap_or(0.0),
                }
            }
        }
    }
}

/// The progress bar, the running loss and throughput, and the validation lines.
struct Progress {
    bar: ProgressBar,
    /// Training seconds of the run before this interval (summed over resumed sessions).
    seconds: f64,
    loss_sum: f64,
    steps: usize,
    pairs: usize,
    started: Instant,
}

impl Progress {
    fn new(options: &TrainOptions, state: &RunState) -> Self {
        let bar = ProgressBar::new(options.iterations as u64).with_position(state.iteration as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
                .expect("valid template"),
        );
        let seconds = state.history.last().map_or(0.0, |p| p.seconds);
        Self { bar, seconds, loss_sum: 0.0, steps: 0, pairs: 0, started: Instant::now() }
    }

    fn pairs_per_second(&self) -> f64 {
        self.pairs as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn mean_loss(&self) -> f64 {
        self.loss_sum / self.steps.max(1) as f64
    }

    fn step(&mut self, loss: f64, pairs: usize, state: &RunState) {
        self.loss_sum += loss;
        self.steps += 1;
        self.pairs += pairs;
        self.bar.inc(1);
        let last = state.history.last().map_or("–".to_string(), |p| format!("{:.1}%", p.accuracy));
        self.bar.set_message(format!(
            "loss {:.4}  {:.0} pairs/s  val {last}",
            self.mean_loss(),
            self.pairs_per_second()
        ));
    }

    /// Adds a validation point to the history; whether it is the best so far.
    fn validated(&mut self, state: &mut RunState, accuracy: f64) -> (ValidationPoint, bool) {
        self.seconds += self.started.elapsed().as_secs_f64();
        let point = ValidationPoint {
            iteration: state.iteration,
            loss: self.mean_loss(),
            accuracy,
            seconds: self.seconds,
        };
        state.history.push(point.clone());
        // One rule for a tie, `RunState::best`'s, decides both this and the summary's step.
        let improved = state.best().is_some_and(|best| best.iteration == point.iteration);
        (point, improved)
    }

    /// Prints the validation line and starts the next interval.
    fn report(&mut self, point: &ValidationPoint, improved: bool) {
        let line = format!(
            "step {:>6}  loss {:.4}  validation {:.2}%{}  ({:.0} pairs/s)",
            point.iteration,
            point.loss,
            point.accuracy,
            if improved { "  best" } else { "" },
            self.pairs_per_second()
        );
        // A hidden bar (output not a terminal, as in a log file) would swallow the line.
        if self.bar.is_hidden() {
            eprintln!("{line}")
        } else {
            self.bar.println(line)
        }
        (self.loss_sum, self.steps, self.pairs) = (0.0, 0, 0);
        self.started = Instant::now();
    }

    fn finish(&self) {
        self.bar.finish();
    }
}

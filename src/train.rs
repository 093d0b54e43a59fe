//! The `train` command: sample within-alphabet pairs or episodes from the background alphabets,
//! optimise with Adam, validate on the validation alphabets, keep the best network.
//!
//! Everything a run needs to continue lives in its output folder (`state.json`, the latest
//! network and optimiser state, the best network), written atomically at every validation, so a
//! killed run resumes where its last validation left it. Each step's random draws are seeded
//! from the run's seed and the step number, so a resumed run draws what an unbroken one would.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::{Alphabet, DataError, DataSet, Split, Task, TaskSampler};
use crate::eval::evaluate_tasks;
use crate::model::{Preset, Siamese, SiameseConfig};
use crate::objective::{episode_loss, image_batch, pair_loss};
use crate::preprocess::{Distortion, DistortionConfig, InkImage, Preprocessor, Symmetry};
use crate::recognize::Recognizer;
use crate::weights::{self, WeightsError};

/// What a training step optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Objective {
    /// Koch et al.: binary cross-entropy on pairs, half same, half different (within an alphabet).
    Pairs,
    /// One-shot episodes within an alphabet: classification over the head's logits plus balanced
    /// pair cross-entropy on all pairs of the episode (see `objective::episode_loss`).
    Episodes,
}

/// Which symmetries of the square make new training characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Symmetries {
    /// Characters as drawn.
    #[default]
    None,
    /// The four turns by multiples of 90°.
    Rotations,
    /// The four turns, with and without a mirror image.
    Dihedral,
}

impl Symmetries {
    /// A random element of the group.
    fn sample(self, rng: &mut StdRng) -> Symmetry {
        match self {
            Symmetries::None => Symmetry::NONE,
            Symmetries::Rotations => Symmetry::nth(rng.random_range(0..4)),
            Symmetries::Dihedral => Symmetry::nth(rng.random_range(0..8)),
        }
    }
}

/// How often a training symmetry is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum SymmetryScope {
    /// Once per episode: every character of the episode turned alike.
    #[default]
    Episode,
    /// Once per character.
    Character,
}

/// How the learning rate changes over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Schedule {
    /// Multiplied by `lr_decay` every `decay_every` steps.
    #[default]
    Step,
    /// A half cosine from the initial rate to zero at the last step.
    Cosine,
}

impl TrainOptions {
    /// The learning rate of step `iteration` (counted from 0).
    pub fn learning_rate_at(&self, iteration: usize) -> f64 {
        let warm = if iteration < self.warmup { (iteration + 1) as f64 / self.warmup as f64 } else { 1.0 };
        let decayed = match self.schedule {
            Schedule::Step => self.lr_decay.powi((iteration / self.decay_every.max(1)) as i32),
            Schedule::Cosine => {
                let progress = iteration as f64 / self.iterations.max(1) as f64;
                0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
            }
        };
        self.learning_rate * warm * decayed
    }

    /// The architecture to train: the preset's, with any of its sizes replaced.
    pub fn architecture(&self) -> Result<SiameseConfig, TrainError> {
        let mut config = self.preset.config();
        if let Some(channels) = &self.channels {
            if channels.len() != config.stages.len() || channels.contains(&0) {
                return Err(TrainError::Invalid(format!(
                    "--channels needs {} positive counts, one per stage",
                    config.stages.len()
                )));
            }
            for (stage, &channels) in config.stages.iter_mut().zip(channels) {
                stage.channels = channels;
            }
        }
        if let Some(size) = self.input_size {
            config.input_size = size;
        }
        if let Some(width) = self.embedding {
            config.embedding = width;
        }
        if config.feature_size().is_none() || config.embedding == 0 {
            return Err(TrainError::Invalid("the stages shrink that input to nothing".into()));
        }
        Ok(config)
    }
}

/// Options of the `train` command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct TrainOptions {
    /// Architecture to train.
    #[arg(long, value_enum, default_value = "web")]
    pub preset: Preset,
    /// Training objective.
    #[arg(long, value_enum, default_value = "pairs")]
    pub objective: Objective,
    /// Training steps in all (a resumed run continues up to this count).
    #[arg(long, default_value_t = 20_000)]
    pub iterations: usize,
    /// Pairs per step (`pairs` objective).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Characters per episode (`episodes` objective; fewer if the alphabet has fewer).
    #[arg(long, default_value_t = 20)]
    pub way: usize,
    /// Episodes per step (`episodes` objective).
    #[arg(long, default_value_t = 1)]
    pub episodes_per_step: usize,
    /// Adam's initial learning rate.
    #[arg(long, default_value_t = 9e-5)]
    pub learning_rate: f64,
    /// How the learning rate falls: by `--lr-decay` every `--decay-every` steps, or along a
    /// half cosine to zero at the last step.
    #[arg(long, value_enum, default_value = "step")]
    #[serde(default)]
    pub schedule: Schedule,
    /// Multiply the learning rate by this every `--decay-every` steps (`step` schedule).
    #[arg(long, default_value_t = 0.99)]
    pub lr_decay: f64,
    /// Steps between learning-rate decays (`step` schedule).
    #[arg(long, default_value_t = 500)]
    pub decay_every: usize,
    /// Raise the learning rate linearly from zero over this many first steps.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub warmup: usize,
    /// Steps between validations (and checkpoints).
    #[arg(long, default_value_t = 500)]
    pub eval_every: usize,
    /// Number of 20-way, 20-query validation tasks (fixed for the run).
    #[arg(long, default_value_t = 50)]
    pub val_tasks: usize,
    /// Train without Koch et al.'s affine distortions.
    #[arg(long)]
    pub no_distortions: bool,
    /// Treat characters turned (`rotations`: by multiples of 90°) or also mirrored (`dihedral`:
    /// all eight symmetries of the square) as new characters: four or eight times as many
    /// characters to learn from.
    #[arg(long, value_enum, default_value = "none")]
    #[serde(default)]
    pub symmetries: Symmetries,
    /// Draw the symmetry once per episode (the whole alphabet turned alike, so an episode's
    /// characters stay as alike as a real alphabet's) or once per character.
    #[arg(long, value_enum, default_value = "episode")]
    #[serde(default)]
    pub symmetry_per: SymmetryScope,
    /// Vary the pen: widen or narrow each training drawing's strokes by a pixel (a third of the
    /// time each), so the network does not learn Omniglot's one pen width.
    #[arg(long)]
    #[serde(default)]
    pub stroke_widths: bool,
    /// Output channels of each convolutional stage, replacing the preset's (same stage count).
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub channels: Option<Vec<usize>>,
    /// Side of the network's square input, replacing the preset's.
    #[arg(long)]
    #[serde(default)]
    pub input_size: Option<usize>,
    /// Width of the embedding, replacing the preset's.
    #[arg(long)]
    #[serde(default)]
    pub embedding: Option<usize>,
    /// Start from these weights instead of a random network (a new run, warm-started).
    #[arg(long)]
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Seed for weights, sampling and distortions.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output folder: checkpoints, best weights, history and plot. An existing run there resumes.
    #[arg(long, default_value = "runs/web")]
    pub out: PathBuf,
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data set could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// Another file of the run could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The output folder holds a run with other options.
    #[error("{path} holds a run with other options ({reason}); choose another --out or remove it")]
    OptionsChanged {
        /// The run's folder.
        path: PathBuf,
        /// The first difference.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Invalid(String),
}

/// One validation point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidationPoint {
    /// Steps done.
    pub iteration: usize,
    /// Mean training loss since the previous point.
    pub loss: f64,
    /// Accuracy on the validation tasks, in percent.
    pub accuracy: f64,
    /// Training seconds so far (summed over resumed sessions).
    pub seconds: f64,
}

/// Everything about a run besides tensors: `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    /// The options the run was started with.
    pub options: TrainOptions,
    /// Steps done.
    pub iteration: usize,
    /// Validation history.
    pub history: Vec<ValidationPoint>,
}

impl RunState {
    /// The best validation point so far.
    pub fn best(&self) -> Option<&ValidationPoint> {
        self.history.iter().max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
    }
}

/// File names inside a run folder.
pub mod files {
    /// Run state and history.
    pub const STATE: &str = "state.json";
    /// The latest network.
    pub const LATEST: &str = "latest.osw";
    /// The latest optimiser state.
    pub const OPTIMIZER: &str = "optimizer.bpk";
    /// The network with the best validation accuracy.
    pub const BEST: &str = "best.osw";
    /// Validation accuracy against steps.
    pub const PLOT: &str = "validation.svg";
}

/// Trains as the options say, resuming a run found in the output folder. Returns the final state.
pub fn train(options: &TrainOptions, data: &DataSet) -> Result<RunState, TrainError> {
    if options.batch_size < 2 || options.way < 2 || options.episodes_per_step == 0 || options.eval_every == 0
    {
        return Err(TrainError::Invalid(
            "batch size and way must be at least 2, intervals at least 1".into(),
        ));
    }
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| file_error(out, e))?;
    let background = data.alphabets(Split::Background, &[])?;
    let validation_alphabets = data.alphabets(Split::Validation, &[])?;
    let mut sampler = TaskSampler::new(&validation_alphabets, 20, 20, options.seed)?;
    let val_tasks: Vec<Task> = (0..options.val_tasks).map(|_| sampler.sample()).collect();

    let config = options.architecture()?;
    let device = Device::flex().autodiff();
    device.seed(options.seed);
    let mut optimizer = AdamConfig::new().init();
    let (mut model, mut state) = match read_state(out)? {
        Some(state) => {
            check_same_run(out, &state.options, options)?;
            let (_, model) = weights::load(&out.join(files::LATEST), Some(&config), &device)?;
            let bytes = read_file(&out.join(files::OPTIMIZER))?;
            optimizer = optimizer
                .from_bytes(Bytes::from_bytes_vec(bytes))
                .map_err(|e| TrainError::File { path: out.join(files::OPTIMIZER), reason: e.to_string() })?;
            eprintln!("resuming {} at step {}", out.display(), state.iteration);
            (model.train(), RunState { options: options.clone(), ..state })
        }
        None => {
            let model = match &options.init {
                Some(path) => weights::load(path, Some(&config), &device)?.1.train(),
                None => config.init(&device),
            };
            (model, RunState { options: options.clone(), iteration: 0, history: Vec::new() })
        }
    };

    let preprocessor = Preprocessor::new(config.input_size);
    let augmentation = Augmentation {
        distortion: (!options.no_distortions).then(DistortionConfig::default),
        stroke_widths: options.stroke_widths,
    };
    let progress = ProgressBar::new(options.iterations as u64).with_position(state.iteration as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("valid template"),
    );
    let mut seconds = state.history.last().map_or(0.0, |p| p.seconds);
    let (mut loss_sum, mut loss_count, mut pairs_done) = (0.0, 0usize, 0usize);
    let mut started = Instant::now();
    let last_accuracy =
        |state: &RunState| state.history.last().map_or("–".to_string(), |p| format!("{:.1}%", p.accuracy));

    while state.iteration < options.iterations {
        let mut rng = step_rng(options.seed, state.iteration);
        let lr = options.learning_rate_at(state.iteration);
        let (loss, pairs) = match options.objective {
            Objective::Pairs => {
                let batch =
                    sample_pairs(&background, options.batch_size, &preprocessor, &augmentation, &mut rng);
                let n = batch.labels.len();
                let a = image_batch(&batch.a, preprocessor.size(), &device);
                let b = image_batch(&batch.b, preprocessor.size(), &device);
                let labels = Tensor::from_data(TensorData::new(batch.labels, [n]), &device);
                (pair_loss(&model, a, b, labels), n)
            }
            Objective::Episodes => {
                let mut groups = Vec::new();
                let mut pairs = 0;
                for _ in 0..options.episodes_per_step {
                    let images = sample_episode(
                        &background,
                        options.way,
                        (options.symmetries, options.symmetry_per),
                        &preprocessor,
                        &augmentation,
                        &mut rng,
                    );
                    pairs += (images.len() / 2).pow(2);
                    groups.push(image_batch(&images, preprocessor.size(), &device));
                }
                (episode_loss(&model, groups), pairs)
            }
        };
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(lr, model, grads);
        state.iteration += 1;
        loss_sum += loss_value;
        loss_count += 1;
        pairs_done += pairs;
        progress.inc(1);
        let elapsed = started.elapsed().as_secs_f64();
        progress.set_message(format!(
            "loss {:.4}  {:.0} pairs/s  val {}",
            loss_sum / loss_count as f64,
            pairs_done as f64 / elapsed.max(1e-9),
            last_accuracy(&state)
        ));

        if state.iteration % options.eval_every == 0 || state.iteration == options.iterations {
            seconds += elapsed;
            let recognizer = Recognizer::new(model.clone(), config.clone(), device.clone().inner());
            let accuracy = evaluate_tasks(&recognizer, &val_tasks)
                .map_err(|e| TrainError::Invalid(format!("validation image: {e}")))?
                .percent();
            let improved = state.best().is_none_or(|b| accuracy > b.accuracy);
            state.history.push(ValidationPoint {
                iteration: state.iteration,
                loss: loss_sum / loss_count as f64,
                accuracy,
                seconds,
            });
            save_checkpoint(out, &model, &config, &optimizer, &state, improved)?;
            let line = format!(
                "step {:>6}  loss {:.4}  validation {:.2}%{}  ({:.0} pairs/s)",
                state.iteration,
                loss_sum / loss_count as f64,
                accuracy,
                if improved { "  best" } else { "" },
                pairs_done as f64 / elapsed.max(1e-9)
            );
            // A hidden bar (output not a terminal, as in a log file) would swallow the line.
            if progress.is_hidden() {
                eprintln!("{line}")
            } else {
                progress.println(line)
            }
            (loss_sum, loss_count, pairs_done) = (0.0, 0, 0);
            started = Instant::now();
        }
    }
    progress.finish();
    Ok(state)
}

/// The random stream for one step: a function of the seed and the step alone.
fn step_rng(seed: u64, iteration: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (iteration as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// How training drawings are varied before they reach the network.
#[derive(Clone, Debug, Default)]
pub struct Augmentation {
    /// Koch et al.'s random affine distortions, if any.
    pub distortion: Option<DistortionConfig>,
    /// Widen or narrow the strokes by a pixel, a third of the time each.
    pub stroke_widths: bool,
}

fn render(
    image: &InkImage,
    preprocessor: &Preprocessor,
    augmentation: &Augmentation,
    symmetry: Symmetry,
    rng: &mut StdRng,
) -> Vec<f32> {
    let distortion = augmentation
        .distortion
        .as_ref()
        .map_or(Distortion::NONE, |c| Distortion::sample(c, preprocessor.size(), rng))
        .after_symmetry(symmetry);
    let changed;
    let image = if augmentation.stroke_widths {
        changed = image.with_stroke_change(rng.random_range(-1..=1i8));
        &changed
    } else {
        image
    };
    // Omniglot images always have ink; a blank render would be a data-set defect worth a panic.
    preprocessor.render_distorted(image, &distortion).expect("Omniglot images are never blank")
}

/// A batch of pairs: `a[i]`, `b[i]`, and 1 where they show the same character.
pub struct PairBatch {
    /// First images.
    pub a: Vec<Vec<f32>>,
    /// Second images.
    pub b: Vec<Vec<f32>>,
    /// 1.0 for same, 0.0 for different.
    pub labels: Vec<f32>,
}

/// Koch et al.'s pairs: each from one random alphabet, the first half the same character by two
/// drawers, the second half two different characters.
pub fn sample_pairs(
    alphabets: &[&Alphabet],
    n: usize,
    preprocessor: &Preprocessor,
    augmentation: &Augmentation,
    rng: &mut StdRng,
) -> PairBatch {
    let mut batch =
        PairBatch { a: Vec::with_capacity(n), b: Vec::with_capacity(n), labels: Vec::with_capacity(n) };
    for i in 0..n {
        let alphabet = alphabets.choose(rng).expect("background alphabets");
        let same = i < n / 2;
        let characters: Vec<_> = alphabet.characters.sample(rng, 2).collect();
        let first = characters[0];
        let second = if same { first } else { characters[1] };
        let drawer = rng.random_range(0..first.drawings.len());
        let other = (drawer + rng.random_range(1..second.drawings.len())) % second.drawings.len();
        batch.a.push(render(&first.drawings[drawer], preprocessor, augmentation, Symmetry::NONE, rng));
        batch.b.push(render(&second.drawings[other], preprocessor, augmentation, Symmetry::NONE, rng));
        batch.labels.push(if same { 1.0 } else { 0.0 });
    }
    batch
}

/// One episode: `k` characters of one random alphabet, drawings `0..k` by one drawer each and
/// drawings `k..2k` of the same characters by other drawers, each character seen through a random
/// symmetry of `symmetries` (one for the whole episode, or one per character, as `scope` says).
pub fn sample_episode(
    alphabets: &[&Alphabet],
    way: usize,
    (symmetries, scope): (Symmetries, SymmetryScope),
    preprocessor: &Preprocessor,
    augmentation: &Augmentation,
    rng: &mut StdRng,
) -> Vec<Vec<f32>> {
    let alphabet = alphabets.choose(rng).expect("background alphabets");
    let k = way.min(alphabet.characters.len());
    let characters: Vec<_> = alphabet.characters.sample(rng, k).collect();
    let episode_symmetry = symmetries.sample(rng);
    let mut first = Vec::with_capacity(2 * k);
    let mut second = Vec::with_capacity(k);
    for character in characters {
        let drawers = character.drawings.len();
        let a = rng.random_range(0..drawers);
        let b = (a + rng.random_range(1..drawers)) % drawers;
        let symmetry = match scope {
            SymmetryScope::Episode => episode_symmetry,
            SymmetryScope::Character => symmetries.sample(rng),
        };
        first.push(render(&character.drawings[a], preprocessor, augmentation, symmetry, rng));
        second.push(render(&character.drawings[b], preprocessor, augmentation, symmetry, rng));
    }
    first.extend(second);
    first
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::File { path: path.to_path_buf(), reason: e.to_string() }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| file_error(path, e))
}

fn read_state(out: &Path) -> Result<Option<RunState>, TrainError> {
    let path = out.join(files::STATE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_file(&path)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| file_error(&path, e))
}

/// A resumed run must be the same experiment; only its length may change.
fn check_same_run(out: &Path, saved: &TrainOptions, asked: &TrainOptions) -> Result<(), TrainError> {
    let comparable = |o: &TrainOptions| TrainOptions { iterations: 0, out: PathBuf::new(), ..o.clone() };
    if comparable(saved) == comparable(asked) {
        return Ok(());
    }
    let (a, b) =
        (serde_json::to_value(saved).unwrap_or_default(), serde_json::to_value(asked).unwrap_or_default());
    let reason = a
        .as_object()
        .and_then(|a| {
            a.iter().find(|(k, v)| *k != "iterations" && *k != "out" && b.get(k.as_str()) != Some(v))
        })
        .map_or("options differ".to_string(), |(k, v)| format!("--{} was {v}", k.replace('_', "-")));
    Err(TrainError::OptionsChanged { path: out.to_path_buf(), reason })
}

fn save_checkpoint(
    out: &Path,
    model: &Siamese,
    config: &SiameseConfig,
    optimizer: &burn::optim::ModuleOptimizer,
    state: &RunState,
    improved: bool,
) -> Result<(), TrainError> {
    weights::save(&out.join(files::LATEST), model, config)?;
    if improved {
        weights::save(&out.join(files::BEST), model, config)?;
    }
    let path = out.join(files::OPTIMIZER);
    let bytes = optimizer.into_bytes().map_err(|e| file_error(&path, e))?;
    crate::write_atomically(&path, &bytes).map_err(|e| file_error(&path, e))?;
    let path = out.join(files::STATE);
    let json = serde_json::to_vec_pretty(state).map_err(|e| file_error(&path, e))?;
    // The state goes last: it names the step the files above belong to.
    crate::write_atomically(&path, &json).map_err(|e| file_error(&path, e))?;
    let plot = out.join(files::PLOT);
    crate::plot::validation_svg(&plot, state).map_err(|e| file_error(&plot, e))
}

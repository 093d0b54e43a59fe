//! The `train` command's options: objective, schedule, symmetries, architecture overrides.

use std::path::PathBuf;

use oneshot_core::architecture::{ConvStageConfig, Preset, SiameseConfig};
use oneshot_core::preprocess::{Distortion, Symmetry};
use rand::RngExt;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::error::TrainError;

/// What a training step optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Objective {
    /// Koch et al.: binary cross-entropy on pairs, half same, half different (within an alphabet).
    Pairs,
    /// One-shot episodes within an alphabet: classification over the head's logits plus balanced
    /// pair cross-entropy on all pairs of the episode (see `objective::episode_loss`).
    Episodes,
}

/// Which symmetries make new training characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Symmetries {
    /// Characters as drawn.
    #[default]
    None,
    /// The four turns by multiples of 90°.
    Rotations,
    /// The four turns, with and without a mirror image.
    Dihedral,
    /// The symmetries of the octagon: the dihedral eight, each also after a turn by 45° (and
    /// shrunk to 0.8 so that the corners stay in the square), sixteen alphabets for each drawn
    /// one. The page's test-time views stay the square's eight (`eval --views 16` adds the
    /// tilted ones).
    Octagon,
}

/// A symmetry a training character is seen through: one of the square's, perhaps after a turn
/// by 45° ([`Symmetries::Octagon`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainingSymmetry {
    /// The symmetry of the square.
    pub square: Symmetry,
    /// Then turned by 45° and shrunk ([`Distortion::after_tilt`]).
    pub tilted: bool,
}

impl TrainingSymmetry {
    /// As drawn.
    pub const NONE: TrainingSymmetry = TrainingSymmetry { square: Symmetry::NONE, tilted: false };

    /// `distortion` seen through this symmetry.
    pub fn apply(self, distortion: Distortion) -> Distortion {
        let turned = distortion.after_symmetry(self.square);
        if self.tilted { turned.after_tilt() } else { turned }
    }
}

impl Symmetries {
    /// A random element of the group. The dihedral group draws one number from 0..8 as it
    /// always has, so runs recorded before the octagon draw the very same pictures.
    pub fn sample(self, rng: &mut StdRng) -> TrainingSymmetry {
        let square = |square| TrainingSymmetry { square, tilted: false };
        match self {
            Symmetries::None => TrainingSymmetry::NONE,
            Symmetries::Rotations => square(Symmetry::nth(rng.random_range(0..4))),
            Symmetries::Dihedral => square(Symmetry::nth(rng.random_range(0..8))),
            Symmetries::Octagon => {
                let i: u8 = rng.random_range(0..16);
                TrainingSymmetry { square: Symmetry::nth(i % 8), tilted: i >= 8 }
            }
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

/// One convolutional stage as `--stages` spells it: its output channels, and `p` after them for
/// a 2×2 max-pool after it (`128p`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    /// Output channels.
    pub channels: usize,
    /// Follow the stage with a 2×2 max-pool.
    pub pool: bool,
}

impl std::str::FromStr for StageSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (count, pool) = match text.strip_suffix('p') {
            Some(count) => (count, true),
            None => (text, false),
        };
        match count.parse::<usize>() {
            Ok(channels) if channels > 0 => Ok(StageSpec { channels, pool }),
            _ => Err(format!("{text:?} is not a stage: a positive channel count, `p` after it to pool")),
        }
    }
}

/// Drawers of every Omniglot character: the most drawings of one an episode can hold.
const OMNIGLOT_DRAWERS: usize = 20;

/// Two drawings per character: what runs written before `--drawings` existed used.
fn two_drawings() -> usize {
    2
}

impl TrainOptions {
    /// Checks the counts and intervals.
    pub fn check(&self) -> Result<(), TrainError> {
        if self.batch_size < 2 || self.way < 2 || self.episodes_per_step == 0 || self.eval_every == 0 {
            return Err(TrainError::Invalid(
                "batch size and way must be at least 2, intervals at least 1".into(),
            ));
        }
        if !(2..=OMNIGLOT_DRAWERS).contains(&self.drawings) {
            return Err(TrainError::Invalid(format!(
                "drawings per character must be 2 to {OMNIGLOT_DRAWERS} (Omniglot's drawers of each)"
            )));
        }
        if self.weight_decay.is_some_and(|decay| !(0.0..1.0).contains(&decay)) {
            return Err(TrainError::Invalid("weight decay must be at least 0 and below 1".into()));
        }
        for (name, p) in [("fragments", self.fragments), ("chimeras", self.chimeras), ("twins", self.twins)] {
            if let Some(p) = p
                && (!(0.0..=1.0).contains(&p) || self.objective != Objective::Episodes)
            {
                return Err(TrainError::Invalid(format!(
                    "{name} is a probability from 0 to 1, for the episodes objective"
                )));
            }
        }
        if self.margin.is_some_and(|m| !(m >= 0.0 && m.is_finite()) || self.objective != Objective::Episodes)
        {
            return Err(TrainError::Invalid(
                "margin is a logit of 0 or more, for the episodes objective".into(),
            ));
        }
        Ok(())
    }

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
        if let Some(specs) = &self.stages {
            if self.channels.is_some() || specs.is_empty() {
                return Err(TrainError::Invalid(
                    "give --stages (at least one) or --channels, not both".into(),
                ));
            }
            // Every stage is of the preset's last stage's kind: its kernel and padding.
            let kind = config
                .stages
                .last()
                .cloned()
                .ok_or_else(|| TrainError::Invalid("the preset has no stages".into()))?;
            config.stages = specs
                .iter()
                .map(|spec| ConvStageConfig { channels: spec.channels, pool: spec.pool, ..kind.clone() })
                .collect();
        }
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
        config.product_head |= self.product_head;
        if config.feature_size().is_none() || config.embedding == 0 {
            return Err(TrainError::Invalid("the stages shrink that input to nothing".into()));
        }
        Ok(config)
    }
}

/// Options of the `train` command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct TrainOptions {
    /// Architecture to train: `koch` (the paper's) or `web` (the page's).
    #[arg(long, default_value = "web")]
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
    /// Drawings of each character per episode, by different drawers (`episodes` objective):
    /// every two of them make a one-shot episode of their own.
    #[arg(long, default_value_t = 2)]
    #[serde(default = "two_drawings")]
    pub drawings: usize,
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
    /// Decoupled weight decay (AdamW): each step every kernel and matrix shrinks by the learning
    /// rate times this of itself (biases and norms do not). None when absent.
    #[arg(long)]
    #[serde(default)]
    pub weight_decay: Option<f32>,
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
    /// all eight symmetries of the square; `octagon`: those and each after a turn by 45°) as
    /// new characters: four, eight or sixteen times as many characters to learn from.
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
    /// Bend each training drawing elastically: a 4×4 lattice of control points over the square,
    /// each moved by up to this many pixels of a 105-pixel image, carries the strokes with it
    /// (as two people's drawings of a character differ). Off when absent.
    #[arg(long)]
    #[serde(default)]
    pub elastic: Option<f32>,
    /// Replace each episode character, with this probability, by one half of it (the left,
    /// right, top or bottom half of every drawing's ink box) as a character of its own: five
    /// times as many characters to learn from, many of them near-twins of their alphabet's
    /// others. Off when absent; episodes only.
    #[arg(long)]
    #[serde(default)]
    pub fragments: Option<f64>,
    /// Replace each episode character after the first, with this probability, by half of it
    /// (the left, right, top or bottom half of every drawing's ink box) joined with the other
    /// half of an earlier character of the episode, drawn by the same drawer: a character of
    /// the alphabet that never was, a near-twin of the earlier one. A part with less than a
    /// fifth of its drawing's ink keeps the character. Off when absent; episodes only.
    #[arg(long)]
    #[serde(default)]
    pub chimeras: Option<f64>,
    /// Replace each episode character after the first, with this probability, by a turned or
    /// mirrored copy of an earlier one (the same drawings through another symmetry of the
    /// square) as a character of its own: negatives that differ from a character by its slope
    /// or handedness alone. A copy that looks as much like its original as two drawers'
    /// drawings of it do (a symmetric character) keeps the character. Off when absent;
    /// episodes only.
    #[arg(long)]
    #[serde(default)]
    pub twins: Option<f64>,
    /// Subtract this from each matching pair's logit in the episodes' classifications, so a
    /// character keeps learning until it beats its nearest rival by this much (an additive
    /// margin; the same/different cross-entropy is unchanged). Off when absent; episodes only.
    #[arg(long)]
    #[serde(default)]
    pub margin: Option<f32>,
    /// Output channels of each convolutional stage, replacing the preset's (same stage count).
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub channels: Option<Vec<usize>>,
    /// The convolutional stages, replacing the preset's: output channels of each, `p` after a
    /// stage followed by a 2×2 max-pool (`64p,64p,128p,128,128p`), each with the kernel and
    /// padding of the preset's last stage.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub stages: Option<Vec<StageSpec>>,
    /// Side of the network's square input, replacing the preset's.
    #[arg(long)]
    #[serde(default)]
    pub input_size: Option<usize>,
    /// Width of the embedding, replacing the preset's.
    #[arg(long)]
    #[serde(default)]
    pub embedding: Option<usize>,
    /// Add a product term to the similarity head, `u · (h₁ ⊙ h₂)` beside Koch et al.'s weighted
    /// L1, so two drawings that both have a feature score otherwise than two that both lack it.
    #[arg(long)]
    #[serde(default)]
    pub product_head: bool,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        options: TrainOptions,
    }

    /// The octagon draws each of its sixteen symmetries, half of them tilted; the dihedral group
    /// draws from the random stream exactly as before the octagon existed (one number of 0..8),
    /// so recorded runs keep their pictures.
    #[test]
    fn the_octagon_tilts_half_its_draws_and_the_square_draws_as_before() {
        use rand::SeedableRng;

        let (mut rng, mut before) = (StdRng::seed_from_u64(9), StdRng::seed_from_u64(9));
        for _ in 0..100 {
            let drawn = Symmetries::Dihedral.sample(&mut rng);
            assert_eq!(
                drawn,
                TrainingSymmetry { square: Symmetry::nth(before.random_range(0..8)), tilted: false }
            );
        }
        let mut seen = std::collections::HashSet::new();
        let draws: Vec<TrainingSymmetry> = (0..1600).map(|_| Symmetries::Octagon.sample(&mut rng)).collect();
        for drawn in &draws {
            seen.insert((drawn.square.quarter_turns, drawn.square.mirrored, drawn.tilted));
        }
        assert_eq!(seen.len(), 16);
        let tilted = draws.iter().filter(|d| d.tilted).count();
        assert!((700..900).contains(&tilted), "{tilted} of 1,600 tilted");
    }

    fn architecture(arguments: &[&str]) -> Result<SiameseConfig, TrainError> {
        let arguments = std::iter::once("train").chain(arguments.iter().copied());
        Command::try_parse_from(arguments)
            .map_err(|e| TrainError::Invalid(e.to_string()))?
            .options
            .architecture()
    }

    /// Parses `train` with these arguments (they must parse) and checks the options.
    fn check(arguments: &[&str]) -> Result<(), TrainError> {
        let arguments = std::iter::once("train").chain(arguments.iter().copied());
        Command::try_parse_from(arguments).expect("options parse").options.check()
    }

    #[test]
    fn weight_decay_must_be_at_least_zero_and_below_one() {
        let check = |decay: &str| {
            let argument = format!("--weight-decay={decay}");
            Command::try_parse_from(["train", argument.as_str()]).expect("a number parses").options.check()
        };
        assert!(check("0.05").is_ok());
        assert!(check("1.5").is_err());
        assert!(check("-0.1").is_err());
    }

    #[test]
    fn fragments_are_a_probability_for_episodes() {
        assert!(check(&["--objective", "episodes", "--fragments", "0.3"]).is_ok());
        assert!(check(&["--objective", "episodes", "--fragments", "1.5"]).is_err());
        assert!(check(&["--objective", "pairs", "--fragments", "0.3"]).is_err());
        assert!(check(&["--objective", "episodes", "--chimeras", "0.2"]).is_ok());
        assert!(check(&["--objective", "episodes", "--chimeras", "1.2"]).is_err());
        assert!(check(&["--objective", "pairs", "--chimeras", "0.2"]).is_err());
        assert!(check(&["--objective", "episodes", "--twins", "0.2"]).is_ok());
        assert!(check(&["--objective", "episodes", "--twins", "1.2"]).is_err());
        assert!(check(&["--objective", "pairs", "--twins", "0.2"]).is_err());
    }

    #[test]
    fn the_margin_is_a_logit_of_zero_or_more_for_episodes() {
        assert!(check(&["--objective", "episodes", "--margin", "2"]).is_ok());
        assert!(check(&["--objective", "episodes", "--margin=-1"]).is_err());
        assert!(check(&["--objective", "episodes", "--margin", "NaN"]).is_err());
        assert!(check(&["--objective", "pairs", "--margin", "2"]).is_err());
    }

    #[test]
    fn stages_replace_the_presets_with_its_kind_of_stage() {
        let config = architecture(&["--stages", "64p,64p,128p,128,96p"]).expect("valid stages");
        let shapes: Vec<(usize, usize, bool, bool)> =
            config.stages.iter().map(|s| (s.channels, s.kernel, s.same_padding, s.pool)).collect();
        assert_eq!(
            shapes,
            [
                (64, 3, true, true),
                (64, 3, true, true),
                (128, 3, true, true),
                (128, 3, true, false),
                (96, 3, true, true)
            ]
        );
        assert_eq!(config.feature_size(), Some(2));
    }

    #[test]
    fn stages_refuse_bad_counts_and_channels_beside_them() {
        assert!(architecture(&["--stages", "64p,0p"]).is_err());
        assert!(architecture(&["--stages", "64q"]).is_err());
        assert!(architecture(&["--stages", "64p,64p", "--channels", "64,64,128,128"]).is_err());
        // Six pools shrink 32 pixels to nothing.
        assert!(architecture(&["--stages", "8p,8p,8p,8p,8p,8p"]).is_err());
    }
}

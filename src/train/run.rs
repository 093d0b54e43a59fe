//! A run's folder: its state (options, step, validation history), checkpoints written
//! atomically, and the checks that make a resumed run the same experiment.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use oneshot_core::architecture::SiameseConfig;
use oneshot_model::BuildNetwork;
use oneshot_model::Siamese;
use oneshot_model::adam::adam_w;
use oneshot_model::weights::{self, Encoding};
use serde::{Deserialize, Serialize};

use super::error::TrainError;
use super::options::TrainOptions;
use crate::plot::{PlotPoint, validation_svg};

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
    /// The best validation point so far: of equal ones the first, the one `best.osw` holds
    /// (a later point replaces it only when strictly better).
    pub fn best(&self) -> Option<&ValidationPoint> {
        first_best(&self.history)
    }
}

/// The earliest point of highest accuracy (`Iterator::max_by` would give the last of a tie).
fn first_best(history: &[ValidationPoint]) -> Option<&ValidationPoint> {
    history.iter().reduce(|best, point| if point.accuracy > best.accuracy { point } else { best })
}

/// File names inside a run folder.
pub mod files {
    /// Run state and history; it names the checkpoint a resumed run starts from.
    pub const STATE: &str = "state.json";
    /// The network at step `step` (the checkpoint `state.json` names; older ones are removed).
    pub fn network(step: usize) -> String {
        format!("network-{step:07}.osw")
    }
    /// The optimiser state at step `step`.
    pub fn optimizer(step: usize) -> String {
        format!("optimizer-{step:07}.bpk")
    }
    /// Checkpoint names of runs written before step-numbered checkpoints (still resumed).
    pub const LEGACY_NETWORK: &str = "latest.osw";
    /// See [`LEGACY_NETWORK`].
    pub const LEGACY_OPTIMIZER: &str = "optimizer.bpk";
    /// The network with the best validation accuracy.
    pub const BEST: &str = "best.osw";
    /// Validation accuracy against steps.
    pub const PLOT: &str = "validation.svg";
}

pub(super) fn file_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::File { path: path.to_path_buf(), reason: e.to_string() }
}

pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| file_error(path, e))
}

pub(super) fn read_state(out: &Path) -> Result<Option<RunState>, TrainError> {
    let path = out.join(files::STATE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_file(&path)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| file_error(&path, e))
}

/// A resumed run must be the same experiment; only its length may change.
pub(super) fn check_same_run(
    out: &Path,
    saved: &TrainOptions,
    asked: &TrainOptions,
) -> Result<(), TrainError> {
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

/// Writes a checkpoint so that a process killed at any instant leaves a run that resumes
/// exactly: the network and optimiser of step `n` go to files named for `n` (each written
/// atomically), then `state.json` (atomically) names step `n`, and only then are older
/// checkpoints removed. Until the state is replaced it still names files that exist.
pub(super) fn save_checkpoint(
    out: &Path,
    model: &Siamese,
    config: &SiameseConfig,
    optimizer: &ModuleOptimizer,
    state: &RunState,
    improved: bool,
) -> Result<(), TrainError> {
    let step = state.iteration;
    weights::save(&out.join(files::network(step)), model, config, Encoding::F32)?;
    let path = out.join(files::optimizer(step));
    let bytes = optimizer.into_bytes().map_err(|e| file_error(&path, e))?;
    oneshot_core::write_atomically(&path, &bytes).map_err(|e| file_error(&path, e))?;
    if improved {
        weights::save(&out.join(files::BEST), model, config, Encoding::F32)?;
    }
    let path = out.join(files::STATE);
    let json = serde_json::to_vec_pretty(state).map_err(|e| file_error(&path, e))?;
    oneshot_core::write_atomically(&path, &json).map_err(|e| file_error(&path, e))?;
    remove_other_checkpoints(out, step)?;
    let plot = out.join(files::PLOT);
    plot_history(&plot, state).map_err(|e| file_error(&plot, e))
}

/// Removes every checkpoint file but step `keep`'s (and leftovers of interrupted writes).
fn remove_other_checkpoints(out: &Path, keep: usize) -> Result<(), TrainError> {
    let keep = [files::network(keep), files::optimizer(keep)];
    for entry in std::fs::read_dir(out).map_err(|e| file_error(out, e))? {
        let path = entry.map_err(|e| file_error(out, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let checkpoint = name.starts_with("network-") || name.starts_with("optimizer-");
        let stale = (checkpoint && !keep.iter().any(|k| k == name))
            || name.ends_with(".tmp")
            || name == files::LEGACY_NETWORK
            || name == files::LEGACY_OPTIMIZER;
        if stale {
            std::fs::remove_file(&path).map_err(|e| file_error(&path, e))?;
        }
    }
    Ok(())
}

/// Draws a run's validation curve.
pub fn plot_history(path: &Path, state: &RunState) -> Result<(), Box<dyn std::error::Error>> {
    let title = format!(
        "{} preset, {} objective: 20-way validation accuracy",
        state.options.preset.name(),
        format!("{:?}", state.options.objective).to_lowercase()
    );
    let points: Vec<PlotPoint> = state
        .history
        .iter()
        .map(|p| PlotPoint { iteration: p.iteration, accuracy: p.accuracy, loss: p.loss })
        .collect();
    validation_svg(path, &title, &points)
}

/// A network, its optimiser and the run's state: where a run starts or resumes.
pub(super) struct Checkpoint {
    pub model: Siamese,
    pub optimizer: ModuleOptimizer,
    pub state: RunState,
}

/// Resumes the run in `options.out` if there is one (it must be the same experiment), otherwise
/// starts one from a fresh network or from `--init`'s weights.
pub(super) fn start_or_resume(
    options: &TrainOptions,
    config: &SiameseConfig,
    device: &Device,
) -> Result<Checkpoint, TrainError> {
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| file_error(out, e))?;
    let optimizer = adam_w(options.weight_decay.unwrap_or(0.0));
    match read_state(out)? {
        Some(state) => {
            check_same_run(out, &state.options, options)?;
            // The checkpoint the state names (runs from before step-numbered files: the old names).
            let (network, optimizer_path) = [
                (files::network(state.iteration), files::optimizer(state.iteration)),
                (files::LEGACY_NETWORK.to_string(), files::LEGACY_OPTIMIZER.to_string()),
            ]
            .into_iter()
            .find(|(n, _)| out.join(n).exists())
            .unwrap_or((files::network(state.iteration), files::optimizer(state.iteration)));
            let (_, model) = weights::load(&out.join(network), Some(config), device)?;
            let path = out.join(optimizer_path);
            let optimizer = optimizer
                .from_bytes(Bytes::from_bytes_vec(read_file(&path)?))
                .map_err(|e| file_error(&path, e))?;
            eprintln!("resuming {} at step {}", out.display(), state.iteration);
            let state = RunState { options: options.clone(), ..state };
            Ok(Checkpoint { model: model.train(), optimizer, state })
        }
        None => {
            let model = match &options.init {
                Some(path) => weights::load(path, Some(config), device)?.1.train(),
                None => config.init(device),
            };
            let state = RunState { options: options.clone(), iteration: 0, history: Vec::new() };
            Ok(Checkpoint { model, optimizer, state })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(iteration: usize, accuracy: f64) -> ValidationPoint {
        ValidationPoint { iteration, loss: 0.0, accuracy, seconds: 0.0 }
    }

    #[test]
    fn a_tie_keeps_the_earlier_point_as_best_osw_does() {
        let history = [point(35_000, 86.3), point(40_000, 86.8), point(45_000, 86.35), point(50_000, 86.8)];
        assert_eq!(first_best(&history).map(|p| p.iteration), Some(40_000));
        assert_eq!(first_best(&history[..3]).map(|p| p.iteration), Some(40_000));
        assert_eq!(first_best(&[point(5_000, 80.0), point(10_000, 81.0)]).map(|p| p.iteration), Some(10_000));
        assert!(first_best(&[]).is_none());
    }
}

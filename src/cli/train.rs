//! `train` and `plot`: a training run and its curve.

use std::path::{Path, PathBuf};

use oneshot::train::{RunState, TrainOptions, files, plot_history, train};
use oneshot_data::DataSet;

use super::AnyError;

pub fn run_train(options: &TrainOptions, data_dir: &Path) -> Result<(), AnyError> {
    let data = DataSet::load(data_dir)?;
    let state = train(options, &data)?;
    if let Some(best) = state.best() {
        println!(
            "best validation accuracy {:.2}% at step {}; weights in {}",
            best.accuracy,
            best.iteration,
            options.out.join(files::BEST).display()
        );
    }
    Ok(())
}

pub fn run_plot(run: &Path, out: Option<PathBuf>) -> Result<(), AnyError> {
    let state_path = run.join(files::STATE);
    let bytes = std::fs::read(&state_path).map_err(|e| format!("{}: {e}", state_path.display()))?;
    let state: RunState =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", state_path.display()))?;
    let out = out.unwrap_or_else(|| run.join(files::PLOT));
    plot_history(&out, &state).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

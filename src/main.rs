//! `oneshot`: train, evaluate and measure the Siamese network on Omniglot.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oneshot::train::TrainOptions;
use oneshot_data as data;

use cli::bench::{BenchOptions, ExportOptions, PackOptions, run_bench, run_export, run_pack};
use cli::eval::{CalibrateOptions, EvalOptions, StrokesOptions, run_calibrate, run_eval, run_strokes};
use cli::score::{ScoreOptions, run_score};
use cli::train::{run_plot, run_train};

#[derive(Parser)]
#[command(version, about = "One-shot character recognition with a Siamese network on Omniglot")]
struct Cli {
    /// Folder holding images_background.zip, images_evaluation.zip and all_runs.zip.
    #[arg(long, global = true, env = data::DATA_DIR_ENV)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on the background alphabets, validating on the validation alphabets.
    // An option given twice takes its last value, so a recipe (`scripts/train-web`) can be
    // shortened or redirected by options appended to it.
    #[command(args_override_self = true)]
    Train(TrainOptions),
    /// Measure one-shot accuracy on Lake's runs and on random within-alphabet tasks.
    Eval(EvalOptions),
    /// Measure recognition of human pen strokes (Lake's recorded trajectories) painted at several
    /// sizes, against the scans of the very same drawings.
    Strokes(StrokesOptions),
    /// Choose the page's "none of these" threshold on the validation alphabets, with its error
    /// rates (and those of comparing two drawings).
    Calibrate(CalibrateOptions),
    /// Score query pictures against support pictures (PNG files, read as the page reads a canvas).
    Score(ScoreOptions),
    /// Time embedding, a 20-way query and training steps on this machine (synthetic drawings).
    Bench(BenchOptions),
    /// Write a network's tensors and reference outputs for other stacks (scripts/peers/).
    Export(ExportOptions),
    /// Re-encode a weights file in the current format (8-bit for shipping, or exact).
    Pack(PackOptions),
    /// Redraw a run's validation plot from its state.json.
    Plot {
        /// The run's folder (train's --out).
        run: PathBuf,
        /// Where to write the SVG (default: validation.svg in the run's folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let data_dir = || data::data_dir(cli.data_dir.as_deref());
    let result = match &cli.command {
        Command::Train(options) => data_dir().map_err(Into::into).and_then(|dir| run_train(options, &dir)),
        Command::Eval(options) => data_dir().map_err(Into::into).and_then(|dir| run_eval(options, &dir)),
        Command::Strokes(options) => {
            data_dir().map_err(Into::into).and_then(|dir| run_strokes(options, &dir))
        }
        Command::Calibrate(options) => {
            data_dir().map_err(Into::into).and_then(|dir| run_calibrate(options, &dir))
        }
        Command::Score(options) => run_score(options),
        Command::Bench(options) => run_bench(options),
        Command::Export(options) => run_export(options),
        Command::Pack(options) => run_pack(options),
        Command::Plot { run, out } => run_plot(run, out.clone()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Keeps freed memory in the process instead of handing it back to the kernel. By default glibc
/// serves every large allocation with its own `mmap` and unmaps it when freed, so each training
/// step faulted in and zeroed its feature maps afresh: for Koch et al.'s network (maps of 75 MB)
/// that was close to half of a step (`oneshot bench --preset koch`: 9.2 → 17 pairs/s with the
/// same thresholds set through glibc's environment variables). Memory stays at its peak instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: `mallopt` only tunes the allocator; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Elsewhere the allocator keeps its defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

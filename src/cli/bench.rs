//! `bench`, `export` and `pack`: timings on this machine, the network for other stacks, and
//! weights files re-encoded for shipping.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use oneshot::bench;
use oneshot_core::architecture::{Preset, SiameseConfig};
use oneshot_model::weights;
use oneshot_model::{BuildNetwork, Siamese};

use super::AnyError;

#[derive(clap::Args)]
pub struct BenchOptions {
    /// Architecture to time.
    #[arg(long, default_value = "web")]
    pub preset: Preset,
    /// Weights to load (timings do not depend on them; default: a freshly initialised network);
    /// of a committee file, its first network is timed.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Timed repetitions of each inference measurement (after 3 warm-up runs).
    #[arg(long, default_value_t = 100)]
    pub repetitions: usize,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub train_steps: usize,
    /// Print the rows as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ExportOptions {
    /// Architecture to export.
    #[arg(long, default_value = "web")]
    pub preset: Preset,
    /// Weights to export (default: a freshly initialised network, from --seed).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the fresh network when no weights are given.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to write weights.safetensors, reference.safetensors and model.osw into.
    #[arg(long)]
    pub out: PathBuf,
}

/// The network of `config` on the CPU: from a weights file, or freshly initialised (from `seed`
/// when given).
fn network(config: &SiameseConfig, weights: Option<&Path>, seed: Option<u64>) -> Result<Siamese, AnyError> {
    let device = Device::flex();
    Ok(match weights {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let first = weights::members(&bytes)?[0];
            weights::from_bytes(first, Some(config), &device)?.1
        }
        None => {
            if let Some(seed) = seed {
                device.seed(seed);
            }
            config.init(&device)
        }
    })
}

pub fn run_bench(options: &BenchOptions) -> Result<(), AnyError> {
    let config = options.preset.config();
    let model = network(&config, options.weights.as_deref(), None)?;
    let workload = bench::Workload::new(&config);
    let mut rows = bench::inference(&model, &config, &workload, options.repetitions);
    let episodes = options.preset == Preset::Web;
    rows.extend(bench::training(&model, &workload, options.train_steps, episodes));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if options.json {
        let report = serde_json::json!({
            "stack": "Burn + own CPU kernels", "preset": options.preset.name(), "cores": cores, "rows": rows,
        });
        println!("{report}");
    } else {
        println!(
            "CPU: own kernels for inference and, inside Burn's autodiff, for the training passes of \
             the convolutional stages (web and koch); Burn flex for the rest; {cores} cores, release build\n"
        );
        print!("{}", bench::markdown(options.preset.name(), &rows));
    }
    Ok(())
}

pub fn run_export(options: &ExportOptions) -> Result<(), AnyError> {
    let config = options.preset.config();
    let model = network(&config, options.weights.as_deref(), Some(options.seed))?;
    oneshot::export::export(&options.out, &model, &config)?;
    println!("wrote {}", options.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct PackOptions {
    /// The weights file to re-encode (any format this version reads).
    #[arg(long)]
    pub weights: PathBuf,
    /// Further networks of the same architecture to pack with it into one committee file (they
    /// answer together: each over its own views, their logits averaged); repeat for more.
    #[arg(long)]
    pub with: Vec<PathBuf>,
    /// Of a committee file given as `--weights`, take this network alone (1 is the first).
    #[arg(long)]
    pub network: Option<usize>,
    /// Where to write it.
    #[arg(long)]
    pub out: PathBuf,
    /// `q8` (8-bit, a quarter of the size: what the page ships) or `f32` (exact).
    #[arg(long, default_value = "q8", value_parser = parse_encoding)]
    pub encoding: weights::Encoding,
}

fn parse_encoding(name: &str) -> Result<weights::Encoding, String> {
    match name {
        "q8" => Ok(weights::Encoding::Q8),
        "f32" => Ok(weights::Encoding::F32),
        other => Err(format!("unknown encoding {other:?}: q8 or f32")),
    }
}

/// Network `n` (from 1) of a committee file.
fn one_network(path: &Path, n: usize) -> Result<(SiameseConfig, Siamese), AnyError> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let networks = weights::members(&bytes)?;
    let network = n.checked_sub(1).and_then(|i| networks.get(i)).ok_or_else(|| {
        format!("{} holds {} network(s), not a network {n}", path.display(), networks.len())
    })?;
    Ok(weights::from_bytes(network, None, &Device::flex())?)
}

/// Re-encodes a weights file in the current format, or several into a committee file.
pub fn run_pack(options: &PackOptions) -> Result<(), AnyError> {
    let mut files = Vec::new();
    let mut first_config = None;
    for (index, path) in std::iter::once(&options.weights).chain(&options.with).enumerate() {
        let (config, model) = match options.network.filter(|_| index == 0) {
            Some(n) => one_network(path, n)?,
            None => weights::load(path, first_config.as_ref(), &Device::flex())?,
        };
        files.push(weights::to_bytes(&model, &config, options.encoding));
        first_config.get_or_insert(config);
    }
    let bytes = weights::join(&files.iter().map(Vec::as_slice).collect::<Vec<_>>());
    oneshot_core::write_atomically(&options.out, &bytes)
        .map_err(|e| format!("{}: {e}", options.out.display()))?;
    let networks =
        if files.len() > 1 { format!(", a committee of {} networks", files.len()) } else { String::new() };
    println!("wrote {} ({} bytes, {:?}{networks})", options.out.display(), bytes.len(), options.encoding);
    Ok(())
}

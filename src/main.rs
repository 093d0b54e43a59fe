//! `oneshot`: train and evaluate the Siamese network on Omniglot.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand};

use oneshot::bench;
use oneshot::data::{self, Archive, DataSet, Split, TaskSampler};
use oneshot::eval::{NearestNeighbour, OneShotClassifier, evaluate_runs, evaluate_tasks};
use oneshot::model::{Preset, Siamese, SiameseConfig};
use oneshot::preprocess::{InkImage, Preprocessor};
use oneshot::recognize::{DEFAULT_VIEWS, Recognizer};
use oneshot::train::{TrainOptions, train};
use oneshot::weights;

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
    Train(TrainOptions),
    /// Measure one-shot accuracy on Lake's runs and on random within-alphabet tasks.
    Eval(EvalOptions),
    /// Measure recognition of human pen strokes (Lake's recorded trajectories) painted at several
    /// sizes, against the scans of the very same drawings.
    Strokes(StrokesOptions),
    /// Score query pictures against support pictures (PNG files, read as the page reads a canvas).
    Score(ScoreOptions),
    /// Time embedding, a 20-way query and training steps on this machine (synthetic drawings).
    Bench(BenchOptions),
    /// Write a network's tensors and reference outputs for other stacks (scripts/peers/).
    Export(ExportOptions),
    /// Redraw a run's validation plot from its state.json.
    Plot {
        /// The run's folder (train's --out).
        run: PathBuf,
        /// Where to write the SVG (default: validation.svg in the run's folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct BenchOptions {
    /// Architecture to time.
    #[arg(long, value_enum, default_value = "web")]
    preset: Preset,
    /// Weights to load (timings do not depend on them; default: a freshly initialised network).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Timed repetitions of each inference measurement (after 3 warm-up runs).
    #[arg(long, default_value_t = 100)]
    repetitions: usize,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    train_steps: usize,
    /// Print the rows as JSON instead of a Markdown table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ExportOptions {
    /// Architecture to export.
    #[arg(long, value_enum, default_value = "web")]
    preset: Preset,
    /// Weights to export (default: a freshly initialised network, from --seed).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed of the fresh network when no weights are given.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write weights.safetensors, reference.safetensors and model.osw into.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct StrokesOptions {
    /// Weights of the network.
    #[arg(long, default_value = "weights/web.osw")]
    weights: PathBuf,
    /// Lake's stroke archive (default: strokes_background_small2.zip in the data folder).
    #[arg(long)]
    strokes: Option<PathBuf>,
    /// Random within-alphabet tasks, one query per class.
    #[arg(long, default_value_t = 50)]
    tasks: usize,
    /// Classes per task.
    #[arg(long, default_value_t = 20)]
    way: usize,
    /// Seed for the tasks.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Sizes to replay the drawings at: the fraction of the pad the longer side spans.
    #[arg(long, value_delimiter = ',', default_value = "0.3,0.6,0.9")]
    sizes: Vec<f32>,
    /// Embed each picture as the mean of this many fixed views (the page uses the default).
    #[arg(long, default_value_t = DEFAULT_VIEWS)]
    views: usize,
    /// Also write the tasks (strokes in 0..1 of Omniglot's canvas) and these accuracies as JSON,
    /// for the page's replay test.
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ScoreOptions {
    /// Weights of the network.
    #[arg(long)]
    weights: PathBuf,
    /// Support pictures, one per class.
    #[arg(long, required = true)]
    support: Vec<PathBuf>,
    /// Query pictures.
    #[arg(long, required = true)]
    query: Vec<PathBuf>,
    /// Embed each picture as the mean of this many fixed views (the page uses the default).
    #[arg(long, default_value_t = DEFAULT_VIEWS)]
    views: usize,
}

#[derive(clap::Args)]
struct EvalOptions {
    /// Weights of the network to evaluate; without them only the nearest-neighbour baseline runs.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Lake-format run set (zip or folder); defaults to all_runs.zip in the data folder.
    #[arg(long)]
    runs: Option<PathBuf>,
    /// Skip the run set.
    #[arg(long)]
    no_runs: bool,
    /// Random tasks per task size (0: none).
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Classes per random task; repeat or separate with commas for several sizes.
    #[arg(long, value_delimiter = ',', default_value = "20,5")]
    way: Vec<usize>,
    /// Alphabets the random tasks come from: by default the ten test alphabets of Lake's runs,
    /// with other drawers and characters than his runs (never used to choose anything); use
    /// `validation` for model selection.
    #[arg(long, value_enum, default_value = "test")]
    split: Split,
    /// Only these alphabets of the split (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    alphabets: Vec<String>,
    /// Seed for the random tasks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Embed each picture as the mean of this many fixed views (test-time augmentation; 1: off).
    #[arg(long, default_value_t = DEFAULT_VIEWS)]
    views: usize,
    /// Input size of the nearest-neighbour baseline when no weights are given.
    #[arg(long, default_value_t = 32)]
    size: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data_dir = data::data_dir(cli.data_dir.as_deref());
    let result = match cli.command {
        Command::Train(options) => run_train(&options, &data_dir),
        Command::Eval(options) => run_eval(&options, &data_dir),
        Command::Strokes(options) => run_strokes(&options, &data_dir),
        Command::Score(options) => run_score(&options),
        Command::Bench(options) => run_bench(&options),
        Command::Export(options) => run_export(&options),
        Command::Plot { run, out } => run_plot(&run, out),
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

type AnyError = Box<dyn std::error::Error>;

fn run_train(options: &TrainOptions, data_dir: &Path) -> Result<(), AnyError> {
    let data = DataSet::load(data_dir)?;
    let state = train(options, &data)?;
    if let Some(best) = state.best() {
        println!(
            "best validation accuracy {:.2}% at step {}; weights in {}",
            best.accuracy,
            best.iteration,
            options.out.join(oneshot::train::files::BEST).display()
        );
    }
    Ok(())
}

fn run_eval(options: &EvalOptions, data_dir: &Path) -> Result<(), AnyError> {
    let device = Device::flex();
    let mut classifiers: Vec<Box<dyn OneShotClassifier>> = Vec::new();
    let size = match &options.weights {
        Some(path) => {
            let (config, model) = weights::load(path, None, &device)?;
            let size = config.input_size;
            classifiers.push(Box::new(Recognizer::new(model, config, device).with_views(options.views)));
            size
        }
        None => options.size,
    };
    classifiers.push(Box::new(NearestNeighbour { preprocessor: Preprocessor::new(size) }));

    let mut rows = Vec::new();
    if !options.no_runs {
        let path = options.runs.clone().unwrap_or_else(|| data_dir.join("all_runs.zip"));
        let runs = data::load_runs(&Archive::open(&path)?)?;
        let name = format!(
            "{} ({} runs)",
            path.file_name().map_or("runs".into(), |n| n.to_string_lossy()),
            runs.len()
        );
        for classifier in &classifiers {
            rows.push((classifier.name(), name.clone(), evaluate_runs(classifier.as_ref(), &runs)?));
        }
    }
    if options.tasks > 0 {
        let data = DataSet::load(data_dir)?;
        let alphabets = data.alphabets(options.split, &options.alphabets)?;
        for &way in &options.way {
            let mut sampler = TaskSampler::new(&alphabets, way, 1, options.seed)?;
            let tasks: Vec<_> = (0..options.tasks).map(|_| sampler.sample()).collect();
            let name = format!("{way}-way random, {:?} alphabets", options.split).to_lowercase();
            for classifier in &classifiers {
                rows.push((classifier.name(), name.clone(), evaluate_tasks(classifier.as_ref(), &tasks)?));
            }
        }
    }
    println!("| method | task set | trials | accuracy |");
    println!("|---|---|---:|---:|");
    for (method, tasks, accuracy) in rows {
        println!("| {method} | {tasks} | {} | {:.1} % |", accuracy.trials, accuracy.percent());
    }
    Ok(())
}

fn run_strokes(options: &StrokesOptions, data_dir: &Path) -> Result<(), AnyError> {
    use oneshot::stroke_eval::{Placement, painted, pen_ratios, percentile, sample_plans, scans_of};
    use oneshot::strokes::{OMNIGLOT_PEN, Pen};

    let device = Device::flex();
    let (config, model) = weights::load(&options.weights, None, &device)?;
    let recognizer = Recognizer::new(model, config, device).with_views(options.views);
    let path = options.strokes.clone().unwrap_or_else(|| data_dir.join("strokes_background_small2.zip"));
    let recorded = data::load_strokes(&path)?;
    let background = data::Omniglot::load(&data_dir.join("images_background.zip"))?;

    let ratios = pen_ratios(&recorded);
    let fractions = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95];
    let shown: Vec<String> = fractions.iter().map(|&f| format!("{:.3}", percentile(&ratios, f))).collect();
    println!(
        "Omniglot's pen ({OMNIGLOT_PEN} px at 105) over the longer side of the path's box, {} drawings, \
         percentiles 5/10/25/50/75/90/95: {}\n",
        ratios.len(),
        shown.join(" / ")
    );

    let plans = sample_plans(&recorded, options.way, options.tasks, options.seed)?;
    let frame = data::OMNIGLOT_FRAME;
    let old_pen = Pen::Absolute(0.045 * frame);
    let mut variants = vec![("scans".to_string(), "–".to_string(), scans_of(&recorded, &background)?)];
    variants.push((
        Placement::AsDrawn.name(),
        "Omniglot's (5 px at 105)".into(),
        painted(&recorded, Placement::AsDrawn, Pen::Absolute(OMNIGLOT_PEN), frame)?,
    ));
    let placements =
        std::iter::once(Placement::AsDrawn).chain(options.sizes.iter().map(|&f| Placement::Spanning(f)));
    for placement in placements {
        for (pen_name, pen) in [
            ("fixed, 4.5 % of the pad (the page before)", old_pen),
            ("relative to the drawing (the page now)", Pen::NETWORK),
        ] {
            variants.push((placement.name(), pen_name.into(), painted(&recorded, placement, pen, frame)?));
        }
    }
    println!("| drawings given as | pen | {}-way tasks | accuracy |", options.way);
    println!("|---|---|---:|---:|");
    let mut native = serde_json::Map::new();
    for (given, pen, alphabets) in &variants {
        let refs: Vec<&data::Alphabet> = alphabets.iter().collect();
        let tasks: Vec<_> = plans.iter().map(|plan| plan.over(&refs)).collect();
        let accuracy = evaluate_tasks(&recognizer, &tasks)?;
        println!("| {given} | {pen} | {} | {:.1} % |", tasks.len(), accuracy.percent());
        native.insert(format!("{given} / {pen}"), serde_json::json!(accuracy.percent()));
    }
    if let Some(out) = &options.export {
        let strokes_of = |alphabet: usize, (c, d): (usize, usize)| {
            let strokes = &recorded[alphabet].characters[c].drawings[d].1;
            strokes
                .strokes()
                .iter()
                .map(|s| s.iter().map(|&[x, y]| [x / frame, y / frame]).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let tasks: Vec<serde_json::Value> = plans
            .iter()
            .map(|plan| {
                serde_json::json!({
                    "alphabet": recorded[plan.alphabet].name,
                    "supports": plan.supports.iter().map(|&p| strokes_of(plan.alphabet, p)).collect::<Vec<_>>(),
                    "queries": plan.queries.iter().map(|&(p, _)| strokes_of(plan.alphabet, p)).collect::<Vec<_>>(),
                    "truth": plan.queries.iter().map(|&(_, class)| class).collect::<Vec<_>>(),
                })
            })
            .collect();
        let report =
            serde_json::json!({ "way": options.way, "seed": options.seed, "native": native, "tasks": tasks });
        oneshot::write_atomically(out, report.to_string().as_bytes())
            .map_err(|e| format!("{}: {e}", out.display()))?;
        println!("\nwrote {}", out.display());
    }
    Ok(())
}

/// Prints `{"scores": [[...per support...] per query]}` as JSON.
fn run_score(options: &ScoreOptions) -> Result<(), AnyError> {
    let device = Device::flex();
    let (config, model) = weights::load(&options.weights, None, &device)?;
    let recognizer = Recognizer::new(model, config, device).with_views(options.views);
    let read = |paths: &[PathBuf]| -> Result<Vec<InkImage>, AnyError> {
        paths
            .iter()
            .map(|path| {
                let image = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?.into_rgba8();
                let (w, h) = (image.width() as usize, image.height() as usize);
                InkImage::from_rgba(w, h, image.as_raw())
                    .map_err(|e| format!("{}: {e}", path.display()).into())
            })
            .collect()
    };
    let (supports, queries) = (read(&options.support)?, read(&options.query)?);
    let embed = |images: &[InkImage]| recognizer.embed(&images.iter().collect::<Vec<_>>());
    let scores = recognizer.scores(embed(&queries)?, embed(&supports)?);
    let values = scores.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let rows: Vec<&[f32]> = values.chunks(supports.len()).collect();
    println!("{}", serde_json::json!({ "scores": rows }));
    Ok(())
}

/// The network of `config` on the CPU: from a weights file, or freshly initialised (from `seed`
/// when given).
fn network(config: &SiameseConfig, weights: Option<&Path>, seed: Option<u64>) -> Result<Siamese, AnyError> {
    let device = Device::flex();
    Ok(match weights {
        Some(path) => weights::load(path, Some(config), &device)?.1,
        None => {
            if let Some(seed) = seed {
                device.seed(seed);
            }
            config.init(&device)
        }
    })
}

fn run_bench(options: &BenchOptions) -> Result<(), AnyError> {
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
             batch-normalised stages (web); Burn flex for the rest; {cores} cores, release build\n"
        );
        print!("{}", bench::markdown(options.preset.name(), &rows));
    }
    Ok(())
}

fn run_export(options: &ExportOptions) -> Result<(), AnyError> {
    let config = options.preset.config();
    let model = network(&config, options.weights.as_deref(), Some(options.seed))?;
    oneshot::export::export(&options.out, &model, &config)?;
    println!("wrote {}", options.out.display());
    Ok(())
}

fn run_plot(run: &Path, out: Option<PathBuf>) -> Result<(), AnyError> {
    let state_path = run.join(oneshot::train::files::STATE);
    let bytes = std::fs::read(&state_path).map_err(|e| format!("{}: {e}", state_path.display()))?;
    let state: oneshot::train::RunState =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", state_path.display()))?;
    let out = out.unwrap_or_else(|| run.join(oneshot::train::files::PLOT));
    oneshot::plot::validation_svg(&out, &state).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

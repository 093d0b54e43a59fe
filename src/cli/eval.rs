//! `eval` and `strokes`: one-shot accuracy on Lake's runs, fresh random tasks and replayed human
//! pen strokes.

use std::path::{Path, PathBuf};

use oneshot::eval::adapted::NormsAdaptedPerTask;
use oneshot::eval::rerank::{Committee, HubDemotion, Rescored, SizePenalty};
use oneshot::eval::tuned::FineTunedPerTask;
use oneshot::eval::{
    NearestNeighbour, OneShotClassifier, Outcomes, PairedDifference, answer_runs, answer_tasks,
};
use oneshot_core::preprocess::{InkImage, PreprocessError, Preprocessor};
use oneshot_core::recognize::{CpuRecognizer, DEFAULT_VIEWS, MAX_PEN_CHANGE};
use oneshot_data::{self as data, Archive, DataSet, Split, TaskSampler};
use oneshot_model::finetune::{FineTuneConfig, FineTuneScope};
use oneshot_model::weights;

use super::AnyError;

#[derive(clap::Args)]
pub struct EvalOptions {
    /// Weights of the network to evaluate; without them only the nearest-neighbour baseline runs.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Further networks to score together with the first, as a committee (their logits summed,
    /// each over its own views), besides the first alone; repeat for more.
    #[arg(long)]
    pub with: Vec<PathBuf>,
    /// Another network to score alone, with the same views and pens, on the same trials, and to
    /// compare with the first trial by trial (repeat for more): a new committee against the
    /// shipped one, say.
    #[arg(long)]
    pub versus: Vec<PathBuf>,
    /// Also score the network with supports that resemble the others demoted, `ALPHA:K`: each
    /// support's logits lowered by ALPHA times its mean logit against its K most similar other
    /// supports (repeat for several).
    #[arg(long)]
    pub hubness: Vec<HubDemotion>,
    #[command(flatten)]
    pub pen: PenOptions,
    /// Also score with each pair's logit lowered by BETA times the absolute log ratios of the
    /// two drawings' ink-box widths and heights (and each `--hubness` with it too).
    #[arg(long, value_parser = non_negative)]
    pub size_penalty: Option<f32>,
    /// Lake-format run set (zip or folder); defaults to all_runs.zip in the data folder.
    #[arg(long)]
    pub runs: Option<PathBuf>,
    /// Skip the run set.
    #[arg(long)]
    pub no_runs: bool,
    /// Random tasks per task size (0: none).
    #[arg(long, default_value_t = 1000)]
    pub tasks: usize,
    /// Classes per random task; repeat or separate with commas for several sizes.
    #[arg(long, value_delimiter = ',', default_value = "20,5")]
    pub way: Vec<usize>,
    /// Alphabets the random tasks come from: by default the ten test alphabets of Lake's runs,
    /// with other drawers and characters than his runs (never used to choose anything); use
    /// `validation` for model selection.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Only these alphabets of the split (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub alphabets: Vec<String>,
    /// Seed for the random tasks.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Queries per random task, each of a different character (1 to the task's size): more
    /// trials for the same supports, which is cheaper where each task costs much (fine-tuning).
    #[arg(long, default_value_t = 1)]
    pub queries: usize,
    /// See each picture through this many views: the plain picture, then its symmetries (up to
    /// 8), scores averaged over them as the page does (1: the plain picture only); 9 to 16 add
    /// those eight tilted by 45°, for networks trained with `--symmetries octagon`.
    #[arg(long, default_value_t = DEFAULT_VIEWS)]
    pub views: usize,
    /// Input size of the nearest-neighbour baseline when no weights are given.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Also score the network fine-tuned on each task's supports for this many steps, as the
    /// page's Fine-tune does (0: not).
    #[arg(long, default_value_t = 0)]
    pub fine_tune_steps: usize,
    /// What that fine-tuning trains: `whole` or `head`.
    #[arg(long, default_value = "whole")]
    pub fine_tune_scope: FineTuneScope,
    /// Its learning rate (default: the page's for the scope).
    #[arg(long)]
    pub fine_tune_lr: Option<f64>,
    /// Also score the network with its batch-norm statistics moved this far (0 to 1) toward
    /// those of each task's supports.
    #[arg(long, value_parser = blend)]
    pub adapt_norms: Option<f64>,
}

/// The pens a network sees every drawing with (`CpuRecognizer::with_pens`).
#[derive(clap::Args)]
pub struct PenOptions {
    /// See every drawing also with its strokes narrowed (negative) or widened by each of these
    /// many pixels of a 105-pixel scan, the logits averaged over the pens as over the views; the
    /// page uses the default, `0,-1` (as drawn and one pixel narrower); `0`: as drawn only.
    #[arg(long, value_delimiter = ',', default_value = "0,-1", allow_hyphen_values = true,
          value_parser = clap::value_parser!(i8).range(-i64::from(MAX_PEN_CHANGE)..=i64::from(MAX_PEN_CHANGE)))]
    pub pens: Vec<i8>,
}

/// A finite number of 0 or more.
fn non_negative(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a number of 0 or more")),
    }
}

/// A fraction from 0 to 1.
fn blend(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number from 0 to 1")),
    }
}

impl EvalOptions {
    /// The per-task classifiers the options ask for (fine-tuned, norms adapted), which start
    /// from the Burn network of the weights file, read once for all of them.
    fn per_task(&self, path: &Path) -> Result<Vec<Box<dyn OneShotClassifier>>, AnyError> {
        let mut classifiers: Vec<Box<dyn OneShotClassifier>> = Vec::new();
        if self.fine_tune_steps == 0 && self.adapt_norms.is_none() {
            return Ok(classifiers);
        }
        let (config, model) = weights::load(path, None, &burn::tensor::Device::flex())?;
        if self.fine_tune_steps > 0 {
            let mut settings = FineTuneConfig::for_scope(self.fine_tune_scope);
            if let Some(rate) = self.fine_tune_lr {
                settings.learning_rate = rate;
            }
            let (model, config) = (model.clone(), config.clone());
            classifiers.push(Box::new(FineTunedPerTask {
                model,
                config,
                settings,
                steps: self.fine_tune_steps,
                views: self.views,
                pens: self.pen.pens.clone(),
            }));
        }
        if let Some(blend) = self.adapt_norms {
            classifiers.push(Box::new(NormsAdaptedPerTask { model, config, blend, views: self.views }));
        }
        Ok(classifiers)
    }
}

#[derive(clap::Args)]
pub struct StrokesOptions {
    /// Weights of the network.
    #[arg(long, default_value = "weights/web.osw")]
    pub weights: PathBuf,
    /// Lake's stroke archive (default: strokes_background_small2.zip in the data folder).
    #[arg(long)]
    pub strokes: Option<PathBuf>,
    /// Random within-alphabet tasks, one query per class.
    #[arg(long, default_value_t = 50)]
    pub tasks: usize,
    /// Classes per task.
    #[arg(long, default_value_t = 20)]
    pub way: usize,
    /// Seed for the tasks.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Sizes to replay the drawings at: the fraction of the pad the longer side spans.
    #[arg(long, value_delimiter = ',', default_value = "0.3,0.6,0.9")]
    pub sizes: Vec<f32>,
    /// See each picture through this many views, the plain picture, then its symmetries (the
    /// page uses the default).
    #[arg(long, default_value_t = DEFAULT_VIEWS)]
    pub views: usize,
    #[command(flatten)]
    pub pen: PenOptions,
    /// Also write the tasks (strokes in 0..1 of Omniglot's canvas) and these accuracies as JSON,
    /// for the page's replay test.
    #[arg(long)]
    pub export: Option<PathBuf>,
}

pub fn run_eval(options: &EvalOptions, data_dir: &Path) -> Result<(), AnyError> {
    let mut classifiers: Vec<Box<dyn OneShotClassifier>> = Vec::new();
    let mut reference = None;
    let size = match &options.weights {
        Some(path) => {
            let load = |path| -> Result<_, AnyError> {
                Ok(weights::load_cpu_recognizer(path)?.with_views(options.views).with_pens(&options.pen.pens))
            };
            let recognizer = load(path)?;
            let size = recognizer.config().input_size;
            if !options.with.is_empty() {
                let mut members = vec![recognizer.clone()];
                for other in &options.with {
                    members.push(load(other)?);
                }
                classifiers.push(Box::new(Committee { members }));
            }
            // Rescored rows: one per demotion, and one without if sizes rescore.
            let demotions = options
                .size_penalty
                .map(|_| None)
                .into_iter()
                .chain(options.hubness.iter().copied().map(Some));
            for hubness in demotions {
                classifiers.push(Box::new(Rescored {
                    recognizer: recognizer.clone(),
                    size_penalty: options.size_penalty.map(|beta| SizePenalty { beta }),
                    hubness,
                }));
            }
            // The row every other network is compared with, trial by trial.
            reference = Some(classifiers.len());
            classifiers.push(Box::new(recognizer));
            classifiers.extend(options.per_task(path)?);
            for other in &options.versus {
                classifiers
                    .push(Box::new(FromFile { file: other.display().to_string(), recognizer: load(other)? }));
            }
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
            rows.push((classifier.name(), name.clone(), answer_runs(classifier.as_ref(), &runs)?));
        }
    }
    if options.tasks > 0 {
        let data = DataSet::load(data_dir)?;
        let alphabets = data.alphabets(options.split, &options.alphabets)?;
        for &way in &options.way {
            let mut sampler = TaskSampler::new(&alphabets, way, options.queries, options.seed)?;
            let tasks: Vec<_> = (0..options.tasks).map(|_| sampler.sample()).collect();
            let name = format!("{way}-way random, {:?} alphabets", options.split).to_lowercase();
            for classifier in &classifiers {
                rows.push((classifier.name(), name.clone(), answer_tasks(classifier.as_ref(), &tasks)?));
            }
        }
    }
    println!("| method | task set | trials | accuracy |");
    println!("|---|---|---:|---:|");
    for (method, tasks, outcomes) in &rows {
        let accuracy = outcomes.accuracy();
        println!("| {method} | {tasks} | {} | {:.1} % |", accuracy.trials, accuracy.percent());
    }
    if let Some(reference) = reference {
        print_paired(&rows, classifiers.len(), reference);
    }
    Ok(())
}

/// A network named by its file as well, to tell it from the first in the tables (`--versus`).
struct FromFile {
    file: String,
    recognizer: CpuRecognizer,
}

impl OneShotClassifier for FromFile {
    fn name(&self) -> String {
        format!("{} from {}", self.recognizer.name(), self.file)
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        self.recognizer.classify(supports, queries)
    }
}

/// When several networks were scored, each against the `reference` row of its task set, trial
/// by trial (rows come task set by task set, `per_set` classifiers each, the baseline last).
fn print_paired(rows: &[(String, String, Outcomes)], per_set: usize, reference: usize) {
    let networks = per_set - 1;
    if networks < 2 {
        return;
    }
    println!();
    println!("Paired with `{}` (the first weights), trial by trial:", rows[reference].0);
    println!();
    println!(
        "| method | task set | right where it was wrong | wrong where it was right | difference | standard error |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for set in rows.chunks(per_set) {
        let base = &set[reference].2;
        for (method, tasks, outcomes) in
            set[..networks].iter().enumerate().filter(|&(i, _)| i != reference).map(|(_, r)| r)
        {
            let difference = PairedDifference::between(base, outcomes);
            println!(
                "| {method} | {tasks} | {} | {} | {:+.2} points | {:.2} |",
                difference.gained,
                difference.lost,
                difference.points(),
                difference.standard_error()
            );
        }
    }
}

/// Prints Omniglot's pen relative to the recorded drawings, and a table of accuracy for every
/// rendering of the same tasks; writes the replay file if asked.
pub fn run_strokes(options: &StrokesOptions, data_dir: &Path) -> Result<(), AnyError> {
    use oneshot::eval::strokes::{
        evaluate_rendering, pen_ratios, percentile, renderings, replay_file, sample_plans,
    };
    use oneshot_core::strokes::OMNIGLOT_PEN;

    let recognizer = weights::load_cpu_recognizer(&options.weights)?
        .with_views(options.views)
        .with_pens(&options.pen.pens);
    let path = options.strokes.clone().unwrap_or_else(|| data_dir.join("strokes_background_small2.zip"));
    let recorded = data::load_strokes(&path)?;
    let background = data::Omniglot::load(&data_dir.join("images_background.zip"))?;

    let ratios = pen_ratios(&recorded);
    let shown: Vec<String> = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
        .iter()
        .map(|&f| format!("{:.3}", percentile(&ratios, f)))
        .collect();
    println!(
        "Omniglot's pen ({OMNIGLOT_PEN} px at 105) over the longer side of the path's box, {} drawings, \
         percentiles 5/10/25/50/75/90/95: {}\n",
        ratios.len(),
        shown.join(" / ")
    );
    let plans = sample_plans(&recorded, options.way, options.tasks, options.seed)?;
    println!("| drawings given as | pen | {}-way tasks | accuracy |", options.way);
    println!("|---|---|---:|---:|");
    let mut results = Vec::new();
    for rendering in renderings(&recorded, &background, &options.sizes)? {
        let result = evaluate_rendering(&recognizer, &rendering, &plans)?;
        println!("| {} | {} | {} | {:.1} % |", rendering.given, rendering.pen, plans.len(), result.accuracy);
        results.push(result);
    }
    if let Some(out) = &options.export {
        let file = replay_file(&recorded, &plans, &results, options.way, options.seed);
        oneshot_core::write_atomically(out, file.to_string().as_bytes())
            .map_err(|e| format!("{}: {e}", out.display()))?;
        println!("\nwrote {}", out.display());
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct CalibrateOptions {
    /// Weights of the network.
    #[arg(long, default_value = "weights/web.osw")]
    pub weights: PathBuf,
    /// Pairs of each kind (same character, different characters).
    #[arg(long, default_value_t = 2000)]
    pub pairs: usize,
    /// Open-set tasks (half with the query's character, half without).
    #[arg(long, default_value_t = 2000)]
    pub tasks: usize,
    /// Characters per open-set task.
    #[arg(long, default_value_t = 5)]
    pub way: usize,
    /// Seed of the pairs and tasks.
    #[arg(long, default_value_t = 3)]
    pub seed: u64,
    #[command(flatten)]
    pub pen: PenOptions,
}

/// Prints error rates over thresholds on the validation alphabets, and the "none of these"
/// threshold.
pub fn run_calibrate(options: &CalibrateOptions, data_dir: &Path) -> Result<(), AnyError> {
    use oneshot::eval::calibrate::Calibration;
    let recognizer = weights::load_cpu_recognizer(&options.weights)?
        .with_views(DEFAULT_VIEWS)
        .with_pens(&options.pen.pens);
    let data = DataSet::load(data_dir)?;
    let alphabets = data.alphabets(Split::Validation, &[])?;
    let calibration = Calibration::measure(
        &recognizer,
        &alphabets,
        options.pairs,
        options.tasks,
        options.way,
        options.seed,
    )?;
    let (grid, best, same) = calibration.sweep();
    println!(
        "validation alphabets; {} pairs of each kind; {} open-set {}-way tasks; percent\n",
        options.pairs, options.tasks, options.way
    );
    println!(
        "| threshold | pairs: false reject | pairs: false accept | tasks: false \"none\" | tasks: false match |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for (rates, note) in grid
        .iter()
        .filter(|r| ((r.threshold * 100.0).round() as usize).is_multiple_of(5))
        .map(|r| (r, ""))
        .chain([(&best, " (none of these)"), (&same, " (same character: equal error)")])
    {
        println!(
            "| {:.2}{note} | {:.1} | {:.1} | {:.1} | {:.1} |",
            rates.threshold,
            rates.pair_false_reject,
            rates.pair_false_accept,
            rates.task_false_none,
            rates.task_false_match
        );
    }
    println!("\n{}", serde_json::json!({ "none_of_these": best, "same_character": same }));
    Ok(())
}

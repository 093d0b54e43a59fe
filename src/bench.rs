//! Speed of the network on this machine (Burn's `flex` CPU backend): preprocessing a drawing,
//! embedding it, a 20-way query against cached support embeddings, and training throughput — the
//! native half of the comparison with other stacks. Inputs are synthetic strokes, so no data set
//! is needed, and the network-only rows time exactly the tensors that [`crate::export`] hands to
//! the peers (ONNX Runtime, PyTorch).

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use oneshot_model::adam::adam;
use serde::Serialize;

use oneshot_core::architecture::{Preset, SiameseConfig};
use oneshot_core::preprocess::{InkImage, Preprocessor};
use oneshot_model::Siamese;
use oneshot_model::objective::{episode_loss, image_batch, pair_loss};
use oneshot_model::recognize::{DEFAULT_VIEWS, Recognizer};

/// Spread of repeated timings, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    /// Median.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Repetitions timed (after warm-up).
    pub repetitions: usize,
}

impl Timing {
    /// Times `repetitions` calls of `work` after `warmup` untimed ones.
    pub fn measure(warmup: usize, repetitions: usize, mut work: impl FnMut()) -> Timing {
        for _ in 0..warmup {
            work();
        }
        let mut times: Vec<f64> = (0..repetitions.max(1))
            .map(|_| {
                let started = Instant::now();
                work();
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        Timing { median: at(0.5), p10: at(0.1), p90: at(0.9), repetitions: times.len() }
    }
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Stable name of the measurement, shared with the peers' reports (`embed`, `query`, …).
    pub key: &'static str,
    /// What was timed.
    pub what: String,
    /// How long it took.
    pub timing: Timing,
    /// Training pairs scored per second, for training rows.
    pub pairs_per_second: Option<f64>,
}

/// Pairs per training step of the pair objective: Koch et al.'s network is 100× heavier.
pub fn training_batch(preset: Preset) -> usize {
    match preset {
        Preset::Web => 32,
        Preset::Koch => 16,
    }
}

/// The fixed inputs every stack is timed on: a query drawing and its views, 20 support drawings,
/// a batch of training pairs and a 20-way episode, all from [`synthetic_drawing`].
#[derive(Clone, Debug)]
pub struct Workload {
    /// Side of the network's input.
    pub size: usize,
    /// The query drawing.
    pub query: InkImage,
    /// The query's [`DEFAULT_VIEWS`] preprocessed views (`size²` values each).
    pub query_views: Vec<Vec<f32>>,
    /// The 20 support drawings.
    pub supports: Vec<InkImage>,
    /// Left images of the training pairs.
    pub pair_a: Vec<Vec<f32>>,
    /// Right images of the training pairs.
    pub pair_b: Vec<Vec<f32>>,
    /// 1 for a same-character pair, 0 otherwise (the first half are 1).
    pub labels: Vec<f32>,
    /// A 20-way episode: image `i` and `20 + i` show the same character.
    pub episode: Vec<Vec<f32>>,
}

impl Workload {
    /// The workload for an architecture (its input size and training batch).
    pub fn new(config: &SiameseConfig) -> Workload {
        let size = config.input_size;
        let preprocessor = Preprocessor::new(size);
        let images = |n: usize, offset: u64| -> Vec<Vec<f32>> {
            (0..n as u64).map(|i| preprocessor.render(&synthetic_drawing(offset + i)).expect("ink")).collect()
        };
        let query = synthetic_drawing(20);
        let recognizer_views = oneshot_core::preprocess::Distortion::views(DEFAULT_VIEWS);
        let query_views = recognizer_views
            .iter()
            .map(|view| preprocessor.render_distorted(&query, view).expect("ink"))
            .collect();
        let batch = training_batch(config.preset);
        Workload {
            size,
            query,
            query_views,
            supports: (0..20).map(synthetic_drawing).collect(),
            pair_a: images(batch, 0),
            pair_b: images(batch, 1000),
            labels: (0..batch).map(|i| if i < batch / 2 { 1.0 } else { 0.0 }).collect(),
            episode: images(40, 2000),
        }
    }

    /// The pair objective's loss on the workload's pairs.
    pub fn pair_loss(&self, model: &Siamese, device: &Device) -> Tensor<1> {
        let labels = Tensor::from_data(TensorData::new(self.labels.clone(), [self.labels.len()]), device);
        pair_loss(
            model,
            image_batch(&self.pair_a, self.size, device),
            image_batch(&self.pair_b, self.size, device),
            labels,
        )
    }
}

/// A synthetic drawing: a few strokes from a seed, like a pad's 128×128 picture.
pub fn synthetic_drawing(seed: u64) -> InkImage {
    let size = 128;
    let mut ink = vec![0u8; size * size];
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f32 / (1u64 << 31) as f32
    };
    for _ in 0..3 {
        let (mut x, mut y) = (20.0 + next() * 88.0, 20.0 + next() * 88.0);
        let (dx, dy) = (next() * 2.0 - 1.0, next() * 2.0 - 1.0);
        for _ in 0..40 {
            for oy in -2..=2 {
                for ox in -2..=2 {
                    let (px, py) = ((x as i64 + ox) as usize, (y as i64 + oy) as usize);
                    if px < size && py < size {
                        ink[py * size + px] = 255;
                    }
                }
            }
            (x, y) = ((x + dx).clamp(0.0, 127.0), (y + dy).clamp(0.0, 127.0));
        }
    }
    InkImage::from_ink(size, size, ink).expect("a non-empty synthetic drawing")
}

/// Inference timings: preprocessing the query's views, embedding one preprocessed image, and a
/// 20-way query (embed the query's views, average them, score against 20 cached support
/// embeddings, read the scores back).
pub fn inference(
    model: &Siamese,
    config: &SiameseConfig,
    workload: &Workload,
    repetitions: usize,
) -> Vec<BenchRow> {
    let device = Device::flex();
    let recognizer = Recognizer::new(model.clone(), config.clone(), device.clone()).with_views(DEFAULT_VIEWS);
    let row = |key, what: String, timing| BenchRow { key, what, timing, pairs_per_second: None };
    let mut rows = Vec::new();
    let timing = Timing::measure(3, repetitions, || {
        let _ = recognizer.render_views(&workload.query).expect("synthetic drawings have ink");
    });
    rows.push(row("preprocess", format!("preprocess one drawing ({DEFAULT_VIEWS} views)"), timing));
    let single = &workload.query_views[..1];
    let timing = Timing::measure(3, repetitions, || {
        let _ = recognizer.embed_preprocessed(single).into_data();
    });
    rows.push(row("embed", "embed one image".into(), timing));
    let supports: Vec<&InkImage> = workload.supports.iter().collect();
    let cached = recognizer.embed(&supports).expect("synthetic drawings have ink");
    let timing = Timing::measure(3, repetitions, || {
        let query = recognizer.embed_views(&workload.query_views);
        let _ = recognizer.scores(query, cached.clone()).into_data();
    });
    rows.push(row("query", format!("20-way query ({DEFAULT_VIEWS} views, cached supports)"), timing));
    rows
}

/// Training throughput: Koch et al.'s pair objective on the workload's pairs, and for networks
/// small enough the 20-way episode objective (400 scored pairs per step). Adam, as in training.
pub fn training(model: &Siamese, workload: &Workload, steps: usize, episodes: bool) -> Vec<BenchRow> {
    let device = Device::flex().autodiff();
    let size = workload.size;
    let batch = workload.labels.len();
    let mut rows = Vec::new();
    // Handed to the optimizer by value, as training does, so Adam updates the buffers in place.
    let mut model = Some(model.clone().fork(&device).train());
    let mut optimizer: ModuleOptimizer = adam();
    let mut step = |loss_of: &dyn Fn(&Siamese) -> Tensor<1>| {
        let current = model.take().expect("every step puts the network back");
        let grads = GradientsParams::from_grads(loss_of(&current).backward(), &current);
        model = Some(optimizer.step(1e-5, current, grads));
    };
    let timing = Timing::measure(1, steps, || step(&|model| workload.pair_loss(model, &device)));
    let per_second = batch as f64 / (timing.median / 1e3);
    rows.push(BenchRow {
        key: "train",
        what: format!("training step, {batch} pairs"),
        timing,
        pairs_per_second: Some(per_second),
    });
    if episodes {
        let timing = Timing::measure(1, steps, || {
            step(&|model| episode_loss(model, vec![image_batch(&workload.episode, size, &device)], 2, 0.0))
        });
        let per_second = 400.0 / (timing.median / 1e3);
        rows.push(BenchRow {
            key: "train_episode",
            what: "training step, 20-way episode (400 scored pairs)".into(),
            timing,
            pairs_per_second: Some(per_second),
        });
    }
    rows
}

/// The rows as a Markdown table.
pub fn markdown(preset: &str, rows: &[BenchRow]) -> String {
    let mut out = String::from(
        "| preset | what | median | p10–p90 | repetitions | pairs/s |\n|---|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let t = &row.timing;
        let pairs = row
            .pairs_per_second
            .map_or(String::new(), |p| if p < 10.0 { format!("{p:.1}") } else { format!("{p:.0}") });
        out.push_str(&format!(
            "| {preset} | {} | {:.2} ms | {:.2}–{:.2} ms | {} | {pairs} |\n",
            row.what, t.median, t.p10, t.p90, t.repetitions
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oneshot_model::BuildNetwork;

    #[test]
    fn one_repetition_of_everything_runs() {
        let config = Preset::Web.config();
        let model = config.init(&Device::flex());
        let workload = Workload::new(&config);
        assert_eq!((workload.query_views.len(), workload.pair_a.len()), (DEFAULT_VIEWS, 32));
        let mut rows = inference(&model, &config, &workload, 1);
        rows.extend(training(&model, &workload, 1, true));
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.timing.median > 0.0 && r.timing.repetitions == 1));
        assert!(rows[3].pairs_per_second.is_some_and(|p| p > 0.0));
        let table = markdown("web", &rows);
        assert_eq!(table.lines().count(), 2 + 5, "{table}");
    }

    #[test]
    fn timings_are_ordered() {
        let mut n = 0u64;
        let t = Timing::measure(0, 20, || {
            n += 1;
            std::thread::sleep(std::time::Duration::from_micros(100 * (n % 5)));
        });
        assert!(t.p10 <= t.median && t.median <= t.p90);
        assert_eq!(t.repetitions, 20);
    }
}

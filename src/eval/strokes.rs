//! Recognition of what people draw, measured on Lake's recorded pen trajectories: the same
//! one-shot tasks given as the scans of the drawings and as their strokes painted at other sizes
//! and with other pens, so a gap between the two is the preprocessing's fault, not the task's.
//!
//! The recorded alphabets are background (training) alphabets: these figures measure robustness
//! to how people draw, not one-shot generalisation to new alphabets.

use oneshot_core::preprocess::{InkImage, PreprocessError};
use oneshot_core::strokes::{OMNIGLOT_PEN, Pen, Strokes};
use oneshot_data::{
    Alphabet, Character, DataError, OMNIGLOT_FRAME, Omniglot, PlanSampler, StrokeAlphabet, TaskPlan,
};
use serde::Serialize;

use super::{Accuracy, EvalError, OneShotClassifier};

/// Where a replayed drawing is placed on the pad.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Placement {
    /// Where it was drawn on Omniglot's canvas, the canvas mapped onto the pad.
    AsDrawn,
    /// Centred, scaled so the path's longer side spans this fraction of the pad.
    Spanning(f32),
}

impl Placement {
    /// The strokes moved onto a pad of side `frame`.
    pub fn place(self, strokes: &Strokes, frame: f32) -> Result<Strokes, PreprocessError> {
        match self {
            Placement::AsDrawn => strokes.transformed(frame / strokes.frame(), [0.0, 0.0], frame),
            Placement::Spanning(fraction) => {
                let (x0, y0, x1, y1) = strokes.bounds();
                let side = (x1 - x0).max(y1 - y0).max(f32::MIN_POSITIVE);
                let scale = fraction * frame / side;
                let centre = [(x0 + x1) / 2.0, (y0 + y1) / 2.0];
                strokes.transformed(
                    scale,
                    [frame / 2.0 - centre[0] * scale, frame / 2.0 - centre[1] * scale],
                    frame,
                )
            }
        }
    }

    /// A short name for tables.
    pub fn name(self) -> String {
        match self {
            Placement::AsDrawn => "as drawn".into(),
            Placement::Spanning(f) => format!("{:.0} % of the pad", 100.0 * f),
        }
    }

    /// A key for files: `as-drawn` or the fraction, such as `0.30`.
    pub fn key(self) -> String {
        match self {
            Placement::AsDrawn => "as-drawn".into(),
            Placement::Spanning(f) => format!("{f:.2}"),
        }
    }
}

/// The scans of the recorded drawings, found in the background archive, in the same layout.
pub fn scans_of(recorded: &[StrokeAlphabet], background: &Omniglot) -> Result<Vec<Alphabet>, DataError> {
    let missing = |what: String| DataError::Layout {
        archive: "images_background.zip".into(),
        reason: format!("{what} has strokes but no scans"),
    };
    recorded
        .iter()
        .map(|alphabet| {
            let scans = background
                .alphabets
                .iter()
                .find(|a| a.name == alphabet.name)
                .ok_or_else(|| missing(alphabet.name.clone()))?;
            let characters = alphabet
                .characters
                .iter()
                .map(|character| {
                    let found = scans
                        .characters
                        .iter()
                        .find(|c| c.name == character.name && c.drawings.len() == character.drawings.len())
                        .ok_or_else(|| missing(format!("{}/{}", alphabet.name, character.name)))?;
                    Ok(Character { name: character.name.clone(), drawings: found.drawings.clone() })
                })
                .collect::<Result<_, DataError>>()?;
            Ok(Alphabet { name: alphabet.name.clone(), characters })
        })
        .collect()
}

/// The recorded drawings placed on a pad of side `frame` and painted with `pen`.
pub fn painted(
    recorded: &[StrokeAlphabet],
    placement: Placement,
    pen: Pen,
    frame: f32,
) -> Result<Vec<Alphabet>, PreprocessError> {
    recorded
        .iter()
        .map(|alphabet| {
            let characters = alphabet
                .characters
                .iter()
                .map(|character| {
                    let drawings = character
                        .drawings
                        .iter()
                        .map(|(_, strokes)| placement.place(strokes, frame)?.to_ink(pen))
                        .collect::<Result<_, _>>()?;
                    Ok(Character { name: character.name.clone(), drawings })
                })
                .collect::<Result<_, PreprocessError>>()?;
            Ok(Alphabet { name: alphabet.name.clone(), characters })
        })
        .collect()
}

/// Omniglot's pen relative to each recorded drawing: its width over the longer side of the
/// path's box, sorted.
pub fn pen_ratios(recorded: &[StrokeAlphabet]) -> Vec<f32> {
    let mut ratios: Vec<f32> = recorded
        .iter()
        .flat_map(|a| &a.characters)
        .flat_map(|c| &c.drawings)
        .map(|(_, strokes)| OMNIGLOT_PEN / strokes.size())
        .collect();
    ratios.sort_by(f32::total_cmp);
    ratios
}

/// The value at `fraction` (0..=1) of sorted values.
pub fn percentile(sorted: &[f32], fraction: f32) -> f32 {
    if sorted.is_empty() {
        return f32::NAN;
    }
    let index = ((sorted.len() - 1) as f32 * fraction.clamp(0.0, 1.0)).round() as usize;
    sorted[index]
}

/// Samples `n` `way`-way tasks (one query per class) over the recorded alphabets, as plans, so
/// the very same tasks can be asked of every rendering of the drawings (and of the page).
pub fn sample_plans(
    recorded: &[StrokeAlphabet],
    way: usize,
    n: usize,
    seed: u64,
) -> Result<Vec<TaskPlan>, DataError> {
    let shapes = recorded.iter().map(|a| a.characters.iter().map(|c| c.drawings.len()).collect()).collect();
    let mut sampler = PlanSampler::new(shapes, way, way, seed)?;
    Ok((0..n).map(|_| sampler.sample()).collect())
}

/// One way of giving the recorded drawings to the network.
pub struct Rendering {
    /// How the drawings are given (scans, or strokes at a placement), for tables.
    pub given: String,
    /// The pen, for tables.
    pub pen: String,
    /// A key for files, such as `0.30/relative`.
    pub key: String,
    /// The drawings, laid out like the recorded set.
    pub alphabets: Vec<Alphabet>,
}

/// The renderings compared: the scans, the strokes as drawn with Omniglot's own pen, and at each
/// placement (as drawn, then spanning each of `sizes` of the pad) with the page's old fixed pen
/// and with the network's pen, relative to the drawing.
pub fn renderings(
    recorded: &[StrokeAlphabet],
    background: &Omniglot,
    sizes: &[f32],
) -> Result<Vec<Rendering>, EvalError> {
    let frame = OMNIGLOT_FRAME;
    let mut out = vec![Rendering {
        given: "scans".into(),
        pen: "–".into(),
        key: "scans".into(),
        alphabets: scans_of(recorded, background)?,
    }];
    out.push(Rendering {
        given: Placement::AsDrawn.name(),
        pen: "Omniglot's (5 px at 105)".into(),
        key: "as-drawn/omniglot".into(),
        alphabets: painted(recorded, Placement::AsDrawn, Pen::Absolute(OMNIGLOT_PEN), frame)?,
    });
    let placements = std::iter::once(Placement::AsDrawn).chain(sizes.iter().map(|&f| Placement::Spanning(f)));
    for placement in placements {
        let pens = [
            ("fixed", "fixed, 4.5 % of the pad (the page before)", Pen::Absolute(0.045 * frame)),
            ("relative", "relative to the drawing (the page now)", Pen::NETWORK),
        ];
        for (key, name, pen) in pens {
            out.push(Rendering {
                given: placement.name(),
                pen: name.into(),
                key: format!("{}/{key}", placement.key()),
                alphabets: painted(recorded, placement, pen, frame)?,
            });
        }
    }
    Ok(out)
}

/// A rendering's result on the tasks.
#[derive(Debug, Clone, Serialize)]
pub struct RenderingResult {
    /// The rendering's key.
    pub key: String,
    /// Correct answers out of queries.
    pub accuracy: f64,
    /// Queries asked.
    pub trials: usize,
    /// The chosen support of each query, task by task.
    pub predictions: Vec<Vec<usize>>,
}

/// Asks `classifier` the tasks of `plans` over one rendering.
pub fn evaluate_rendering(
    classifier: &dyn OneShotClassifier,
    rendering: &Rendering,
    plans: &[TaskPlan],
) -> Result<RenderingResult, EvalError> {
    let alphabets: Vec<&Alphabet> = rendering.alphabets.iter().collect();
    let mut accuracy = Accuracy::default();
    let mut predictions = Vec::with_capacity(plans.len());
    for plan in plans {
        let task = plan.over(&alphabets);
        let queries: Vec<&InkImage> = task.queries.iter().map(|(q, _)| *q).collect();
        let chosen = classifier.classify(&task.supports, &queries)?;
        accuracy.add(&chosen, task.queries.iter().map(|(_, class)| *class));
        predictions.push(chosen);
    }
    Ok(RenderingResult {
        key: rendering.key.clone(),
        accuracy: accuracy.percent(),
        trials: accuracy.trials,
        predictions,
    })
}

/// The tasks as the page's replay test takes them: each drawing's strokes in 0..1 of Omniglot's
/// canvas, the true class of each query, and the native results of every rendering.
pub fn replay_file(
    recorded: &[StrokeAlphabet],
    plans: &[TaskPlan],
    results: &[RenderingResult],
    way: usize,
    seed: u64,
) -> serde_json::Value {
    let strokes_of = |alphabet: usize, (c, d): (usize, usize)| -> Vec<Vec<[f32; 2]>> {
        let strokes = &recorded[alphabet].characters[c].drawings[d].1;
        let scale = 1.0 / strokes.frame();
        strokes.strokes().iter().map(|s| s.iter().map(|&[x, y]| [x * scale, y * scale]).collect()).collect()
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
    serde_json::json!({ "way": way, "seed": seed, "native": results, "tasks": tasks })
}

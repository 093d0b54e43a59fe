//! Recognition of what people draw, measured on Lake's recorded pen trajectories: the same
//! one-shot tasks given as the scans of the drawings and as their strokes painted at other sizes
//! and with other pens, so a gap between the two is the preprocessing's fault, not the task's.
//!
//! The recorded alphabets are background (training) alphabets: these figures measure robustness
//! to how people draw, not one-shot generalisation to new alphabets.

use serde::Serialize;

use oneshot_core::preprocess::PreprocessError;
use oneshot_core::strokes::{OMNIGLOT_PEN, Pen, Strokes};
use oneshot_data::{Alphabet, Character, DataError, Omniglot, PlanSampler, StrokeAlphabet, TaskPlan};

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

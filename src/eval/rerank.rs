//! Test-time variants of the shipped recognizer, measured against it by `eval` (`--with`,
//! `--pens`, `--size-penalty`, `--hubness`): a committee of networks given as separate files
//! (the page runs the committee packed into its weights file, `oneshot pack --with`, which ranks
//! as this one does), and logits rescored — pairs of different sizes penalised, supports that
//! resemble many others demoted (neither used by the page; `--pens` is the recognizer's own,
//! `CpuRecognizer::with_pens`). Figures: docs/training.md, "Committees and hub demotion" and
//! "Test-time rescoring".

use oneshot_core::preprocess::{InkImage, PreprocessError};
use oneshot_core::recognize::{CpuRecognizer, argmax};

use super::OneShotClassifier;

/// Several networks answering together: a query's logit against a support is the sum (so the
/// ranking of the mean) of the members' logits, each over its own views.
pub struct Committee {
    /// The networks, each with its views already chosen.
    pub members: Vec<CpuRecognizer>,
}

impl Committee {
    /// The summed logits of every query against every support, row by query.
    pub fn logits(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<f32>, PreprocessError> {
        let mut total = vec![0.0f32; supports.len() * queries.len()];
        for member in &self.members {
            let logits = member.logits(&member.embed(queries)?, &member.embed(supports)?);
            total.iter_mut().zip(logits).for_each(|(sum, logit)| *sum += logit);
        }
        Ok(total)
    }
}

impl OneShotClassifier for Committee {
    fn name(&self) -> String {
        let first = self.members.first().map_or_else(String::new, OneShotClassifier::name);
        format!("committee of {}: {first}, …", self.members.len())
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        Ok(self.logits(supports, queries)?.chunks(supports.len().max(1)).map(argmax).collect())
    }
}

/// How much a support is taken off for resembling the others (`eval --hubness ALPHA:K`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HubDemotion {
    /// The share of the resemblance taken off a support's logits.
    pub alpha: f32,
    /// How many of the most similar other supports the resemblance is the mean logit against.
    pub k: usize,
}

impl std::str::FromStr for HubDemotion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parsed = text.split_once(':').and_then(|(a, k)| Some((a.parse::<f32>().ok()?, k.parse().ok()?)));
        match parsed {
            Some((alpha, k)) if alpha >= 0.0 && k > 0 => Ok(Self { alpha, k }),
            _ => Err(format!("{text:?} is not ALPHA:K (ALPHA ≥ 0, K ≥ 1), e.g. 0.35:3")),
        }
    }
}

impl HubDemotion {
    /// Lowers each support's column of `logits` (queries × supports, row by query) by `alpha`
    /// times the mean of its `k` highest logits against the other supports (`among`: supports ×
    /// supports, its diagonal ignored). A plain character that looks a little like every other
    /// one then stops drawing their queries; where all supports resemble each other alike
    /// (two supports, say) the ranking does not change.
    pub fn apply(&self, logits: &mut [f32], among: &[f32], supports: usize) {
        let resemblance: Vec<f32> = among
            .chunks(supports.max(1))
            .enumerate()
            .map(|(i, row)| {
                let mut others: Vec<f32> =
                    row.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &v)| v).collect();
                others.sort_by(|a, b| b.total_cmp(a));
                let k = self.k.min(others.len());
                if k == 0 { 0.0 } else { others[..k].iter().sum::<f32>() / k as f32 }
            })
            .collect();
        for row in logits.chunks_mut(supports.max(1)) {
            row.iter_mut().zip(&resemblance).for_each(|(logit, r)| *logit -= self.alpha * r);
        }
    }
}

/// How much a pair's logit is lowered for differing in size: `beta` times the absolute log ratio
/// of the two drawings' ink-box widths plus that of their heights (`eval --size-penalty BETA`).
/// Preprocessing scales every drawing's ink box to the network's square, so the network never
/// sees how large a drawing was; this gives a little of that back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizePenalty {
    /// Logits per unit of log size ratio.
    pub beta: f32,
}

impl SizePenalty {
    /// The natural logarithms of a drawing's ink-box width and height.
    pub fn log_size(image: &InkImage) -> Result<[f32; 2], PreprocessError> {
        let (x0, y0, x1, y1) = image.ink_box().ok_or(PreprocessError::Blank)?;
        Ok([((x1 - x0) as f32).ln(), ((y1 - y0) as f32).ln()])
    }

    /// Lowers `logits` (rows × columns, row by row) by the penalty of each row's drawing
    /// against each column's (log sizes as [`log_size`](Self::log_size) gives them).
    pub fn apply(&self, logits: &mut [f32], rows: &[[f32; 2]], columns: &[[f32; 2]]) {
        for (row, a) in logits.chunks_mut(columns.len().max(1)).zip(rows) {
            for (logit, b) in row.iter_mut().zip(columns) {
                *logit -= self.beta * ((a[0] - b[0]).abs() + (a[1] - b[1]).abs());
            }
        }
    }
}

/// The network's logits rescored at test time, each part optional (`eval --size-penalty`,
/// `--hubness`; with `--pens` the recognizer also sees other pens,
/// [`CpuRecognizer::with_pens`]): the [`SizePenalty`], then [`HubDemotion`] on the result. The
/// page uses neither.
pub struct Rescored {
    /// The network or packed committee, with its views and pens chosen.
    pub recognizer: CpuRecognizer,
    /// The size penalty, if any.
    pub size_penalty: Option<SizePenalty>,
    /// The hub demotion, if any.
    pub hubness: Option<HubDemotion>,
}

impl Rescored {
    /// The rescored logits of every query against every support, row by query.
    pub fn logits(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<f32>, PreprocessError> {
        let r = &self.recognizer;
        let s = r.embed(supports)?;
        let mut logits = r.logits(&r.embed(queries)?, &s);
        let mut among = if self.hubness.is_some() { r.logits(&s, &s) } else { Vec::new() };
        if let Some(penalty) = self.size_penalty {
            let sizes = |images: &[&InkImage]| {
                images.iter().map(|i| SizePenalty::log_size(i)).collect::<Result<Vec<_>, _>>()
            };
            let (s, q) = (sizes(supports)?, sizes(queries)?);
            penalty.apply(&mut logits, &q, &s);
            penalty.apply(&mut among, &s, &s);
        }
        if let Some(demotion) = self.hubness {
            demotion.apply(&mut logits, &among, supports.len());
        }
        Ok(logits)
    }
}

impl OneShotClassifier for Rescored {
    fn name(&self) -> String {
        let mut name = self.recognizer.name();
        if let Some(SizePenalty { beta }) = self.size_penalty {
            name += &format!(", size penalty {beta}");
        }
        if let Some(HubDemotion { alpha, k }) = self.hubness {
            name += &format!(", hubs demoted α {alpha} k {k}");
        }
        name
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        Ok(self.logits(supports, queries)?.chunks(supports.len().max(1)).map(argmax).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three supports: 0 resembles both others (a hub), 1 and 2 resemble nothing. The diagonal
    /// (a support against itself) is huge and must not count.
    const AMONG: [f32; 9] = [50.0, 2.0, 1.0, 2.0, 50.0, -3.0, 1.0, -3.0, 50.0];

    #[test]
    fn a_hub_loses_a_close_call_and_nothing_else_changes() {
        // The query is nearly as close to 1 as to the hub 0.
        let mut logits = vec![2.0, 1.8, -1.0];
        HubDemotion { alpha: 0.35, k: 1 }.apply(&mut logits, &AMONG, 3);
        // Resemblance: 0 → 2 (its best other), 1 → 2, 2 → 1.
        let expected = [2.0 - 0.7, 1.8 - 0.7, -1.0 - 0.35];
        logits.iter().zip(expected).for_each(|(got, want)| assert!((got - want).abs() < 1e-6, "{logits:?}"));
        assert_eq!(argmax(&logits), 0, "k 1: 0 and 1 both have 2 as their best other");

        let mut logits = vec![2.0, 1.8, -1.0];
        HubDemotion { alpha: 0.35, k: 2 }.apply(&mut logits, &AMONG, 3);
        // Means of the two others: 0 → 1.5, 1 → -0.5, 2 → -1.
        assert_eq!(argmax(&logits), 1, "{logits:?}");

        let mut untouched = vec![2.0, 1.8, -1.0];
        HubDemotion { alpha: 0.0, k: 2 }.apply(&mut untouched, &AMONG, 3);
        assert_eq!(untouched, [2.0, 1.8, -1.0]);
    }

    #[test]
    fn two_supports_keep_their_order() {
        let mut logits = vec![0.3, 0.5, 4.0, -2.0];
        HubDemotion { alpha: 0.35, k: 3 }.apply(&mut logits, &[9.0, 1.5, 1.5, 9.0], 2);
        assert!(logits[0] < logits[1] && logits[2] > logits[3], "{logits:?}");
    }

    #[test]
    fn the_size_penalty_lowers_pairs_by_their_log_size_ratios() {
        // Two queries against three supports; log sizes [width, height].
        let queries = [[3.0, 3.0], [4.0, 2.0]];
        let supports = [[3.0, 3.0], [3.5, 3.0], [2.0, 4.0]];
        let mut logits = vec![1.0; 6];
        SizePenalty { beta: 2.0 }.apply(&mut logits, &queries, &supports);
        let expected = [1.0, 0.0, -3.0, -3.0, -2.0, -7.0];
        logits.iter().zip(expected).for_each(|(got, want)| assert!((got - want).abs() < 1e-6, "{logits:?}"));
        let mut untouched = vec![1.0; 6];
        SizePenalty { beta: 0.0 }.apply(&mut untouched, &queries, &supports);
        assert_eq!(untouched, [1.0; 6]);
    }

    #[test]
    fn a_size_is_the_ink_boxs_log_width_and_height() {
        let mut luma = vec![255u8; 10 * 10];
        // Ink from column 2 to 5 and row 1 to 2: 4 wide, 2 high.
        for y in 1..3 {
            for x in 2..6 {
                luma[y * 10 + x] = 0;
            }
        }
        let image = InkImage::from_luma(10, 10, &luma).unwrap();
        let [w, h] = SizePenalty::log_size(&image).unwrap();
        assert!((w - 4f32.ln()).abs() < 1e-6 && (h - 2f32.ln()).abs() < 1e-6, "{w} {h}");
        let blank = InkImage::from_luma(4, 4, &[255; 16]).unwrap();
        assert!(matches!(SizePenalty::log_size(&blank), Err(PreprocessError::Blank)));
    }

    #[test]
    fn demotions_parse_and_refuse() {
        assert_eq!("0.35:3".parse::<HubDemotion>(), Ok(HubDemotion { alpha: 0.35, k: 3 }));
        for bad in ["0.35", "-1:3", "0.5:0", "a:3", "0.5:x"] {
            assert!(bad.parse::<HubDemotion>().is_err(), "{bad}");
        }
    }
}

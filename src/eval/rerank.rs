//! Test-time variants of the shipped recognizer, measured against it by `eval` (`--with`,
//! `--hubness`): a committee of networks given as separate files (the page runs the committee
//! packed into its weights file, `oneshot pack --with`, which ranks as this one does), and
//! supports that resemble many others demoted (not used by the page). Figures:
//! docs/training.md, "Committees and hub demotion".

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

/// The network with [`HubDemotion`] on its logits.
pub struct HubsDemoted {
    /// The network, with its views chosen.
    pub recognizer: CpuRecognizer,
    /// How much is taken off.
    pub demotion: HubDemotion,
}

impl OneShotClassifier for HubsDemoted {
    fn name(&self) -> String {
        let HubDemotion { alpha, k } = self.demotion;
        format!("{}, hubs demoted α {alpha} k {k}", self.recognizer.name())
    }

    fn classify(&self, supports: &[&InkImage], queries: &[&InkImage]) -> Result<Vec<usize>, PreprocessError> {
        let r = &self.recognizer;
        let support_embeddings = r.embed(supports)?;
        let among = r.logits(&support_embeddings, &support_embeddings);
        let mut logits = r.logits(&r.embed(queries)?, &support_embeddings);
        self.demotion.apply(&mut logits, &among, supports.len());
        Ok(logits.chunks(supports.len().max(1)).map(argmax).collect())
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
    fn demotions_parse_and_refuse() {
        assert_eq!("0.35:3".parse::<HubDemotion>(), Ok(HubDemotion { alpha: 0.35, k: 3 }));
        for bad in ["0.35", "-1:3", "0.5:0", "a:3", "0.5:x"] {
            assert!(bad.parse::<HubDemotion>().is_err(), "{bad}");
        }
    }
}

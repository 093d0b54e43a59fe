//! Which alphabets train, which select models, and which are kept for the final test.

use std::path::Path;

use super::{Alphabet, DataError, Omniglot};

/// The ten evaluation alphabets that Lake's runs do not use: for validation (model selection).
pub const VALIDATION_ALPHABETS: [&str; 10] = [
    "Angelic",
    "Atemayar_Qelisayer",
    "Aurek-Besh",
    "Avesta",
    "Keble",
    "Mongolian",
    "Oriya",
    "Sylheti",
    "Syriac_(Serto)",
    "ULOG",
];

/// The ten evaluation alphabets Lake's 20 runs are drawn from: the test set, never trained on.
pub const LAKE_TEST_ALPHABETS: [&str; 10] = [
    "Atlantean",
    "Ge_ez",
    "Glagolitic",
    "Gurmukhi",
    "Kannada",
    "Malayalam",
    "Manipuri",
    "Old_Church_Slavonic_(Cyrillic)",
    "Tengwar",
    "Tibetan",
];

/// A named group of alphabets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 30 background alphabets: training.
    Background,
    /// Ten evaluation alphabets outside Lake's runs: model selection.
    Validation,
    /// The ten alphabets of Lake's runs: the final test.
    Test,
    /// All 20 evaluation alphabets.
    Evaluation,
}

impl Split {
    /// Every split.
    pub const ALL: [Split; 4] = [Split::Background, Split::Validation, Split::Test, Split::Evaluation];

    /// The split's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Split::Background => "background",
            Split::Validation => "validation",
            Split::Test => "test",
            Split::Evaluation => "evaluation",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    /// A split by its name.
    fn from_str(name: &str) -> Result<Self, String> {
        Split::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Split::ALL.iter().map(|s| s.name()).collect();
            format!("unknown split {name:?}; known splits: {}", known.join(", "))
        })
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Both Omniglot archives, decoded.
#[derive(Debug)]
pub struct DataSet {
    /// `images_background.zip`.
    pub background: Omniglot,
    /// `images_evaluation.zip`.
    pub evaluation: Omniglot,
}

impl DataSet {
    /// Reads both archives from the Omniglot folder.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        Ok(Self {
            background: Omniglot::load(&dir.join("images_background.zip"))?,
            evaluation: Omniglot::load(&dir.join("images_evaluation.zip"))?,
        })
    }

    /// The alphabets of a split; `only` narrows them to the named ones (each must be in the split).
    pub fn alphabets(&self, split: Split, only: &[String]) -> Result<Vec<&Alphabet>, DataError> {
        let in_split: Vec<&Alphabet> = match split {
            Split::Background => self.background.alphabets.iter().collect(),
            Split::Evaluation => self.evaluation.alphabets.iter().collect(),
            Split::Validation => named(&self.evaluation, &VALIDATION_ALPHABETS),
            Split::Test => named(&self.evaluation, &LAKE_TEST_ALPHABETS),
        };
        if only.is_empty() {
            return Ok(in_split);
        }
        only.iter()
            .map(|name| {
                in_split.iter().copied().find(|a| a.name == *name).ok_or_else(|| DataError::UnknownAlphabet {
                    name: name.clone(),
                    known: in_split.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "),
                })
            })
            .collect()
    }
}

fn named<'a>(set: &'a Omniglot, names: &[&str]) -> Vec<&'a Alphabet> {
    set.alphabets.iter().filter(|a| names.contains(&a.name.as_str())).collect()
}

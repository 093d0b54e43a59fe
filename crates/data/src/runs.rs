//! Lake et al.'s one-shot runs: `runNN/class_labels.txt`, `runNN/training/`, `runNN/test/`.
//!
//! Each line of `class_labels.txt` pairs a test image with the training image of its class, e.g.
//! `run01/test/item01.png run01/training/class08.png`. Any zip or folder in this layout works,
//! so new task sets need no code.

use std::collections::BTreeMap;

use super::{Archive, DataError, decode_png};
use oneshot_core::preprocess::InkImage;

/// One run: a support image per class and queries with the index of their class.
#[derive(Debug)]
pub struct OneShotRun {
    /// The run's folder name, such as `run01`.
    pub name: String,
    /// One drawing per class, in file-name order.
    pub supports: Vec<InkImage>,
    /// The test drawings, with the index of their class in `supports`.
    pub queries: Vec<(InkImage, usize)>,
}

/// Reads every run in an archive, in name order.
pub fn load_runs(archive: &Archive) -> Result<Vec<OneShotRun>, DataError> {
    let layout = |reason: String| DataError::Layout { archive: archive.path().to_path_buf(), reason };
    let image = |name: &str| -> Result<InkImage, DataError> {
        let bytes = archive.get(name).ok_or_else(|| layout(format!("{name} is listed but missing")))?;
        decode_png(bytes, archive.path(), name)
    };
    // Runs are found by their answer keys; the path prefix before `class_labels.txt` (a run
    // folder, possibly inside a top folder) is where image paths are resolved from.
    let keys: Vec<(&str, &[u8])> = archive.files().filter(|(n, _)| n.ends_with("class_labels.txt")).collect();
    if keys.is_empty() {
        return Err(layout("no run (no class_labels.txt) found".into()));
    }
    let mut runs = Vec::new();
    for (key_path, key) in keys {
        let run_dir = key_path.trim_end_matches("class_labels.txt");
        let base = run_dir.trim_end_matches('/').rsplit_once('/').map_or("", |(b, _)| b);
        let resolve = |p: &str| {
            if base.is_empty() { p.to_string() } else { format!("{base}/{p}") }
        };
        let text = std::str::from_utf8(key).map_err(|_| layout(format!("{key_path} is not text")))?;
        let mut pairs = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = line.split_whitespace();
            let (Some(test), Some(train), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(layout(format!("{key_path}: line {line:?} is not 'TEST TRAIN'")));
            };
            pairs.push((resolve(test), resolve(train)));
        }
        // Supports: every image in the run's training folder, in name order.
        let training_dir = format!("{run_dir}training/");
        let support_names: Vec<&str> = archive
            .files()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(&training_dir) && n.ends_with(".png"))
            .collect();
        let index: BTreeMap<&str, usize> = support_names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let supports = support_names.iter().map(|n| image(n)).collect::<Result<Vec<_>, _>>()?;
        let queries = pairs
            .iter()
            .map(|(test, train)| {
                let class = *index
                    .get(train.as_str())
                    .ok_or_else(|| layout(format!("{key_path}: {train} is not in {training_dir}")))?;
                Ok((image(test)?, class))
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        if supports.len() < 2 || queries.is_empty() {
            return Err(layout(format!("{key_path}: a run needs at least 2 classes and 1 query")));
        }
        let name = run_dir.trim_end_matches('/').rsplit('/').next().unwrap_or(run_dir).to_string();
        runs.push(OneShotRun { name, supports, queries });
    }
    Ok(runs)
}

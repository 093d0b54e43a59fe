//! The data layer against the real Omniglot files: counts, splits, Lake's runs, bad input.

mod common;

use std::io::Write;

use oneshot::eval::{NearestNeighbour, evaluate_runs};
use oneshot_core::preprocess::Preprocessor;
use oneshot_data::{
    Archive, DataError, DataSet, LAKE_TEST_ALPHABETS, Omniglot, Split, TaskSampler, load_runs,
};

#[test]
fn archives_have_the_published_counts() {
    let data = common::dataset();
    assert_eq!(data.background.alphabets.len(), 30);
    assert_eq!(data.background.num_characters(), 964);
    assert_eq!(data.background.num_images(), 19_280);
    assert_eq!(data.evaluation.alphabets.len(), 20);
    assert_eq!(data.evaluation.num_characters(), 659);
    assert_eq!(data.evaluation.num_images(), 13_180);
    let every_character_has_20 = data
        .background
        .alphabets
        .iter()
        .chain(&data.evaluation.alphabets)
        .flat_map(|a| &a.characters)
        .all(|c| c.drawings.len() == 20);
    assert!(every_character_has_20);
}

#[test]
fn splits_partition_the_evaluation_alphabets() {
    let data = common::dataset();
    let names = |split| -> Vec<String> {
        data.alphabets(split, &[]).unwrap().iter().map(|a| a.name.clone()).collect()
    };
    let (validation, test) = (names(Split::Validation), names(Split::Test));
    assert_eq!(validation.len(), 10);
    assert_eq!(test.len(), 10);
    assert!(validation.iter().all(|v| !test.contains(v)));
    assert_eq!(test, LAKE_TEST_ALPHABETS.map(String::from).to_vec());
    assert_eq!(names(Split::Background).len(), 30);
    assert!(names(Split::Background).iter().all(|b| !test.contains(b) && !validation.contains(b)));
}

#[test]
fn unknown_alphabet_names_the_known_ones() {
    let err = common::dataset().alphabets(Split::Validation, &["Klingon".into()]).unwrap_err();
    assert!(matches!(err, DataError::UnknownAlphabet { .. }));
    assert!(err.to_string().contains("Klingon") && err.to_string().contains("Mongolian"), "{err}");
    // A real alphabet of another split is unknown to this one: tests never leak into validation.
    assert!(common::dataset().alphabets(Split::Validation, &["Tengwar".into()]).is_err());
}

#[test]
fn lakes_runs_have_400_trials_and_a_sane_pixel_baseline() {
    let runs = load_runs(&Archive::open(&common::data_dir().join("all_runs.zip")).unwrap()).unwrap();
    assert_eq!(runs.len(), 20);
    assert!(runs.iter().all(|r| r.supports.len() == 20 && r.queries.len() == 20));
    // Each class is the answer exactly once per run.
    for run in &runs {
        let mut answers: Vec<usize> = run.queries.iter().map(|(_, c)| *c).collect();
        answers.sort_unstable();
        assert_eq!(answers, (0..20).collect::<Vec<_>>(), "{}", run.name);
    }
    let baseline = NearestNeighbour { preprocessor: Preprocessor::new(32) };
    let accuracy = evaluate_runs(&baseline, &runs).unwrap();
    assert_eq!(accuracy.trials, 400);
    // Koch et al. report 21.7 % for 1-NN on raw pixels; centring and scaling raise it somewhat;
    // chance is 5 %. A shuffled answer key would land near chance.
    let percent = accuracy.percent();
    assert!((18.0..=50.0).contains(&percent), "1-NN on Lake's runs: {percent:.1} %");
}

#[test]
fn random_tasks_stay_within_one_alphabet_and_are_seeded() {
    let data = common::dataset();
    let alphabets = data.alphabets(Split::Validation, &[]).unwrap();
    let tasks = |seed| {
        let mut sampler = TaskSampler::new(&alphabets, 20, 20, seed).unwrap();
        (0..5).map(|_| sampler.sample()).collect::<Vec<_>>()
    };
    let (a, b) = (tasks(9), tasks(9));
    for (x, y) in a.iter().zip(&b) {
        assert!(x.supports.iter().zip(&y.supports).all(|(p, q)| std::ptr::eq(*p, *q)));
    }
    for task in &a {
        assert_eq!(task.supports.len(), 20);
        assert_eq!(task.queries.len(), 20);
        let owner = |img| {
            alphabets
                .iter()
                .position(|al| al.characters.iter().any(|c| c.drawings.iter().any(|d| std::ptr::eq(d, img))))
                .unwrap()
        };
        let alphabet = owner(task.supports[0]);
        assert!(task.supports.iter().all(|s| owner(*s) == alphabet));
        // Queries are other drawings than their support.
        assert!(task.queries.iter().all(|(q, c)| !std::ptr::eq(*q, task.supports[*c])));
    }
    assert!(matches!(TaskSampler::new(&alphabets, 100, 1, 0), Err(DataError::TaskTooWide { way: 100 })));
}

#[test]
fn missing_corrupt_and_foreign_archives_are_clear_errors() {
    let dir = common::temp_dir("oneshot-bad-data");
    let err = DataSet::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("images_background.zip"),
        "{err}"
    );

    let corrupt = dir.path().join("corrupt.zip");
    std::fs::write(&corrupt, b"this is not a zip archive at all").unwrap();
    let err = Omniglot::load(&corrupt).unwrap_err();
    assert!(matches!(err, DataError::Zip { .. }) && err.to_string().contains("corrupt.zip"), "{err}");

    let write_zip = |name: &str, files: &[(&str, &[u8])]| {
        let path = dir.path().join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (entry, bytes) in files {
            zip.start_file(
                *entry,
                zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
            )
            .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        path
    };
    let not_png = write_zip("text.zip", &[("images_background/Latin/character01/0001_01.png", b"hello")]);
    let err = Omniglot::load(&not_png).unwrap_err();
    assert!(matches!(err, DataError::Image { .. }) && err.to_string().contains("0001_01.png"), "{err}");

    let stray = write_zip("stray.zip", &[("images_background/README.txt", b"hello")]);
    assert!(matches!(Omniglot::load(&stray).unwrap_err(), DataError::Layout { .. }));

    let no_runs = write_zip("runs.zip", &[("run01/training/class01.png", b"x")]);
    assert!(matches!(load_runs(&Archive::open(&no_runs).unwrap()).unwrap_err(), DataError::Layout { .. }));
}

#[test]
fn episodes_hold_distinct_drawers_of_each_character_row_by_row() {
    use oneshot::train::{Augmentation, Symmetries, SymmetryScope, sample_episode};
    use rand::SeedableRng;

    let data = common::dataset();
    let alphabet = &data.background.alphabets[0];
    let preprocessor = Preprocessor::new(32);
    let (way, drawings) = (6, 4);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let plain = (Symmetries::None, SymmetryScope::Episode);
    let images = sample_episode(
        &[alphabet],
        (way, drawings),
        plain,
        &preprocessor,
        &Augmentation::default(),
        &mut rng,
    );
    assert_eq!(images.len(), way * drawings);
    // Without augmentation every image is one drawing's plain render: find whose.
    let renders: Vec<Vec<Vec<f32>>> = alphabet
        .characters
        .iter()
        .map(|c| c.drawings.iter().map(|d| preprocessor.render(d).unwrap()).collect())
        .collect();
    let whose = |image: &Vec<f32>| -> (usize, usize) {
        let found = renders
            .iter()
            .enumerate()
            .find_map(|(c, character)| character.iter().position(|r| r == image).map(|d| (c, d)));
        found.expect("every episode image is a drawing of the alphabet")
    };
    let mut characters = Vec::new();
    for column in 0..way {
        let owners: Vec<(usize, usize)> =
            (0..drawings).map(|row| whose(&images[row * way + column])).collect();
        assert!(
            owners.iter().all(|&(c, _)| c == owners[0].0),
            "column {column} mixes characters: {owners:?}"
        );
        let mut drawers: Vec<usize> = owners.iter().map(|&(_, d)| d).collect();
        drawers.sort_unstable();
        drawers.dedup();
        assert_eq!(drawers.len(), drawings, "column {column} repeats a drawer: {owners:?}");
        characters.push(owners[0].0);
    }
    characters.sort_unstable();
    characters.dedup();
    assert_eq!(characters.len(), way, "an episode's characters all differ");
}

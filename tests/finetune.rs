//! Fine-tuning on "a user's drawings": several drawers' versions of 20 characters from a
//! validation alphabet. Accuracy on the other drawers of the same characters must rise.

mod common;

use burn::tensor::Device;
use oneshot::eval::{OneShotClassifier, evaluate_tasks};
use oneshot_core::architecture::Preset;
use oneshot_core::preprocess::InkImage;
use oneshot_data::Split;
use oneshot_model::finetune::{FineTuneConfig, FineTuneError, FineTuneScope, FineTuner};
use oneshot_model::recognize::Recognizer;
use oneshot_model::weights;

/// The shipped committee file.
const SHIPPED_FILE: &[u8] = include_bytes!("../weights/web.osw");

/// The committee's first network: fine-tuning trains each network alone (the page tunes both).
fn shipped() -> &'static [u8] {
    weights::members(SHIPPED_FILE).expect("the shipped committee")[0]
}
/// Drawers whose drawings the "user" supplies; the rest are held out as queries.
const USER_DRAWERS: usize = 5;
const STEPS: usize = 40;

fn accuracy(
    classifier: &dyn OneShotClassifier,
    supports: &[&InkImage],
    queries: &[(&InkImage, usize)],
) -> f64 {
    let task = oneshot_data::Task { supports: supports.to_vec(), queries: queries.to_vec() };
    evaluate_tasks(classifier, std::slice::from_ref(&task)).unwrap().percent()
}

#[test]
fn fine_tuning_on_a_users_drawings_helps_on_other_drawers() {
    let data = common::dataset();
    let alphabet = data.alphabets(Split::Validation, &["Atemayar_Qelisayer".into()]).unwrap()[0];
    let characters = &alphabet.characters[..20];
    let supports: Vec<&InkImage> = characters.iter().map(|c| &c.drawings[0]).collect();
    let queries: Vec<(&InkImage, usize)> = characters
        .iter()
        .enumerate()
        .flat_map(|(class, c)| c.drawings[USER_DRAWERS..].iter().map(move |d| (d, class)))
        .collect();
    let user_drawings: Vec<Vec<InkImage>> =
        characters.iter().map(|c| c.drawings[..USER_DRAWERS].to_vec()).collect();

    let device = Device::flex();
    let (config, model) = weights::from_bytes(shipped(), Some(&Preset::Web.config()), &device).unwrap();
    let before =
        accuracy(&Recognizer::new(model.clone(), config.clone(), device.clone()), &supports, &queries);

    let mut results = Vec::new();
    for scope in [FineTuneScope::Head, FineTuneScope::Whole] {
        let settings = FineTuneConfig { seed: 1, ..FineTuneConfig::for_scope(scope) };
        let mut tuner =
            FineTuner::new(&model, config.input_size, user_drawings.clone(), settings, &device).unwrap();
        let losses: Vec<f32> = (0..STEPS).map(|_| tuner.step().into_scalar::<f32>()).collect();
        let after =
            accuracy(&Recognizer::new(tuner.model(), config.clone(), device.clone()), &supports, &queries);
        let mean = |l: &[f32]| l.iter().sum::<f32>() / l.len() as f32;
        println!(
            "{scope:?}: accuracy {before:.1} % → {after:.1} % on {} held-out drawings; loss {:.3} → {:.3}",
            queries.len(),
            mean(&losses[..10]),
            mean(&losses[STEPS - 10..])
        );
        results.push((scope, after, mean(&losses[..10]), mean(&losses[STEPS - 10..])));
    }
    for (scope, after, first, last) in results {
        assert!(last < first, "{scope:?}: loss did not fall ({first} → {last})");
        assert!(after > before, "{scope:?}: accuracy did not rise ({before} → {after})");
    }
}

#[test]
fn fine_tuning_needs_two_characters_and_real_drawings() {
    let device = Device::flex();
    let (config, model) = weights::from_bytes(shipped(), None, &device).unwrap();
    let dot = InkImage::from_ink(3, 3, vec![0, 0, 0, 0, 255, 0, 0, 0, 0]).unwrap();
    let blank = InkImage::from_ink(3, 3, vec![0; 9]).unwrap();
    let start = |classes| {
        FineTuner::new(&model, config.input_size, classes, FineTuneConfig::default(), &device).err()
    };
    assert_eq!(start(vec![vec![dot.clone()], vec![]]), Some(FineTuneError::TooFewClasses));
    assert!(matches!(
        start(vec![vec![dot.clone()], vec![dot, blank]]),
        Some(FineTuneError::Drawing { class: 1, drawing: 1, .. })
    ));
}

/// `eval --fine-tune-steps`: each task tunes its own copy on its supports alone.
#[test]
fn per_task_fine_tuning_starts_from_the_network_and_changes_it() {
    use oneshot::eval::tuned::FineTunedPerTask;
    use oneshot_data::TaskSampler;

    let data = common::dataset();
    let alphabets = data.alphabets(Split::Validation, &[]).unwrap();
    let tasks: Vec<_> = {
        let mut sampler = TaskSampler::new(&alphabets, 20, 20, 11).unwrap();
        (0..3).map(|_| sampler.sample()).collect()
    };
    let device = Device::flex();
    let (config, model) = weights::from_bytes(shipped(), None, &device).unwrap();
    let plain = Recognizer::new(model.clone(), config.clone(), device.clone()).with_views(2);
    let tuned = |steps| FineTunedPerTask {
        model: model.clone(),
        config: config.clone(),
        settings: FineTuneConfig { learning_rate: 1e-3, ..FineTuneConfig::for_scope(FineTuneScope::Whole) },
        steps,
        views: 2,
        pens: vec![0],
    };
    let answers = |classifier: &dyn OneShotClassifier| -> Vec<Vec<usize>> {
        tasks
            .iter()
            .map(|t| {
                let queries: Vec<&InkImage> = t.queries.iter().map(|(q, _)| *q).collect();
                classifier.classify(&t.supports, &queries).unwrap()
            })
            .collect()
    };
    let before = answers(&plain);
    assert_eq!(answers(&tuned(0)), before, "no steps: the network as shipped");
    // A large rate for few steps, so the test is short: some answer must move.
    let after = answers(&tuned(20));
    assert_ne!(after, before, "20 steps at 1e-3 changed no answer of 60");
    assert_eq!(answers(&tuned(20)), after, "tuning is seeded: the same answers again");
}

/// A network whose head has the product term (`train --product-head`), as a committee may hold
/// since mixed heads are allowed: the page's fine-tuning loads it against the `web` preset,
/// trains the term with the head (it moves) and lowers the loss.
#[test]
fn a_head_with_the_product_term_fine_tunes_with_it() {
    let (bytes, u) = common::with_product_term(shipped(), 5);

    let device = Device::flex();
    let (config, model) = weights::from_bytes(&bytes, Some(&Preset::Web.config()), &device).unwrap();
    assert!(config.product_head);
    let before = weights::tensor_values(&model);
    let term = before.iter().position(|t| t.values == u).expect("the product term is a parameter");

    let data = common::dataset();
    let alphabet = data.alphabets(Split::Validation, &["Atemayar_Qelisayer".into()]).unwrap()[0];
    let drawings: Vec<Vec<InkImage>> =
        alphabet.characters[..10].iter().map(|c| c.drawings[..3].to_vec()).collect();
    let settings = FineTuneConfig { seed: 1, ..FineTuneConfig::for_scope(FineTuneScope::Head) };
    let mut tuner = FineTuner::new(&model, config.input_size, drawings, settings, &device).unwrap();
    let losses: Vec<f32> = (0..STEPS).map(|_| tuner.step().into_scalar::<f32>()).collect();
    let mean = |l: &[f32]| l.iter().sum::<f32>() / l.len() as f32;
    let (first, last) = (mean(&losses[..10]), mean(&losses[STEPS - 10..]));
    assert!(last < first, "loss did not fall ({first} → {last})");
    let after = weights::tensor_values(&tuner.model());
    let moved = after[term].values.iter().zip(&u).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 1e-4, "the product term did not move ({moved})");
}

//! The one-shot recognizer as a Burn network: everything that trains or runs on a Burn device
//! (natively, and in the page's WebGPU and fine-tuning builds).
//!
//! [`build`] (a fresh network of an architecture) → [`network`] (the twin and the head, their
//! forward passes; natively, training passes of batch-normalised stages run on the project's
//! CPU kernels through `cpu_training`) → [`objective`] (losses) → [`weights`] (files from and to
//! networks) → [`recognize`] (embedding and scoring on any device) → [`finetune`] (a few steps on
//! a user's own drawings). [`folding`] is inference with the batch norms folded away.

pub mod adam;
pub mod build;
#[cfg(any(not(target_arch = "wasm32"), feature = "cpu-training"))]
mod cpu_training;
pub mod finetune;
pub mod folding;
pub mod network;
pub mod objective;
pub mod recognize;
pub mod weights;

pub use build::BuildNetwork;
pub use network::{ConvStage, Siamese, Twin};

#[cfg(test)]
mod tests {
    use crate::build::BuildNetwork;
    use burn::module::Module;
    use burn::tensor::Tolerance;
    use burn::tensor::{Device, Distribution, Tensor};
    use oneshot_core::architecture::Preset;

    fn device() -> Device {
        let device = Device::flex();
        device.seed(42);
        device
    }

    #[test]
    fn koch_preset_has_the_papers_parameter_count() {
        let config = Preset::Koch.config();
        assert_eq!(config.feature_size(), Some(6));
        assert_eq!(config.init(&device()).num_params(), 38_951_745);
    }

    #[test]
    fn web_preset_is_small() {
        let params = Preset::Web.config().init(&device()).num_params();
        assert!(params <= 1_000_000, "{params} parameters");
    }

    #[test]
    fn scores_are_symmetric_probabilities() {
        let device = device();
        let model = Preset::Web.config().init(&device);
        let images = Tensor::<4>::random([5, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let e = model.embed(images);
        let forward = model.cross_scores(e.clone(), e.clone());
        let backward = forward.clone().transpose();
        forward.to_data().assert_approx_eq::<f32>(&backward.to_data(), Tolerance::absolute(1e-6));
        let values = forward.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        // Pairwise logits agree with the cross-product form.
        let pairs = model.pair_logits(e.clone().narrow(0, 0, 2), e.clone().narrow(0, 3, 2));
        let cross = model.cross_logits(e.clone(), e);
        let expected = [
            cross.clone().slice([0..1, 3..4]).into_scalar::<f32>(),
            cross.slice([1..2, 4..5]).into_scalar::<f32>(),
        ];
        let got = pairs.into_data().try_to_vec::<f32>().unwrap();
        assert!((got[0] - expected[0]).abs() < 1e-5 && (got[1] - expected[1]).abs() < 1e-5);
    }

    #[test]
    fn koch_init_draws_biases_around_one_half() {
        let model = Preset::Koch.config().init(&device());
        let bias = model.head.bias.as_ref().unwrap().val().into_scalar::<f32>();
        assert!((bias - 0.5).abs() < 0.05, "head bias {bias}");
    }

    #[test]
    fn norm_statistics_of_a_batch_give_what_training_mode_computes_on_it() {
        let device = device();
        let model = Preset::Web.config().init(&device);
        let images = Tensor::<4>::random([12, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let before = model.embed(images.clone());
        // Blend 0 keeps the learnt statistics: the very same network.
        let kept = model.clone().with_norm_statistics(images.clone(), 0.0).embed(images.clone());
        kept.to_data().assert_eq(&before.to_data(), true);
        // Blend 1 takes the batch's: what a training-mode pass (batch statistics) gives.
        let adapted = model.clone().with_norm_statistics(images.clone(), 1.0).embed(images.clone());
        let training =
            model.fork(&device.clone().autodiff()).train().embed(images.clone()).to_device(&device);
        adapted.to_data().assert_approx_eq::<f32>(&training.inner().to_data(), Tolerance::absolute(1e-4));
        let moved = (adapted - before).abs().max().into_scalar::<f32>();
        assert!(moved > 0.1, "the statistics barely moved the embeddings: {moved}");
    }
}

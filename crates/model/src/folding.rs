//! Inference without batch norms on a Burn device (what the page runs on WebGPU): each norm, a
//! fixed affine map per channel in inference mode, folded into its convolution. (The CPU path,
//! `oneshot_core::recognize`, folds the same way from a weights file's values; the tests here
//! hold the two to each other.)

use burn::module::{Module, Param};

use crate::network::{ConvStage, Siamese};

impl ConvStage {
    /// The same function without the batch norm, which in inference mode is a fixed affine map
    /// per channel: `γ (x − μ) / √(σ² + ε) + β`, folded into the convolution's weights and bias.
    fn fold_norm(mut self) -> Self {
        let Some(norm) = self.norm.take() else { return self };
        let scale = norm.gamma.val() / norm.running_var.value().add_scalar(norm.epsilon).sqrt();
        let shift = norm.beta.val() - norm.running_mean.value() * scale.clone();
        let channels = scale.dims()[0];
        let weight = self.conv.weight.val() * scale.clone().reshape([channels, 1, 1, 1]);
        let bias = match &self.conv.bias {
            Some(bias) => bias.val() * scale + shift,
            None => shift,
        };
        self.conv.weight = Param::from_tensor(weight);
        self.conv.bias = Some(Param::from_tensor(bias));
        self
    }
}

impl Siamese {
    /// The network for inference only, with every batch norm folded into its convolution
    /// (fewer passes over the feature maps; same outputs to rounding). Do not train or save it:
    /// its architecture no longer matches its config.
    pub fn folded(&self) -> Self {
        let mut model = self.valid();
        model.twin.stages = model.twin.stages.into_iter().map(ConvStage::fold_norm).collect();
        model
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};
    use oneshot_core::architecture::{ConvStageConfig, Preset, SiameseConfig};
    use oneshot_core::recognize::CpuRecognizer;

    use crate::build::BuildNetwork;
    use crate::weights::tensor_values;

    fn device() -> Device {
        let device = Device::flex();
        device.seed(7);
        device
    }

    /// Burn's folded network and the Burn-free CPU recognizer (the file's values folded in
    /// plain Rust, the project's kernels) agree on random images, embeddings and scores.
    fn assert_matches_burn(config: SiameseConfig, images: usize) {
        let device = device();
        // A few train-mode passes move the batch-norm statistics, so folding has work to do.
        let mut model = config.init(&device.clone().autodiff()).train();
        // The product term starts at zero; random weights make it count.
        if let Some(product) = &mut model.product {
            let shape = product.weight.shape();
            product.weight = Param::from_tensor(Tensor::random(
                shape,
                Distribution::Normal(0.0, 1.0),
                &device.clone().autodiff(),
            ));
        }
        for _ in 0..2 {
            let side = config.input_size;
            let batch = Tensor::random(
                [4, 1, side, side],
                Distribution::Uniform(0.0, 1.0),
                &device.clone().autodiff(),
            );
            let _ = model.embed(batch);
        }
        let model = model.valid();
        let folded = model.folded();
        let side = config.input_size;
        let batch = Tensor::<4>::random([images, 1, side, side], Distribution::Uniform(0.0, 1.0), &device);
        let inputs: Vec<Vec<f32>> = batch
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
            .chunks(side * side)
            .map(<[f32]>::to_vec)
            .collect();
        let embeddings = folded.embed(batch);
        let scores = folded.cross_scores(embeddings.clone(), embeddings.clone());
        let expected = embeddings.into_data().try_to_vec::<f32>().unwrap();
        let cpu = CpuRecognizer::new(config, &tensor_values(&model)).expect("the network's own values fit");
        let got = cpu.embed_preprocessed(&inputs);
        let worst = |a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len());
            a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
        };
        assert!(worst(&got, &expected) < 1e-4, "embeddings: largest difference {}", worst(&got, &expected));
        let expected_scores = scores.into_data().try_to_vec::<f32>().unwrap();
        let got_scores = cpu.scores(&got, &got);
        // The scores are the sigmoid of the logits `classify` ranks by.
        let from_logits: Vec<f32> = cpu.logits(&got, &got).iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect();
        assert_eq!(from_logits, got_scores);
        assert!(
            worst(&got_scores, &expected_scores) < 1e-4,
            "scores: {}",
            worst(&got_scores, &expected_scores)
        );

        // Pictures of two views (the embeddings above in pairs): on both paths, the sigmoid of
        // the mean of the two views' logits, each view against the same view of the other.
        let d = cpu.embedding_width();
        let pictures = images / 2;
        let two_views = &got[..pictures * 2 * d];
        let logit = |p: f32| (p / (1.0 - p)).ln();
        let view = |picture: usize, v: usize| &two_views[(picture * 2 + v) * d..(picture * 2 + v + 1) * d];
        let mut mean_of_logits = Vec::new();
        for q in 0..pictures {
            for s in 0..pictures {
                let per_view = |v| logit(cpu.scores(view(q, v), view(s, v))[0]);
                mean_of_logits.push(1.0 / (1.0 + (-(per_view(0) + per_view(1)) / 2.0).exp()));
            }
        }
        let cpu_two = cpu.clone().with_views(2);
        assert_eq!(cpu_two.picture_width(), 2 * d);
        let got_two = cpu_two.scores(two_views, two_views);
        assert!(worst(&got_two, &mean_of_logits) < 1e-4, "two views: {}", worst(&got_two, &mean_of_logits));
        let burn_pictures =
            Tensor::<2>::from_data(TensorData::new(two_views.to_vec(), [pictures, 2 * d]), &device);
        let burn_logits = folded.cross_logits_views(burn_pictures.clone(), burn_pictures.clone(), 2);
        let burn_logits = burn_logits.into_data().try_to_vec::<f32>().unwrap();
        let cpu_logits = cpu_two.logits(two_views, two_views);
        assert!(worst(&burn_logits, &cpu_logits) < 1e-4, "logits: {}", worst(&burn_logits, &cpu_logits));
        let burn_two = folded.cross_scores_views(burn_pictures.clone(), burn_pictures, 2);
        let burn_two = burn_two.into_data().try_to_vec::<f32>().unwrap();
        assert!(
            worst(&burn_two, &mean_of_logits) < 1e-4,
            "Burn, two views: {}",
            worst(&burn_two, &mean_of_logits)
        );
    }

    #[test]
    fn web_preset_matches_burn() {
        assert_matches_burn(Preset::Web.config(), 9);
    }

    #[test]
    fn product_head_matches_burn() {
        let config = SiameseConfig { product_head: true, ..Preset::Web.config() };
        assert_matches_burn(config, 9);
    }

    #[test]
    fn valid_padding_odd_sides_and_no_pool_match_burn() {
        let mut config = Preset::Web.config();
        config.input_size = 23;
        config.stages = vec![
            ConvStageConfig::new(8, 4, false, true),  // 23 → 20 → 10
            ConvStageConfig::new(16, 3, true, false), // 10 → 10
            ConvStageConfig::new(16, 3, true, true),  // 10 → 5 (Winograd F(2×2, 3×3))
            ConvStageConfig::new(12, 3, true, true),  // 5 → 2 (odd: im2col, pool floors)
        ];
        config.embedding = 10;
        config.sigmoid_embedding = false;
        assert_matches_burn(config, 3);
    }

    #[test]
    fn folding_the_batch_norms_keeps_the_outputs() {
        let device = device();
        let config = Preset::Web.config();
        // Train-mode passes move the running statistics away from 0 and 1, so folding has work to do.
        let model = config.init(&device.clone().autodiff()).train();
        for _ in 0..3 {
            let _ = model.embed(Tensor::random(
                [8, 1, 32, 32],
                Distribution::Uniform(0.0, 1.0),
                &device.clone().autodiff(),
            ));
        }
        let model = model.valid();
        let images = Tensor::<4>::random([4, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let folded = model.folded();
        assert!(folded.twin.stages.iter().all(|stage| stage.norm.is_none()));
        folded
            .embed(images.clone())
            .into_data()
            .assert_approx_eq::<f32>(&model.embed(images).into_data(), Tolerance::absolute(1e-5));
    }
}

//! Training objectives, shared by the native trainer and fine-tuning in the page.
//!
//! - [`pair_loss`]: Koch et al.'s objective, binary cross-entropy on pairs labelled same/different.
//! - [`episode_loss`]: the same network and head, scored on whole one-shot episodes: `k`
//!   characters of one alphabet, two drawings each. Every drawing of one half is classified
//!   among the other half (a softmax over the head's logits, in both directions), and all `k²`
//!   cross pairs also get the balanced binary cross-entropy that keeps the head a calibrated
//!   same/different probability. One forward pass of `2k` images thus trains on `k²` pairs and
//!   on the very task the network is judged on. With `d` drawings of each character, every two
//!   of the `d` rows make such an episode: `d(d − 1)/2 · k²` pairs from `d·k` images.

use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::{Device, Tensor, TensorData};

use crate::network::Siamese;

/// Stacks preprocessed `size × size` images into a `[n, 1, size, size]` batch.
pub fn image_batch(images: &[Vec<f32>], size: usize, device: &Device) -> Tensor<4> {
    let data: Vec<f32> = images.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(data, [images.len(), 1, size, size]), device)
}

/// Numerically stable binary cross-entropy on logits, averaged: `labels` are 1 (same) or 0.
pub fn binary_cross_entropy(logits: Tensor<1>, labels: Tensor<1>) -> Tensor<1> {
    let positive = log_sigmoid(logits.clone()) * labels.clone();
    let negative = log_sigmoid(logits.neg()) * labels.neg().add_scalar(1.0);
    (positive + negative).mean().neg()
}

/// Koch et al.'s loss: `a[i]` and `b[i]` are a pair, `labels[i]` is 1 for the same character.
pub fn pair_loss(model: &Siamese, a: Tensor<4>, b: Tensor<4>, labels: Tensor<1>) -> Tensor<1> {
    let n = a.dims()[0];
    // One forward pass for both sides, so batch statistics see the whole batch.
    let embeddings = model.embed(Tensor::cat(vec![a, b], 0));
    let logits = model.pair_logits(embeddings.clone().narrow(0, 0, n), embeddings.narrow(0, n, n));
    binary_cross_entropy(logits, labels)
}

/// The episode loss for groups of `[d·k, 1, size, size]` images, `d = drawings` (at least 2):
/// within a group, images `i`, `k + i`, …, `(d − 1)·k + i` are `d` drawings of one character,
/// and all characters differ. Every two of the `d` rows of drawings make one `k × k` episode
/// (scored as the module's documentation says); the loss is the mean over all of them.
/// `margin` is subtracted from every matching pair's logit in the two classifications (not in
/// the same/different cross-entropy): a character must then beat its nearest rival by that much
/// before it stops learning from it (an additive margin, as in CosFace); 0 is the plain softmax.
pub fn episode_loss(model: &Siamese, groups: Vec<Tensor<4>>, drawings: usize, margin: f32) -> Tensor<1> {
    assert!(drawings >= 2, "an episode needs two drawings of each character");
    let sizes: Vec<usize> = groups.iter().map(|g| g.dims()[0] / drawings).collect();
    let embeddings = model.embed(Tensor::cat(groups, 0));
    let mut offset = 0;
    let mut total = None;
    let mut episodes = 0;
    for &k in &sizes {
        let rows: Vec<Tensor<2>> =
            (0..drawings).map(|row| embeddings.clone().narrow(0, offset + row * k, k)).collect();
        offset += drawings * k;
        for (first, a) in rows.iter().enumerate() {
            for b in &rows[first + 1..] {
                let loss = episode_group_loss(model.cross_logits(a.clone(), b.clone()), margin);
                total = Some(match total {
                    Some(t) => t + loss,
                    None => loss,
                });
                episodes += 1;
            }
        }
    }
    total.expect("at least one group").div_scalar(episodes as f32)
}

/// Loss for one `[k, k]` logit matrix whose diagonal holds the matching pairs.
fn episode_group_loss(logits: Tensor<2>, margin: f32) -> Tensor<1> {
    let [k, _] = logits.dims();
    let device = logits.device();
    let eye = Tensor::<2>::eye(k, &device);
    let off = eye.clone().neg().add_scalar(1.0);
    // Classification both ways: each row picks its column, each column its row.
    let classified =
        if margin == 0.0 { logits.clone() } else { logits.clone() - eye.clone().mul_scalar(margin) };
    let rows = (log_softmax(classified.clone(), 1) * eye.clone()).sum().neg().div_scalar(k as f32);
    let cols = (log_softmax(classified, 0) * eye.clone()).sum().neg().div_scalar(k as f32);
    // Balanced same/different cross-entropy over all k² pairs.
    let same = (log_sigmoid(logits.clone()) * eye).sum().neg().div_scalar(k as f32);
    let different = (log_sigmoid(logits.neg()) * off).sum().neg().div_scalar((k * (k - 1)).max(1) as f32);
    (rows + cols).mul_scalar(0.5) + (same + different).mul_scalar(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildNetwork;
    use burn::tensor::Distribution;
    use oneshot_core::architecture::Preset;

    #[test]
    fn binary_cross_entropy_matches_the_formula() {
        let device = Device::flex();
        let logits = Tensor::<1>::from_floats([2.0, -1.0, 0.0], &device);
        let labels = Tensor::<1>::from_floats([1.0, 0.0, 1.0], &device);
        let got = binary_cross_entropy(logits, labels).into_scalar::<f32>();
        let s = |x: f32| 1.0 / (1.0 + (-x).exp());
        let expected = -((s(2.0)).ln() + (1.0 - s(-1.0)).ln() + s(0.0).ln()) / 3.0;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }

    #[test]
    fn the_margin_lowers_only_the_matching_logits_of_the_classifications() {
        let device = Device::flex();
        let (a, b, c, d, m) = (1.5f32, 0.5, 0.8, -0.3, 0.7);
        let logits = Tensor::<2>::from_floats([[a, c], [d, b]], &device);
        let got = episode_group_loss(logits, m).into_scalar::<f32>();
        let pick = |x: f32, y: f32| -((x - m).exp() / ((x - m).exp() + y.exp())).ln();
        let rows = (pick(a, c) + pick(b, d)) / 2.0;
        let cols = (pick(a, d) + pick(b, c)) / 2.0;
        let s = |x: f32| 1.0 / (1.0 + (-x).exp());
        let same = -(s(a).ln() + s(b).ln()) / 2.0;
        let different = -((1.0 - s(c)).ln() + (1.0 - s(d)).ln()) / 2.0;
        let expected = (rows + cols) / 2.0 + (same + different) / 2.0;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        let plain = episode_group_loss(Tensor::<2>::from_floats([[a, c], [d, b]], &device), 0.0);
        assert!(plain.into_scalar::<f32>() < got - 0.1, "a margin makes the same episode cost more");
    }

    #[test]
    fn several_drawings_score_every_two_rows_as_an_episode() {
        use rand::{RngExt, SeedableRng};
        // Nothing here draws from the device's generator, which tests running in parallel
        // share: the shipped network, and pictures from a generator of the test's own.
        // Inference mode (no autodiff): batch norm uses its running statistics, so an image
        // embeds alike in any batch and the losses can be compared exactly.
        let device = Device::flex();
        let shipped = include_bytes!("../../../weights/web.osw");
        let first = crate::weights::members(shipped).expect("the shipped committee")[0];
        let (_, model) = crate::weights::from_bytes(first, None, &device).expect("shipped weights");
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let k = 5;
        let rows: Vec<Tensor<4>> = (0..3)
            .map(|_| {
                let pixels: Vec<f32> = (0..k * 32 * 32).map(|_| rng.random_range(0.0..1.0)).collect();
                Tensor::from_data(TensorData::new(pixels, [k, 1, 32, 32]), &device)
            })
            .collect();
        let three = episode_loss(&model, vec![Tensor::cat(rows.clone(), 0)], 3, 0.0).into_scalar::<f32>();
        let two = |a: usize, b: usize| {
            let group = Tensor::cat(vec![rows[a].clone(), rows[b].clone()], 0);
            episode_loss(&model, vec![group], 2, 0.0).into_scalar::<f32>()
        };
        let pairs = [two(0, 1), two(0, 2), two(1, 2)];
        let mean = pairs.iter().sum::<f32>() / 3.0;
        assert!((three - mean).abs() < 1e-4 * mean.abs().max(1.0), "{three} vs {pairs:?}");
        assert!(pairs.iter().all(|p| (p - mean).abs() > 2e-3), "{pairs:?}");
    }

    #[test]
    fn losses_are_finite_and_have_gradients() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = Preset::Web.config().init(&device);
        let images = |n| Tensor::<4>::random([n, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let labels = Tensor::<1>::from_floats([1.0, 0.0, 1.0, 0.0], &device);
        let pair = pair_loss(&model, images(4), images(4), labels);
        let episode = episode_loss(&model, vec![images(6), images(10)], 2, 0.0);
        let several = episode_loss(&model, vec![images(12)], 4, 0.0);
        for loss in [pair, episode, several] {
            let value = loss.clone().into_scalar::<f32>();
            assert!(value.is_finite() && value > 0.0, "loss {value}");
            let grads = loss.backward();
            let grad = model.embed_weight().grad(&grads).expect("embedding weight has a gradient");
            assert!(grad.abs().sum().into_scalar::<f32>() > 0.0);
        }
    }
}

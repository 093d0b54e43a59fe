//! Training objectives, shared by the native trainer and fine-tuning in the page.
//!
//! - [`pair_loss`]: Koch et al.'s objective, binary cross-entropy on pairs labelled same/different.
//! - [`episode_loss`]: the same network and head, scored on whole one-shot episodes: `k`
//!   characters of one alphabet, two drawings each. Every drawing of one half is classified
//!   among the other half (a softmax over the head's logits, in both directions), and all `k²`
//!   cross pairs also get the balanced binary cross-entropy that keeps the head a calibrated
//!   same/different probability. One forward pass of `2k` images thus trains on `k²` pairs and
//!   on the very task the network is judged on.

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

/// The episode loss for groups of `[2k, 1, size, size]` images: within a group, image `i` and
/// image `k + i` show the same character, and all characters differ.
pub fn episode_loss(model: &Siamese, groups: Vec<Tensor<4>>) -> Tensor<1> {
    let sizes: Vec<usize> = groups.iter().map(|g| g.dims()[0] / 2).collect();
    let embeddings = model.embed(Tensor::cat(groups, 0));
    let mut offset = 0;
    let mut total = None;
    for &k in &sizes {
        let a = embeddings.clone().narrow(0, offset, k);
        let b = embeddings.clone().narrow(0, offset + k, k);
        offset += 2 * k;
        let logits = model.cross_logits(a, b);
        let loss = episode_group_loss(logits);
        total = Some(match total {
            Some(t) => t + loss,
            None => loss,
        });
    }
    total.expect("at least one group").div_scalar(sizes.len() as f32)
}

/// Loss for one `[k, k]` logit matrix whose diagonal holds the matching pairs.
fn episode_group_loss(logits: Tensor<2>) -> Tensor<1> {
    let [k, _] = logits.dims();
    let device = logits.device();
    let eye = Tensor::<2>::eye(k, &device);
    let off = eye.clone().neg().add_scalar(1.0);
    // Classification both ways: each row picks its column, each column its row.
    let rows = (log_softmax(logits.clone(), 1) * eye.clone()).sum().neg().div_scalar(k as f32);
    let cols = (log_softmax(logits.clone(), 0) * eye.clone()).sum().neg().div_scalar(k as f32);
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
    fn losses_are_finite_and_have_gradients() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = Preset::Web.config().init(&device);
        let images = |n| Tensor::<4>::random([n, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let labels = Tensor::<1>::from_floats([1.0, 0.0, 1.0, 0.0], &device);
        let pair = pair_loss(&model, images(4), images(4), labels);
        let episode = episode_loss(&model, vec![images(6), images(10)]);
        for loss in [pair, episode] {
            let value = loss.clone().into_scalar::<f32>();
            assert!(value.is_finite() && value > 0.0, "loss {value}");
            let grads = loss.backward();
            let grad = model.embed_weight().grad(&grads).expect("embedding weight has a gradient");
            assert!(grad.abs().sum().into_scalar::<f32>() > 0.0);
        }
    }
}

//! The network's modules and forward passes: one twin (convolutional stages, then a dense
//! embedding) shared by both inputs, and the weighted-L1 head.

use burn::module::{Module, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};

/// One convolutional stage of the twin.
#[derive(Module, Debug)]
pub struct ConvStage {
    pub(crate) conv: Conv2d,
    pub(crate) norm: Option<BatchNorm>,
    pub(crate) pool: Option<MaxPool2d>,
}

impl ConvStage {
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        // Max-pooling before the ReLU gives the same result (both are monotone) on a quarter
        // of the values.
        let x = match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        relu(x)
    }
}

/// One twin: images in, embeddings out.
#[derive(Module, Debug)]
pub struct Twin {
    pub(crate) stages: Vec<ConvStage>,
    pub(crate) embed: Linear,
    #[module(skip)]
    pub(crate) sigmoid: bool,
}

/// The Siamese network: a twin shared by both inputs and the weighted-L1 head.
#[derive(Module, Debug)]
pub struct Siamese {
    pub(crate) twin: Twin,
    pub(crate) head: Linear,
    /// The head's product term `u · (h₁ ⊙ h₂)` (`SiameseConfig::product_head`), without bias.
    pub(crate) product: Option<Linear>,
}

impl Twin {
    /// The convolutional stages: `[n, 1, size, size]` → `[n, channels, side, side]`.
    fn features(&self, images: Tensor<4>) -> Tensor<4> {
        #[cfg(any(not(target_arch = "wasm32"), feature = "cpu-training"))]
        if crate::cpu_training::applies(&self.stages, &images) {
            return crate::cpu_training::features(&self.stages, images);
        }
        self.stages.iter().fold(images, |x, stage| stage.forward(x))
    }
}

impl Siamese {
    /// Embeds a batch of preprocessed images `[n, 1, size, size]` into `[n, embedding]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.twin.features(images);
        let x = self.twin.embed.forward(x.flatten(1, 3));
        if self.twin.sigmoid { sigmoid(x) } else { x }
    }

    /// Logits for matching pairs of embeddings, row by row: `[n, d]`, `[n, d]` → `[n]`.
    pub fn pair_logits(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
        let logits = self.head.forward((a.clone() - b.clone()).abs());
        let logits = match &self.product {
            Some(product) => logits + product.forward(a * b),
            None => logits,
        };
        logits.flatten(0, 1)
    }

    /// The product term for every query against every support, `[q, s]`, for pictures of
    /// `views` view embeddings back to back: the mean over the views of `u · (q ⊙ s)`, which is
    /// one matrix product of the queries weighted by `u` once per view and the supports. `None`
    /// without the term.
    fn cross_products(&self, queries: Tensor<2>, supports: Tensor<2>, views: usize) -> Option<Tensor<2>> {
        let product = self.product.as_ref()?;
        let [_, width] = queries.dims();
        let weight =
            product.weight.val().reshape([1, width / views]).repeat_dim(0, views).reshape([1, width]);
        Some((queries * weight).matmul(supports.transpose()).div_scalar(views as f32))
    }

    /// Logits for every query against every support: `[q, d]`, `[s, d]` → `[q, s]`.
    pub fn cross_logits(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        let [q, d] = queries.dims();
        let [s, _] = supports.dims();
        let products = self.cross_products(queries.clone(), supports.clone(), 1);
        let diff = queries.unsqueeze_dim::<3>(1).expand([q, s, d])
            - supports.unsqueeze_dim::<3>(0).expand([q, s, d]);
        let logits = self.head.forward(diff.abs()).reshape([q, s]);
        match products {
            Some(products) => logits + products,
            None => logits,
        }
    }

    /// Probabilities that each query shows the same character as each support: `[q, s]`.
    pub fn cross_scores(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        sigmoid(self.cross_logits(queries, supports))
    }

    /// Like [`cross_scores`](Self::cross_scores) for pictures seen through `views` views, each
    /// picture's view embeddings back to back (`[q, views · d]`, `[s, views · d]`): the sigmoid
    /// of [`cross_logits_views`](Self::cross_logits_views).
    pub fn cross_scores_views(&self, queries: Tensor<2>, supports: Tensor<2>, views: usize) -> Tensor<2> {
        sigmoid(self.cross_logits_views(queries, supports, views))
    }

    /// The mean over the views of the head's logits, `[q, s]`, for pictures given as in
    /// [`cross_scores_views`](Self::cross_scores_views). Rank matches by these: the sigmoid
    /// rounds confident matches to exactly 1 in f32.
    pub fn cross_logits_views(&self, queries: Tensor<2>, supports: Tensor<2>, views: usize) -> Tensor<2> {
        if views <= 1 {
            return self.cross_logits(queries, supports);
        }
        let [q, width] = queries.dims();
        let [s, _] = supports.dims();
        let d = width / views;
        let products = self.cross_products(queries.clone(), supports.clone(), views);
        let diff = queries.reshape([q, 1, views, d]).expand([q, s, views, d])
            - supports.reshape([1, s, views, d]).expand([q, s, views, d]);
        let logits: Tensor<4> = self.head.forward(diff.abs());
        let logits = logits.mean_dim(2).reshape([q, s]);
        match products {
            Some(products) => logits + products,
            None => logits,
        }
    }

    /// Freezes the whole twin, so only the head trains.
    pub fn freeze_twin(mut self) -> Self {
        self.twin = self.twin.freeze();
        self
    }

    /// Freezes the batch norms (their statistics and affine parameters), so a few examples
    /// cannot overwrite what the running statistics learnt.
    pub fn freeze_norms(mut self) -> Self {
        for stage in &mut self.twin.stages {
            stage.norm = stage.norm.take().map(Module::freeze);
        }
        self
    }

    /// The embedding layer's weight, for tests that look at gradients.
    #[cfg(test)]
    pub(crate) fn embed_weight(&self) -> Tensor<2> {
        self.twin.embed.weight.val()
    }

    /// The network with each batch norm's statistics moved toward those of `images` (a batch
    /// of preprocessed pictures, `[n, 1, size, size]`): `blend` 0 keeps the statistics learnt on
    /// Omniglot's background alphabets, 1 replaces them with the batch's (per channel, over
    /// pictures and positions, as batch norm computes them in training), in between a weighted
    /// mean. Stage by stage, so each norm sees its input as the adapted stages before it make
    /// it. Given a task's supports, this adapts the network to a new alphabet's strokes without
    /// training ("AdaBN", Li et al. 2016); the norms' learnt γ and β stay.
    pub fn with_norm_statistics(mut self, images: Tensor<4>, blend: f64) -> Self {
        let mut x = images;
        for stage in &mut self.twin.stages {
            x = stage.conv.forward(x);
            if let Some(norm) = &mut stage.norm {
                let [n, channels, height, width] = x.dims();
                let per_channel = x.clone().swap_dims(0, 1).reshape([channels, n * height * width]);
                let mean = per_channel.clone().mean_dim(1).reshape([channels]);
                // Biased, as batch norm normalises a training batch.
                let variance = per_channel.var_bias(1).reshape([channels]);
                let towards =
                    |old: Tensor<1>, new: Tensor<1>| RunningState::new(old * (1.0 - blend) + new * blend);
                norm.running_mean = towards(norm.running_mean.value(), mean);
                norm.running_var = towards(norm.running_var.value(), variance);
                // Inference mode whatever the device: these statistics, not the batch's.
                x = burn::tensor::module::batch_norm(
                    x,
                    norm.gamma.val(),
                    norm.beta.val(),
                    norm.running_mean.value(),
                    norm.running_var.value(),
                    norm.epsilon,
                );
            }
            if let Some(pool) = &stage.pool {
                x = pool.forward(x);
            }
            x = relu(x);
        }
        self
    }
}

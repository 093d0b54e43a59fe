//! Recognition on the CPU, without Burn: a weights file's network with its batch norms folded
//! into its convolutions, run by the project's kernels ([`Embedder`]), and the weighted-L1 head.
//! This is what the page answers with first (a small WebAssembly build), what `eval` measures,
//! and, natively, how every CPU embedding is made.

use oneshot_kernels::{ConvValues, DenseValues, Embedder};

use crate::architecture::SiameseConfig;
use crate::preprocess::{Distortion, Framing, InkImage, PreprocessError, Preprocessor};
use crate::weights::{self, TensorValues, WeightsError};

/// Views per picture in the shipped recognizer (the page and `eval`'s default): all eight
/// symmetries of the square ([`Distortion::views`]), the head's logits averaged over them.
/// Chosen on 1,000 20-way tasks of the validation alphabets (`oneshot eval --split validation
/// --views N`): 84.4 % with 1 view, 84.5 % with 2, 86.5 % with 4, 87.4 % with 8, for 8× the
/// work per drawing (still a few milliseconds).
pub const DEFAULT_VIEWS: usize = 8;

/// Pens the shipped recognizer also sees every picture with (the page and the CLI's default,
/// [`CpuRecognizer::with_pens`]): as drawn, then with its strokes one pixel (of a 105-pixel
/// scan) narrower, logits averaged over both. The network is hurt by thick strokes, not thin
/// ones. Chosen on 10,000 20-way trials of the validation alphabets (seeds 7 and 8, `oneshot
/// eval --split validation --pens`): 88.9 / 89.3 % as drawn, 89.1 / 89.6 % with `0,-1`, no
/// better with −2 too; twice the network's work per drawing.
pub const DEFAULT_PENS: [i8; 2] = [0, -1];

/// The largest pen change, either way, that the CLI and the page accept: three pixels narrower
/// take most of an Omniglot stroke (about 4.8 pixels at 105) away.
pub const MAX_PEN_CHANGE: i8 = 3;

/// Burn's batch-norm ε (`BatchNormConfig`'s default), which the networks are trained with.
pub const BATCH_NORM_EPSILON: f32 = 1e-5;

/// A trained network on the CPU, with the preprocessing its input size needs — or a committee
/// of networks of one twin architecture, answering as one: a view's embedding is every network's
/// embedding of it back to back, and the head's weights are theirs side by side, each divided
/// by their number, so a logit is the mean of the networks' logits.
#[derive(Debug, Clone)]
pub struct CpuRecognizer {
    config: SiameseConfig,
    /// One per network of the committee (one for a single network).
    embedders: Vec<Embedder>,
    head_weight: Vec<f32>,
    head_bias: f32,
    /// The head's product weights `u` (`SiameseConfig::product_head`), like `head_weight`;
    /// empty without the term.
    head_product: Vec<f32>,
    preprocessor: Preprocessor,
    views: Vec<Distortion>,
    /// Pen changes every picture is also seen with ([`CpuRecognizer::with_pens`]); `[0]`: as drawn.
    pens: Vec<i8>,
}

impl CpuRecognizer {
    /// The network of a weights file, or the committee of a committee file; with `expected`, a
    /// file of another architecture is refused.
    pub fn from_bytes(bytes: &[u8], expected: Option<&SiameseConfig>) -> Result<Self, WeightsError> {
        let networks = weights::committee::members(bytes)?
            .into_iter()
            .map(|member| {
                let file = weights::read(member)?;
                weights::check_expected(&file.config, expected)?;
                Self::new(file.config, &file.tensors)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::committee(networks)
    }

    /// Networks of one twin answering together (see [`CpuRecognizer`]; their heads may differ
    /// in the product term, [`SiameseConfig::same_twin`]); the first's views are kept. One
    /// network is returned as it is.
    pub fn committee(networks: Vec<CpuRecognizer>) -> Result<Self, WeightsError> {
        let mut networks = networks.into_iter();
        let mut first = networks.next().ok_or(WeightsError::Committee(0))?;
        let rest: Vec<CpuRecognizer> = networks.collect();
        if rest.is_empty() {
            return Ok(first);
        }
        if rest.iter().any(|r| !r.config.same_twin(&first.config) || r.embedders.len() != 1) {
            return Err(WeightsError::MixedCommittee);
        }
        // A network without the product term takes part in it with weights of zero.
        let any_product = rest.iter().any(|r| r.config.product_head) || first.config.product_head;
        let product_of = |r: &CpuRecognizer| {
            if r.head_product.is_empty() { vec![0.0; r.head_weight.len()] } else { r.head_product.clone() }
        };
        let share = 1.0 / (rest.len() + 1) as f32;
        if any_product {
            first.head_product = product_of(&first);
            first.config.product_head = true;
        }
        first.head_weight.iter_mut().for_each(|w| *w *= share);
        first.head_product.iter_mut().for_each(|u| *u *= share);
        first.head_bias *= share;
        for other in rest {
            first.head_weight.extend(other.head_weight.iter().map(|w| w * share));
            if any_product {
                first.head_product.extend(product_of(&other).iter().map(|u| u * share));
            }
            first.head_bias += other.head_bias * share;
            first.embedders.extend(other.embedders);
        }
        Ok(first)
    }

    /// How many networks answer together (1 for a single network).
    pub fn networks(&self) -> usize {
        self.embedders.len()
    }

    /// The network of `config` with `tensors` in its visiting order (per stage: convolution
    /// weight and bias, then batch norm γ, β, running mean and variance; then the dense
    /// embedding's weight and bias, then the head's). One view per picture.
    pub fn new(config: SiameseConfig, tensors: &[TensorValues]) -> Result<Self, WeightsError> {
        let mut tensors = Layout { tensors: tensors.iter(), index: 0 };
        let mut convs = Vec::with_capacity(config.stages.len());
        let mut in_channels = 1;
        for stage in &config.stages {
            let (out, k) = (stage.channels, stage.kernel);
            let mut weight = tensors.next(&[out, in_channels, k, k])?;
            let mut bias = tensors.next(&[out])?;
            if config.batch_norm {
                let [gamma, beta, mean, variance] = [(); 4].map(|_| tensors.next(&[out]));
                let (gamma, beta, mean, variance) = (gamma?, beta?, mean?, variance?);
                // In inference a batch norm is the affine map γ (x − μ) / √(σ² + ε) + β.
                for o in 0..out {
                    let scale = gamma[o] / (variance[o] + BATCH_NORM_EPSILON).sqrt();
                    weight[o * in_channels * k * k..(o + 1) * in_channels * k * k]
                        .iter_mut()
                        .for_each(|w| *w *= scale);
                    bias[o] = (bias[o] - mean[o]) * scale + beta[o];
                }
            }
            convs.push(ConvValues { weight, bias });
            in_channels = out;
        }
        let side = config
            .feature_size()
            .ok_or_else(|| WeightsError::Architecture("the stages shrink the input to nothing".into()))?;
        let flat = in_channels * side * side;
        let embed = DenseValues {
            weight: tensors.next(&[flat, config.embedding])?,
            bias: tensors.next(&[config.embedding])?,
        };
        let head_weight = tensors.next(&[config.embedding, 1])?;
        let head_bias = tensors.next(&[1])?[0];
        let head_product =
            if config.product_head { tensors.next(&[config.embedding, 1])? } else { Vec::new() };
        tensors.finish()?;
        Ok(Self {
            embedders: vec![Embedder::new(&config.net_shape(), convs, embed)],
            preprocessor: Preprocessor::for_recognition(config.input_size),
            views: vec![Distortion::NONE],
            pens: vec![0],
            head_weight,
            head_bias,
            head_product,
            config,
        })
    }

    /// Sees every picture through `n` views ([`Distortion::views`]: the plain picture, then
    /// its symmetries), a picture's embedding being its views' embeddings back to back and a
    /// score the mean of the head's logits over the views; 1 is the plain picture.
    pub fn with_views(mut self, n: usize) -> Self {
        self.views = Distortion::views(n);
        self
    }

    /// Frames every picture this way instead of [`Framing::Recognition`] (training's
    /// validation uses [`Framing::Training`], as when the shipped networks were chosen).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.preprocessor = Preprocessor::framed(self.config.input_size, framing);
        self
    }

    /// The architecture.
    pub fn config(&self) -> &SiameseConfig {
        &self.config
    }

    /// Also sees every picture with its strokes narrowed (negative) or widened by each of
    /// `pens` pixels ([`InkImage::with_stroke_change`]), each through every view: a picture's
    /// views are then its pens' views, pen by pen, and a score the mean logit over all of them.
    /// `[0]` (or nothing) is the picture as drawn. The page and the CLI use [`DEFAULT_PENS`]
    /// (docs/training.md, "Test-time rescoring").
    pub fn with_pens(mut self, pens: &[i8]) -> Self {
        self.pens = if pens.is_empty() { vec![0] } else { pens.to_vec() };
        self
    }

    /// The pen changes every picture is seen with.
    pub fn pens(&self) -> &[i8] {
        &self.pens
    }

    /// How many views each picture is embedded from: symmetries × pens.
    pub fn views(&self) -> usize {
        self.views.len() * self.pens.len()
    }

    /// The preprocessing in front of the network.
    pub fn preprocessor(&self) -> Preprocessor {
        self.preprocessor
    }

    /// Width of the embedding of one view: every network's, back to back.
    pub fn embedding_width(&self) -> usize {
        self.config.embedding * self.embedders.len()
    }

    /// Width of a picture's embedding, as [`embed`](Self::embed) returns it and
    /// [`scores`](Self::scores) takes it: one embedding per view, back to back.
    pub fn picture_width(&self) -> usize {
        self.embedding_width() * self.views()
    }

    /// What the network sees of a picture: one preprocessed input (`size²` values) per view,
    /// pen by pen.
    pub fn render_views(&self, image: &InkImage) -> Result<Vec<Vec<f32>>, PreprocessError> {
        render_pen_views(&self.preprocessor, &self.views, &self.pens, image)
    }

    /// Every view of pictures given as what the network sees of them (`size²` values each, as
    /// [`render`](Preprocessor::render) makes them), back to back: one render per pen per
    /// picture in, `views()` per picture out.
    pub fn views_of_renders(&self, renders: &[Vec<f32>]) -> Vec<Vec<f32>> {
        Distortion::apply_all_to_renders(&self.views, renders, self.preprocessor.size())
    }

    /// Embeds pictures: `images.len() × picture_width()` values.
    pub fn embed(&self, images: &[&InkImage]) -> Result<Vec<f32>, PreprocessError> {
        let mut inputs = Vec::with_capacity(images.len() * self.views());
        for image in images {
            inputs.extend(self.render_views(image)?);
        }
        Ok(self.embed_preprocessed(&inputs))
    }

    /// Embeds already preprocessed inputs (`size²` values each), one embedding per input.
    ///
    /// # Panics
    /// If an input does not have `size²` values.
    pub fn embed_preprocessed(&self, inputs: &[Vec<f32>]) -> Vec<f32> {
        if let [only] = self.embedders.as_slice() {
            return only.embed(inputs);
        }
        let each: Vec<Vec<f32>> = self.embedders.iter().map(|e| e.embed(inputs)).collect();
        let width = self.config.embedding;
        let mut out = Vec::with_capacity(inputs.len() * self.embedding_width());
        for i in 0..inputs.len() {
            each.iter().for_each(|network| out.extend_from_slice(&network[i * width..(i + 1) * width]));
        }
        out
    }

    /// Same-character probabilities of every query against every support (picture embeddings
    /// back to back): `queries × supports` values, row by query, each the sigmoid of the mean
    /// over the views of the head's logit. A trailing partial embedding is ignored.
    pub fn scores(&self, queries: &[f32], supports: &[f32]) -> Vec<f32> {
        let mut scores = self.logits(queries, supports);
        scores.iter_mut().for_each(|logit| *logit = 1.0 / (1.0 + (-*logit).exp()));
        scores
    }

    /// The head's logits behind [`scores`](Self::scores), before the sigmoid (which rounds
    /// confident matches to exactly 1 in f32, so only the logits rank them).
    pub fn logits(&self, queries: &[f32], supports: &[f32]) -> Vec<f32> {
        let (width, views) = (self.picture_width(), self.views() as f32);
        let n = self.head_weight.len();
        let weighted_l1 = |a: &[f32], b: &[f32]| {
            a.chunks_exact(n)
                .zip(b.chunks_exact(n))
                .map(|(a, b)| {
                    a.iter().zip(b).zip(&self.head_weight).map(|((a, b), w)| w * (a - b).abs()).sum::<f32>()
                })
                .sum::<f32>()
        };
        let product = |a: &[f32], b: &[f32]| {
            a.chunks_exact(n)
                .zip(b.chunks_exact(n))
                .map(|(a, b)| {
                    a.iter().zip(b).zip(&self.head_product).map(|((a, b), u)| u * a * b).sum::<f32>()
                })
                .sum::<f32>()
        };
        let has_product = !self.head_product.is_empty();
        queries
            .chunks_exact(width)
            .flat_map(|q| {
                supports.chunks_exact(width).map(move |s| {
                    let sum = weighted_l1(q, s) + if has_product { product(q, s) } else { 0.0 };
                    sum / views + self.head_bias
                })
            })
            .collect()
    }
}

impl CpuRecognizer {
    /// For each query, the support it most likely shows the same character as (the first on a
    /// tie): one-shot classification, as `eval` and the page's benchmark ask it.
    pub fn classify(
        &self,
        supports: &[&InkImage],
        queries: &[&InkImage],
    ) -> Result<Vec<usize>, PreprocessError> {
        let supports = self.embed(supports)?;
        let queries = self.embed(queries)?;
        let count = supports.len() / self.picture_width().max(1);
        Ok(self.logits(&queries, &supports).chunks(count.max(1)).map(argmax).collect())
    }
}

/// The index of the largest value (the first of equals); 0 for none.
pub fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// The file's tensors taken in the network's order, each checked against the shape it must have.
struct Layout<'a> {
    tensors: std::slice::Iter<'a, TensorValues>,
    index: usize,
}

/// A picture's inputs through `views` for each of `pens`, pen by pen (see
/// [`CpuRecognizer::with_pens`]); shared with Burn's recognizer so both see the same inputs.
pub fn render_pen_views(
    preprocessor: &Preprocessor,
    views: &[Distortion],
    pens: &[i8],
    image: &InkImage,
) -> Result<Vec<Vec<f32>>, PreprocessError> {
    let mut inputs = Vec::with_capacity(views.len() * pens.len());
    for &pen in pens {
        let changed;
        let image = if pen == 0 {
            image
        } else {
            changed = image.with_stroke_change(pen);
            &changed
        };
        for view in views {
            inputs.push(preprocessor.render_distorted(image, view)?);
        }
    }
    Ok(inputs)
}

impl Layout<'_> {
    fn next(&mut self, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        let index = self.index;
        self.index += 1;
        match self.tensors.next() {
            Some(tensor) if tensor.shape == shape => Ok(tensor.values.clone()),
            Some(tensor) => Err(WeightsError::Tensors(format!(
                "tensor {index} has shape {:?}, the architecture needs {shape:?}",
                tensor.shape
            ))),
            None => Err(WeightsError::Tensors(format!(
                "the file ends at tensor {index}, the architecture needs more"
            ))),
        }
    }

    fn finish(mut self) -> Result<(), WeightsError> {
        match self.tensors.next() {
            None => Ok(()),
            Some(_) => Err(WeightsError::Tensors(format!(
                "the file has tensors beyond the {} the architecture has",
                self.index
            ))),
        }
    }
}

//! One-shot recognition with a trained network: embed drawings once, score queries against them.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use oneshot_core::architecture::SiameseConfig;
use oneshot_core::preprocess::{Distortion, Framing, InkImage, PreprocessError, Preprocessor};
use oneshot_core::recognize::{CpuRecognizer, render_pen_views};

use crate::network::Siamese;
use crate::objective::image_batch;
use crate::weights::tensor_values;

pub use oneshot_core::recognize::DEFAULT_VIEWS;

/// Images embedded per forward pass, to bound memory on large evaluations.
const EMBED_CHUNK: usize = 256;

/// A trained network in inference mode, with the preprocessing its input size needs.
#[derive(Debug, Clone)]
pub struct Recognizer {
    model: Siamese,
    /// The same network with its batch norms folded away: what inference runs on a GPU (and
    /// the scoring head everywhere).
    folded: Siamese,
    /// On the CPU backend, the same network through the project's kernels
    /// (`oneshot_core::recognize`), which embed in a fraction of the time Burn's generic CPU
    /// convolution takes.
    cpu: Option<CpuRecognizer>,
    config: SiameseConfig,
    preprocessor: Preprocessor,
    views: Vec<Distortion>,
    /// Pen changes every picture is also seen with (as `CpuRecognizer::with_pens`).
    pens: Vec<i8>,
    device: Device,
}

impl Recognizer {
    /// Wraps a network (switched to inference mode) built from `config`.
    pub fn new(model: Siamese, config: SiameseConfig, device: Device) -> Self {
        let preprocessor = Preprocessor::for_recognition(config.input_size);
        let model = model.valid();
        let folded = model.folded();
        let cpu = (device == Device::flex())
            .then(|| CpuRecognizer::new(config.clone(), &tensor_values(&model)).ok())
            .flatten();
        Self {
            model,
            folded,
            cpu,
            config,
            preprocessor,
            views: vec![Distortion::NONE],
            pens: vec![0],
            device,
        }
    }

    /// Sees every picture through `n` views ([`Distortion::views`]: the plain picture, then
    /// its symmetries), as `CpuRecognizer::with_views` does; 1 is the plain picture.
    pub fn with_views(mut self, n: usize) -> Self {
        self.views = Distortion::views(n);
        self
    }

    /// The network (in inference mode), as loaded: to fine-tune or save.
    pub fn model(&self) -> &Siamese {
        &self.model
    }

    /// The architecture.
    pub fn config(&self) -> &SiameseConfig {
        &self.config
    }

    /// Also sees every picture with its strokes changed by each of `pens` pixels, as
    /// `CpuRecognizer::with_pens` does (`[0]` or nothing: as drawn).
    pub fn with_pens(mut self, pens: &[i8]) -> Self {
        self.pens = if pens.is_empty() { vec![0] } else { pens.to_vec() };
        self
    }

    /// Frames every picture this way instead of [`Framing::Recognition`], as
    /// `CpuRecognizer::with_framing` does.
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.preprocessor = Preprocessor::framed(self.config.input_size, framing);
        self.cpu = self.cpu.map(|cpu| cpu.with_framing(framing));
        self
    }

    /// How many views each picture is embedded from: symmetries × pens.
    pub fn views(&self) -> usize {
        self.views.len() * self.pens.len()
    }

    /// The pen changes every picture is seen with.
    pub fn pens(&self) -> &[i8] {
        &self.pens
    }

    /// The preprocessing in front of the network.
    pub fn preprocessor(&self) -> Preprocessor {
        self.preprocessor
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds pictures: `[n, views · embedding]`, each picture's view embeddings back to back.
    pub fn embed(&self, images: &[&InkImage]) -> Result<Tensor<2>, PreprocessError> {
        Ok(self.embed_views(&self.render_all_views(images)?))
    }

    /// What the network sees of a picture: one preprocessed input (`size²` values) per view,
    /// pen by pen.
    pub fn render_views(&self, image: &InkImage) -> Result<Vec<Vec<f32>>, PreprocessError> {
        render_pen_views(&self.preprocessor, &self.views, &self.pens, image)
    }

    /// [`render_views`](Self::render_views) of every picture, concatenated: what
    /// [`embed_views`](Self::embed_views) takes.
    pub fn render_all_views(&self, images: &[&InkImage]) -> Result<Vec<Vec<f32>>, PreprocessError> {
        let mut inputs = Vec::with_capacity(images.len() * self.views());
        for image in images {
            inputs.extend(self.render_views(image)?);
        }
        Ok(inputs)
    }

    /// Every view of pictures given as what the network sees of them, one render per pen per
    /// picture in, `views()` per picture out (see `CpuRecognizer::views_of_renders`).
    pub fn views_of_renders(&self, renders: &[Vec<f32>]) -> Vec<Vec<f32>> {
        Distortion::apply_all_to_renders(&self.views, renders, self.preprocessor.size())
    }

    /// Embeds pictures given as their [`render_views`](Self::render_views), concatenated
    /// (`views()` inputs per picture): `[n, views · embedding]`.
    pub fn embed_views(&self, inputs: &[Vec<f32>]) -> Tensor<2> {
        let views = self.views();
        let embeddings = self.embed_preprocessed(inputs);
        let [rows, width] = embeddings.dims();
        embeddings.reshape([rows / views, views * width])
    }

    /// Embeds already preprocessed inputs (`size²` values each), one embedding per input.
    pub fn embed_preprocessed(&self, inputs: &[Vec<f32>]) -> Tensor<2> {
        if let Some(cpu) = &self.cpu {
            let shape = [inputs.len(), cpu.embedding_width()];
            return Tensor::from_data(TensorData::new(cpu.embed_preprocessed(inputs), shape), &self.device);
        }
        let chunks: Vec<Tensor<2>> = inputs
            .chunks(EMBED_CHUNK)
            .map(|chunk| self.folded.embed(image_batch(chunk, self.preprocessor.size(), &self.device)))
            .collect();
        Tensor::cat(chunks, 0)
    }

    /// Same-character probabilities of every query against every support (picture embeddings
    /// as [`embed`](Self::embed) makes them): `[q, s]`, the mean logit over the views.
    pub fn scores(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        self.folded.cross_scores_views(queries, supports, self.views())
    }

    /// The head's logits behind [`scores`](Self::scores), before the sigmoid: what ranks the
    /// matches, since the sigmoid rounds confident ones to exactly 1 in f32.
    pub fn logits(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        self.folded.cross_logits_views(queries, supports, self.views())
    }
}

/// Networks of one architecture answering together on any device, as
/// `oneshot_core::recognize::CpuRecognizer` does for a committee file: a view's embedding is
/// every network's embedding of it back to back, a logit the mean of the networks' logits. A
/// single network is a committee of one.
#[derive(Debug, Clone)]
pub struct Committee {
    members: Vec<Recognizer>,
}

impl Committee {
    /// The networks of a weights file or committee file on `device`, each seeing every picture
    /// through `views` views; with `expected`, a network of another architecture is refused.
    pub fn from_bytes(
        bytes: &[u8],
        expected: Option<&SiameseConfig>,
        device: &Device,
        views: usize,
    ) -> Result<Self, crate::weights::WeightsError> {
        let mut members = Vec::new();
        for file in crate::weights::members(bytes)? {
            let (config, model) = crate::weights::from_bytes(
                file,
                expected.or(members.first().map(Recognizer::config)),
                device,
            )?;
            members.push(Recognizer::new(model, config, device.clone()).with_views(views));
        }
        Ok(Self { members })
    }

    /// Every network also sees each picture with these pen changes (`Recognizer::with_pens`).
    pub fn with_pens(mut self, pens: &[i8]) -> Self {
        self.members = self.members.into_iter().map(|m| m.with_pens(pens)).collect();
        self
    }

    /// The networks, in the file's order (to fine-tune each).
    pub fn members(&self) -> &[Recognizer] {
        &self.members
    }

    fn first(&self) -> &Recognizer {
        &self.members[0]
    }

    /// The architecture of every network.
    pub fn config(&self) -> &SiameseConfig {
        self.first().config()
    }

    /// How many views each picture is embedded from.
    pub fn views(&self) -> usize {
        self.first().views()
    }

    /// The pen changes every picture is seen with.
    pub fn pens(&self) -> &[i8] {
        self.first().pens()
    }

    /// The device the networks run on.
    pub fn device(&self) -> &Device {
        self.first().device()
    }

    /// Width of one view's embedding: every network's, back to back.
    pub fn embedding_width(&self) -> usize {
        self.config().embedding * self.members.len()
    }

    /// What the networks see of a picture: one preprocessed input per view.
    pub fn render_views(&self, image: &InkImage) -> Result<Vec<Vec<f32>>, PreprocessError> {
        self.first().render_views(image)
    }

    /// Every view of pictures given as what the networks see of them (see
    /// [`Recognizer::views_of_renders`]).
    pub fn views_of_renders(&self, renders: &[Vec<f32>]) -> Vec<Vec<f32>> {
        self.first().views_of_renders(renders)
    }

    /// Embeds pictures: `[n, views · embedding_width()]`.
    pub fn embed(&self, images: &[&InkImage]) -> Result<Tensor<2>, PreprocessError> {
        Ok(self.embed_views(&self.first().render_all_views(images)?))
    }

    /// Embeds already preprocessed inputs: `[n, embedding_width()]`.
    pub fn embed_preprocessed(&self, inputs: &[Vec<f32>]) -> Tensor<2> {
        Tensor::cat(self.members.iter().map(|m| m.embed_preprocessed(inputs)).collect(), 1)
    }

    /// Embeds pictures given as their views, `views()` inputs per picture: `[n, views ·
    /// embedding_width()]`.
    pub fn embed_views(&self, inputs: &[Vec<f32>]) -> Tensor<2> {
        let embeddings = self.embed_preprocessed(inputs);
        let [rows, width] = embeddings.dims();
        let views = self.views();
        embeddings.reshape([rows / views, views * width])
    }

    /// The mean of the networks' logits, `[q, s]`, for pictures embedded as
    /// [`embed_views`](Self::embed_views) makes them.
    pub fn logits(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        let [networks, views, width] = [self.members.len(), self.views(), self.config().embedding];
        if networks == 1 {
            return self.first().logits(queries, supports);
        }
        let own = |pictures: &Tensor<2>, m: usize| {
            let rows = pictures.dims()[0];
            pictures
                .clone()
                .reshape([rows, views, networks, width])
                .narrow(2, m, 1)
                .reshape([rows, views * width])
        };
        let sum = self
            .members
            .iter()
            .enumerate()
            .map(|(m, member)| member.logits(own(&queries, m), own(&supports, m)))
            .reduce(|a, b| a + b)
            .expect("a committee has a network");
        sum / networks as f32
    }

    /// Same-character probabilities: the sigmoid of [`logits`](Self::logits).
    pub fn scores(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        burn::tensor::activation::sigmoid(self.logits(queries, supports))
    }
}

//! `Engine`: a loaded network, ready to embed drawings and score them — on the CPU through the
//! Burn-free recognizer of `oneshot-core` (every build), or on WebGPU through Burn (the
//! `webgpu` build).

use oneshot_core::architecture::{Preset, SiameseConfig};
use oneshot_core::preprocess::InkImage;
use oneshot_core::recognize::{CpuRecognizer, DEFAULT_PENS, DEFAULT_VIEWS, MAX_PEN_CHANGE};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::input::{check_items, chunks, js_error, rgba_image, strokes_image};

/// Which backend runs the network, and why.
#[derive(Serialize, Clone)]
pub(crate) struct BackendInfo {
    /// `"webgpu"` or `"cpu"`.
    pub kind: &'static str,
    /// The adapter's name, or why the CPU runs instead.
    pub detail: String,
}

/// The network behind an engine.
pub(crate) enum Net {
    /// The project's kernels on the CPU.
    Cpu(CpuRecognizer),
    /// Burn on WebGPU (every network of a committee file).
    #[cfg(feature = "webgpu")]
    Gpu(oneshot_model::recognize::Committee),
}

impl Net {
    fn config(&self) -> &SiameseConfig {
        match self {
            Net::Cpu(r) => r.config(),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => r.config(),
        }
    }

    fn views(&self) -> usize {
        match self {
            Net::Cpu(r) => r.views(),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => r.views(),
        }
    }

    fn pens(&self) -> &[i8] {
        match self {
            Net::Cpu(r) => r.pens(),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => r.pens(),
        }
    }

    /// Width of one view's embedding (every network's of a committee, back to back).
    fn embedding_width(&self) -> usize {
        match self {
            Net::Cpu(r) => r.embedding_width(),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => r.embedding_width(),
        }
    }

    fn views_of_renders(&self, renders: &[Vec<f32>]) -> Vec<Vec<f32>> {
        match self {
            Net::Cpu(r) => r.views_of_renders(renders),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => r.views_of_renders(renders),
        }
    }

    fn render_views(&self, image: &InkImage) -> Result<Vec<Vec<f32>>, JsError> {
        match self {
            Net::Cpu(r) => r.render_views(image).map_err(js_error),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => r.render_views(image).map_err(js_error),
        }
    }

    /// One embedding per preprocessed input, back to back: for a picture's views in a row, that
    /// is the picture's embedding (its views' embeddings back to back).
    async fn embed_each(&self, inputs: &[Vec<f32>]) -> Result<Vec<f32>, JsError> {
        match self {
            Net::Cpu(r) => Ok(r.embed_preprocessed(inputs)),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => crate::read(r.embed_preprocessed(inputs)).await,
        }
    }

    async fn scores(&self, queries: Vec<f32>, supports: Vec<f32>) -> Result<Vec<f32>, JsError> {
        match self {
            Net::Cpu(r) => Ok(r.scores(&queries, &supports)),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => {
                let (queries, supports) = (self.embeddings(r, queries), self.embeddings(r, supports));
                crate::read(r.scores(queries, supports)).await
            }
        }
    }

    /// One picture's embedding from its views, followed by its scores against `supports`
    /// (embeddings back to back, possibly none): on WebGPU, one readback for both.
    async fn embed_and_score(&self, views: &[Vec<f32>], supports: Vec<f32>) -> Result<Vec<f32>, JsError> {
        match self {
            Net::Cpu(r) => {
                let mut out = r.embed_preprocessed(views);
                if !supports.is_empty() {
                    let scores = r.scores(&out, &supports);
                    out.extend(scores);
                }
                Ok(out)
            }
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => {
                let query = r.embed_views(views);
                if supports.is_empty() {
                    return crate::read(query).await;
                }
                let scores = r.scores(query.clone(), self.embeddings(r, supports));
                crate::read(burn::tensor::Tensor::cat(vec![query, scores], 1)).await
            }
        }
    }

    /// Embeddings given back to back, as a `[rows, width]` tensor on the recognizer's device.
    #[cfg(feature = "webgpu")]
    fn embeddings(
        &self,
        r: &oneshot_model::recognize::Committee,
        values: Vec<f32>,
    ) -> burn::tensor::Tensor<2> {
        use burn::tensor::{Tensor, TensorData};
        let width = r.embedding_width() * r.views();
        let rows = values.len() / width;
        Tensor::<2>::from_data(TensorData::new(values, [rows, width]), r.device())
    }
}

/// A loaded network on WebGPU or the CPU, ready to embed drawings and score them.
#[wasm_bindgen]
pub struct Engine {
    pub(crate) net: Net,
    pub(crate) backend: BackendInfo,
    /// The weights file the network was loaded from, for downloads and fine-tuning.
    pub(crate) weights: Vec<u8>,
}

#[wasm_bindgen]
impl Engine {
    /// Loads a weights file of the `web` preset (or a committee file of such networks, which
    /// answer together) onto WebGPU when `use_gpu` is true, this build has WebGPU and an adapter
    /// is available, otherwise onto the CPU (the project's kernels). Every drawing is seen with
    /// each of `pens` (pixels of a 105-pixel scan its strokes are widened by, negative:
    /// narrowed; at most 3 either way); by default the page's, as drawn and one pixel narrower.
    pub async fn create(use_gpu: bool, weights: Vec<u8>, pens: Option<Vec<i8>>) -> Result<Engine, JsError> {
        let expected = Preset::Web.config();
        let pens = pens.unwrap_or_else(|| DEFAULT_PENS.to_vec());
        if let Some(pen) = pens.iter().find(|p| p.unsigned_abs() > MAX_PEN_CHANGE.unsigned_abs()) {
            return Err(JsError::new(&format!(
                "a pen change of {pen} pixels: at most {MAX_PEN_CHANGE} either way"
            )));
        }
        #[cfg(feature = "webgpu")]
        if use_gpu {
            match crate::gpu::device().await {
                Ok((device, adapter)) => {
                    let recognizer = oneshot_model::recognize::Committee::from_bytes(
                        &weights,
                        Some(&expected),
                        &device,
                        DEFAULT_VIEWS,
                    )
                    .map_err(js_error)?
                    .with_pens(&pens);
                    let backend = BackendInfo { kind: "webgpu", detail: adapter };
                    return Ok(Engine { net: Net::Gpu(recognizer), backend, weights });
                }
                Err(reason) => return Self::on_cpu(weights, &expected, &pens, reason),
            }
        }
        let reason = if use_gpu { "this build runs on the CPU only" } else { "WebGPU not requested" };
        Self::on_cpu(weights, &expected, &pens, reason.into())
    }

    /// The weights file this engine runs (to download).
    pub fn weights(&self) -> Vec<u8> {
        self.weights.clone()
    }

    /// `{ kind: "webgpu" | "cpu", detail }`.
    pub fn backend(&self) -> Result<JsValue, JsError> {
        serde_wasm_bindgen::to_value(&self.backend).map_err(js_error)
    }

    /// Side of the network's square input.
    #[wasm_bindgen(js_name = inputSize)]
    pub fn input_size(&self) -> usize {
        self.net.config().input_size
    }

    /// Width of a drawing's embedding: the network's embedding of each of its views (every
    /// network's, for a committee), back to back.
    #[wasm_bindgen(js_name = embeddingWidth)]
    pub fn embedding_width(&self) -> usize {
        self.net.embedding_width() * self.views()
    }

    /// Views the recognizer sees each drawing through: for each pen, the plain drawing, then its
    /// symmetries.
    pub fn views(&self) -> usize {
        self.net.views()
    }

    /// The pens every drawing is seen with (pixel changes of its strokes, see `create`), in the
    /// order of its renders.
    pub fn pens(&self) -> Vec<i8> {
        self.net.pens().to_vec()
    }

    /// What the network sees of a drawing given as strokes (see `strokes_image`): `size²`
    /// values in `0..=1`, the first of its views (the undistorted one).
    #[wasm_bindgen(js_name = preprocessStrokes)]
    pub fn preprocess_strokes(&self, points: &[f32], lengths: &[u32]) -> Result<Vec<f32>, JsError> {
        self.first_view(&strokes_image(points, lengths)?)
    }

    /// What the network sees of an RGBA picture: `size²` values in `0..=1`.
    pub fn preprocess(&self, width: usize, height: usize, rgba: &[u8]) -> Result<Vec<f32>, JsError> {
        self.first_view(&rgba_image(width, height, rgba)?)
    }

    /// The embedding of a drawing given as strokes (to cache per drawing).
    #[wasm_bindgen(js_name = embedStrokes)]
    pub async fn embed_strokes(&self, points: Vec<f32>, lengths: Vec<u32>) -> Result<Vec<f32>, JsError> {
        self.embed_image(&strokes_image(&points, &lengths)?).await
    }

    /// The embedding of an RGBA picture (to cache per drawing).
    pub async fn embed(&self, width: usize, height: usize, rgba: Vec<u8>) -> Result<Vec<f32>, JsError> {
        self.embed_image(&rgba_image(width, height, &rgba)?).await
    }

    /// The page's whole query path in one call: a drawing given as strokes, preprocessed once,
    /// embedded and scored against support embeddings (`embeddingWidth()` values each, back to
    /// back; empty to embed only). Returns, back to back, what the network sees with each pen
    /// (`pens().length` renders of `inputSize²` values, each pen's undistorted view), the
    /// embedding (`embeddingWidth()`), and one score per support. On WebGPU the embedding and
    /// the scores come back in one readback.
    #[wasm_bindgen(js_name = queryStrokes)]
    pub async fn query_strokes(
        &self,
        points: Vec<f32>,
        lengths: Vec<u32>,
        supports: Vec<f32>,
    ) -> Result<Vec<f32>, JsError> {
        if !supports.is_empty() {
            check_items(&supports, self.embedding_width(), "support embeddings")?;
        }
        let views = self.net.render_views(&strokes_image(&points, &lengths)?)?;
        let embedded = self.net.embed_and_score(&views, supports).await?;
        // Views come pen by pen, each pen's undistorted view first.
        let per_pen = views.len() / self.net.pens().len().max(1);
        let mut out: Vec<f32> = views.iter().step_by(per_pen.max(1)).flatten().copied().collect();
        out.extend(embedded);
        Ok(out)
    }

    /// Same-character probabilities of query embeddings against support embeddings (each
    /// `embeddingWidth()` values, back to back): queries × supports values.
    pub async fn scores(&self, query: Vec<f32>, supports: Vec<f32>) -> Result<Vec<f32>, JsError> {
        let width = self.embedding_width();
        check_items(&query, width, "query embeddings")?;
        check_items(&supports, width, "support embeddings")?;
        self.net.scores(query, supports).await
    }

    /// Embeddings of already preprocessed images (`inputSize²` values each, concatenated), one
    /// per image (`embeddingWidth() / views()` values each): the twin alone (every network's,
    /// for a committee), as the benchmark page times it against other stacks.
    #[wasm_bindgen(js_name = embedImages)]
    pub async fn embed_images(&self, images: Vec<f32>) -> Result<Vec<f32>, JsError> {
        let inputs = self.split_images(&images)?;
        self.net.embed_each(&inputs).await
    }

    /// Embeddings of drawings given as what the network sees of them with each pen
    /// (`pens().length` renders of `inputSize²` values per drawing, concatenated, as
    /// `queryStrokes` returns them), each render seen through every symmetry: `embeddingWidth()`
    /// values per drawing, to score against support embeddings (the page's occlusion map covers
    /// patches of a query's renders this way).
    #[wasm_bindgen(js_name = embedInputs)]
    pub async fn embed_inputs(&self, inputs: Vec<f32>) -> Result<Vec<f32>, JsError> {
        let size = self.input_size();
        check_items(&inputs, size * size * self.net.pens().len(), "drawings (all their pens' renders)")?;
        let views = self.net.views_of_renders(&self.split_images(&inputs)?);
        self.net.embed_each(&views).await
    }

    /// A whole query in one call and one readback: a drawing's preprocessed views (`views()`
    /// images of `inputSize²` values) embedded and scored against support embeddings
    /// (concatenated): one score per support.
    #[wasm_bindgen(js_name = queryViews)]
    pub async fn query_views(&self, views: Vec<f32>, supports: Vec<f32>) -> Result<Vec<f32>, JsError> {
        let inputs = self.split_images(&views)?;
        if inputs.len() != self.views() {
            return Err(JsError::new(&format!("expected {} views, got {}", self.views(), inputs.len())));
        }
        check_items(&supports, self.embedding_width(), "support embeddings")?;
        let mut scored = self.net.embed_and_score(&inputs, supports).await?;
        Ok(scored.split_off(self.embedding_width()))
    }

    /// A deliberate panic, for the page's test of its recovery from a trapped engine: the
    /// instance traps and must be replaced. Nothing else can make an engine panic.
    #[wasm_bindgen(js_name = debugTrap)]
    pub fn debug_trap(&self) {
        panic!("debugTrap: a deliberate panic to test recovery");
    }
}

impl Engine {
    /// For each query, the support it most likely matches (one-shot classification).
    #[cfg(feature = "burn")]
    pub(crate) async fn classify(
        &self,
        supports: &[&InkImage],
        queries: &[&InkImage],
    ) -> Result<Vec<usize>, JsError> {
        match &self.net {
            Net::Cpu(r) => r.classify(supports, queries).map_err(js_error),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => {
                let (supports_e, queries_e) =
                    (self.embed_all(supports).await?, self.embed_all(queries).await?);
                // Ranked by logits, as on the CPU: saturated probabilities would tie at 1.
                let (queries_e, supports_e) =
                    (self.net.embeddings(r, queries_e), self.net.embeddings(r, supports_e));
                let logits = crate::read(r.logits(queries_e, supports_e)).await?;
                Ok(logits.chunks(supports.len().max(1)).map(oneshot_core::recognize::argmax).collect())
            }
        }
    }

    /// Embeddings of pictures, each from its views.
    #[cfg(feature = "webgpu")]
    async fn embed_all(&self, images: &[&InkImage]) -> Result<Vec<f32>, JsError> {
        let mut inputs = Vec::new();
        for image in images {
            inputs.extend(self.net.render_views(image)?);
        }
        self.net.embed_each(&inputs).await
    }

    /// The network's view of a picture (its first, undistorted view).
    #[cfg(feature = "burn")]
    pub(crate) fn view_of(&self, image: &InkImage) -> Result<Vec<f32>, JsError> {
        self.first_view(image)
    }

    /// An engine on the CPU, saying why not on WebGPU.
    fn on_cpu(
        weights: Vec<u8>,
        expected: &SiameseConfig,
        pens: &[i8],
        reason: String,
    ) -> Result<Engine, JsError> {
        let recognizer = CpuRecognizer::from_bytes(&weights, Some(expected))
            .map_err(js_error)?
            .with_views(DEFAULT_VIEWS)
            .with_pens(pens);
        Ok(Engine {
            net: Net::Cpu(recognizer),
            backend: BackendInfo { kind: "cpu", detail: reason },
            weights,
        })
    }

    fn first_view(&self, image: &InkImage) -> Result<Vec<f32>, JsError> {
        let mut views = self.net.render_views(image)?;
        Ok(views.swap_remove(0))
    }

    async fn embed_image(&self, image: &InkImage) -> Result<Vec<f32>, JsError> {
        let inputs = self.net.render_views(image)?;
        self.net.embed_each(&inputs).await
    }

    /// Preprocessed images given back to back, one `inputSize²` slice each.
    fn split_images(&self, values: &[f32]) -> Result<Vec<Vec<f32>>, JsError> {
        let size = self.input_size();
        Ok(chunks(values, size * size, "images")?.map(<[f32]>::to_vec).collect())
    }
}

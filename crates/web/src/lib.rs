//! The page's entry points: thin `wasm-bindgen` glue over [`Recognizer`], [`FineTuner`] and
//! [`weights`].
//!
//! Everything is async because WebGPU reads results back asynchronously (a synchronous readback
//! panics in the browser). Every fallible call returns a `JsError` with a readable message, and
//! a panic hook reports any bug to the console instead of dying silently.

#[cfg(feature = "webgpu")]
use std::cell::RefCell;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use oneshot_core::finetune::{FineTuneConfig, FineTuneScope, FineTuner};
use oneshot_core::model::{Preset, SiameseConfig};
use oneshot_core::preprocess::InkImage;
use oneshot_core::recognize::{DEFAULT_VIEWS, Recognizer};
use oneshot_core::strokes::{Pen, Strokes};
use oneshot_core::weights;

#[cfg(feature = "webgpu")]
thread_local! {
    /// WebGPU can be initialised once per page; later engines reuse the device (or the reason
    /// it could not be had).
    static GPU: RefCell<Option<Result<(Device, String), String>>> = const { RefCell::new(None) };
}

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Which backend runs the network, and why.
#[derive(Serialize)]
struct BackendInfo {
    /// `"webgpu"` or `"cpu"`.
    kind: &'static str,
    /// The adapter's name, or why the CPU runs instead.
    detail: String,
}

/// A loaded network on WebGPU or the CPU, ready to embed drawings and score them.
#[wasm_bindgen]
pub struct Engine {
    recognizer: Recognizer,
    backend: BackendInfo,
    /// The weights file the network was loaded from, for downloads.
    weights: Vec<u8>,
}

#[wasm_bindgen]
impl Engine {
    /// Loads a weights file onto WebGPU when `use_gpu` is true, this build has WebGPU and an
    /// adapter is available, otherwise onto the CPU (the project's kernels in WebAssembly).
    pub async fn create(use_gpu: bool, weights: Vec<u8>) -> Result<Engine, JsError> {
        let (device, backend) = choose_device(use_gpu).await;
        let expected: SiameseConfig = Preset::Web.config();
        let (config, model) = weights::from_bytes(&weights, Some(&expected), &device).map_err(js_error)?;
        let recognizer = Recognizer::new(model, config, device).with_views(DEFAULT_VIEWS);
        Ok(Engine { recognizer, backend, weights })
    }

    /// The weights file this engine runs (to download).
    pub fn weights(&self) -> Vec<u8> {
        self.weights.clone()
    }

    /// Starts fine-tuning a copy of the network on the user's drawings: `classes[i]` is the
    /// character of drawing `i`, whose RGBA pixels are the `i`-th `width × height × 4` bytes of
    /// `rgba`. `scope` is `"head"` (the similarity head only) or `"whole"`.
    #[wasm_bindgen(js_name = fineTune)]
    pub fn fine_tune(
        &self,
        scope: &str,
        width: usize,
        height: usize,
        classes: Vec<u32>,
        rgba: Vec<u8>,
    ) -> Result<FineTuning, JsError> {
        let stride = width.checked_mul(height).and_then(|n| n.checked_mul(4)).unwrap_or(0);
        if stride == 0 || Some(rgba.len()) != stride.checked_mul(classes.len()) {
            return Err(JsError::new("the drawings' pixels do not match their count and size"));
        }
        let images = rgba
            .chunks_exact(stride)
            .map(|pixels| InkImage::from_rgba(width, height, pixels).map_err(js_error))
            .collect::<Result<Vec<_>, _>>()?;
        self.fine_tune_images(scope, classes, images)
    }

    /// Starts fine-tuning a copy of the network on the user's drawings given as strokes:
    /// drawing `i` is of character `classes[i]` and has `strokes[i]` strokes, whose point counts
    /// follow one another in `lengths` and whose `x, y` pairs follow one another in `points`.
    /// `scope` is `"head"` (the similarity head only) or `"whole"`.
    #[wasm_bindgen(js_name = fineTuneStrokes)]
    pub fn fine_tune_strokes(
        &self,
        scope: &str,
        classes: Vec<u32>,
        strokes: Vec<u32>,
        lengths: Vec<u32>,
        points: Vec<f32>,
    ) -> Result<FineTuning, JsError> {
        if strokes.len() != classes.len() {
            return Err(JsError::new("every drawing needs a class and a stroke count"));
        }
        let (mut stroke_at, mut value_at) = (0usize, 0usize);
        let mut images = Vec::with_capacity(classes.len());
        for &count in &strokes {
            let end = stroke_at.checked_add(count as usize).filter(|&end| end <= lengths.len());
            let end = end.ok_or_else(|| JsError::new("the stroke counts do not match the strokes given"))?;
            let own = &lengths[stroke_at..end];
            let values = own.iter().map(|&n| 2 * n as usize).sum::<usize>();
            let values_end = value_at.checked_add(values).filter(|&end| end <= points.len());
            let values_end =
                values_end.ok_or_else(|| JsError::new("the strokes need more points than given"))?;
            images.push(strokes_image(&points[value_at..values_end], own)?);
            (stroke_at, value_at) = (end, values_end);
        }
        self.fine_tune_images(scope, classes, images)
    }

    /// The fine-tuning run for `images`, drawing `i` of class `classes[i]`.
    fn fine_tune_images(
        &self,
        scope: &str,
        classes: Vec<u32>,
        images: Vec<InkImage>,
    ) -> Result<FineTuning, JsError> {
        let scope = match scope {
            "head" => FineTuneScope::Head,
            "whole" => FineTuneScope::Whole,
            other => return Err(JsError::new(&format!("unknown fine-tuning scope {other:?}"))),
        };
        if classes.len() != images.len() {
            return Err(JsError::new("every drawing needs a class"));
        }
        // Class numbers index a list: bound them by the drawings (a huge one would allocate).
        let count = classes.iter().map(|&c| c as usize).max().map_or(0, |c| c + 1);
        if count > images.len() {
            return Err(JsError::new("class numbers must be below the number of drawings"));
        }
        let mut drawings: Vec<Vec<InkImage>> = vec![Vec::new(); count];
        for (&class, image) in classes.iter().zip(images) {
            drawings[class as usize].push(image);
        }
        let config = self.recognizer.config().clone();
        let tuner = FineTuner::new(
            self.recognizer.model(),
            config.input_size,
            drawings,
            FineTuneConfig::for_scope(scope),
            self.recognizer.device(),
        )
        .map_err(js_error)?;
        Ok(FineTuning { tuner, config })
    }

    /// `{ kind: "webgpu" | "cpu", detail }`.
    pub fn backend(&self) -> Result<JsValue, JsError> {
        serde_wasm_bindgen::to_value(&self.backend).map_err(js_error)
    }

    /// Side of the network's square input.
    #[wasm_bindgen(js_name = inputSize)]
    pub fn input_size(&self) -> usize {
        self.recognizer.config().input_size
    }

    /// What the network sees of a drawing given as strokes (see [`strokes_image`]): `size²`
    /// values in `0..=1`.
    #[wasm_bindgen(js_name = preprocessStrokes)]
    pub fn preprocess_strokes(&self, points: &[f32], lengths: &[u32]) -> Result<Vec<f32>, JsError> {
        let image = strokes_image(points, lengths)?;
        self.recognizer.preprocessor().render(&image).map_err(js_error)
    }

    /// The embedding of a drawing given as strokes (see [`strokes_image`]).
    #[wasm_bindgen(js_name = embedStrokes)]
    pub async fn embed_strokes(&self, points: Vec<f32>, lengths: Vec<u32>) -> Result<Vec<f32>, JsError> {
        let image = strokes_image(&points, &lengths)?;
        read(self.recognizer.embed(&[&image]).map_err(js_error)?).await
    }

    /// What the network sees of an RGBA picture: `size²` values in `0..=1`.
    pub fn preprocess(&self, width: usize, height: usize, rgba: &[u8]) -> Result<Vec<f32>, JsError> {
        let image = InkImage::from_rgba(width, height, rgba).map_err(js_error)?;
        self.recognizer.preprocessor().render(&image).map_err(js_error)
    }

    /// The embedding of an RGBA picture (to cache per drawing).
    pub async fn embed(&self, width: usize, height: usize, rgba: Vec<u8>) -> Result<Vec<f32>, JsError> {
        let image = InkImage::from_rgba(width, height, &rgba).map_err(js_error)?;
        read(self.recognizer.embed(&[&image]).map_err(js_error)?).await
    }

    /// Same-character probabilities of one query embedding against `n` support embeddings
    /// (concatenated).
    pub async fn scores(&self, query: Vec<f32>, supports: Vec<f32>) -> Result<Vec<f32>, JsError> {
        let width = query.len();
        let query = Tensor::<2>::from_data(TensorData::new(query, [1, width]), self.recognizer.device());
        read(self.recognizer.scores(query, self.supports(supports, width)?)).await
    }

    /// Embeddings of already preprocessed images (`inputSize²` values each, concatenated), one
    /// per image: the twin alone, as the benchmark page times it against other stacks.
    #[wasm_bindgen(js_name = embedImages)]
    pub async fn embed_images(&self, images: Vec<f32>) -> Result<Vec<f32>, JsError> {
        read(self.recognizer.embed_preprocessed(&self.split_images(&images)?)).await
    }

    /// A whole query in one call and one readback: the mean embedding of a drawing's
    /// preprocessed views (`views()` images of `inputSize²` values) against `n` support
    /// embeddings (concatenated).
    #[wasm_bindgen(js_name = queryViews)]
    pub async fn query_views(&self, views: Vec<f32>, supports: Vec<f32>) -> Result<Vec<f32>, JsError> {
        let inputs = self.split_images(&views)?;
        if inputs.len() != self.recognizer.views() {
            return Err(JsError::new(&format!(
                "expected {} views, got {}",
                self.recognizer.views(),
                inputs.len()
            )));
        }
        let query = self.recognizer.embed_views(&inputs);
        let width = query.dims()[1];
        read(self.recognizer.scores(query, self.supports(supports, width)?)).await
    }

    /// Views the recognizer embeds each drawing from.
    pub fn views(&self) -> usize {
        self.recognizer.views()
    }

    /// Preprocessed images given back to back, one `inputSize²` slice each, checking the length.
    fn split_images(&self, values: &[f32]) -> Result<Vec<Vec<f32>>, JsError> {
        let size = self.recognizer.config().input_size;
        if values.is_empty() || !values.len().is_multiple_of(size * size) {
            return Err(JsError::new(&format!("images must be {size}×{size} values each")));
        }
        Ok(values.chunks(size * size).map(<[f32]>::to_vec).collect())
    }

    /// Support embeddings as a `[n, width]` tensor, checking their length.
    fn supports(&self, supports: Vec<f32>, width: usize) -> Result<Tensor<2>, JsError> {
        if width == 0 || supports.is_empty() || !supports.len().is_multiple_of(width) {
            return Err(JsError::new("support embeddings do not match the query embedding's width"));
        }
        let rows = supports.len() / width;
        Ok(Tensor::from_data(TensorData::new(supports, [rows, width]), self.recognizer.device()))
    }
}

/// A drawing from the pad: `points` holds `x, y` pairs (any units, y down) back to back,
/// `lengths[i]` is the point count of stroke `i`. It is painted with the pen the network
/// expects, relative to the drawing's own size ([`Pen::NETWORK`]), so a drawing looks the same
/// to the network whatever size, screen or pen it was drawn with.
fn strokes_image(points: &[f32], lengths: &[u32]) -> Result<InkImage, JsError> {
    let strokes = Strokes::from_flat(points, lengths, 1.0).map_err(js_error)?;
    strokes.to_ink(Pen::NETWORK).map_err(js_error)
}

/// A fine-tuning run in progress (see [`FineTuner`]).
#[wasm_bindgen]
pub struct FineTuning {
    tuner: FineTuner,
    config: SiameseConfig,
}

#[wasm_bindgen]
impl FineTuning {
    /// One optimisation step; resolves to its loss.
    pub async fn step(&mut self) -> Result<f32, JsError> {
        let loss = read(self.tuner.step()).await?;
        loss.first().copied().ok_or_else(|| JsError::new("the step returned no loss"))
    }

    /// The fine-tuned network as a weights file, read back without blocking.
    pub async fn weights(&self) -> Result<Vec<u8>, JsError> {
        weights::to_bytes_async(&self.tuner.model(), &self.config).await.map_err(js_error)
    }
}

/// Reads a tensor back without blocking (WebGPU only allows asynchronous readback).
async fn read<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, JsError> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| JsError::new(&format!("reading results failed: {e:?}")))?;
    data.try_to_vec::<f32>().map_err(|e| JsError::new(&format!("unexpected result type: {e:?}")))
}

/// The device to run on, and why.
async fn choose_device(use_gpu: bool) -> (Device, BackendInfo) {
    if !use_gpu {
        return (Device::flex(), BackendInfo { kind: "cpu", detail: "WebGPU not requested".into() });
    }
    match gpu_device().await {
        Ok((device, adapter)) => (device, BackendInfo { kind: "webgpu", detail: adapter }),
        Err(reason) => (Device::flex(), BackendInfo { kind: "cpu", detail: reason }),
    }
}

/// The CPU build has no WebGPU.
#[cfg(not(feature = "webgpu"))]
async fn gpu_device() -> Result<(Device, String), String> {
    Err("this build runs on the CPU only".into())
}

/// The page-wide WebGPU device and its adapter's name, initialised on first use.
#[cfg(feature = "webgpu")]
async fn gpu_device() -> Result<(Device, String), String> {
    if let Some(known) = GPU.with(|gpu| gpu.borrow().clone()) {
        return known;
    }
    let result = match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            let name = if info.name.is_empty() { format!("{:?}", info.backend) } else { info.name };
            Ok((device, name))
        }
        Err(e) => Err(short_reason(&e.to_string())),
    };
    GPU.with(|gpu| *gpu.borrow_mut() = Some(result.clone()));
    result
}

/// Burn's adapter errors list every graphics API it did not try; a person needs the gist.
#[cfg(feature = "webgpu")]
fn short_reason(error: &str) -> String {
    let lower = error.to_lowercase();
    if lower.contains("no adapter") || lower.contains("no suitable") {
        "no WebGPU adapter available".into()
    } else {
        let first_line = error.lines().next().unwrap_or(error);
        format!("WebGPU failed: {}", first_line.chars().take(120).collect::<String>())
    }
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

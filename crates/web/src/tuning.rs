//! Fine-tuning in the page (the `cpu` and `webgpu` builds, which carry Burn): a copy of the
//! engine's network — of each network, for a committee — trained for a few steps on the user's
//! drawings (see `FineTuner`).

use burn::tensor::Device;
use oneshot_core::architecture::{Preset, SiameseConfig};
use oneshot_core::preprocess::InkImage;
use oneshot_model::finetune::{FineTuneConfig, FineTuneScope, FineTuner};
use oneshot_model::weights;
use wasm_bindgen::prelude::*;

use crate::engine::{Engine, Net};
use crate::input::{MAX_ITEMS, class_count, js_error, rgba_image, rgba_len, strokes_image};

/// A fine-tuning run in progress (see [`FineTuner`]): one per network of the engine.
#[wasm_bindgen]
pub struct FineTuning {
    tuners: Vec<(FineTuner, SiameseConfig)>,
}

#[wasm_bindgen]
impl FineTuning {
    /// One optimisation step of every network; resolves to their mean loss.
    pub async fn step(&mut self) -> Result<f32, JsError> {
        let mut total = 0.0;
        for (tuner, _) in &mut self.tuners {
            let loss = crate::read(tuner.step()).await?;
            total += loss.first().copied().ok_or_else(|| JsError::new("the step returned no loss"))?;
        }
        Ok(total / self.tuners.len().max(1) as f32)
    }

    /// The fine-tuned networks as one weights file (a committee file for several), read back
    /// without blocking.
    pub async fn weights(&self) -> Result<Vec<u8>, JsError> {
        let mut files = Vec::with_capacity(self.tuners.len());
        for (tuner, config) in &self.tuners {
            files.push(weights::to_bytes_async(&tuner.model(), config).await.map_err(js_error)?);
        }
        Ok(weights::join(&files.iter().map(Vec::as_slice).collect::<Vec<_>>()))
    }
}

#[wasm_bindgen]
impl Engine {
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
        let mut images = Vec::with_capacity(classes.len().min(MAX_ITEMS));
        for &count in &strokes {
            let end = stroke_at.checked_add(count as usize).filter(|&end| end <= lengths.len());
            let end = end.ok_or_else(|| JsError::new("the stroke counts do not match the strokes given"))?;
            let own = &lengths[stroke_at..end];
            let values = own.iter().try_fold(0usize, |sum, &n| sum.checked_add(2 * n as usize));
            let values_end = values.and_then(|v| value_at.checked_add(v)).filter(|&end| end <= points.len());
            let values_end =
                values_end.ok_or_else(|| JsError::new("the strokes need more points than given"))?;
            images.push(strokes_image(&points[value_at..values_end], own)?);
            (stroke_at, value_at) = (end, values_end);
        }
        if stroke_at != lengths.len() || value_at != points.len() {
            return Err(JsError::new("more strokes or points were given than the drawings use"));
        }
        self.fine_tune_images(scope, classes, images)
    }

    /// Starts fine-tuning on RGBA pictures: `classes[i]` is the character of picture `i`, whose
    /// pixels are the `i`-th `width × height × 4` bytes of `rgba`.
    #[wasm_bindgen(js_name = fineTune)]
    pub fn fine_tune(
        &self,
        scope: &str,
        width: usize,
        height: usize,
        classes: Vec<u32>,
        rgba: Vec<u8>,
    ) -> Result<FineTuning, JsError> {
        let stride = rgba_len(width, height)?;
        if Some(rgba.len()) != stride.checked_mul(classes.len()) {
            return Err(JsError::new("the drawings' pixels do not match their count and size"));
        }
        let images = rgba
            .chunks_exact(stride)
            .map(|pixels| rgba_image(width, height, pixels))
            .collect::<Result<Vec<_>, _>>()?;
        self.fine_tune_images(scope, classes, images)
    }
}

impl Engine {
    /// The fine-tuning run for `images`, drawing `i` of class `classes[i]`.
    fn fine_tune_images(
        &self,
        scope: &str,
        classes: Vec<u32>,
        images: Vec<InkImage>,
    ) -> Result<FineTuning, JsError> {
        let scope: FineTuneScope = scope.parse().map_err(js_error)?;
        if classes.len() != images.len() || images.len() > MAX_ITEMS {
            return Err(JsError::new(&format!(
                "every drawing needs a class, and at most {MAX_ITEMS} drawings"
            )));
        }
        let count = class_count(&classes, images.len())
            .ok_or_else(|| JsError::new("class numbers must be below the number of drawings"))?;
        let mut drawings: Vec<Vec<InkImage>> = vec![Vec::new(); count];
        for (&class, image) in classes.iter().zip(images) {
            drawings[class as usize].push(image);
        }
        let device = self.device();
        let expected = Preset::Web.config();
        let mut tuners = Vec::new();
        for file in weights::members(&self.weights).map_err(js_error)? {
            let (config, model) = weights::from_bytes(file, Some(&expected), &device).map_err(js_error)?;
            let settings = FineTuneConfig::for_scope(scope);
            let tuner = FineTuner::new(&model, config.input_size, drawings.clone(), settings, &device)
                .map_err(js_error)?;
            tuners.push((tuner, config));
        }
        Ok(FineTuning { tuners })
    }

    /// The device this engine's network runs on.
    fn device(&self) -> Device {
        match &self.net {
            Net::Cpu(_) => Device::flex(),
            #[cfg(feature = "webgpu")]
            Net::Gpu(r) => r.device().clone(),
        }
    }
}

//! Lake's one-shot benchmark in the page: a run set in his layout (`all_runs.zip`, or any zip
//! like it) read by the same loader `eval` uses, each run classified by the page's engine.

use oneshot_core::preprocess::InkImage;
use oneshot_data::{Archive, OneShotRun, load_runs};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::engine::Engine;
use crate::input::js_error;

/// The runs of a zip.
#[wasm_bindgen]
pub struct LakeRuns {
    runs: Vec<OneShotRun>,
}

/// One run's answers.
#[derive(Serialize)]
struct RunResult {
    name: String,
    chosen: Vec<usize>,
    truth: Vec<usize>,
}

#[wasm_bindgen]
impl LakeRuns {
    /// Reads the runs of a zip in Lake's layout (`runNN/class_labels.txt`, `training/`, `test/`).
    #[wasm_bindgen(js_name = fromZip)]
    pub fn from_zip(bytes: Vec<u8>) -> Result<LakeRuns, JsError> {
        let archive = Archive::from_zip_bytes("the chosen zip", bytes).map_err(js_error)?;
        Ok(LakeRuns { runs: load_runs(&archive).map_err(js_error)? })
    }

    /// How many runs.
    pub fn count(&self) -> usize {
        self.runs.len()
    }

    /// How many queries in all.
    pub fn trials(&self) -> usize {
        self.runs.iter().map(|r| r.queries.len()).sum()
    }

    /// Classifies every query of run `index`: `{ name, chosen: [...], truth: [...] }`.
    #[wasm_bindgen(js_name = classifyRun)]
    pub async fn classify_run(&self, engine: &Engine, index: usize) -> Result<JsValue, JsError> {
        let run = self.run(index)?;
        let supports: Vec<&InkImage> = run.supports.iter().collect();
        let queries: Vec<&InkImage> = run.queries.iter().map(|(q, _)| q).collect();
        let chosen = engine.classify(&supports, &queries).await?;
        let truth = run.queries.iter().map(|(_, c)| *c).collect();
        serde_wasm_bindgen::to_value(&RunResult { name: run.name.clone(), chosen, truth }).map_err(js_error)
    }

    /// What the network sees of query `query` of run `index` (`inputSize²` values).
    #[wasm_bindgen(js_name = queryView)]
    pub fn query_view(&self, engine: &Engine, index: usize, query: usize) -> Result<Vec<f32>, JsError> {
        let image = &self.run(index)?.queries.get(query).ok_or_else(|| JsError::new("no such query"))?.0;
        engine.view_of(image)
    }

    /// What the network sees of support `support` of run `index`.
    #[wasm_bindgen(js_name = supportView)]
    pub fn support_view(&self, engine: &Engine, index: usize, support: usize) -> Result<Vec<f32>, JsError> {
        let image = self.run(index)?.supports.get(support).ok_or_else(|| JsError::new("no such support"))?;
        engine.view_of(image)
    }
}

impl LakeRuns {
    fn run(&self, index: usize) -> Result<&OneShotRun, JsError> {
        self.runs
            .get(index)
            .ok_or_else(|| JsError::new(&format!("there are {} runs, not {}", self.runs.len(), index + 1)))
    }
}

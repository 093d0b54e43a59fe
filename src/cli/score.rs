//! `score`: drawings from files against each other, as the page scores them.

use std::path::{Path, PathBuf};

use oneshot_core::preprocess::InkImage;
use oneshot_core::recognize::DEFAULT_VIEWS;
use oneshot_core::strokes::{Pen, Strokes};
use oneshot_model::weights;

use super::AnyError;

#[derive(clap::Args)]
pub struct ScoreOptions {
    /// Weights of the network.
    #[arg(long)]
    pub weights: PathBuf,
    /// Support drawings, one per class: pictures (PNG, read as the page reads an image), or
    /// `.json` files of strokes as the page's pad records them (a list of strokes, each a list of
    /// `[x, y]` points in 0..1 of the pad), painted as the page paints them for the network.
    #[arg(long, required = true)]
    pub support: Vec<PathBuf>,
    /// Query drawings, in the same forms.
    #[arg(long, required = true)]
    pub query: Vec<PathBuf>,
    /// See each picture through this many views, the plain picture, then its symmetries (the
    /// page uses the default).
    #[arg(long, default_value_t = DEFAULT_VIEWS)]
    pub views: usize,
    #[command(flatten)]
    pub pen: super::eval::PenOptions,
}

/// Prints `{"scores": [[...per support...] per query]}` as JSON.
pub fn run_score(options: &ScoreOptions) -> Result<(), AnyError> {
    let recognizer = weights::load_cpu_recognizer(&options.weights)?
        .with_views(options.views)
        .with_pens(&options.pen.pens);
    let read = |paths: &[PathBuf]| -> Result<Vec<InkImage>, AnyError> {
        paths
            .iter()
            .map(|path| read_drawing(path).map_err(|e| format!("{}: {e}", path.display()).into()))
            .collect()
    };
    let (supports, queries) = (read(&options.support)?, read(&options.query)?);
    let embed = |images: &[InkImage]| recognizer.embed(&images.iter().collect::<Vec<_>>());
    let values = recognizer.scores(&embed(&queries)?, &embed(&supports)?);
    let rows: Vec<&[f32]> = values.chunks(supports.len()).collect();
    println!("{}", serde_json::json!({ "scores": rows }));
    Ok(())
}

/// A drawing from a file: strokes from `.json`, otherwise a picture.
fn read_drawing(path: &Path) -> Result<InkImage, AnyError> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        let strokes: Vec<Vec<[f32; 2]>> = serde_json::from_slice(&std::fs::read(path)?)?;
        return Ok(Strokes::new(strokes, 1.0)?.to_ink(Pen::NETWORK)?);
    }
    let image = image::open(path)?.into_rgba8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    Ok(InkImage::from_rgba(w, h, image.as_raw())?)
}

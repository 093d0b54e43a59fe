//! Everything JavaScript hands the engine is checked here, before any of it reaches the
//! network: sizes with overflow-checked arithmetic and upper bounds, counts, widths, and finite
//! values. A bad input becomes a readable `JsError`, never a panic.

use oneshot_core::preprocess::InkImage;
use oneshot_core::strokes::{Pen, Strokes};
use wasm_bindgen::JsError;

/// The largest picture side accepted, in pixels (a canvas at a high pixel ratio is far smaller).
pub const MAX_SIDE: usize = 4096;
/// The most pictures, embeddings or drawings one call takes.
pub const MAX_ITEMS: usize = 4096;

/// Any displayable error as a `JsError`.
pub fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A drawing from the pad: `points` holds `x, y` pairs (any units, y down) back to back,
/// `lengths[i]` is the point count of stroke `i`. It is painted with the pen the network
/// expects, relative to the drawing's own size ([`Pen::NETWORK`]), so a drawing looks the same
/// to the network whatever size, screen or pen it was drawn with.
pub fn strokes_image(points: &[f32], lengths: &[u32]) -> Result<InkImage, JsError> {
    let strokes = Strokes::from_flat(points, lengths, 1.0).map_err(js_error)?;
    strokes.to_ink(Pen::NETWORK).map_err(js_error)
}

/// `width × height × 4` checked against overflow and the largest side.
pub fn rgba_len(width: usize, height: usize) -> Result<usize, JsError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(JsError::new(&format!(
            "a picture is 1 to {MAX_SIDE} pixels on each side, not {width}×{height}"
        )));
    }
    width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| JsError::new("the picture is too large"))
}

/// An RGBA picture (a canvas's `ImageData`).
pub fn rgba_image(width: usize, height: usize, rgba: &[u8]) -> Result<InkImage, JsError> {
    let len = rgba_len(width, height)?;
    if rgba.len() != len {
        return Err(JsError::new(&format!(
            "a {width}×{height} picture has {len} RGBA bytes, not {}",
            rgba.len()
        )));
    }
    InkImage::from_rgba(width, height, rgba).map_err(js_error)
}

/// Values back to back, `each` per item: the items, checking the count, the bound and that
/// every value is a finite number.
pub fn chunks<'a>(
    values: &'a [f32],
    each: usize,
    what: &str,
) -> Result<std::slice::ChunksExact<'a, f32>, JsError> {
    if each == 0 || values.is_empty() || !values.len().is_multiple_of(each) {
        return Err(JsError::new(&format!(
            "{what} must be {each} values each, not {} values in all",
            values.len()
        )));
    }
    if values.len() / each > MAX_ITEMS {
        return Err(JsError::new(&format!("at most {MAX_ITEMS} {what} at once")));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(JsError::new(&format!("{what} must hold finite numbers")));
    }
    Ok(values.chunks_exact(each))
}

/// Checks values as [`chunks`] does, without splitting them.
pub fn check_items(values: &[f32], each: usize, what: &str) -> Result<(), JsError> {
    chunks(values, each, what).map(|_| ())
}

/// The number of characters that class numbers `classes` name, if every one is below `drawings`
/// (each character has a drawing). Class numbers index a list, so a huge one must not allocate,
/// and `u32::MAX + 1` must not wrap to 0 on wasm32, where `usize` is 32 bits.
#[cfg(any(feature = "burn", test))]
pub fn class_count(classes: &[u32], drawings: usize) -> Option<usize> {
    let count = classes.iter().map(|&c| u64::from(c) + 1).max().unwrap_or(0);
    usize::try_from(count).ok().filter(|&count| count <= drawings)
}

#[cfg(test)]
mod tests {
    use super::class_count;

    #[test]
    fn class_numbers_are_bounded_by_the_drawings_without_wrapping() {
        assert_eq!(class_count(&[0, 1, 1, 0], 4), Some(2));
        assert_eq!(class_count(&[], 0), Some(0));
        assert_eq!(class_count(&[0, 4], 4), None);
        assert_eq!(class_count(&[u32::MAX], 1), None);
        assert_eq!(class_count(&[0, u32::MAX], 2), None);
        assert_eq!(class_count(&[1_000_000_000], 3), None);
    }
}

//! Weight layouts: Burn's `[out, in, k, k]` rearranged for the kernels.

/// Burn's `[out, in, k, k]` as im2col's `[(ky, kx, in), out]`.
pub(crate) fn im2col_weights(weight: &[f32], cin: usize, cout: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for o in 0..cout {
        for c in 0..cin {
            for tap in 0..k * k {
                out[(tap * cin + c) * cout + o] = weight[(o * cin + c) * k * k + tap];
            }
        }
    }
    out
}

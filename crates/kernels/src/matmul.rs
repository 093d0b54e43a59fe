//! Matrix products: `gemm`'s natively, a 4×8 SIMD kernel on weights packed once in
//! WebAssembly's inference (its training, the page's fine-tuning, calls `gemm`'s SIMD128
//! kernels).

use crate::simd::F32x4;

/// Makes `buffer` at least `len` long. Every value is overwritten before it is read, so old
/// contents are not cleared (that was a tenth of the time).
pub(crate) fn grow(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

/// The right-hand matrix `[k, n]` of a product, in the layout its kernel wants: natively
/// row-major for `gemm` (AVX-512 or AVX2/FMA micro-kernels, both cores); in WebAssembly
/// pre-packed [`Panels`], because `gemm` re-packs its right-hand side on every call, which for one drawing
/// cost more than the arithmetic.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Weights = RowMajor;
#[cfg(target_arch = "wasm32")]
pub(crate) type Weights = Panels;

/// A row-major matrix `[k, n]`, multiplied by `gemm`.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub(crate) struct RowMajor {
    pub(crate) k: usize,
    n: usize,
    values: Vec<f32>,
}

#[cfg(not(target_arch = "wasm32"))]
impl RowMajor {
    pub(crate) fn new(values: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(values.len(), k * n, "matrix shape");
        Self { k, n, values: values.to_vec() }
    }

    /// `out = a · self` for `a: [m, k]` and `out: [m, n]`, rows `a_stride` and `out_stride`
    /// values apart.
    pub(crate) fn multiply(&self, a: &[f32], a_stride: usize, m: usize, out: &mut [f32], out_stride: usize) {
        let (k, n) = (self.k, self.n);
        check_strides(a.len(), a_stride, k, m, out.len(), out_stride, n);
        let a = Matrix::strided(a, m, k, a_stride);
        let parallel = m * n * k >= 1 << 21;
        matmul_on(a, Matrix::rows(&self.values, n), out, out_stride, false, parallel);
    }
}

/// Checks that `a: [m, k]` and `out: [m, n]` with rows `a_stride` and `out_stride` apart fit
/// their buffers.
fn check_strides(a: usize, a_stride: usize, k: usize, m: usize, out: usize, out_stride: usize, n: usize) {
    let fits = |len: usize, stride: usize, width: usize| {
        width <= stride && len >= m.saturating_sub(1) * stride + width
    };
    assert!(fits(a, a_stride, k) && fits(out, out_stride, n), "matmul shapes");
}

/// A read-only matrix view: element `(i, j)` is `values[i · row_stride + j · column_stride]`, so
/// a transpose is a view with the strides swapped.
#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matrix<'a> {
    values: &'a [f32],
    rows: usize,
    columns: usize,
    row_stride: usize,
    column_stride: usize,
}

#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
impl<'a> Matrix<'a> {
    /// A row-major matrix with `columns` columns.
    pub(crate) fn rows(values: &'a [f32], columns: usize) -> Self {
        let rows = values.len() / columns.max(1);
        Self { values, rows, columns, row_stride: columns, column_stride: 1 }
    }

    /// `rows` rows of `columns` values, each `row_stride` values after the previous one.
    ///
    /// # Panics
    /// If the rows do not fit in `values`.
    pub(crate) fn strided(values: &'a [f32], rows: usize, columns: usize, row_stride: usize) -> Self {
        assert!(
            columns <= row_stride && values.len() >= rows.saturating_sub(1) * row_stride + columns,
            "matrix view"
        );
        Self { values, rows, columns, row_stride, column_stride: 1 }
    }

    /// The transposed view.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }
}

/// `out = a · b` (or `out += a · b` when `accumulate`) for a row-major `out`, through `gemm`
/// (AVX-512 or AVX2/FMA micro-kernels, chosen at run time; SIMD128 in WebAssembly), on this
/// thread: for callers that split the work between threads themselves.
#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
pub(crate) fn matmul_serial(a: Matrix, b: Matrix, out: &mut [f32], accumulate: bool) {
    matmul_on(a, b, out, b.columns, accumulate, false);
}

/// [`matmul_serial`] with rows of `out` `out_stride` values apart, on both cores if
/// `parallel`.
#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
pub(crate) fn matmul_on(
    a: Matrix,
    b: Matrix,
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.columns, b.columns);
    assert!(
        b.rows == k && n <= out_stride && out.len() >= m.saturating_sub(1) * out_stride + n,
        "matmul shapes"
    );
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: a view's largest offset, (rows − 1)·row_stride + (columns − 1)·column_stride, lies
    // inside its slice (`rows` and `t` keep that true), `out` holds m·n values (checked above),
    // and `out` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            accumulate,
            a.values.as_ptr(),
            a.column_stride as isize,
            a.row_stride as isize,
            b.values.as_ptr(),
            b.column_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Columns per panel: two SIMD vectors.
const PANEL: usize = 8;

/// A matrix `[k, n]` packed once as panels of [`PANEL`] columns, `[⌈n/8⌉][k][8]` (the last one
/// zero-padded), for a 4×8 register-tile kernel that streams each panel from cache.
#[derive(Debug, Clone)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) struct Panels {
    pub(crate) k: usize,
    n: usize,
    values: Vec<f32>,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl Panels {
    pub(crate) fn new(values: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(values.len(), k * n, "matrix shape");
        let panels = n.div_ceil(PANEL);
        let mut packed = vec![0.0; panels * k * PANEL];
        for (p, panel) in packed.chunks_exact_mut(k * PANEL).enumerate() {
            let width = (n - p * PANEL).min(PANEL);
            for (row, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
                dst[..width].copy_from_slice(&values[row * n + p * PANEL..][..width]);
            }
        }
        Self { k, n, values: packed }
    }

    /// `out = a · self` for `a: [m, k]` and `out: [m, n]`, rows `a_stride` and `out_stride`
    /// values apart.
    pub(crate) fn multiply(&self, a: &[f32], a_stride: usize, m: usize, out: &mut [f32], out_stride: usize) {
        let (k, n) = (self.k, self.n);
        check_strides(a.len(), a_stride, k, m, out.len(), out_stride, n);
        let zero = F32x4::splat(0.0);
        for (p, panel) in self.values.chunks_exact(k * PANEL).enumerate() {
            let (first, width) = (p * PANEL, (n - p * PANEL).min(PANEL));
            let mut row = 0;
            while row < m {
                let rows = (m - row).min(4);
                let mut sums = [[zero; 2]; 4];
                if rows == 4 {
                    let a: [&[f32]; 4] = std::array::from_fn(|r| &a[(row + r) * a_stride..][..k]);
                    let steps = panel.chunks_exact(PANEL).zip(a[0]).zip(a[1]).zip(a[2]).zip(a[3]);
                    for ((((b, &a0), &a1), &a2), &a3) in steps {
                        let (b0, b1) = (F32x4::load(&b[..4]), F32x4::load(&b[4..]));
                        for (sum, value) in sums.iter_mut().zip([a0, a1, a2, a3]) {
                            let value = F32x4::splat(value);
                            sum[0] = sum[0].add_product(value, b0);
                            sum[1] = sum[1].add_product(value, b1);
                        }
                    }
                } else {
                    for (r, sum) in sums.iter_mut().enumerate().take(rows) {
                        for (b, &value) in panel.chunks_exact(PANEL).zip(&a[(row + r) * a_stride..][..k]) {
                            let value = F32x4::splat(value);
                            sum[0] = sum[0].add_product(value, F32x4::load(&b[..4]));
                            sum[1] = sum[1].add_product(value, F32x4::load(&b[4..]));
                        }
                    }
                }
                for (r, sum) in sums.iter().enumerate().take(rows) {
                    let dst = &mut out[(row + r) * out_stride + first..][..width];
                    if width == PANEL {
                        sum[0].store(&mut dst[..4]);
                        sum[1].store(&mut dst[4..]);
                    } else {
                        let mut lanes = [0.0; PANEL];
                        sum[0].store(&mut lanes[..4]);
                        sum[1].store(&mut lanes[4..]);
                        dst.copy_from_slice(&lanes[..width]);
                    }
                }
                row += rows;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_matrix_kernels_multiply() {
        // Shapes with remainders in every dimension: rows (m % 4), panels (n % 8).
        for (m, k, n) in [(9, 5, 12), (4, 64, 64), (1, 3, 7)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
            let want: Vec<f32> =
                (0..m * n).map(|i| (0..k).map(|j| a[i / n * k + j] * b[j * n + i % n]).sum()).collect();
            let (mut packed, mut row_major) = (vec![0.0; m * n], vec![0.0; m * n]);
            Panels::new(&b, k, n).multiply(&a, k, m, &mut packed, n);
            RowMajor::new(&b, k, n).multiply(&a, k, m, &mut row_major, n);
            for got in [packed, row_major] {
                let worst = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-4, "{m}×{k}×{n}: largest difference {worst}");
            }
        }
    }
}

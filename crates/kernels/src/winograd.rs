//! Winograd's minimal filtering F(M×M, 3×3) (Lavin & Gray 2016) on a vector of channels at a
//! time ([`Lanes`]: four, or eight with AVX2): the input, output and kernel transforms, and their
//! adjoints for the weight gradient.

use crate::matmul::Weights;
use crate::simd::{F32x4, Lanes};

/// The input side of Winograd F(M×M, 3×3) with one pixel of zero padding, for NHWC `images`
/// whose sides are multiples of M and whose channels are a multiple of `V::LANES`: for tile t (image by
/// image, row by row) and each of the T·T transform positions ξ, `tiles[ξ][t] = (Bᵀ d B)[ξ]` for
/// the tile's T×T patch d, `cin` values, stored tile by tile (`[t][ξ][cin]`: one tile's values
/// are written together; the matrix of position ξ is every T·T·cin-th row). Tile (ty, tx)
/// reads input rows and columns M·t − 1 … M·t + M.
#[inline(always)]
pub(crate) fn winograd_input<const M: usize, const T: usize, W: Winograd<M, T>, V: Lanes>(
    images: &[f32],
    side_y: usize,
    side_x: usize,
    cin: usize,
    tiles: &mut [f32],
) {
    let (ty, tx) = (side_y / M, side_x / M);
    let image_len = side_y * side_x * cin;
    let n = images.len() / image_len * ty * tx;
    let zeros = vec![0.0; cin];
    let pixel = |b: usize, y: isize, x: isize| -> &[f32] {
        if y < 0 || x < 0 || y as usize >= side_y || x as usize >= side_x {
            return &zeros;
        }
        let start = ((b * side_y + y as usize) * side_x + x as usize) * cin;
        &images[start..start + cin]
    };
    for t in 0..n {
        let (b, y, x) = (t / (ty * tx), t / tx % ty, t % tx);
        let mut patch: [[&[f32]; T]; T] = [[&zeros; T]; T];
        for (r, row) in patch.iter_mut().enumerate() {
            for (c, at) in row.iter_mut().enumerate() {
                *at = pixel(b, (M * y + r) as isize - 1, (M * x + c) as isize - 1);
            }
        }
        for c in (0..cin).step_by(V::LANES) {
            // Loops, not `array::map`: everything here must inline into an AVX caller (see
            // `F32x8`), and `map` over 36 vectors did not.
            let mut d = [[V::splat(0.0); T]; T];
            for (d, patch) in d.iter_mut().zip(&patch) {
                for (d, pixel) in d.iter_mut().zip(patch) {
                    *d = V::load(&pixel[c..]);
                }
            }
            let v = transform_2d!(d, W::input, T, T);
            let tile = &mut tiles[t * T * T * cin..(t + 1) * T * T * cin];
            for (xi, value) in v.as_flattened().iter().enumerate() {
                value.store(&mut tile[xi * cin + c..]);
            }
        }
    }
}

/// The output side of Winograd F(M×M, 3×3): for each of `n` tiles and each group of
/// `V::LANES` output channels `o`, `Aᵀ m A` of the T·T products (`cout` values each, stored tile by tile
/// like [`winograd_input`]'s tiles), handed to `place(t, o, block)` as an M×M block of the
/// convolution.
#[inline(always)]
pub(crate) fn winograd_output<const M: usize, const T: usize, W: Winograd<M, T>, V: Lanes>(
    products: &[f32],
    n: usize,
    cout: usize,
    mut place: impl FnMut(usize, usize, [[V; M]; M]),
) {
    for t in 0..n {
        let tile = &products[t * T * T * cout..(t + 1) * T * T * cout];
        for o in (0..cout).step_by(V::LANES) {
            let mut m = [[V::splat(0.0); T]; T];
            for (r, m) in m.iter_mut().enumerate() {
                for (c, m) in m.iter_mut().enumerate() {
                    *m = V::load(&tile[(r * T + c) * cout + o..]);
                }
            }
            place(t, o, transform_2d!(m, W::output, T, M));
        }
    }
}

/// `L x Lᵀ` for the matrix `L` (`$o × $i`) of a 1-D transform given as a path (`W::input`):
/// the transform of every column of the `$i × $i` array `x`, then of every row of the result.
/// A macro, not a function taking `impl Fn`: a function item passed that way was compiled on
/// its own, outside the AVX callers, and its eight-lane intrinsics became calls.
macro_rules! transform_2d {
    ($x:expr, $transform:path, $i:expr, $o:expr) => {{
        let x = $x;
        // Any value of the lane type: every entry is overwritten.
        let filler = x[0][0];
        let mut columns = [[filler; $o]; $i];
        for (c, column) in columns.iter_mut().enumerate() {
            let mut input = [filler; $i];
            for (r, value) in input.iter_mut().enumerate() {
                *value = x[r][c];
            }
            *column = $transform(input);
        }
        let mut out = [[filler; $o]; $o];
        for (r, row) in out.iter_mut().enumerate() {
            let mut input = [filler; $i];
            for (c, value) in input.iter_mut().enumerate() {
                *value = columns[c][r];
            }
            *row = $transform(input);
        }
        out
    }};
}
pub(crate) use transform_2d;

/// Winograd's minimal filtering F(M×M, 3×3) on T×T tiles (T = M + 2), as its three 1-D
/// transforms (Lavin & Gray 2016): input `Bᵀ x`, output `Aᵀ m`, kernel `G g`.
pub(crate) trait Winograd<const M: usize, const T: usize> {
    fn input<V: Lanes>(x: [V; T]) -> [V; T];
    fn output<V: Lanes>(m: [V; T]) -> [V; M];
    fn kernel<V: Lanes>(g: [V; 3]) -> [V; T];
}

/// F(2×2, 3×3): 16 products per 4 outputs instead of 36.
pub(crate) struct F2;

impl Winograd<2, 4> for F2 {
    #[inline(always)]
    fn input<V: Lanes>([x0, x1, x2, x3]: [V; 4]) -> [V; 4] {
        [x0.sub(x2), x1.add(x2), x2.sub(x1), x1.sub(x3)]
    }
    #[inline(always)]
    fn output<V: Lanes>([m0, m1, m2, m3]: [V; 4]) -> [V; 2] {
        [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
    }
    #[inline(always)]
    fn kernel<V: Lanes>([g0, g1, g2]: [V; 3]) -> [V; 4] {
        let half = V::splat(0.5);
        [g0, half.mul(g0.add(g1).add(g2)), half.mul(g0.sub(g1).add(g2)), g2]
    }
}

/// F(4×4, 3×3): 36 products per 16 outputs instead of 144.
pub(crate) struct F4;

impl Winograd<4, 6> for F4 {
    #[inline(always)]
    fn input<V: Lanes>([x0, x1, x2, x3, x4, x5]: [V; 6]) -> [V; 6] {
        let (four, five, two) = (V::splat(4.0), V::splat(5.0), V::splat(2.0));
        // Shared partial sums, as in Lavin & Gray's implementation.
        let (a, b) = (x4.sub(x2.mul(four)), x3.sub(x1.mul(four)));
        let (c, d) = (x4.sub(x2), x3.sub(x1).mul(two));
        [
            x0.mul(four).sub(x2.mul(five)).add(x4),
            a.add(b),
            a.sub(b),
            c.add(d),
            c.sub(d),
            x1.mul(four).sub(x3.mul(five)).add(x5),
        ]
    }
    #[inline(always)]
    fn output<V: Lanes>([m0, m1, m2, m3, m4, m5]: [V; 6]) -> [V; 4] {
        let (two, four, eight) = (V::splat(2.0), V::splat(4.0), V::splat(8.0));
        let (sum12, diff12, sum34, diff34) = (m1.add(m2), m1.sub(m2), m3.add(m4), m3.sub(m4));
        [
            m0.add(sum12).add(sum34),
            diff12.add(diff34.mul(two)),
            sum12.add(sum34.mul(four)),
            diff12.add(diff34.mul(eight)).add(m5),
        ]
    }
    #[inline(always)]
    fn kernel<V: Lanes>([g0, g1, g2]: [V; 3]) -> [V; 6] {
        // −a/6 as a/(−6): the same bits, zeros' signs included.
        let (four, six, minus_six) = (V::splat(4.0), V::splat(6.0), V::splat(-6.0));
        let (twelve, twenty_four) = (V::splat(12.0), V::splat(24.0));
        let (a, b) = (g0.div(twenty_four), g1.div(twelve));
        [
            g0.div(four),
            g0.add(g1).add(g2).div(minus_six),
            g0.sub(g1).add(g2).div(minus_six),
            a.add(b).add(g2.div(six)),
            a.sub(b).add(g2.div(six)),
            g2,
        ]
    }
}

/// The adjoints (transposes) of F(4×4, 3×3)'s output and kernel transforms, for the weight
/// gradient of a Winograd convolution (training, [`crate::training`]).
#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
impl F4 {
    /// `A ȳ`: the gradient of the T products from the gradient of the M outputs.
    #[inline(always)]
    pub(crate) fn output_adjoint<V: Lanes>([y0, y1, y2, y3]: [V; 4]) -> [V; 6] {
        let (two, four, eight) = (V::splat(2.0), V::splat(4.0), V::splat(8.0));
        let (even, odd) = (y0.add(y2), y1.add(y3));
        let (even4, odd8) = (y0.add(y2.mul(four)), y1.mul(two).add(y3.mul(eight)));
        [y0, even.add(odd), even.sub(odd), even4.add(odd8), even4.sub(odd8), y3]
    }

    /// `Gᵀ u`: the gradient of the 3 kernel taps from the gradient of the T transformed ones.
    pub(crate) fn kernel_adjoint([u0, u1, u2, u3, u4, u5]: [f32; 6]) -> [f32; 3] {
        [
            u0 / 4.0 - (u1 + u2) / 6.0 + (u3 + u4) / 24.0,
            (u2 - u1) / 6.0 + (u3 - u4) / 12.0,
            (u3 + u4 - u1 - u2) / 6.0 + u5,
        ]
    }
}

/// `G g Gᵀ` for every (in, out) pair: T·T matrices `[in, out]`.
pub(crate) fn winograd_weights<const M: usize, const T: usize, W: Winograd<M, T>>(
    weight: &[f32],
    cin: usize,
    cout: usize,
) -> Vec<Weights> {
    let values = winograd_weight_values::<M, T, W, F32x4>(weight, cin, cout);
    values.chunks_exact(cin * cout).map(|matrix| Weights::new(matrix, cin, cout)).collect()
}

/// `G g Gᵀ` for every (in, out) pair of Burn's `[out, in, 3, 3]` weights, as T·T row-major
/// matrices `[in, out]` one after another: `V::LANES` output channels at a time where `cout`
/// allows (one otherwise).
#[inline(always)]
pub(crate) fn winograd_weight_values<const M: usize, const T: usize, W: Winograd<M, T>, V: Lanes>(
    weight: &[f32],
    cin: usize,
    cout: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; T * T * cin * cout];
    let lanes = if cout.is_multiple_of(V::LANES) { V::LANES } else { 1 };
    // One input channel's nine taps, `[tap, out]`: output channels side by side, as the
    // transformed matrices hold them.
    let mut taps = vec![0.0; 9 * cout];
    for c in 0..cin {
        for o in 0..cout {
            for (tap, value) in weight[(o * cin + c) * 9..][..9].iter().enumerate() {
                taps[tap * cout + o] = *value;
            }
        }
        for o in (0..cout).step_by(lanes) {
            match lanes {
                1 => transform_kernel::<M, T, W, f32>(&taps, c, o, cin, cout, &mut out),
                _ => transform_kernel::<M, T, W, V>(&taps, c, o, cin, cout, &mut out),
            }
        }
    }
    out
}

/// `G g Gᵀ` of input channel `c`'s kernels for the output channels from `o` on (`V::LANES` of
/// them), from its taps `[tap, out]`, into `out` (see [`winograd_weight_values`]).
#[inline(always)]
fn transform_kernel<const M: usize, const T: usize, W: Winograd<M, T>, V: Lanes>(
    taps: &[f32],
    c: usize,
    o: usize,
    cin: usize,
    cout: usize,
    out: &mut [f32],
) {
    let mut g = [V::splat(0.0); 9];
    for (tap, g) in g.iter_mut().enumerate() {
        *g = V::load(&taps[tap * cout + o..]);
    }
    // G g: transform each of the kernel's three columns, then each row of the result.
    let columns =
        [W::kernel([g[0], g[3], g[6]]), W::kernel([g[1], g[4], g[7]]), W::kernel([g[2], g[5], g[8]])];
    for i in 0..T {
        let row = W::kernel([columns[0][i], columns[1][i], columns[2][i]]);
        for (j, value) in row.into_iter().enumerate() {
            value.store(&mut out[((i * T + j) * cin + c) * cout + o..]);
        }
    }
}

//! Winograd's minimal filtering F(M×M, 3×3) (Lavin & Gray 2016) on four channels at a time:
//! the input, output and kernel transforms, and their adjoints for the weight gradient.

use crate::matmul::Weights;
use crate::simd::F32x4;

/// The input side of Winograd F(M×M, 3×3) with one pixel of zero padding, for NHWC `images`
/// whose sides are multiples of M and whose channels are a multiple of 4: for tile t (image by
/// image, row by row) and each of the T·T transform positions ξ, `tiles[ξ][t] = (Bᵀ d B)[ξ]` for
/// the tile's T×T patch d, `cin` values, stored tile by tile (`[t][ξ][cin]`: one tile's values
/// are written together; the matrix of position ξ is every T·T·cin-th row). Tile (ty, tx)
/// reads input rows and columns M·t − 1 … M·t + M.
pub(crate) fn winograd_input<const M: usize, const T: usize, W: Winograd<M, T>>(
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
        let patch: [[&[f32]; T]; T] = std::array::from_fn(|r| {
            std::array::from_fn(|c| pixel(b, (M * y + r) as isize - 1, (M * x + c) as isize - 1))
        });
        for c in (0..cin).step_by(4) {
            let d = patch.map(|row| row.map(|pixel| F32x4::load(&pixel[c..])));
            let v = transform_2d(d, W::input);
            let tile = &mut tiles[t * T * T * cin..(t + 1) * T * T * cin];
            for (xi, value) in v.as_flattened().iter().enumerate() {
                value.store(&mut tile[xi * cin + c..]);
            }
        }
    }
}

/// The output side of Winograd F(M×M, 3×3): for each of `n` tiles and each group of four
/// output channels `o`, `Aᵀ m A` of the T·T products (`cout` values each, stored tile by tile
/// like [`winograd_input`]'s tiles), handed to `place(t, o, block)` as an M×M block of the
/// convolution.
#[inline(always)]
pub(crate) fn winograd_output<const M: usize, const T: usize, W: Winograd<M, T>>(
    products: &[f32],
    n: usize,
    cout: usize,
    mut place: impl FnMut(usize, usize, [[F32x4; M]; M]),
) {
    for t in 0..n {
        let tile = &products[t * T * T * cout..(t + 1) * T * T * cout];
        for o in (0..cout).step_by(4) {
            let m: [[F32x4; T]; T] = std::array::from_fn(|r| {
                std::array::from_fn(|c| F32x4::load(&tile[(r * T + c) * cout + o..]))
            });
            place(t, o, transform_2d(m, W::output));
        }
    }
}

/// Applies a 1-D transform to every column of `x`, then to every row of the result:
/// `L x Lᵀ` for the transform's matrix `L`.
#[inline(always)]
pub(crate) fn transform_2d<const I: usize, const O: usize>(
    x: [[F32x4; I]; I],
    transform: impl Fn([F32x4; I]) -> [F32x4; O],
) -> [[F32x4; O]; O] {
    let columns: [[F32x4; O]; I] = std::array::from_fn(|c| transform(std::array::from_fn(|r| x[r][c])));
    std::array::from_fn(|r| transform(std::array::from_fn(|c| columns[c][r])))
}

/// Winograd's minimal filtering F(M×M, 3×3) on T×T tiles (T = M + 2), as its three 1-D
/// transforms (Lavin & Gray 2016): input `Bᵀ x`, output `Aᵀ m`, kernel `G g`.
pub(crate) trait Winograd<const M: usize, const T: usize> {
    fn input(x: [F32x4; T]) -> [F32x4; T];
    fn output(m: [F32x4; T]) -> [F32x4; M];
    fn kernel(g: [f32; 3]) -> [f32; T];
}

/// F(2×2, 3×3): 16 products per 4 outputs instead of 36.
pub(crate) struct F2;

impl Winograd<2, 4> for F2 {
    #[inline(always)]
    fn input([x0, x1, x2, x3]: [F32x4; 4]) -> [F32x4; 4] {
        [x0.sub(x2), x1.add(x2), x2.sub(x1), x1.sub(x3)]
    }
    #[inline(always)]
    fn output([m0, m1, m2, m3]: [F32x4; 4]) -> [F32x4; 2] {
        [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
    }
    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
        [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
    }
}

/// F(4×4, 3×3): 36 products per 16 outputs instead of 144.
pub(crate) struct F4;

impl Winograd<4, 6> for F4 {
    #[inline(always)]
    fn input([x0, x1, x2, x3, x4, x5]: [F32x4; 6]) -> [F32x4; 6] {
        let (four, five, two) = (F32x4::splat(4.0), F32x4::splat(5.0), F32x4::splat(2.0));
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
    fn output([m0, m1, m2, m3, m4, m5]: [F32x4; 6]) -> [F32x4; 4] {
        let (two, four, eight) = (F32x4::splat(2.0), F32x4::splat(4.0), F32x4::splat(8.0));
        let (sum12, diff12, sum34, diff34) = (m1.add(m2), m1.sub(m2), m3.add(m4), m3.sub(m4));
        [
            m0.add(sum12).add(sum34),
            diff12.add(diff34.mul(two)),
            sum12.add(sum34.mul(four)),
            diff12.add(diff34.mul(eight)).add(m5),
        ]
    }
    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
        [
            g0 / 4.0,
            -(g0 + g1 + g2) / 6.0,
            -(g0 - g1 + g2) / 6.0,
            g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
            g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
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
    pub(crate) fn output_adjoint([y0, y1, y2, y3]: [F32x4; 4]) -> [F32x4; 6] {
        let (two, four, eight) = (F32x4::splat(2.0), F32x4::splat(4.0), F32x4::splat(8.0));
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
    let values = winograd_weight_values::<M, T, W>(weight, cin, cout);
    values.chunks_exact(cin * cout).map(|matrix| Weights::new(matrix, cin, cout)).collect()
}

/// `G g Gᵀ` for every (in, out) pair of Burn's `[out, in, 3, 3]` weights, as T·T row-major
/// matrices `[in, out]` one after another.
pub(crate) fn winograd_weight_values<const M: usize, const T: usize, W: Winograd<M, T>>(
    weight: &[f32],
    cin: usize,
    cout: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; T * T * cin * cout];
    // Output channels innermost, so the writes run along rows of the matrices.
    for c in 0..cin {
        for o in 0..cout {
            let g = &weight[(o * cin + c) * 9..][..9];
            // G g: transform each of the kernel's three columns, then each row of the result.
            let columns: [[f32; T]; 3] = std::array::from_fn(|j| W::kernel([g[j], g[3 + j], g[6 + j]]));
            for i in 0..T {
                let row = W::kernel([columns[0][i], columns[1][i], columns[2][i]]);
                for (j, value) in row.into_iter().enumerate() {
                    out[((i * T + j) * cin + c) * cout + o] = value;
                }
            }
        }
    }
    out
}

//! Four-lane `f32` vectors on every target the project builds for, and AVX2 variants of hot
//! loops chosen at run time.
//!
//! [`F32x4`] is WebAssembly SIMD128 in the page (where LLVM does not vectorise the kernels' loops
//! by itself), SSE intrinsics on x86-64 (plain arrays made the Winograd transforms twice as
//! slow), and plain arrays elsewhere.

// `add`, `sub`, `mul` are lane-wise intrinsics called as methods in long chains; operator
// traits would need imports at every use and hide which instruction runs.
#![allow(clippy::should_implement_trait)]

/// Four `f32` lanes.
#[derive(Clone, Copy)]
pub struct F32x4(
    #[cfg(target_arch = "wasm32")] core::arch::wasm32::v128,
    #[cfg(target_arch = "x86_64")] core::arch::x86_64::__m128,
    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))] [f32; 4],
);

#[cfg(target_arch = "wasm32")]
impl F32x4 {
    #[inline(always)]
    pub fn splat(value: f32) -> Self {
        Self(core::arch::wasm32::f32x4_splat(value))
    }
    /// The first four values of `values`.
    #[inline(always)]
    pub fn load(values: &[f32]) -> Self {
        assert!(values.len() >= 4);
        // SAFETY: the slice holds at least 16 bytes (checked above); v128 loads need no
        // alignment.
        Self(unsafe { core::arch::wasm32::v128_load(values.as_ptr().cast()) })
    }
    /// Writes the lanes to the first four values of `out`.
    #[inline(always)]
    pub fn store(self, out: &mut [f32]) {
        assert!(out.len() >= 4);
        // SAFETY: as in `load`.
        unsafe { core::arch::wasm32::v128_store(out.as_mut_ptr().cast(), self.0) }
    }
    /// `self + a · b`.
    #[inline(always)]
    pub fn add_product(self, a: Self, b: Self) -> Self {
        use core::arch::wasm32::{f32x4_add, f32x4_mul};
        Self(f32x4_add(self.0, f32x4_mul(a.0, b.0)))
    }
    #[inline(always)]
    pub fn add(self, other: Self) -> Self {
        Self(core::arch::wasm32::f32x4_add(self.0, other.0))
    }
    #[inline(always)]
    pub fn sub(self, other: Self) -> Self {
        Self(core::arch::wasm32::f32x4_sub(self.0, other.0))
    }
    #[inline(always)]
    pub fn mul(self, other: Self) -> Self {
        Self(core::arch::wasm32::f32x4_mul(self.0, other.0))
    }
    #[inline(always)]
    pub fn div(self, other: Self) -> Self {
        Self(core::arch::wasm32::f32x4_div(self.0, other.0))
    }
    /// The larger of each pair of lanes (`pmax`: one instruction; the inputs hold no NaN).
    #[inline(always)]
    pub fn max(self, other: Self) -> Self {
        Self(core::arch::wasm32::f32x4_pmax(self.0, other.0))
    }
}

// SSE is part of every x86-64 CPU: no run-time check needed. (Plain arrays, which LLVM
// vectorises only now and then, made the Winograd transforms several times slower.)
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
impl F32x4 {
    #[inline(always)]
    pub fn splat(value: f32) -> Self {
        // SAFETY (here and below): SSE is always enabled on x86-64.
        Self(unsafe { _mm_set1_ps(value) })
    }
    /// The first four values of `values`.
    #[inline(always)]
    pub fn load(values: &[f32]) -> Self {
        assert!(values.len() >= 4);
        // SAFETY: the slice holds at least 16 bytes (checked above); `loadu` needs no
        // alignment.
        Self(unsafe { _mm_loadu_ps(values.as_ptr()) })
    }
    /// Writes the lanes to the first four values of `out`.
    #[inline(always)]
    pub fn store(self, out: &mut [f32]) {
        assert!(out.len() >= 4);
        // SAFETY: as in `load`.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), self.0) }
    }
    /// `self + a · b`.
    #[inline(always)]
    pub fn add_product(self, a: Self, b: Self) -> Self {
        a.mul(b).add(self)
    }
    #[inline(always)]
    pub fn add(self, other: Self) -> Self {
        Self(unsafe { _mm_add_ps(self.0, other.0) })
    }
    #[inline(always)]
    pub fn sub(self, other: Self) -> Self {
        Self(unsafe { _mm_sub_ps(self.0, other.0) })
    }
    #[inline(always)]
    pub fn mul(self, other: Self) -> Self {
        Self(unsafe { _mm_mul_ps(self.0, other.0) })
    }
    #[inline(always)]
    pub fn div(self, other: Self) -> Self {
        Self(unsafe { _mm_div_ps(self.0, other.0) })
    }
    /// The larger of each pair of lanes (the inputs hold no NaN).
    #[inline(always)]
    pub fn max(self, other: Self) -> Self {
        Self(unsafe { _mm_max_ps(self.0, other.0) })
    }
}

#[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
impl F32x4 {
    #[inline(always)]
    pub fn splat(value: f32) -> Self {
        Self([value; 4])
    }
    /// The first four values of `values`.
    #[inline(always)]
    pub fn load(values: &[f32]) -> Self {
        Self([values[0], values[1], values[2], values[3]])
    }
    /// Writes the lanes to the first four values of `out`.
    #[inline(always)]
    pub fn store(self, out: &mut [f32]) {
        out[..4].copy_from_slice(&self.0);
    }
    /// `self + a · b`.
    #[inline(always)]
    pub fn add_product(self, a: Self, b: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + a.0[i] * b.0[i]))
    }
    #[inline(always)]
    pub fn add(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + other.0[i]))
    }
    #[inline(always)]
    pub fn sub(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] - other.0[i]))
    }
    #[inline(always)]
    pub fn mul(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] * other.0[i]))
    }
    #[inline(always)]
    pub fn div(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] / other.0[i]))
    }
    /// The larger of each pair of lanes.
    #[inline(always)]
    pub fn max(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i].max(other.0[i])))
    }
}

/// `f32` lanes the Winograd transforms are written over: [`F32x4`] on every target, and
/// [`F32x8`] natively on CPUs with AVX2, where the same transforms do twice the channels per
/// instruction. Each lane is computed on its own with the same operations, so the result does
/// not depend on the width.
pub(crate) trait Lanes: Copy {
    /// Values per vector.
    const LANES: usize;
    fn splat(value: f32) -> Self;
    /// The first `LANES` values of `values`.
    fn load(values: &[f32]) -> Self;
    /// Writes the lanes to the first `LANES` values of `out`.
    fn store(self, out: &mut [f32]);
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    fn div(self, other: Self) -> Self;
}

/// One lane: the scalar form of code written over [`Lanes`].
impl Lanes for f32 {
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(value: f32) -> Self {
        value
    }
    #[inline(always)]
    fn load(values: &[f32]) -> Self {
        values[0]
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        out[0] = self;
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self + other
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self - other
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        self * other
    }
    #[inline(always)]
    fn div(self, other: Self) -> Self {
        self / other
    }
}

impl Lanes for F32x4 {
    const LANES: usize = 4;
    #[inline(always)]
    fn splat(value: f32) -> Self {
        F32x4::splat(value)
    }
    #[inline(always)]
    fn load(values: &[f32]) -> Self {
        F32x4::load(values)
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        F32x4::store(self, out)
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        F32x4::add(self, other)
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        F32x4::sub(self, other)
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        F32x4::mul(self, other)
    }
    #[inline(always)]
    fn div(self, other: Self) -> Self {
        F32x4::div(self, other)
    }
}

/// Eight `f32` lanes in one AVX register. Only for code compiled with AVX enabled (an
/// `avx2_variant!` or another `#[target_feature(enable = "avx2,fma")]` function, called after
/// [`has_avx2`]): elsewhere its intrinsics would not be inlined, and would fault on a CPU
/// without AVX.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

#[cfg(target_arch = "x86_64")]
impl Lanes for F32x8 {
    const LANES: usize = 8;
    // SAFETY (every method): callers run only on CPUs with AVX (see the type's comment);
    // loads and stores are unaligned and bounds-checked first.
    #[inline(always)]
    fn splat(value: f32) -> Self {
        Self(unsafe { _mm256_set1_ps(value) })
    }
    #[inline(always)]
    fn load(values: &[f32]) -> Self {
        assert!(values.len() >= 8);
        Self(unsafe { _mm256_loadu_ps(values.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        assert!(out.len() >= 8);
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Self(unsafe { _mm256_add_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        Self(unsafe { _mm256_sub_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        Self(unsafe { _mm256_mul_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn div(self, other: Self) -> Self {
        Self(unsafe { _mm256_div_ps(self.0, other.0) })
    }
}

/// Whether the CPU has AVX2 and FMA (the build targets baseline x86-64, whose SSE2 halves the
/// width of the vectorised loops here).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Defines `$wide`, the method `$name` compiled for AVX2 and FMA: `$name` is
/// `#[inline(always)]`, so its loops are compiled again inside `$wide` for the wider registers
/// (a `#[target_feature]` wrapper around a closure does not inline the closure). Call it through
/// [`with_avx2!`].
#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
macro_rules! avx2_variant {
    ($wide:ident = $name:ident(&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $wide(&self $(, $arg: $ty)*) $(-> $ret)? {
            self.$name($($arg),*)
        }
    };
}

/// `self.$name(args)`, through its [`avx2_variant!`] `$wide` where the CPU has AVX2 and FMA.
#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
macro_rules! with_avx2 {
    ($self:ident.$name:ident / $wide:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        let result = if has_avx2() {
            // SAFETY: the CPU has the features `$wide` is compiled for (checked).
            unsafe { $self.$wide($($arg),*) }
        } else {
            $self.$name($($arg),*)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let result = $self.$name($($arg),*);
        result
    }};
}

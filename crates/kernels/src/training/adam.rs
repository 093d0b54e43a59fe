//! Adam's update of one tensor in one pass over its four buffers.
//!
//! Burn's Adam runs about ten element-wise tensor operations per parameter, each allocating
//! and writing a buffer of the parameter's size: for Koch et al.'s 37.7 M-weight dense layer that
//! is gigabytes of memory traffic per step. This loop reads the parameter, its gradient and
//! both moments once and writes three of them back in place, with the same f32 operations in
//! the same order as Burn's, so the results are bit for bit Burn's.

use rayon::prelude::*;

/// Elements per parallel task: large enough that rayon's overhead vanishes, small enough that
/// both cores get work on the web network's larger tensors.
const CHUNK: usize = 1 << 15;

/// The scalars of one Adam step, computed as Burn's `AdaptiveMomentum` computes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    beta_1: f32,
    beta_2: f32,
    /// `√(1 − β₂ᵗ) / (1 − β₁ᵗ)`: both bias corrections in one factor.
    combined: f32,
    /// `ε · √(1 − β₂ᵗ)`, added to `√v`.
    epsilon: f32,
    learning_rate: f32,
    /// The first step: the moments start from the gradient alone.
    first: bool,
}

impl AdamStep {
    /// Step number `time` (1 for the first) with the given coefficients and learning rate.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, time: i32, learning_rate: f64) -> Self {
        let bias_correction2_sqrt = (1.0 - beta_2.powi(time)).sqrt();
        Self {
            beta_1,
            beta_2,
            combined: bias_correction2_sqrt / (1.0 - beta_1.powi(time)),
            epsilon: epsilon * bias_correction2_sqrt,
            learning_rate: learning_rate as f32,
            first: time == 1,
        }
    }

    /// Updates `param` and the moments `m` and `v` in place from `grad`. On the first step the
    /// moments' old values are ignored (they may be anything, e.g. zeros).
    ///
    /// # Panics
    /// If the four slices differ in length.
    pub fn apply(&self, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
        let n = param.len();
        assert!(grad.len() == n && m.len() == n && v.len() == n, "Adam: buffers of different lengths");
        if n <= CHUNK {
            self.apply_serial(param, grad, m, v);
            return;
        }
        param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((param, grad), m), v)| self.apply_serial(param, grad, m, v));
    }

    fn apply_serial(&self, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
        let factor_1 = 1.0 - self.beta_1;
        let factor_2 = 1.0 - self.beta_2;
        for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            // Burn: m·β₁ + g·(1 − β₁), v·β₂ + g²·(1 − β₂); the first step without the old terms.
            let (new_m, new_v) = if self.first {
                (g * factor_1, g * g * factor_2)
            } else {
                (*m * self.beta_1 + g * factor_1, *v * self.beta_2 + g * g * factor_2)
            };
            *m = new_m;
            *v = new_v;
            // Burn: (m · combined) / (√v + ε√(1 − β₂ᵗ)), times the rate, subtracted.
            let update = new_m * self.combined / (new_v.sqrt() + self.epsilon);
            *p -= update * self.learning_rate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn's Adam written as its tensor operations, one element at a time.
    fn reference(step: &AdamStep, p: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let (m, v) = if step.first {
            (g * (1.0 - step.beta_1), g * g * (1.0 - step.beta_2))
        } else {
            (m * step.beta_1 + g * (1.0 - step.beta_1), v * step.beta_2 + g * g * (1.0 - step.beta_2))
        };
        (p - m * step.combined / (v.sqrt() + step.epsilon) * step.learning_rate, m, v)
    }

    #[test]
    fn parallel_chunks_give_the_elementwise_result() {
        let n = 3 * CHUNK + 17;
        let wave = |i: usize, k: f32| ((i as f32) * k).sin();
        let grad: Vec<f32> = (0..n).map(|i| wave(i, 0.37) * 1e-2).collect();
        for time in [1, 7] {
            let step = AdamStep::new(0.9, 0.999, 1e-5, time, 1e-3);
            let mut param: Vec<f32> = (0..n).map(|i| wave(i, 0.11)).collect();
            let mut m: Vec<f32> = (0..n).map(|i| wave(i, 0.23) * 1e-3).collect();
            let mut v: Vec<f32> = (0..n).map(|i| wave(i, 0.19).abs() * 1e-5).collect();
            let expected: Vec<_> = (0..n).map(|i| reference(&step, param[i], grad[i], m[i], v[i])).collect();
            step.apply(&mut param, &grad, &mut m, &mut v);
            for (i, &(p, mm, vv)) in expected.iter().enumerate() {
                assert_eq!((param[i], m[i], v[i]), (p, mm, vv), "element {i}, step {time}");
            }
        }
    }

    #[test]
    fn bias_corrections_are_burns() {
        let step = AdamStep::new(0.9, 0.999, 1e-5, 3, 2e-3);
        let correction = (1.0f32 - 0.999f32.powi(3)).sqrt();
        assert_eq!(step.combined, correction / (1.0 - 0.9f32.powi(3)));
        assert_eq!(step.epsilon, 1e-5 * correction);
        assert!(!step.first && AdamStep::new(0.9, 0.999, 1e-5, 1, 2e-3).first);
    }
}

//! The optimizer every training path uses: Burn's Adam with `AdamConfig::new()`'s coefficients,
//! whose update of tensors on the CPU backend runs in one pass over each parameter
//! ([`AdamStep`]) instead of Burn's ten element-wise tensor operations; same results, bit for
//! bit, and the same state (so optimizer checkpoints stay interchangeable with Burn's Adam).

use burn::optim::{AdamConfig, ModuleOptimizer};

/// A fresh Adam optimizer for a module: the fused CPU update where this build has the training
/// kernels, Burn's Adam elsewhere (and on every other device).
pub fn adam() -> ModuleOptimizer {
    #[cfg(any(not(target_arch = "wasm32"), feature = "cpu-training"))]
    return adam_w(0.0);
    #[cfg(not(any(not(target_arch = "wasm32"), feature = "cpu-training")))]
    AdamConfig::new().init()
}

/// Adam with decoupled weight decay (AdamW, Loshchilov & Hutter 2019): before each update every
/// kernel and matrix shrinks by `learning rate × weight_decay` of itself; biases and the batch
/// norms' scales and shifts (the one-axis tensors) do not, as decaying them only moves the
/// activations' operating point. The same state as [`adam`]'s, so checkpoints stay
/// interchangeable; `weight_decay` 0 is [`adam`].
#[cfg(any(not(target_arch = "wasm32"), feature = "cpu-training"))]
pub fn adam_w(weight_decay: f32) -> ModuleOptimizer {
    ModuleOptimizer::from(fused::FusedAdam::new(weight_decay))
}

#[cfg(any(not(target_arch = "wasm32"), feature = "cpu-training"))]
mod fused {
    use super::AdamConfig;
    use burn::optim::{Adam, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
    use burn::tensor::{DType, Device, Tensor, TensorData};
    use oneshot_kernels::training::AdamStep;

    /// `AdamConfig::new()`'s coefficients (its fields are private; the tests below check that
    /// both optimizers agree).
    const BETA_1: f32 = 0.9;
    const BETA_2: f32 = 0.999;
    const EPSILON: f32 = 1e-5;

    /// Adam whose CPU update is one pass per tensor; everything else goes to Burn's Adam.
    #[derive(Clone)]
    pub(super) struct FusedAdam {
        burn: Adam,
        /// Decoupled weight decay of tensors of two axes or more (0: none).
        weight_decay: f32,
    }

    impl FusedAdam {
        pub(super) fn new(weight_decay: f32) -> Self {
            Self { burn: AdamConfig::new().build(), weight_decay }
        }

        /// What a parameter of `D` axes keeps of itself before the step's update.
        fn kept<const D: usize>(&self, lr: LearningRate) -> Option<f32> {
            (self.weight_decay > 0.0 && D >= 2).then_some(1.0 - (lr as f32) * self.weight_decay)
        }
    }

    /// Whether one step can run as [`AdamStep`]: f32 tensors on the CPU backend, and no AMSGrad
    /// state (which `AdamConfig::new()` never makes).
    pub(super) fn fusable<const D: usize>(
        tensor: &Tensor<D>,
        grad: &Tensor<D>,
        state: Option<&AdamState<D>>,
    ) -> bool {
        let f32 = |t: &Tensor<D>| t.dtype() == DType::F32;
        tensor.device() == Device::flex()
            && f32(tensor)
            && f32(grad)
            && state.is_none_or(|s| {
                f32(&s.momentum.moment_1) && f32(&s.momentum.moment_2) && s.momentum.max_moment_2.is_none()
            })
    }

    impl Optimizer for FusedAdam {
        type State<const D: usize> = AdamState<D>;

        fn step<const D: usize>(
            &self,
            lr: LearningRate,
            tensor: Tensor<D>,
            grad: Tensor<D>,
            state: Option<Self::State<D>>,
        ) -> (Tensor<D>, Option<Self::State<D>>) {
            let kept = self.kept::<D>(lr);
            if !fusable(&tensor, &grad, state.as_ref()) {
                let tensor = match kept {
                    Some(kept) => tensor.mul_scalar(kept),
                    None => tensor,
                };
                return self.burn.step(lr, tensor, grad, state);
            }
            let device = tensor.device();
            let shape = tensor.shape();
            let (time, m, v) = match state {
                Some(state) => {
                    let momentum = state.momentum;
                    (momentum.time + 1, momentum.moment_1.into_data(), momentum.moment_2.into_data())
                }
                // The first step ignores the moments' values: these only give them a home.
                None => {
                    let zeros = || TensorData::new(vec![0.0f32; shape.num_elements()], shape.clone());
                    (1, zeros(), zeros())
                }
            };
            // On `flex`, `into_data` hands over a tensor's buffer without a copy when nothing
            // else holds it (the moments always; the parameter once the caller dropped its model).
            let (mut param, grad, mut m, mut v) = (tensor.into_data(), grad.into_data(), m, v);
            let step = AdamStep::new(BETA_1, BETA_2, EPSILON, time as i32, lr);
            let slice = "f32 tensors, checked above";
            let values = param.as_mut_slice::<f32>().expect(slice);
            if let Some(kept) = kept {
                values.iter_mut().for_each(|w| *w *= kept);
            }
            step.apply(
                values,
                grad.as_slice().expect(slice),
                m.as_mut_slice().expect(slice),
                v.as_mut_slice().expect(slice),
            );
            let momentum = AdaptiveMomentumState::new(
                time,
                Tensor::from_data(m, &device),
                Tensor::from_data(v, &device),
            );
            (Tensor::from_data(param, &device), Some(AdamState::new(momentum)))
        }

        fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
            <Adam as Optimizer>::to_device(state, device)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildNetwork;
    use crate::objective::episode_loss;
    use crate::weights::Encoding;
    use burn::module::Module;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Tensor};
    use oneshot_core::architecture::Preset;

    /// The comparison below would also pass if every step fell back to Burn's Adam.
    #[test]
    fn cpu_parameters_take_the_fused_path() {
        let tensor = |device: &Device| Tensor::<2>::ones([3, 4], device);
        let flex = Device::flex();
        assert!(fused::fusable(&tensor(&flex), &tensor(&flex), None));
        let half = tensor(&flex).cast(burn::tensor::DType::F16);
        assert!(!fused::fusable(&half, &tensor(&flex), None));
    }

    /// With zero gradients Adam's own update is exactly zero, so one step shows the decay alone:
    /// a kernel keeps 1 − learning rate × decay of itself, a bias all of itself; without decay
    /// the kernel stays too.
    #[test]
    fn weight_decay_shrinks_kernels_and_matrices_but_not_biases() {
        use burn::optim::Optimizer;
        let flex = Device::flex();
        let step = |decay: f32, tensor: Tensor<4>| {
            let (after, _) =
                fused::FusedAdam::new(decay).step(0.1, tensor.clone(), tensor.zeros_like(), None);
            after.into_data().try_to_vec::<f32>().expect("f32")
        };
        let kernel = || Tensor::<4>::ones([2, 1, 3, 3], &flex).mul_scalar(2.0);
        assert!(step(0.5, kernel()).iter().all(|&w| (w - 2.0 * (1.0 - 0.1 * 0.5)).abs() < 1e-6));
        assert!(step(0.0, kernel()).iter().all(|&w| w == 2.0));
        let bias = Tensor::<1>::ones([4], &flex);
        let (after, _) = fused::FusedAdam::new(0.5).step(0.1, bias.clone(), bias.zeros_like(), None);
        assert_eq!(after.into_data().try_to_vec::<f32>().expect("f32"), vec![1.0; 4]);
    }

    fn values(model: &crate::Siamese) -> Vec<Vec<f32>> {
        crate::weights::tensor_values(model).into_iter().map(|t| t.values).collect()
    }

    /// Three steps of the web network's episode objective with each optimizer, from the same
    /// start, on the same batches: the same parameters, bit for bit (its dense layer has more
    /// elements than one parallel chunk, so both code paths of the kernel run).
    #[test]
    fn fused_steps_are_burns_bit_for_bit() {
        let device = Device::flex().autodiff();
        // A fresh network for each optimizer, from the same bytes: clones would share the batch
        // norms' running statistics, which the forward passes update (and re-seeding would race
        // with other tests drawing from the same device's generator).
        let config = Preset::Web.config();
        let bytes = crate::weights::to_bytes(&config.init(&device), &config, Encoding::F32);
        let start =
            || crate::weights::from_bytes(&bytes, Some(&config), &device).expect("own bytes").1.train();
        let batches: Vec<Tensor<4>> = (0..3)
            .map(|_| Tensor::random([16, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device))
            .collect();
        let train = |mut optimizer: ModuleOptimizer| {
            let mut model = start();
            for (i, batch) in batches.iter().enumerate() {
                let grads = GradientsParams::from_grads(
                    episode_loss(&model, vec![batch.clone()], 2, 0.0).backward(),
                    &model,
                );
                model = optimizer.step(1e-3 * (i + 1) as f64, model, grads);
            }
            values(&model.valid())
        };
        let fused = train(adam());
        let burn = train(AdamConfig::new().init());
        assert_eq!(fused.len(), burn.len());
        let moved = fused.iter().zip(values(&start().valid()).iter()).filter(|(a, b)| a != b).count();
        assert!(
            moved >= fused.len() / 2,
            "the steps changed the parameters ({moved} of {} tensors)",
            fused.len()
        );
        for (i, (a, b)) in fused.iter().zip(&burn).enumerate() {
            assert!(a == b, "tensor {i} differs from Burn's Adam");
        }
    }
}

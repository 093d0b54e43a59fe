//! The optimizer every training path uses: Burn's Adam with `AdamConfig::new()`'s coefficients,
//! whose update of tensors on the CPU backend runs in one pass over each parameter
//! ([`AdamStep`]) instead of Burn's ten element-wise tensor operations; same results, bit for
//! bit, and the same state (so optimizer checkpoints stay interchangeable with Burn's Adam).

use burn::optim::{AdamConfig, ModuleOptimizer};

/// A fresh Adam optimizer for a module: the fused CPU update where this build has the training
/// kernels, Burn's Adam elsewhere (and on every other device).
pub fn adam() -> ModuleOptimizer {
    #[cfg(any(not(target_arch = "wasm32"), feature = "cpu-training"))]
    return ModuleOptimizer::from(fused::FusedAdam::new());
    #[cfg(not(any(not(target_arch = "wasm32"), feature = "cpu-training")))]
    AdamConfig::new().init()
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
    }

    impl FusedAdam {
        pub(super) fn new() -> Self {
            Self { burn: AdamConfig::new().build() }
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
            if !fusable(&tensor, &grad, state.as_ref()) {
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
            step.apply(
                param.as_mut_slice().expect(slice),
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
                    episode_loss(&model, vec![batch.clone()], 2).backward(),
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

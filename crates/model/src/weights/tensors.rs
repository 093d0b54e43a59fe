//! A network's tensors as plain values, in its visiting order, and back.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};

use oneshot_core::architecture::SiameseConfig;
use oneshot_core::weights::{TensorValues, WeightsError};

use crate::build::BuildNetwork;
use crate::network::Siamese;

/// A tensor still on its device, to read back.
pub struct DeviceTensor {
    id: u64,
    shape: Vec<usize>,
    tensor: Tensor<1>,
}

impl DeviceTensor {
    /// Reads the values back synchronously (the CPU; not WebGPU in a browser).
    pub fn read(self) -> Result<TensorValues, String> {
        let values = self.tensor.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        Ok(TensorValues { id: self.id, shape: self.shape, values })
    }

    /// Reads the values back without blocking (any device).
    pub async fn read_async(self) -> Result<TensorValues, String> {
        let data = self.tensor.into_data_async().await.map_err(|e| format!("{e:?}"))?;
        let values = data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        Ok(TensorValues { id: self.id, shape: self.shape, values })
    }
}

/// Every float tensor of the network (parameters and running statistics), in visiting order.
pub fn collect(model: &Siamese) -> Vec<DeviceTensor> {
    struct Collect(Vec<DeviceTensor>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let shape = tensor.shape().to_vec();
            let len: usize = shape.iter().product();
            self.0.push(DeviceTensor { id: param.id.val(), shape, tensor: tensor.reshape([len]) });
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// The network of `config` on `device`, with `tensors` (in visiting order) as its values.
pub fn build(
    config: &SiameseConfig,
    tensors: &[TensorValues],
    device: &Device,
) -> Result<Siamese, WeightsError> {
    let model = config.init(device);
    let mut expected = Shapes(Vec::new());
    model.visit(&mut expected);
    if expected.0.len() != tensors.len() {
        return Err(WeightsError::Tensors(format!(
            "the file has {} tensors, the architecture {}",
            tensors.len(),
            expected.0.len()
        )));
    }
    for (index, (shape, tensor)) in expected.0.iter().zip(tensors).enumerate() {
        if *shape != tensor.shape {
            return Err(WeightsError::Tensors(format!(
                "tensor {index} has shape {:?}, the architecture needs {shape:?}",
                tensor.shape
            )));
        }
    }
    Ok(model.map(&mut Replace { tensors: tensors.iter() }))
}

/// The shapes of a module's float tensors, in visiting order.
struct Shapes(Vec<Vec<usize>>);

impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().shape().to_vec());
    }
}

/// Puts checked values, in visiting order, into a module of the same architecture, each under
/// its saved parameter id and keeping whether it requires a gradient.
struct Replace<'a> {
    tensors: std::slice::Iter<'a, TensorValues>,
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(saved) = self.tensors.next() else { return param };
        let mut param = param.map(|tensor| {
            let grad = tensor.is_require_grad();
            let data = TensorData::new(saved.values.clone(), saved.shape.clone());
            Tensor::from_data(data, &tensor.device()).set_require_grad(grad)
        });
        param.id = ParamId::from(saved.id);
        param
    }
}

//! The networks this server runs, each in its own module, and how a state dict is recognised as
//! one of them: by its tensors' names and shapes alone, never by running anything from the file.

pub mod my_convnet;
pub mod net;
pub mod titanic;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::image_input::MNIST_SIDE;
use crate::model::{
    Answer, ExplanationInfo, InputInfo, InputKind, Model, ModelInfo, NetworkInfo, OutputInfo,
    OutputKind,
};
use crate::{CoreError, ImageLimits, WeightsError};

/// A state dict checked against an architecture: exactly its tensors, with its shapes, as `f32`.
pub type StateDict = HashMap<String, Tensor>;

/// One tensor of an architecture's state dict: its name and shape.
pub type TensorSpec = (&'static str, &'static [usize]);

/// A network this server implements natively, recognised from a state dict. Adding one is a
/// module that implements this and an entry in [`ARCHITECTURES`].
pub trait Architecture: Sync {
    /// Who the network is: its PyTorch class name, where it comes from, what it does.
    fn network(&self) -> NetworkInfo;

    /// Every tensor of its state dict.
    fn tensors(&self) -> &'static [TensorSpec];

    /// The served model, from a state dict [`recognise`] checked.
    fn build(
        &self,
        state_dict: &StateDict,
        identity: ModelIdentity,
        limits: ImageLimits,
    ) -> Result<Arc<dyn Model>, CoreError>;
}

/// The networks implemented natively.
pub static ARCHITECTURES: [&dyn Architecture; 3] =
    [&my_convnet::MyConvNet, &net::Net, &titanic::Titanic];

/// What a model is called and what its classes are called, from the command line, the
/// configuration or a model archive's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    pub name: String,
    pub version: String,
    /// One label per class; `None` for the architecture's own.
    pub labels: Option<Vec<String>>,
}

/// The architecture whose tensors a weights file holds — exactly its names with its shapes — and
/// those tensors as `f32`. Anything else is refused with a message that lists what the file holds
/// and what this server runs.
pub fn recognise(
    mut tensors: HashMap<String, Tensor>,
) -> Result<(&'static dyn Architecture, StateDict), WeightsError> {
    let Some(architecture) = ARCHITECTURES.iter().copied().find(|architecture| {
        let specs = architecture.tensors();
        specs.len() == tensors.len()
            && specs.iter().all(|(name, shape)| {
                tensors
                    .get(*name)
                    .is_some_and(|tensor| tensor.dims() == *shape)
            })
    }) else {
        return Err(WeightsError::UnknownArchitecture {
            found: describe_tensors(&tensors),
            served: ARCHITECTURES
                .iter()
                .map(|a| {
                    let specs: Vec<String> = a
                        .tensors()
                        .iter()
                        .map(|(name, shape)| format!("{name} {shape:?}"))
                        .collect();
                    let network = a.network();
                    format!(
                        "{} ({}: {})",
                        network.name,
                        network.origin,
                        specs.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
    };
    let mut checked = StateDict::with_capacity(tensors.len());
    for (name, _) in architecture.tensors() {
        let Some(tensor) = tensors.remove(*name) else {
            continue;
        };
        if !tensor.dtype().is_float() {
            return Err(WeightsError::WrongDtype {
                name: (*name).to_owned(),
                found: format!("{:?}", tensor.dtype()),
            });
        }
        checked.insert((*name).to_owned(), tensor.to_dtype(DType::F32)?);
    }
    Ok((architecture, checked))
}

/// `name [shape]` of up to a dozen tensors, sorted, and how many more there are.
fn describe_tensors(tensors: &HashMap<String, Tensor>) -> String {
    const SHOWN: usize = 12;
    if tensors.is_empty() {
        return "no tensors".into();
    }
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut listed: Vec<String> = names
        .iter()
        .take(SHOWN)
        .map(|name| format!("{name} {:?}", tensors[*name].dims()))
        .collect();
    if names.len() > SHOWN {
        listed.push(format!("and {} more", names.len() - SHOWN));
    }
    listed.join(", ")
}

/// A tensor of a checked state dict as a flat `f32` vector.
pub(crate) fn flat(state_dict: &StateDict, name: &str) -> Result<Vec<f32>, WeightsError> {
    let tensor = state_dict
        .get(name)
        .ok_or_else(|| WeightsError::Malformed(format!("the state dict has no tensor `{name}`")))?;
    Ok(tensor.flatten_all()?.to_vec1::<f32>()?)
}

/// The description of a classifier of the ten digits in MNIST-format images, as both digit
/// networks are, explained by default as `explanation` says.
pub(crate) fn digit_classifier_info(
    identity: ModelIdentity,
    network: NetworkInfo,
    output: OutputKind,
    multiply_adds: u64,
    explanation: ExplanationInfo,
) -> Result<ModelInfo, WeightsError> {
    Ok(ModelInfo {
        output: OutputInfo {
            kind: output,
            labels: labels(&identity, 10)?,
            answer: Answer::Class,
        },
        name: identity.name,
        version: identity.version,
        network,
        input: InputInfo {
            kind: InputKind::Image,
            name: "input-0".into(),
            shape: vec![1, MNIST_SIDE, MNIST_SIDE],
            feature_names: Vec::new(),
        },
        explanation,
        multiply_adds,
    })
}

/// The labels of a model: the identity's when it has as many as the network has classes, else
/// the class numbers.
pub(crate) fn labels(
    identity: &ModelIdentity,
    classes: usize,
) -> Result<Vec<String>, WeightsError> {
    match &identity.labels {
        None => Ok((0..classes).map(|class| class.to_string()).collect()),
        Some(labels) if labels.len() == classes => Ok(labels.clone()),
        Some(labels) => Err(WeightsError::Archive(format!(
            "index_to_name.json names {} classes, the network has {classes}",
            labels.len()
        ))),
    }
}

/// Weights for tests that need no weights file.
#[cfg(test)]
pub(crate) mod test_support {
    use candle_core::{Device, Tensor};

    use super::{StateDict, TensorSpec};

    /// A deterministic pseudo-random stream in −1..1 (xorshift).
    pub fn noise(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed.max(1);
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// Every tensor of `specs` filled with noise, scaled by 1/√fan-in as PyTorch initialises layers.
    pub fn random_state_dict(specs: &[TensorSpec], seed: u64) -> StateDict {
        let mut next = noise(seed);
        specs
            .iter()
            .map(|(name, shape)| {
                let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
                let scale = 1.0 / (fan_in as f32).sqrt();
                let values: Vec<f32> = (0..shape.iter().product())
                    .map(|_| next() * scale)
                    .collect();
                let tensor = Tensor::from_vec(values, *shape, &Device::Cpu).expect("tensor");
                ((*name).to_owned(), tensor)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn zeros(specs: &[TensorSpec]) -> HashMap<String, Tensor> {
        specs
            .iter()
            .map(|(name, shape)| {
                let tensor = Tensor::zeros(*shape, DType::F64, &Device::Cpu).expect("tensor");
                ((*name).to_owned(), tensor)
            })
            .collect()
    }

    #[test]
    fn each_architecture_is_recognised_by_its_shapes() {
        for architecture in ARCHITECTURES {
            let (found, state_dict) = recognise(zeros(architecture.tensors())).expect("recognised");
            assert_eq!(found.network().name, architecture.network().name);
            assert!(state_dict.values().all(|t| t.dtype() == DType::F32));
        }
    }

    #[test]
    fn another_state_dict_is_refused_naming_what_it_holds_and_what_is_served() {
        let mut tensors = zeros(net::Net.tensors());
        tensors.insert(
            "fc3.weight".into(),
            Tensor::zeros((2, 2), DType::F32, &Device::Cpu).expect("tensor"),
        );
        let message = recognise(tensors)
            .map(|_| ())
            .expect_err("an extra tensor")
            .to_string();
        for expected in [
            "fc3.weight [2, 2]",
            "MyConvNet (MAX PyTorch MNIST",
            "Net (TorchServe",
        ] {
            assert!(message.contains(expected), "{message}");
        }
        let mut reshaped = zeros(my_convnet::MyConvNet.tensors());
        reshaped.insert(
            "fc2.bias".into(),
            Tensor::zeros(11, DType::F32, &Device::Cpu).expect("tensor"),
        );
        let message = recognise(reshaped)
            .map(|_| ())
            .expect_err("a wrong shape")
            .to_string();
        assert!(message.contains("fc2.bias [11]"), "{message}");
        let mut integers = zeros(my_convnet::MyConvNet.tensors());
        integers.insert(
            "fc2.bias".into(),
            Tensor::zeros(10, DType::I64, &Device::Cpu).expect("tensor"),
        );
        assert!(matches!(
            recognise(integers),
            Err(WeightsError::WrongDtype { .. })
        ));
    }
}

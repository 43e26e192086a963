//! The model wrapper every architecture implements (pre-process → one batched predict →
//! post-process, and explain), and the description each model gives of itself. The HTTP layer knows
//! only these, so a route serves any model by reading its description.

use serde::Serialize;

use crate::explain::Explanation;
use crate::image_input::declared_pixels;
use crate::records::Record;
use crate::{CoreError, InputError};

/// One instance as a client sent it, before the model's pre-processing.
#[derive(Debug, Clone, Copy)]
pub enum RawInput<'a> {
    /// An encoded file: an image (PNG, JPEG, …).
    File(&'a [u8]),
    /// Numbers, row-major, of the shape [`InputInfo::shape`] describes.
    Tensor(&'a [f64]),
    /// Named fields: a CSV row under its header, or a JSON object.
    Record(&'a Record),
}

/// One instance after pre-processing, as the network takes it: [`InputInfo::len`] values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput(pub Vec<f32>);

impl ModelInput {
    /// The values as the network's fixed-size input (`N` = [`InputInfo::len`]).
    pub fn values<const N: usize>(&self) -> Result<&[f32; N], InputError> {
        self.0
            .as_slice()
            .try_into()
            .map_err(|_| InputError::TensorSize {
                found: self.0.len(),
                expected: N,
                shapes: format!("[{N}]"),
            })
    }
}

/// The network's output for one instance, as its PyTorch module returns it: logits,
/// log-probabilities or probabilities, as [`OutputInfo::kind`] says.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput(pub Vec<f32>);

/// A class and its probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassProbability {
    pub class: usize,
    pub probability: f32,
}

/// One instance's answer: each class's probability, and the most probable class.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The first of the largest probabilities, as `torch.argmax` picks it.
    pub class: usize,
    pub probabilities: Vec<f32>,
}

impl Classification {
    pub fn new(probabilities: Vec<f32>) -> Self {
        let class = probabilities
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (class, &p)| {
                if p > best.1 {
                    (class, p)
                } else {
                    best
                }
            })
            .0;
        Self {
            class,
            probabilities,
        }
    }

    /// The `k` (at least 1) most probable classes, most probable first; ties keep class order.
    pub fn top_k(&self, k: usize) -> Vec<ClassProbability> {
        let mut ranked: Vec<ClassProbability> = self
            .probabilities
            .iter()
            .enumerate()
            .map(|(class, &probability)| ClassProbability { class, probability })
            .collect();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        ranked.truncate(k.max(1));
        ranked
    }
}

/// What a batch will cost, told before any of it is spent: the pixels its images' headers declare,
/// and the network's multiply-adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    pub pixels: u64,
    pub multiply_adds: u64,
}

/// What serving needs of a model. Implemented by every architecture; object-safe.
pub trait Model: Send + Sync {
    /// The model's description of itself.
    fn info(&self) -> &ModelInfo;

    /// Turns one instance into the network's input: decodes and normalises an image, checks and
    /// transforms a tensor.
    fn pre_process(&self, raw: RawInput<'_>) -> Result<ModelInput, CoreError>;

    /// Runs the whole batch through the network in one forward pass.
    fn predict(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError>;

    /// Each class's probability and the most probable one.
    fn post_process(&self, output: &ModelOutput) -> Classification {
        Classification::new(self.info().output.kind.probabilities(&output.0))
    }

    /// Whether the model can be explained at all: [`CoreError::Unsupported`] saying why not.
    fn explainable(&self) -> Result<(), CoreError> {
        Ok(())
    }

    /// Integrated Gradients of output `target` at `input`, as Captum computes them, with `steps`
    /// Gauss–Legendre points. A bad target or step count is [`CoreError::Argument`].
    fn explain(
        &self,
        input: &ModelInput,
        target: usize,
        steps: usize,
    ) -> Result<Explanation, CoreError>;

    /// A picture of an explanation, as PNG bytes.
    fn explanation_png(
        &self,
        input: &ModelInput,
        explanation: &Explanation,
    ) -> Result<Vec<u8>, CoreError>;

    /// What pre-processing and predicting `batch` will cost, read from image headers only.
    fn work(&self, batch: &[RawInput<'_>]) -> Work {
        let pixels = batch
            .iter()
            .map(|raw| match raw {
                RawInput::File(bytes) => declared_pixels(bytes).unwrap_or(0),
                RawInput::Tensor(values) => values.len() as u64,
                RawInput::Record(_) => 0,
            })
            .sum();
        Work {
            pixels,
            multiply_adds: self.info().multiply_adds * batch.len() as u64,
        }
    }
}

/// Pre-processes every instance, runs them in one forward pass and post-processes each. An input
/// error names its instance: `row 3` (tabular models, from 1 as CSV rows are numbered) or, in a
/// batch of several images, `instance 2` (from 0 as KServe numbers them).
pub fn classify(
    model: &dyn Model,
    batch: &[RawInput<'_>],
) -> Result<Vec<Classification>, CoreError> {
    let inputs = batch
        .iter()
        .enumerate()
        .map(|(index, &raw)| {
            model.pre_process(raw).map_err(|err| match err {
                CoreError::Input(err) if names_instances(model.info(), batch.len()) => {
                    CoreError::Input(located(model.info(), index, err))
                }
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(model
        .predict(&inputs)?
        .iter()
        .map(|output| model.post_process(output))
        .collect())
}

/// Whether an error names its instance: always a tabular model's row, an image when there are several.
fn names_instances(info: &ModelInfo, count: usize) -> bool {
    info.input.kind == InputKind::Features || count > 1
}

/// How a request names its `index`th instance: `row 3` (from 1) or `instance 2` (from 0).
fn position(info: &ModelInfo, index: usize) -> (&'static str, usize) {
    match info.input.kind {
        InputKind::Features => ("row", index + 1),
        InputKind::Image => ("instance", index),
    }
}

/// An input error placed in its request: `row 3` or `instance 2`.
pub fn located(info: &ModelInfo, index: usize, err: InputError) -> InputError {
    let (what, index) = position(info, index);
    InputError::At {
        what,
        index,
        source: Box::new(err),
    }
}

/// An explained instance: its input, what the model predicted, and the attributions.
#[derive(Debug, Clone)]
pub struct Explained {
    pub input: ModelInput,
    pub classification: Classification,
    pub explanation: Explanation,
}

/// [`explain`] for each instance, in order; an error names its instance as [`classify`] does.
pub fn explain_all(
    model: &dyn Model,
    batch: &[(RawInput<'_>, Option<usize>)],
    settings: ExplanationInfo,
) -> Result<Vec<Explained>, CoreError> {
    batch
        .iter()
        .enumerate()
        .map(|(index, &(raw, target))| {
            explain(model, raw, target, settings).map_err(|err| match err {
                CoreError::Input(err) if names_instances(model.info(), batch.len()) => {
                    CoreError::Input(located(model.info(), index, err))
                }
                CoreError::Argument(message) if names_instances(model.info(), batch.len()) => {
                    let (what, index) = position(model.info(), index);
                    CoreError::Argument(format!("{what} {index}: {message}"))
                }
                other => other,
            })
        })
        .collect()
}

/// Pre-processes one instance, predicts it and explains output `target`, or `settings.target`
/// when the request names none, with `settings.steps` quadrature points. The routes take
/// `settings` from the model's description ([`ModelInfo::explanation`]), with what the request
/// names.
pub fn explain(
    model: &dyn Model,
    raw: RawInput<'_>,
    target: Option<usize>,
    settings: ExplanationInfo,
) -> Result<Explained, CoreError> {
    model.explainable()?;
    let input = model.pre_process(raw)?;
    let output = model
        .predict(std::slice::from_ref(&input))?
        .pop()
        .ok_or_else(|| CoreError::Internal("the network returned no output".into()))?;
    let classification = model.post_process(&output);
    let target = target.unwrap_or(match settings.target {
        DefaultTarget::Predicted => classification.class,
        DefaultTarget::Class(class) => class,
    });
    let explanation = model.explain(&input, target, settings.steps)?;
    Ok(Explained {
        input,
        classification,
        explanation,
    })
}

/// What a model says of itself: the routes, KServe v2 metadata, the OpenAPI document and
/// `/model/labels` are made from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The name the routes know it by, such as `mnist`.
    pub name: String,
    pub version: String,
    pub network: NetworkInfo,
    pub input: InputInfo,
    pub output: OutputInfo,
    pub explanation: ExplanationInfo,
    /// Multiply-adds of one instance's forward pass.
    pub multiply_adds: u64,
}

/// Who a model's network is, for people: MAX's metadata, TorchServe's description, logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The PyTorch class name (`Net`), or `ONNX` for a graph.
    pub name: String,
    /// Where it comes from (`TorchServe's MNIST example`).
    pub origin: String,
    /// A sentence on what it does.
    pub description: String,
    /// Where its code and training live.
    pub source: String,
}

/// What kind of thing an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A picture: an image file, or a tensor of intensities.
    Image,
    /// Named numbers ([`InputInfo::feature_names`]).
    Features,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputInfo {
    pub kind: InputKind,
    /// The input tensor's name in KServe v2 metadata.
    pub name: String,
    /// The shape of one instance, as the PyTorch module takes it (`[1, 28, 28]`).
    pub shape: Vec<usize>,
    /// What each value means, for tabular models; empty for images.
    pub feature_names: Vec<String>,
}

impl InputInfo {
    /// Values in one instance.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shapes one tensor instance may have: the declared one, without its leading 1s, and flat
    /// (`[1,28,28]`, `[28,28]`, `[784]`).
    pub fn instance_shapes(&self) -> Vec<Vec<usize>> {
        let mut shapes = vec![self.shape.clone()];
        let mut trimmed = self.shape.as_slice();
        while let [1, rest @ ..] = trimmed {
            trimmed = rest;
            if !rest.is_empty() {
                shapes.push(rest.to_vec());
            }
        }
        shapes.push(vec![self.len()]);
        shapes.sort_by_key(Vec::len);
        shapes.dedup();
        shapes
    }

    /// The instance shapes as a person reads them: `[784], [28,28] or [1,28,28]`.
    pub fn describe_shapes(&self) -> String {
        let shapes: Vec<String> = self
            .instance_shapes()
            .iter()
            .map(|shape| format_shape(shape))
            .collect();
        match shapes.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => shapes.concat(),
        }
    }

    /// Checks that a tensor instance has the right number of values.
    pub fn check_len(&self, found: usize) -> Result<(), InputError> {
        if found == self.len() {
            Ok(())
        } else {
            Err(InputError::TensorSize {
                found,
                expected: self.len(),
                shapes: self.describe_shapes(),
            })
        }
    }
}

/// `[1,28,28]`.
pub fn format_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(","))
}

/// What the network's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Logits,
    /// `log_softmax` of the logits.
    LogProbabilities,
    Probabilities,
}

impl OutputKind {
    pub fn probabilities(self, values: &[f32]) -> Vec<f32> {
        match self {
            Self::Logits => softmax(values),
            Self::LogProbabilities => values.iter().map(|v| v.exp()).collect(),
            Self::Probabilities => values.to_vec(),
        }
    }
}

/// Softmax, computed stably.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputInfo {
    pub kind: OutputKind,
    /// One label per class, in class order.
    pub labels: Vec<String>,
    /// How TorchServe's predictions route answers, as the model's handler did.
    pub answer: Answer,
}

/// What TorchServe's `/predictions` answers for each instance, as the model's original handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The most probable class's number (`7`), as the MNIST example's handler.
    Class,
    /// The most probable class's label (`"Survived"`), as the Titanic example's handler.
    Label,
    /// The `k` most probable labels with their probabilities (`{"tabby": 0.41, …}`), as
    /// TorchServe's `image_classifier` handler.
    TopLabels(usize),
}

impl OutputInfo {
    /// The label of `class` (empty for a class the model does not have).
    pub fn label(&self, class: usize) -> &str {
        self.labels.get(class).map_or("", String::as_str)
    }
}

/// Which output an explanation explains when the request names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultTarget {
    /// The predicted class.
    Predicted,
    Class(usize),
}

/// How a model is explained when the request does not say: what its original handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplanationInfo {
    /// Quadrature points of the TorchServe and KServe explanation routes.
    pub steps: usize,
    pub target: DefaultTarget,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_probable_class_is_the_first_of_the_largest() {
        let classification = Classification::new(vec![0.1, 0.4, 0.1, 0.4]);
        assert_eq!(classification.class, 1);
        let top: Vec<usize> = classification.top_k(3).iter().map(|p| p.class).collect();
        assert_eq!(top, [1, 3, 0]);
        assert_eq!(classification.top_k(0).len(), 1);
        assert_eq!(classification.top_k(99).len(), 4);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 999.0, 0.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
        assert_eq!(p[3], 0.0);
        let from_logs = OutputKind::LogProbabilities.probabilities(&[0.0, f32::NEG_INFINITY]);
        assert_eq!(from_logs, [1.0, 0.0]);
    }

    #[test]
    fn instance_shapes_are_the_declared_the_trimmed_and_the_flat() {
        let image = InputInfo {
            kind: InputKind::Image,
            name: "input-0".into(),
            shape: vec![1, 28, 28],
            feature_names: Vec::new(),
        };
        assert_eq!(
            image.instance_shapes(),
            [vec![784], vec![28, 28], vec![1, 28, 28]]
        );
        assert_eq!(image.describe_shapes(), "[784], [28,28] or [1,28,28]");
        let features = InputInfo {
            shape: vec![12],
            kind: InputKind::Features,
            ..image
        };
        assert_eq!(features.instance_shapes(), [vec![12]]);
        assert_eq!(features.describe_shapes(), "[12]");
        assert!(features.check_len(11).is_err());
    }
}

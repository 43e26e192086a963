//! Any ONNX network, run by ONNX Runtime: its description read from the graph (one float input,
//! `[N,C,H,W]` with C = 1 or 3 for an image model or `[N,F]` for a features model; a first output
//! `[N,K]` of K classes), what the graph cannot say from [`ModelSettings`], and the pre-processing
//! those name. A numeric tensor is the graph's input unchanged; only pictures are pre-processed.
//!
//! ONNX Runtime's `Run` may not be called on one session from two threads at once, so each model
//! keeps a pool of sessions sharing their pre-packed weights: one per runner that predicts at the
//! same time, made when first needed. Each runs on one thread (`intra_op_num_threads = 1`): the
//! model's runners decide how many cores it uses.

pub mod graph;
pub mod runtime;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::architectures::{labels, ModelIdentity};
use crate::explain::Explanation;
use crate::image_input::{decode, ImageLimits, ImagePipeline, Normalisation, MNIST_SIDE};
use crate::image_transform::{
    ImageTransform, IMAGENET_MEAN, IMAGENET_STD, IMAGE_CLASSIFIER_RESIZE,
};
use crate::model::{
    Answer, DefaultTarget, ExplanationInfo, InputInfo, InputKind, Model, ModelInfo, ModelInput,
    ModelOutput, NetworkInfo, OutputInfo, OutputKind, RawInput,
};
use crate::model_settings::ModelSettings;
use crate::{CoreError, InputError, WeightsError};

pub use graph::is_onnx;

/// How many labelled classes `image_classifier` answers.
const IMAGE_CLASSIFIER_TOP_K: usize = 5;
/// ONNX models always run on their model's runners, never on the HTTP worker: the graph's cost is
/// not known, and even a small convolutional network takes a millisecond.
const ONNX_MULTIPLY_ADDS: u64 = 1 << 32;

/// How a picture becomes the graph's input.
enum Pictures {
    /// Made an MNIST digit, as the digit networks take them.
    Digits(ImagePipeline),
    /// torchvision's transforms.
    Transform(ImageTransform, ImageLimits),
    /// A features model takes no pictures.
    None,
}

/// The batch axis of the graph's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// Dynamic: the whole batch in one run.
    Any,
    /// Fixed at 1: one run per instance.
    One,
}

pub struct OnnxModel {
    info: ModelInfo,
    graph: Arc<[u8]>,
    prepacked: PrepackedWeights,
    sessions: Mutex<Vec<Session>>,
    input_name: String,
    batch: Batch,
    classes: usize,
    pictures: Pictures,
}

impl OnnxModel {
    /// Checks the graph, starts ONNX Runtime on it and runs it once on zeros.
    pub fn load(
        bytes: &[u8],
        file_name: &str,
        identity: ModelIdentity,
        settings: ModelSettings,
        limits: ImageLimits,
    ) -> Result<Self, CoreError> {
        let summary = graph::check(bytes)?;
        // Before any other call into `ort`, which would otherwise look for the library itself.
        runtime::environment()?;
        let prepacked = PrepackedWeights::new();
        let session = new_session(bytes, &prepacked)?;
        let (input_name, input_shape) = the_input(&session)?;
        let (output_name, declared_classes) = the_output(&session)?;
        let batch = match input_shape[0] {
            1 => Batch::One,
            d if d < 0 => Batch::Any,
            d => {
                return Err(onnx_error(format!(
                    "input `{input_name}` has a fixed batch of {d}: export with a dynamic batch axis (dynamic_axes={{\"{input_name}\": {{0: \"batch\"}}}}) or a batch of 1"
                )))
            }
        };
        let instance: Vec<usize> = input_shape[1..].iter().map(|&d| d as usize).collect();
        let kind = match instance.as_slice() {
            [1 | 3, _, _] => InputKind::Image,
            [_] => InputKind::Features,
            other => {
                return Err(onnx_error(format!(
                    "input `{input_name}` has instances of shape {other:?}"
                )))
            }
        };
        let pictures = pictures(kind, &instance, &settings, limits)?;
        let output_kind = settings
            .output
            .unwrap_or_else(|| output_kind_named(&output_name));
        let mut model = Self {
            info: ModelInfo {
                name: identity.name.clone(),
                version: identity.version.clone(),
                network: NetworkInfo {
                    name: "ONNX".into(),
                    origin: format!("an ONNX graph, {file_name}"),
                    description: format!(
                        "An ONNX network of {} nodes and {} initializers, run by ONNX Runtime: `{input_name}` FLOAT {} → `{output_name}` [N,{}] ({})",
                        summary.nodes,
                        summary.initializers,
                        shape_text(&input_shape),
                        declared_classes.map_or("K".into(), |k| k.to_string()),
                        output_kind_text(output_kind),
                    ),
                    source: file_name.to_owned(),
                },
                input: InputInfo {
                    kind,
                    name: input_name.clone(),
                    shape: instance,
                    feature_names: Vec::new(),
                },
                output: OutputInfo {
                    kind: output_kind,
                    labels: Vec::new(),
                    answer: answer(kind, &settings),
                },
                explanation: ExplanationInfo {
                    steps: crate::explain::TORCHSERVE_IMAGE_STEPS,
                    target: DefaultTarget::Predicted,
                },
                multiply_adds: ONNX_MULTIPLY_ADDS,
            },
            graph: Arc::from(bytes),
            prepacked,
            sessions: Mutex::new(vec![session]),
            input_name,
            batch,
            classes: declared_classes.unwrap_or(0),
            pictures,
        };
        if kind == InputKind::Features {
            model.info.input.feature_names = feature_names(&settings, model.info.input.len())?;
        }
        // One run on zeros: the graph works, and it says how many classes it has.
        let zeros = ModelInput(vec![0.0; model.info.input.len()]);
        let probe = model.run(std::slice::from_ref(&zeros))?;
        let classes = probe.first().map_or(0, |output| output.0.len());
        if classes == 0 {
            return Err(onnx_error(format!(
                "output `{output_name}` has no classes: serve a classifier whose first output is [N,K]"
            )));
        }
        model.classes = classes;
        model.info.output.labels = labels(&identity, classes)?;
        Ok(model)
    }

    /// Runs the batch, in one run or one per instance as the graph's batch axis allows.
    fn run(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        match self.batch {
            Batch::Any => self.run_batch(batch),
            Batch::One => batch
                .iter()
                .map(|input| {
                    self.run_batch(std::slice::from_ref(input))?
                        .pop()
                        .ok_or_else(|| {
                            CoreError::Internal("ONNX Runtime returned no output".into())
                        })
                })
                .collect(),
        }
    }

    fn run_batch(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let len = self.info.input.len();
        if let Some(input) = batch.iter().find(|input| input.0.len() != len) {
            return Err(InputError::TensorSize {
                found: input.0.len(),
                expected: len,
                shapes: self.info.input.describe_shapes(),
            }
            .into());
        }
        // ONNX Runtime reads the batch in place: a single instance is not copied.
        let values: Cow<'_, [f32]> = match batch {
            [input] => Cow::Borrowed(&input.0),
            _ => {
                let mut values = Vec::with_capacity(batch.len() * len);
                for input in batch {
                    values.extend_from_slice(&input.0);
                }
                Cow::Owned(values)
            }
        };
        let shape: Vec<i64> = std::iter::once(batch.len())
            .chain(self.info.input.shape.iter().copied())
            .map(|d| d as i64)
            .collect();
        let tensor = TensorRef::from_array_view((shape, &*values)).map_err(engine_error)?;
        let mut session = self.session()?;
        let result = (|| {
            let outputs = session
                .run(ort::inputs![self.input_name.as_str() => tensor])
                .map_err(engine_error)?;
            let (shape, data) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(engine_error)?;
            let classes = match **shape {
                [n, k] if n == batch.len() as i64 && k > 0 => k as usize,
                _ => {
                    return Err(CoreError::Engine(format!(
                    "the first output has shape {:?} for a batch of {}: a classifier's is [N,K]",
                    &**shape,
                    batch.len()
                )))
                }
            };
            if self.classes != 0 && classes != self.classes {
                return Err(CoreError::Engine(format!(
                    "the first output has {classes} classes, {} at load",
                    self.classes
                )));
            }
            Ok(data
                .chunks_exact(classes)
                .map(|row| ModelOutput(row.to_vec()))
                .collect())
        })();
        self.give_back(session);
        result
    }

    /// An idle session, or a new one when every session is busy.
    fn session(&self) -> Result<Session, CoreError> {
        let idle = self
            .sessions
            .lock()
            .map_err(|_| CoreError::Internal("the session pool was poisoned".into()))?
            .pop();
        match idle {
            Some(session) => Ok(session),
            None => Ok(new_session(&self.graph, &self.prepacked)?),
        }
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.push(session);
        }
    }

    fn not_explainable(&self) -> CoreError {
        CoreError::Unsupported(format!(
            "model `{}` is an ONNX network, which cannot be explained yet: Integrated Gradients need the network's gradient, which ONNX Runtime does not give. Ask for a prediction instead",
            self.info.name
        ))
    }

    fn tensor_input(&self, values: &[f64]) -> Result<ModelInput, CoreError> {
        self.info.input.check_len(values.len())?;
        if let Some(&bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(InputError::NotFinite { value: bad }.into());
        }
        Ok(ModelInput(values.iter().map(|&v| v as f32).collect()))
    }

    fn record_input(&self, record: &crate::Record) -> Result<ModelInput, CoreError> {
        let names = &self.info.input.feature_names;
        let values = names
            .iter()
            .map(|name| match record.get(name) {
                Some(field) => field.number(name)?.ok_or_else(|| InputError::Field {
                    column: name.clone(),
                    problem: "is empty: give every feature a number".into(),
                }),
                None => Err(InputError::MissingColumn {
                    column: name.clone(),
                    hint: format!("give every feature: {}", names.join(", ")),
                }),
            })
            .collect::<Result<Vec<f64>, InputError>>()?;
        self.tensor_input(&values)
    }

    fn picture_input(&self, bytes: &[u8]) -> Result<ModelInput, CoreError> {
        match &self.pictures {
            Pictures::Digits(pipeline) => {
                pipeline.pre_process(RawInput::File(bytes), &self.info.input)
            }
            Pictures::Transform(transform, limits) => {
                Ok(ModelInput(transform.apply(decode(bytes, limits)?)))
            }
            Pictures::None => Err(InputError::WrongKind {
                expected: "rows of numbers (CSV with a header row, JSON records, or tensors)",
                found: "a file",
            }
            .into()),
        }
    }
}

impl Model for OnnxModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn pre_process(&self, raw: RawInput<'_>) -> Result<ModelInput, CoreError> {
        match (raw, self.info.input.kind) {
            (RawInput::Tensor(values), _) => self.tensor_input(values),
            (RawInput::File(bytes), _) => self.picture_input(bytes),
            (RawInput::Record(record), InputKind::Features) => self.record_input(record),
            (RawInput::Record(_), InputKind::Image) => Err(InputError::WrongKind {
                expected: "an image (a file, or a tensor of the graph's input shape)",
                found: "a record of named fields",
            }
            .into()),
        }
    }

    fn predict(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        self.run(batch)
    }

    fn explainable(&self) -> Result<(), CoreError> {
        Err(self.not_explainable())
    }

    fn explain(
        &self,
        _input: &ModelInput,
        _target: usize,
        _steps: usize,
    ) -> Result<Explanation, CoreError> {
        Err(self.not_explainable())
    }

    fn explanation_png(
        &self,
        _input: &ModelInput,
        _explanation: &Explanation,
    ) -> Result<Vec<u8>, CoreError> {
        Err(self.not_explainable())
    }
}

/// A session on the graph: one thread, every graph optimisation, the pool's shared weights.
fn new_session(graph: &[u8], prepacked: &PrepackedWeights) -> Result<Session, WeightsError> {
    let environment = runtime::environment()?;
    let refused = |err: String| {
        WeightsError::Onnx(format!(
            "ONNX Runtime refuses the graph: {err}. Check the model with onnx.checker.check_model, or export it again"
        ))
    };
    let builder = Session::builder(environment).map_err(|err| refused(err.to_string()))?;
    let configure = |err: ort::Error<_>| refused(err.to_string());
    let builder = builder.with_intra_threads(1).map_err(configure)?;
    let builder = builder.with_inter_threads(1).map_err(configure)?;
    let builder = builder
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(configure)?;
    builder
        .with_prepacked_weights(prepacked)
        .map_err(configure)?
        .commit_from_memory(graph)
        .map_err(|err| refused(err.to_string()))
}

/// The graph's one input: FLOAT, `[N,C,H,W]` with C = 1 or 3, or `[N,F]`, every axis but the
/// batch fixed.
fn the_input(session: &Session) -> Result<(String, Vec<i64>), CoreError> {
    let inputs = session.inputs();
    let [input] = inputs else {
        let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
        return Err(onnx_error(format!(
            "the graph takes {} inputs ({}); this server feeds graphs of one input",
            inputs.len(),
            names.join(", ")
        )));
    };
    let name = input.name().to_owned();
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(onnx_error(format!("input `{name}` is not a tensor")));
    };
    let shape: Vec<i64> = shape.iter().copied().collect();
    if *ty != TensorElementType::Float32 {
        return Err(onnx_error(format!(
            "input `{name}` is {ty:?} {}; this server feeds FLOAT (float32) inputs: export the model with a float input",
            shape_text(&shape)
        )));
    }
    let supported = match shape.as_slice() {
        [_, 1 | 3, h, w] => *h > 0 && *w > 0,
        [_, f] => *f > 0,
        _ => false,
    };
    if !supported {
        return Err(onnx_error(format!(
            "input `{name}` has shape {}; this server serves images [N,C,H,W] with C = 1 or 3 and features [N,F], every axis but the batch fixed",
            shape_text(&shape)
        )));
    }
    Ok((name, shape))
}

/// The graph's first output: FLOAT `[N,K]`; K when the graph fixes it.
fn the_output(session: &Session) -> Result<(String, Option<usize>), CoreError> {
    let output = session
        .outputs()
        .first()
        .ok_or_else(|| onnx_error("the graph has no output".into()))?;
    let name = output.name().to_owned();
    match output.dtype() {
        ValueType::Tensor { ty, shape, .. }
            if *ty == TensorElementType::Float32 && shape.len() == 2 =>
        {
            Ok((name, usize::try_from(shape[1]).ok().filter(|&k| k > 0)))
        }
        ValueType::Tensor { ty, shape, .. } => Err(onnx_error(format!(
            "output `{name}` is {ty:?} {}; this server serves classifiers whose first output is FLOAT [N,K]",
            shape_text(&shape.iter().copied().collect::<Vec<_>>())
        ))),
        _ => Err(onnx_error(format!("output `{name}` is not a tensor"))),
    }
}

/// How pictures are pre-processed, from the settings and the graph's image shape.
fn pictures(
    kind: InputKind,
    instance: &[usize],
    settings: &ModelSettings,
    limits: ImageLimits,
) -> Result<Pictures, CoreError> {
    let &[channels, height, width] = instance else {
        return if kind == InputKind::Features {
            Ok(Pictures::None)
        } else {
            Err(onnx_error(format!("image input of shape {instance:?}")))
        };
    };
    let image = &settings.image;
    let per_channel = |values: &Option<Vec<f32>>, preset: &[f32; 3], plain: f32, name: &str| {
        let values = match values {
            Some(values) => values.clone(),
            None if settings.is_image_classifier() && channels == 3 => preset.to_vec(),
            None => vec![plain; channels],
        };
        if values.len() == channels {
            Ok(values)
        } else {
            Err(settings_error(format!(
                "image.{name} has {} values; the graph's images have {channels} channels",
                values.len()
            )))
        }
    };
    let mean = per_channel(&image.mean, &IMAGENET_MEAN, 0.0, "mean")?;
    let std = per_channel(&image.std, &IMAGENET_STD, 1.0, "std")?;
    if let Some(&zero) = std.iter().find(|&&s| s == 0.0 || !s.is_finite()) {
        return Err(settings_error(format!(
            "image.std holds {zero}: give positive deviations"
        )));
    }
    if image.mnist {
        if (channels, height, width) != (1, MNIST_SIDE, MNIST_SIDE) {
            return Err(settings_error(format!(
                "image.mnist makes 1×28×28 digits; the graph takes {channels}×{height}×{width}"
            )));
        }
        return Ok(Pictures::Digits(ImagePipeline {
            limits,
            normalisation: Normalisation {
                mean: mean[0],
                std: std[0],
            },
        }));
    }
    let resize_shorter = image.resize.or(settings
        .is_image_classifier()
        .then_some(IMAGE_CLASSIFIER_RESIZE));
    if let Some(shorter) = resize_shorter {
        if (shorter as usize) < height.max(width) {
            return Err(settings_error(format!(
                "image.resize is {shorter}, smaller than the graph's {height}×{width} crop: give at least {}",
                height.max(width)
            )));
        }
    }
    Ok(Pictures::Transform(
        ImageTransform {
            channels,
            height,
            width,
            resize_shorter,
            mean,
            std,
        },
        limits,
    ))
}

fn answer(kind: InputKind, settings: &ModelSettings) -> Answer {
    match (settings.top_k, kind) {
        (Some(k), _) => Answer::TopLabels(k.max(1)),
        (None, _) if settings.is_image_classifier() => Answer::TopLabels(IMAGE_CLASSIFIER_TOP_K),
        (None, InputKind::Image) => Answer::Class,
        (None, InputKind::Features) => Answer::Label,
    }
}

fn feature_names(settings: &ModelSettings, count: usize) -> Result<Vec<String>, CoreError> {
    match &settings.feature_names {
        Some(names) if names.len() == count => Ok(names.clone()),
        Some(names) => Err(settings_error(format!(
            "feature_names has {} names; the graph takes {count} features",
            names.len()
        ))),
        None => Ok((0..count).map(|i| format!("feature_{i}")).collect()),
    }
}

/// `logits`, `probabilities` and `log_probabilities` (as this project's exports name their
/// outputs) say what they hold; any other name is taken for logits.
fn output_kind_named(name: &str) -> OutputKind {
    let name = name.to_ascii_lowercase();
    if name.contains("log_prob") || name.contains("logprob") {
        OutputKind::LogProbabilities
    } else if name.contains("prob") {
        OutputKind::Probabilities
    } else {
        OutputKind::Logits
    }
}

fn output_kind_text(kind: OutputKind) -> &'static str {
    match kind {
        OutputKind::Logits => "logits",
        OutputKind::LogProbabilities => "log-probabilities",
        OutputKind::Probabilities => "probabilities",
    }
}

/// `[N,3,224,224]`, the dynamic axes as N.
fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| if d < 0 { "N".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(","))
}

fn onnx_error(message: String) -> CoreError {
    WeightsError::Onnx(message).into()
}

fn settings_error(message: String) -> CoreError {
    WeightsError::Settings(message).into()
}

fn engine_error(err: ort::Error) -> CoreError {
    CoreError::Engine(err.to_string())
}

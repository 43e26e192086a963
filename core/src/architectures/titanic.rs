//! TitanicSimpleNNModel, the network of the TorchServe + Captum Titanic example: 12 passenger
//! features → linear1(12) → sigmoid → linear2(8) → sigmoid → linear3(2) → softmax, the probabilities
//! that the passenger did not survive and did.
//!
//! A passenger comes as the 12 encoded features, or as the raw columns of `titanic3.csv` that the
//! example's training encoded them from: `pclass` and `sex` one-hot, `embarked` one-hot (none when
//! empty), a missing `age` or `fare` filled with the mean of the known values.

use std::sync::Arc;

use super::{flat, labels, Architecture, ModelIdentity, StateDict, TensorSpec};
use crate::chart::bar_chart_png;
use crate::explain::{self, Explanation};
use crate::image_input::ImageLimits;
use crate::model::{
    Answer, DefaultTarget, ExplanationInfo, InputInfo, InputKind, Model, ModelInfo, ModelInput,
    ModelOutput, NetworkInfo, OutputInfo, OutputKind, RawInput,
};
use crate::records::{Field, Record};
use crate::{CoreError, InputError};

/// The encoded features, in the network's order.
pub const FEATURES: [&str; 12] = [
    "age", "sibsp", "parch", "fare", "female", "male", "embark_C", "embark_Q", "embark_S",
    "class_1", "class_2", "class_3",
];
const INPUTS: usize = FEATURES.len();
const HIDDEN1: usize = 12;
const HIDDEN2: usize = 8;
const CLASSES: usize = 2;

pub const TENSORS: [TensorSpec; 6] = [
    ("linear1.weight", &[HIDDEN1, INPUTS]),
    ("linear1.bias", &[HIDDEN1]),
    ("linear2.weight", &[HIDDEN2, HIDDEN1]),
    ("linear2.bias", &[HIDDEN2]),
    ("linear3.weight", &[CLASSES, HIDDEN2]),
    ("linear3.bias", &[CLASSES]),
];

pub const DESCRIPTION: &str = "A small network of the TorchServe + Captum Titanic example that predicts whether a passenger of the Titanic survived, from age, family aboard, fare, sex, port and class";
pub const SOURCE: &str = "https://github.com/mlflow/mlflow-torchserve/tree/master/examples/Titanic";
/// The labels of `index_to_name.json`, for a bare state dict.
const LABELS: [&str; CLASSES] = ["Not Survived", "Survived"];
/// The mean of `titanic3.csv`'s known ages and fares, with which its preparation filled the gaps.
pub const MEAN_AGE: f64 = 29.8811345124283;
pub const MEAN_FARE: f64 = 33.29547928134557;
/// The example's handler explains with Captum's default 50 steps, of class 1 (Survived).
const EXPLANATION_STEPS: usize = 50;
const SURVIVED: usize = 1;
const ENCODING_HINT: &str = "give the 12 features (age, sibsp, parch, fare, female, male, embark_C, embark_Q, embark_S, class_1, class_2, class_3) or titanic3.csv's columns (pclass, sex, age, sibsp, parch, fare, embarked)";

/// The network, as [`super::ARCHITECTURES`] lists it.
pub struct Titanic;

impl Architecture for Titanic {
    fn network(&self) -> NetworkInfo {
        NetworkInfo {
            name: "TitanicSimpleNNModel".into(),
            origin: "TorchServe's Titanic example".into(),
            description: DESCRIPTION.into(),
            source: SOURCE.into(),
        }
    }

    fn tensors(&self) -> &'static [TensorSpec] {
        &TENSORS
    }

    fn build(
        &self,
        state_dict: &StateDict,
        identity: ModelIdentity,
        _limits: ImageLimits,
    ) -> Result<Arc<dyn Model>, CoreError> {
        Ok(Arc::new(TitanicModel::new(state_dict, identity)?))
    }
}

/// The network's parameters, in PyTorch's layouts (`[out][in]` weights).
pub struct TitanicModel {
    info: ModelInfo,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    w3: Vec<f32>,
    b3: Vec<f32>,
}

/// What the backward pass needs of one forward pass.
struct Trace {
    hidden1: [f32; HIDDEN1],
    hidden2: [f32; HIDDEN2],
    probabilities: [f32; CLASSES],
}

impl TitanicModel {
    pub fn new(state_dict: &StateDict, identity: ModelIdentity) -> Result<Self, CoreError> {
        let [w1, b1, w2, b2, w3, b3] = TENSORS.map(|(name, _)| flat(state_dict, name));
        let identity = ModelIdentity {
            labels: identity
                .labels
                .or_else(|| Some(LABELS.iter().map(|l| (*l).to_owned()).collect())),
            ..identity
        };
        Ok(Self {
            info: ModelInfo {
                output: OutputInfo {
                    kind: OutputKind::Probabilities,
                    labels: labels(&identity, CLASSES)?,
                    answer: Answer::Label,
                },
                name: identity.name,
                version: identity.version,
                network: Titanic.network(),
                input: InputInfo {
                    kind: InputKind::Features,
                    name: "input-0".into(),
                    shape: vec![INPUTS],
                    feature_names: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
                },
                explanation: ExplanationInfo {
                    steps: EXPLANATION_STEPS,
                    target: DefaultTarget::Class(SURVIVED),
                },
                multiply_adds: (HIDDEN1 * INPUTS + HIDDEN2 * HIDDEN1 + CLASSES * HIDDEN2) as u64,
            },
            w1: w1?,
            b1: b1?,
            w2: w2?,
            b2: b2?,
            w3: w3?,
            b3: b3?,
        })
    }

    fn forward(&self, x: &[f32; INPUTS]) -> Trace {
        let hidden1 = layer::<INPUTS, HIDDEN1>(&self.w1, &self.b1, x).map(sigmoid);
        let hidden2 = layer::<HIDDEN1, HIDDEN2>(&self.w2, &self.b2, &hidden1).map(sigmoid);
        let logits = layer::<HIDDEN2, CLASSES>(&self.w3, &self.b3, &hidden2);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps = logits.map(|l| (l - max).exp());
        let sum: f32 = exps.iter().sum();
        Trace {
            hidden1,
            hidden2,
            probabilities: exps.map(|e| e / sum),
        }
    }

    /// ∂probability[target]/∂input at `x`.
    fn gradient(&self, x: &[f32; INPUTS], target: usize) -> [f32; INPUTS] {
        let trace = self.forward(x);
        let p = trace.probabilities;
        let p_target = p.get(target).copied().unwrap_or(0.0);
        // softmax: ∂p_t/∂z_k = p_t ([k = t] − p_k)
        let d_logits: [f32; CLASSES] =
            std::array::from_fn(|k| p_target * (f32::from(u8::from(k == target)) - p[k]));
        let d_hidden2 = back::<HIDDEN2, CLASSES>(&self.w3, &d_logits, &trace.hidden2);
        let d_hidden1 = back::<HIDDEN1, HIDDEN2>(&self.w2, &d_hidden2, &trace.hidden1);
        let mut d_x = [0f32; INPUTS];
        for (row, &d) in self.w1.chunks_exact(INPUTS).zip(&d_hidden1) {
            for (dx, &w) in d_x.iter_mut().zip(row) {
                *dx += d * w;
            }
        }
        d_x
    }

    /// The 12 features of a passenger record.
    fn encode(&self, record: &Record) -> Result<[f32; INPUTS], InputError> {
        let raw = ["pclass", "sex", "embarked"]
            .iter()
            .any(|column| record.has(column));
        let values: [f64; INPUTS] = if raw {
            encode_raw(record)?
        } else {
            let mut values = [0f64; INPUTS];
            for (value, feature) in values.iter_mut().zip(FEATURES) {
                *value = required_number(record, feature)?;
            }
            values
        };
        checked(&values)
    }
}

/// `out = weights · input + bias`, weights `[OUT][IN]`.
fn layer<const IN: usize, const OUT: usize>(
    weights: &[f32],
    bias: &[f32],
    input: &[f32; IN],
) -> [f32; OUT] {
    std::array::from_fn(|j| {
        let row = weights.get(j * IN..(j + 1) * IN).unwrap_or_default();
        bias.get(j).copied().unwrap_or(0.0) + row.iter().zip(input).map(|(w, x)| w * x).sum::<f32>()
    })
}

/// The gradient at a sigmoid layer's output `s`, back from the gradient at the next layer's input:
/// `(weightsᵀ · d_next) ⊙ s (1 − s)`.
fn back<const IN: usize, const OUT: usize>(
    weights: &[f32],
    d_next: &[f32; OUT],
    s: &[f32; IN],
) -> [f32; IN] {
    std::array::from_fn(|i| {
        let d: f32 = (0..OUT)
            .map(|j| d_next[j] * weights.get(j * IN + i).copied().unwrap_or(0.0))
            .sum();
        d * s[i] * (1.0 - s[i])
    })
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The column's number; `None` when it is missing or empty.
fn number(record: &Record, column: &str) -> Result<Option<f64>, InputError> {
    Ok(record
        .get(column)
        .map(|field| field.number(column))
        .transpose()?
        .flatten())
}

fn required_number(record: &Record, column: &str) -> Result<f64, InputError> {
    number(record, column)?.ok_or_else(|| missing(column))
}

fn missing(column: &str) -> InputError {
    InputError::MissingColumn {
        column: column.to_owned(),
        hint: ENCODING_HINT.to_owned(),
    }
}

/// The 12 features from `titanic3.csv`'s columns.
fn encode_raw(record: &Record) -> Result<[f64; INPUTS], InputError> {
    let bad = |column: &str, problem: String| InputError::Field {
        column: column.to_owned(),
        problem,
    };
    let pclass = required_number(record, "pclass")?;
    let class = [1.0, 2.0, 3.0]
        .iter()
        .position(|&c| c == pclass)
        .ok_or_else(|| bad("pclass", format!("{pclass} is not a class: 1, 2 or 3")))?;
    let sex = record
        .get("sex")
        .and_then(Field::text)
        .ok_or_else(|| missing("sex"))?
        .to_ascii_lowercase();
    let female = match sex.as_str() {
        "female" => 1.0,
        "male" => 0.0,
        other => return Err(bad("sex", format!("`{other}` is not `male` or `female`"))),
    };
    let port = record
        .get("embarked")
        .and_then(Field::text)
        .map(|port| port.to_ascii_uppercase());
    let embarked = match port.as_deref() {
        None => None,
        Some(port @ ("C" | "Q" | "S")) => ["C", "Q", "S"].iter().position(|p| *p == port),
        Some(other) => {
            return Err(bad(
                "embarked",
                format!("`{other}` is not a port: C, Q, S, or empty"),
            ))
        }
    };
    let one_hot = |index: Option<usize>, at: usize| f64::from(u8::from(index == Some(at)));
    Ok([
        number(record, "age")?.unwrap_or(MEAN_AGE),
        required_number(record, "sibsp")?,
        required_number(record, "parch")?,
        number(record, "fare")?.unwrap_or(MEAN_FARE),
        female,
        1.0 - female,
        one_hot(embarked, 0),
        one_hot(embarked, 1),
        one_hot(embarked, 2),
        one_hot(Some(class), 0),
        one_hot(Some(class), 1),
        one_hot(Some(class), 2),
    ])
}

/// Every feature finite and not negative, as the network's input.
fn checked(values: &[f64]) -> Result<[f32; INPUTS], InputError> {
    if values.len() != INPUTS {
        return Err(InputError::TensorSize {
            found: values.len(),
            expected: INPUTS,
            shapes: format!("[{INPUTS}]"),
        });
    }
    let mut features = [0f32; INPUTS];
    for ((feature, &value), name) in features.iter_mut().zip(values).zip(FEATURES) {
        if !value.is_finite() || value < 0.0 {
            return Err(InputError::Field {
                column: name.to_owned(),
                problem: format!("{value} is not a number of 0 or more"),
            });
        }
        *feature = value as f32;
    }
    Ok(features)
}

impl Model for TitanicModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn pre_process(&self, raw: RawInput<'_>) -> Result<ModelInput, CoreError> {
        let features = match raw {
            RawInput::Record(record) => self.encode(record)?,
            RawInput::Tensor(values) => checked(values)?,
            RawInput::File(_) => {
                return Err(InputError::WrongKind {
                    expected: "passengers (CSV rows, JSON records, or rows of 12 numbers)",
                    found: "a file",
                }
                .into())
            }
        };
        Ok(ModelInput(features.to_vec()))
    }

    fn predict(&self, batch: &[ModelInput]) -> Result<Vec<ModelOutput>, CoreError> {
        batch
            .iter()
            .map(|input| {
                let x = input.values()?;
                Ok(ModelOutput(self.forward(x).probabilities.to_vec()))
            })
            .collect()
    }

    fn explain(
        &self,
        input: &ModelInput,
        target: usize,
        steps: usize,
    ) -> Result<Explanation, CoreError> {
        let x = input.values()?;
        explain::integrated_gradients(
            &self.info,
            x,
            target,
            steps,
            |nodes| {
                let mut sum = [0f32; INPUTS];
                for &(alpha, weight) in nodes {
                    let scaled = x.map(|v| alpha as f32 * v);
                    for (s, g) in sum.iter_mut().zip(self.gradient(&scaled, target)) {
                        *s += weight as f32 * g;
                    }
                }
                sum.to_vec()
            },
            |at| self.forward(at).probabilities,
        )
    }

    fn explanation_png(
        &self,
        _input: &ModelInput,
        explanation: &Explanation,
    ) -> Result<Vec<u8>, CoreError> {
        let label = self
            .info
            .output
            .labels
            .get(explanation.target)
            .map_or_else(|| explanation.target.to_string(), Clone::clone);
        bar_chart_png(
            &format!("Integrated Gradients, target {label}"),
            &self.info.input.feature_names,
            &explanation.attributions,
        )
    }
}

impl From<&[f32]> for Record {
    /// The 12 encoded features as a record, for tests and clients that hold them as numbers.
    fn from(values: &[f32]) -> Self {
        Record(
            FEATURES
                .iter()
                .zip(values)
                .map(|(name, &v)| ((*name).to_owned(), Field::Number(f64::from(v))))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::architectures::test_support::random_state_dict;

    fn model() -> TitanicModel {
        let identity = ModelIdentity {
            name: "titanic".into(),
            version: "1.0".into(),
            labels: None,
        };
        TitanicModel::new(&random_state_dict(&TENSORS, 3), identity).expect("builds")
    }

    fn text(pairs: &[(&str, &str)]) -> Record {
        Record(
            pairs
                .iter()
                .map(|(k, v)| {
                    let field = if v.is_empty() {
                        Field::Missing
                    } else {
                        Field::Text((*v).to_owned())
                    };
                    ((*k).to_owned(), field)
                })
                .collect(),
        )
    }

    #[test]
    fn raw_columns_encode_as_the_example_trained() {
        let model = model();
        let raw = text(&[
            ("pclass", "2"),
            ("name", "Smith, Mrs."),
            ("sex", "female"),
            ("age", ""),
            ("sibsp", "1"),
            ("parch", "0"),
            ("fare", "13.5"),
            ("embarked", "Q"),
        ]);
        let encoded = model.encode(&raw).expect("encodes");
        let expected = [
            MEAN_AGE as f32,
            1.0,
            0.0,
            13.5,
            1.0,
            0.0,
            0.0,
            1.0,
            0.0,
            0.0,
            1.0,
            0.0,
        ];
        assert_eq!(encoded, expected);
        let from_numbers = model.encode(&Record::from(&expected[..])).expect("encodes");
        assert_eq!(from_numbers, expected);
        let no_port = text(&[
            ("pclass", "3"),
            ("sex", "MALE"),
            ("sibsp", "0"),
            ("parch", "0"),
            ("embarked", ""),
        ]);
        let encoded = model.encode(&no_port).expect("encodes");
        assert_eq!(encoded[3], MEAN_FARE as f32);
        assert_eq!(&encoded[4..], &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn bad_passengers_are_refused_naming_the_column() {
        let model = model();
        let base = [
            ("pclass", "1"),
            ("sex", "male"),
            ("sibsp", "0"),
            ("parch", "0"),
            ("embarked", "S"),
        ];
        let with = |column: &str, value: &'static str| {
            let mut pairs = base.to_vec();
            match pairs.iter_mut().find(|(k, _)| *k == column) {
                Some(pair) => pair.1 = value,
                None => pairs.push((column, value)),
            }
            model
                .encode(&text(&pairs))
                .expect_err("refused")
                .to_string()
        };
        assert!(with("pclass", "4").contains("column `pclass`: 4 is not a class"));
        assert!(with("sex", "mal").contains("column `sex`: `mal` is not `male` or `female`"));
        assert!(with("embarked", "X").contains("column `embarked`: `X` is not a port"));
        assert!(with("age", "old").contains("column `age`: `old` is not a number"));
        assert!(with("fare", "-3").contains("column `fare`: -3 is not a number of 0 or more"));
        let no_sibsp = text(&[("pclass", "1"), ("sex", "male"), ("parch", "0")]);
        assert!(model
            .encode(&no_sibsp)
            .expect_err("refused")
            .to_string()
            .starts_with("no `sibsp`: give the 12 features"));
        assert!(model.pre_process(RawInput::File(b"png")).is_err());
        assert!(model.pre_process(RawInput::Tensor(&[1.0; 11])).is_err());
        assert!(model
            .pre_process(RawInput::Tensor(&[f64::NAN; 12]))
            .is_err());
    }

    #[test]
    fn the_gradient_matches_finite_differences_and_explanations_converge() {
        let model = model();
        let x = [
            30.0f32, 1.0, 0.0, 20.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0,
        ]
        .map(|v| v / 10.0);
        let gradient = model.gradient(&x, 1);
        for index in 0..INPUTS {
            let (mut up, mut down) = (x, x);
            up[index] += 1e-2;
            down[index] -= 1e-2;
            let numeric = (f64::from(model.forward(&up).probabilities[1])
                - f64::from(model.forward(&down).probabilities[1]))
                / 2e-2;
            assert!(
                (numeric - f64::from(gradient[index])).abs() < 1e-4,
                "feature {index}: {numeric} vs {}",
                gradient[index]
            );
        }
        let input = ModelInput(x.to_vec());
        let explanation = model.explain(&input, 1, 50).expect("explains");
        assert!(explanation.convergence_delta.abs() < 1e-4);
        let png = model
            .explanation_png(&input, &explanation)
            .expect("a chart");
        assert!(image::load_from_memory(&png).is_ok());
    }
}

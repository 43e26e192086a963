//! Every protocol's path to a model: its instances pre-processed, then the whole batch in one
//! forward pass. Cheap requests run on the async worker that received them; expensive ones (big
//! images, big networks, explanations) go to their model's [`WorkQueue`](crate::work_queue::WorkQueue).

use max_mnist_core::{
    Classification, Explained, Explanation, ExplanationInfo, ModelInfo, RawInput, Work,
};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::Serialize;
use serde_json::Value;

use crate::errors::ApiError;
use crate::instance::Instance;
use crate::registry::ServedModel;
use crate::work_queue::classify_with;
use crate::RequestLimits;

/// Refuses a request with more instances than one forward pass may take.
pub fn check_instance_count(count: usize, limits: &RequestLimits) -> Result<(), ApiError> {
    match count {
        0 => Err(ApiError::BadRequest(
            "the request has no instances: send at least one".into(),
        )),
        count if count > limits.max_instances => Err(ApiError::BadRequest(format!(
            "the request has {count} instances, more than {} (setting limits.max_instances): split it",
            limits.max_instances
        ))),
        _ => Ok(()),
    }
}

/// Work that runs on the async worker that received it: for it the hand-off to the blocking pool
/// costs more than the work (measured in BENCHMARKS.md). 65,536 pixels take well under a
/// millisecond to decode and normalise, and a batch of 64 images of up to 1,024 pixels fits; 4 M
/// multiply-adds are a batch of 64 of a small convolutional network (~0.2 ms), but not one image
/// of a larger one.
const INLINE_WORK: Work = Work {
    pixels: 1 << 16,
    multiply_adds: 4_000_000,
};

fn runs_inline(work: Work) -> bool {
    work.pixels <= INLINE_WORK.pixels && work.multiply_adds <= INLINE_WORK.multiply_adds
}

/// Each instance's classification, in order, from one forward pass.
pub async fn classify(
    served: &ServedModel,
    instances: Vec<Instance>,
) -> Result<Vec<Classification>, ApiError> {
    let raws: Vec<RawInput<'_>> = instances.iter().map(Instance::raw).collect();
    let work = served.model.work(&raws);
    if runs_inline(work) {
        return Ok(classify_with(
            served.model.as_ref(),
            &instances,
            &served.batch_sizes,
        )?);
    }
    served.work_queue.classify(instances, work).await
}

/// Integrated Gradients for each instance: of its target, or of `settings.target`. Always on the
/// work queue: even a 12-feature model's 100-row explanation takes 6 ms, too long to hold a worker.
pub async fn explain(
    served: &ServedModel,
    instances: Vec<(Instance, Option<usize>)>,
    settings: ExplanationInfo,
) -> Result<Vec<Explained>, ApiError> {
    served.work_queue.explain(instances, settings).await
}

/// One instance's explanation.
pub async fn explain_one(
    served: &ServedModel,
    instance: Instance,
    target: Option<usize>,
    settings: ExplanationInfo,
) -> Result<Explained, ApiError> {
    explain(served, vec![(instance, target)], settings)
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("the explanation went missing".into()))
}

/// How the protocols' routes explain a model: as its description says ([`ModelInfo::explanation`],
/// its original handler's way), with the steps the request names in place of its own.
pub fn explanation_settings(info: &ModelInfo, steps: Option<usize>) -> ExplanationInfo {
    ExplanationInfo {
        steps: steps.unwrap_or(info.explanation.steps),
        ..info.explanation
    }
}

/// A whole number that a JSON request gives as `name` (`target`, `steps`); `None` when it is
/// absent or null. (Its range is the model's to check.)
pub fn json_number(value: Option<&Value>, name: &str) -> Result<Option<usize>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|number| usize::try_from(number).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{name} must be a whole number, got {value}"))
            }),
    }
}

/// The first instance's explanation, and the mean over them all (what the routes that answer
/// several instances with one explanation give).
pub fn first_and_mean(explained: &[Explained]) -> Result<(&Explained, Explanation), ApiError> {
    let mean = Explanation::mean(explained.iter().map(|e| &e.explanation));
    match (explained.first(), mean) {
        (Some(first), Some(mean)) => Ok((first, mean)),
        _ => Err(ApiError::Internal("no explanation came back".into())),
    }
}

/// Flat values written as nested JSON arrays of `shape` (`[2,3]` → 2 rows of 3), as `f32`.
pub struct Nested<'a> {
    pub values: &'a [f32],
    pub shape: &'a [usize],
}

impl Serialize for Nested<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some((_, inner_shape @ [_, ..])) = self.shape.split_first() else {
            return self.values.serialize(serializer);
        };
        let inner: usize = inner_shape.iter().product::<usize>().max(1);
        let mut seq = serializer.serialize_seq(Some(self.values.len().div_ceil(inner)))?;
        for chunk in self.values.chunks(inner) {
            seq.serialize_element(&Nested {
                values: chunk,
                shape: inner_shape,
            })?;
        }
        seq.end()
    }
}

/// Values by feature name, in the model's feature order, as `f32`: `{"feature_0": -0.73, …}`.
pub struct FeatureMap<'a> {
    pub names: &'a [String],
    pub values: &'a [f32],
}

impl Serialize for FeatureMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.names.len()))?;
        for (name, value) in self.names.iter().zip(self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A shape without its leading 1s: `[1,H,W]` → `[H,W]`.
pub fn trimmed(shape: &[usize]) -> &[usize] {
    let mut shape = shape;
    while let [1, rest @ ..] = shape {
        if rest.is_empty() {
            break;
        }
        shape = rest;
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_size_batches_run_inline_and_big_work_does_not() {
        let batch_of_64 = Work {
            pixels: 64 * 784,
            multiply_adds: 64 * 51_000,
        };
        assert!(runs_inline(batch_of_64));
        assert!(!runs_inline(Work {
            pixels: 300 * 300,
            multiply_adds: 51_000
        }));
        assert!(!runs_inline(Work {
            pixels: 784,
            multiply_adds: 12_000_000
        }));
    }

    #[test]
    fn values_nest_in_their_shape() {
        let values: Vec<f32> = (0..6).map(|v| v as f32 * 0.5).collect();
        let nested = |shape: &[usize]| {
            serde_json::to_string(&Nested {
                values: &values,
                shape,
            })
            .expect("serialises")
        };
        assert_eq!(nested(&[6]), "[0.0,0.5,1.0,1.5,2.0,2.5]");
        assert_eq!(nested(&[2, 3]), "[[0.0,0.5,1.0],[1.5,2.0,2.5]]");
        assert_eq!(nested(&[1, 2, 3]), "[[[0.0,0.5,1.0],[1.5,2.0,2.5]]]");
        assert_eq!(trimmed(&[1, 28, 28]), [28, 28]);
        assert_eq!(trimmed(&[1]), [1]);
    }
}

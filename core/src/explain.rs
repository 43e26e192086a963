//! Integrated Gradients (Sundararajan et al. 2017) of one output with respect to the normalised
//! input, as Captum's `IntegratedGradients` computes them: baseline zeros (in normalised space), the
//! path integral by Gauss–Legendre quadrature on [0, 1] (Captum's default `gausslegendre`). Each
//! architecture brings its own analytic gradient.

use crate::model::ModelInfo;
use crate::CoreError;

/// Attributions of one input to one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The output (class) explained.
    pub target: usize,
    /// One value per input value, in the input's layout and in the units of the output.
    pub attributions: Vec<f32>,
    /// Σ attributions − (output(input) − output(baseline)): how far the quadrature is from exact.
    pub convergence_delta: f32,
}

impl Explanation {
    /// The mean per input value over `explanations` (of one target), as the Titanic example's
    /// handler answers; `None` for none.
    pub fn mean<'a>(
        explanations: impl IntoIterator<Item = &'a Explanation>,
    ) -> Option<Explanation> {
        let mut explanations = explanations.into_iter().peekable();
        let first = explanations.peek()?;
        let target = first.target;
        let mut sums = vec![0f64; first.attributions.len()];
        let mut delta = 0f64;
        let mut count = 0f64;
        for explanation in explanations {
            for (sum, &a) in sums.iter_mut().zip(&explanation.attributions) {
                *sum += f64::from(a);
            }
            delta += f64::from(explanation.convergence_delta);
            count += 1.0;
        }
        Some(Explanation {
            target,
            attributions: sums.iter().map(|s| (s / count) as f32).collect(),
            convergence_delta: (delta / count) as f32,
        })
    }
}

/// Most quadrature points accepted.
pub const MAX_STEPS: usize = 512;
/// The quadrature points TorchServe's image handlers give Captum.
pub const TORCHSERVE_IMAGE_STEPS: usize = 15;

/// Gauss–Legendre nodes and weights for `n` points, mapped from [−1, 1] to [0, 1] (as Captum does with
/// `numpy.polynomial.legendre.leggauss`).
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    (1..=n)
        .map(|i| {
            // Newton's method from the classic initial guess of the i-th root.
            let mut x = (std::f64::consts::PI * (i as f64 - 0.25) / (n as f64 + 0.5)).cos();
            let mut derivative = 1.0;
            for _ in 0..100 {
                let (p, dp) = legendre(n, x);
                derivative = dp;
                let step = p / dp;
                x -= step;
                if step.abs() < 1e-15 {
                    break;
                }
            }
            let weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
            ((x + 1.0) / 2.0, weight / 2.0)
        })
        .rev()
        .collect()
}

/// P_n(x) and P_n'(x), by the three-term recurrence.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut previous, mut current) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let k = k as f64;
        let next = ((2.0 * k - 1.0) * x * current - (k - 1.0) * previous) / k;
        previous = current;
        current = next;
    }
    let derivative = n as f64 * (x * current - previous) / (x * x - 1.0);
    (current, derivative)
}

/// Refuses a target the model does not have or a step count out of 1..=[`MAX_STEPS`].
pub fn check_arguments(info: &ModelInfo, target: usize, steps: usize) -> Result<(), CoreError> {
    let classes = info.output.labels.len();
    if target >= classes {
        return Err(CoreError::Argument(format!(
            "target must be a class from 0 to {}, got {target}",
            classes.saturating_sub(1)
        )));
    }
    if !(1..=MAX_STEPS).contains(&steps) {
        return Err(CoreError::Argument(format!(
            "steps must be from 1 to {MAX_STEPS}, got {steps}"
        )));
    }
    Ok(())
}

/// Integrated Gradients of output `target` at `input` with `steps` quadrature points, after
/// [`check_arguments`]. `path_gradient(nodes)` is Σᵢ weightᵢ · ∇output(alphaᵢ · input) for the
/// quadrature's (alpha, weight) nodes; `outputs(x)` are the network's outputs at `x`.
pub fn integrated_gradients<const N: usize, O: AsRef<[f32]>>(
    info: &ModelInfo,
    input: &[f32; N],
    target: usize,
    steps: usize,
    path_gradient: impl FnOnce(&[(f64, f64)]) -> Vec<f32>,
    outputs: impl Fn(&[f32; N]) -> O,
) -> Result<Explanation, CoreError> {
    check_arguments(info, target, steps)?;
    let output = |x: &[f32; N]| outputs(x).as_ref().get(target).copied().unwrap_or(f32::NAN);
    let average = path_gradient(&gauss_legendre(steps));
    let attributions: Vec<f32> = average
        .iter()
        .zip(input)
        .map(|(average, &x)| average * x)
        .collect();
    let rise = f64::from(output(input)) - f64::from(output(&[0.0; N]));
    let total: f64 = attributions.iter().map(|&a| f64::from(a)).sum();
    Ok(Explanation {
        target,
        attributions,
        convergence_delta: (total - rise) as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_numpy_and_integrates_polynomials_exactly() {
        // numpy.polynomial.legendre.leggauss(3), mapped to [0, 1].
        let nodes = gauss_legendre(3);
        let expected = [
            (0.1127016653792583, 0.2777777777777778),
            (0.5, 0.4444444444444444),
            (0.8872983346207417, 0.2777777777777778),
        ];
        for ((x, w), (ex, ew)) in nodes.iter().zip(expected) {
            assert!((x - ex).abs() < 1e-14 && (w - ew).abs() < 1e-14, "{x} {w}");
        }
        for n in [1, 5, 15, 50, 200] {
            let nodes = gauss_legendre(n);
            let weight: f64 = nodes.iter().map(|(_, w)| w).sum();
            assert!((weight - 1.0).abs() < 1e-12, "n = {n}");
            // Exact for polynomials of degree 2n − 1: ∫₀¹ x^(2n−1) dx = 1/(2n).
            let degree = (2 * n - 1) as i32;
            let integral: f64 = nodes.iter().map(|(x, w)| w * x.powi(degree)).sum();
            assert!((integral - 1.0 / (2 * n) as f64).abs() < 1e-10, "n = {n}");
        }
    }
}

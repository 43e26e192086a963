//! Integrated Gradients (Sundararajan et al. 2017) of one class logit with respect to the normalised
//! input, as Captum's `IntegratedGradients` computes it: baseline zeros (in normalised space), the
//! path integral by Gauss–Legendre quadrature on [0, 1] (Captum's default `gausslegendre`), the
//! gradients from MyConvNet's analytic backward pass ([`PlainNet`]).

use crate::gradient::PlainNet;
use crate::{CoreError, ModelInput, IMAGE_PIXELS, NUM_CLASSES};

/// Attributions of one input to one class.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The class explained.
    pub target: usize,
    /// One value per pixel, row-major 28×28, in the units of the logit.
    pub attributions: Vec<f32>,
    /// Σ attributions − (logit(input) − logit(baseline)): how far the quadrature is from exact.
    pub convergence_delta: f32,
}

/// Most quadrature points accepted.
pub const MAX_STEPS: usize = 512;

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

/// Integrated Gradients of logit `target` at `input`, with `steps` quadrature points.
pub fn integrated_gradients(
    net: &PlainNet,
    input: &ModelInput,
    target: usize,
    steps: usize,
) -> Result<Explanation, CoreError> {
    if target >= NUM_CLASSES || !(1..=MAX_STEPS).contains(&steps) {
        return Err(CoreError::Inference(candle_core::Error::Msg(format!(
            "target {target} must be 0..9 and steps {steps} 1..={MAX_STEPS}"
        ))));
    }
    let pixels: &[f32; IMAGE_PIXELS] = &input.0;
    let average = net.path_gradient(pixels, target, &gauss_legendre(steps));
    let attributions: Vec<f32> = average
        .iter()
        .zip(pixels)
        .map(|(average, &x)| average * x)
        .collect();
    let rise =
        f64::from(net.logits(pixels)[target]) - f64::from(net.logits(&[0.0; IMAGE_PIXELS])[target]);
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

//! A picture of an explanation: the digit in gray, positive attributions in red, negative in blue,
//! on a scale symmetric around zero, blown up so that a person can see it.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

use crate::CoreError;

/// Each of the 28×28 pixels becomes a square of this side: a 280×280 picture.
pub const SCALE: u32 = 10;
const POSITIVE: [f32; 3] = [230.0, 40.0, 30.0];
const NEGATIVE: [f32; 3] = [30.0, 110.0, 240.0];

/// The heatmap of a `side`×`side` image as PNG bytes.
pub fn heatmap_png(
    intensities: &[f32],
    attributions: &[f32],
    side: usize,
) -> Result<Vec<u8>, CoreError> {
    let mut png = Vec::new();
    heatmap(intensities, attributions, side)
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|err| CoreError::Encoding(err.to_string()))?;
    Ok(png)
}

/// The heatmap: the image (`intensities` in 0..1, row-major `side`×`side`) dimmed to gray, each
/// pixel tinted by its attribution's share of the largest magnitude (so +a and −a are equally
/// strong).
pub fn heatmap(intensities: &[f32], attributions: &[f32], side: usize) -> RgbImage {
    let largest = attributions
        .iter()
        .fold(0f32, |m, a| m.max(a.abs()))
        .max(f32::MIN_POSITIVE);
    let side = side as u32;
    RgbImage::from_fn(side * SCALE, side * SCALE, |x, y| {
        let index = ((y / SCALE) * side + x / SCALE) as usize;
        let ink = intensities.get(index).map_or(0.0, |v| v.clamp(0.0, 1.0));
        let gray = 40.0 + 120.0 * ink;
        let share = attributions
            .get(index)
            .map_or(0.0, |a| (a / largest).clamp(-1.0, 1.0));
        let colour = if share >= 0.0 { POSITIVE } else { NEGATIVE };
        let strength = share.abs().sqrt();
        Rgb(colour.map(|c| (gray * (1.0 - strength) + c * strength).round() as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_input::{MNIST_PIXELS, MNIST_SIDE};

    #[test]
    fn the_picture_is_280_square_and_symmetric_in_colour() {
        let input = [1.0; MNIST_PIXELS];
        let mut attributions = vec![0.0; MNIST_PIXELS];
        attributions[0] = 2.0;
        attributions[1] = -2.0;
        let picture = heatmap(&input, &attributions, MNIST_SIDE);
        assert_eq!(picture.dimensions(), (280, 280));
        assert_eq!(
            picture.get_pixel(5, 5).0,
            [230, 40, 30],
            "the largest positive is pure red"
        );
        assert_eq!(
            picture.get_pixel(15, 5).0,
            [30, 110, 240],
            "the largest negative is pure blue"
        );
        assert_eq!(
            picture.get_pixel(25, 5).0,
            [160, 160, 160],
            "no attribution: the ink in gray"
        );
        let png = heatmap_png(&input, &attributions, MNIST_SIDE).expect("encodes");
        let decoded = image::load_from_memory(&png).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), (280, 280));
    }
}

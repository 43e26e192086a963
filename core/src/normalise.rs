//! Any picture of a digit → a 28×28 MNIST-style image, made the way MNIST itself was made:
//! ink bright on black, the digit's longer side 20 px, its centre of mass at the canvas centre.
//!
//! Steps: composite alpha onto white → luma → invert when the border is light → stretch the contrast
//! between background and ink → crop to the ink's bounding box (found on a median-filtered copy, so
//! specks of noise do not stretch it) → longer side to 20 px → centre of mass at (14, 14).

use image::imageops::{self, FilterType};
use image::{DynamicImage, GenericImageView, GrayImage, ImageBuffer, Luma};

use crate::image_input::{MNIST_PIXELS, MNIST_SIDE};

/// Larger pictures are first shrunk (by area averaging) so that their longer side is this long:
/// enough detail for a 20 px digit, and bounded work for every later step.
pub const WORKING_SIDE: u32 = 512;
/// The digit's longer side in the 28×28 canvas, as in MNIST.
pub const DIGIT_BOX: u32 = 20;
/// Below this spread between background and brightest ink (of 255) the image holds no digit.
const MIN_CONTRAST: f32 = 24.0;
/// Share of the ink's full brightness a pixel needs to count towards the bounding box.
const INK_THRESHOLD: f32 = 0.35;
/// Background level: this quantile of the border, so that a noisy background stays black.
const BACKGROUND_QUANTILE: f32 = 0.9;

pub type FloatImage = ImageBuffer<Luma<f32>, Vec<f32>>;

/// The MNIST-style 28×28 pixels of any image.
pub fn mnist_style(image: DynamicImage) -> [u8; MNIST_PIXELS] {
    let ink = ink_bright(shrink(composite_luma(image)));
    let filtered = median3(&ink);
    let Some(levels) = Levels::measure(&ink, &filtered) else {
        return [0; MNIST_PIXELS];
    };
    let Some(bbox) = ink_bounding_box(&ink, &filtered, &levels) else {
        return [0; MNIST_PIXELS];
    };
    let digit = FloatImage::from_fn(bbox.width, bbox.height, |x, y| {
        Luma([levels.stretch(ink.get_pixel(bbox.x + x, bbox.y + y).0[0])])
    });
    centre_by_mass(&scale_to_box(&digit))
}

/// Luma (ITU-R 601, as PIL's `convert("L")`) of the image composited onto white.
///
/// 8-bit images are converted in their own buffer, so that a big upload is not held twice.
pub fn composite_luma(image: DynamicImage) -> GrayImage {
    let (width, height) = image.dimensions();
    let raw = match image {
        DynamicImage::ImageLuma8(gray) => return gray,
        DynamicImage::ImageLumaA8(gray) => luma_in_place(gray.into_raw(), 2),
        DynamicImage::ImageRgb8(rgb) => luma_in_place(rgb.into_raw(), 3),
        DynamicImage::ImageRgba8(rgba) => luma_in_place(rgba.into_raw(), 4),
        other => other
            .pixels()
            .map(|(_, _, pixel)| luma_on_white(pixel.0))
            .collect(),
    };
    GrayImage::from_raw(width, height, raw).unwrap_or_default()
}

/// Overwrites the start of `raw` (pixels of `channels` bytes: LA, RGB or RGBA) with their luma on
/// white; pixel i is read before byte i is written, since i ≤ i × channels.
fn luma_in_place(mut raw: Vec<u8>, channels: usize) -> Vec<u8> {
    let pixels = raw.len() / channels;
    for i in 0..pixels {
        let at = i * channels;
        let rgba = match raw.get(at..at + channels) {
            Some(&[l, a]) => [l, l, l, a],
            Some(&[r, g, b]) => [r, g, b, 255],
            Some(&[r, g, b, a]) => [r, g, b, a],
            _ => [255; 4],
        };
        if let Some(slot) = raw.get_mut(i) {
            *slot = luma_on_white(rgba);
        }
    }
    raw.truncate(pixels);
    raw.shrink_to_fit();
    raw
}

fn luma_on_white(rgba: [u8; 4]) -> u8 {
    let [r, g, b, a] = rgba.map(u32::from);
    let luma = (299 * r + 587 * g + 114 * b + 500) / 1000;
    ((luma * a + 255 * (255 - a) + 127) / 255) as u8
}

/// Shrinks by area averaging so that the longer side is at most [`WORKING_SIDE`].
fn shrink(gray: GrayImage) -> GrayImage {
    let (width, height) = gray.dimensions();
    let longer = width.max(height);
    if longer <= WORKING_SIDE {
        return gray;
    }
    let scaled =
        |side: u32| ((u64::from(side) * u64::from(WORKING_SIDE)) / u64::from(longer)).max(1) as u32;
    imageops::thumbnail(&gray, scaled(width), scaled(height))
}

/// Inverts the image when its border is mostly light, so that the ink is the bright part.
pub fn ink_bright(mut gray: GrayImage) -> GrayImage {
    let border = border_pixels(&gray);
    let mean = border.iter().map(|&p| f32::from(p)).sum::<f32>() / border.len().max(1) as f32;
    if mean > 127.5 {
        imageops::invert(&mut gray);
    }
    gray
}

fn border_pixels(gray: &GrayImage) -> Vec<u8> {
    let (width, height) = gray.dimensions();
    gray.enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == width || *y + 1 == height)
        .map(|(_, _, pixel)| pixel.0[0])
        .collect()
}

/// Background and ink brightness: the span the contrast is stretched over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    background: f32,
    peak: f32,
}

impl Levels {
    /// The background is a high quantile of the border (a noisy background stays black); the peak is
    /// the brightest pixel of the median-filtered image (one hot pixel does not set it).
    /// `None` when the two are too close: there is no ink.
    pub fn measure(ink: &GrayImage, filtered: &GrayImage) -> Option<Self> {
        let mut border = border_pixels(ink);
        border.sort_unstable();
        let index = (border.len().saturating_sub(1) as f32 * BACKGROUND_QUANTILE) as usize;
        let background = f32::from(border.get(index).copied().unwrap_or(0));
        let peak = f32::from(filtered.pixels().map(|p| p.0[0]).max().unwrap_or(0));
        (peak - background >= MIN_CONTRAST).then_some(Self { background, peak })
    }

    /// 0 for the background, 1 for the brightest ink.
    pub fn stretch(&self, value: u8) -> f32 {
        ((f32::from(value) - self.background) / (self.peak - self.background)).clamp(0.0, 1.0)
    }
}

/// 3×3 median, edges replicated: removes isolated specks, keeps strokes.
pub fn median3(gray: &GrayImage) -> GrayImage {
    let (width, height) = gray.dimensions();
    GrayImage::from_fn(width, height, |x, y| {
        let mut window = [0u8; 9];
        let columns = [x.saturating_sub(1), x, (x + 1).min(width - 1)];
        let rows = [y.saturating_sub(1), y, (y + 1).min(height - 1)];
        for (slot, (sx, sy)) in window.iter_mut().zip(
            rows.iter()
                .flat_map(|&sy| columns.iter().map(move |&sx| (sx, sy))),
        ) {
            *slot = gray.get_pixel(sx, sy).0[0];
        }
        window.sort_unstable();
        Luma([window[4]])
    })
}

/// A rectangle of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The ink's bounding box: found on the median-filtered image (noise tolerance), or, when that
/// erases everything (strokes one pixel thin), on the image itself.
pub fn ink_bounding_box(ink: &GrayImage, filtered: &GrayImage, levels: &Levels) -> Option<Rect> {
    let inked = |image: &GrayImage| {
        bounding_box(image.width(), image.height(), |x, y| {
            levels.stretch(image.get_pixel(x, y).0[0]) >= INK_THRESHOLD
        })
    };
    inked(filtered).or_else(|| inked(ink))
}

fn bounding_box(width: u32, height: u32, is_ink: impl Fn(u32, u32) -> bool) -> Option<Rect> {
    let (mut left, mut top, mut right, mut bottom) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if is_ink(x, y) {
                left = left.min(x);
                top = top.min(y);
                right = right.max(x);
                bottom = bottom.max(y);
            }
        }
    }
    (left <= right && top <= bottom).then(|| Rect {
        x: left,
        y: top,
        width: right - left + 1,
        height: bottom - top + 1,
    })
}

/// Scales so that the longer side is [`DIGIT_BOX`] pixels, keeping the aspect ratio.
pub fn scale_to_box(digit: &FloatImage) -> FloatImage {
    let (width, height) = digit.dimensions();
    let longer = width.max(height).max(1);
    let scaled = |side: u32| {
        ((f64::from(side) * f64::from(DIGIT_BOX) / f64::from(longer)).round() as u32)
            .clamp(1, DIGIT_BOX)
    };
    let mut resized =
        imageops::resize(digit, scaled(width), scaled(height), FilterType::CatmullRom);
    // CatmullRom overshoots a little at sharp edges.
    resized
        .pixels_mut()
        .for_each(|p| p.0[0] = p.0[0].clamp(0.0, 1.0));
    resized
}

/// Places the digit in a black 28×28 canvas with its centre of mass at the centre (14, 14), as
/// MNIST did (integer shift, the digit kept whole inside the canvas).
pub fn centre_by_mass(digit: &FloatImage) -> [u8; MNIST_PIXELS] {
    let side = MNIST_SIDE as u32;
    let (width, height) = digit.dimensions();
    let (mut mass, mut sum_x, mut sum_y) = (0f64, 0f64, 0f64);
    for (x, y, pixel) in digit.enumerate_pixels() {
        let value = f64::from(pixel.0[0]);
        mass += value;
        sum_x += value * (f64::from(x) + 0.5);
        sum_y += value * (f64::from(y) + 0.5);
    }
    let centre = f64::from(side) / 2.0;
    let offset = |sum: f64, extent: u32| {
        let com = if mass > 0.0 {
            sum / mass
        } else {
            f64::from(extent) / 2.0
        };
        (centre - com)
            .round()
            .clamp(0.0, f64::from(side.saturating_sub(extent))) as u32
    };
    let (left, top) = (offset(sum_x, width), offset(sum_y, height));
    let mut canvas = [0u8; MNIST_PIXELS];
    for (x, y, pixel) in digit.enumerate_pixels() {
        let (cx, cy) = (left + x, top + y);
        if cx < side && cy < side {
            canvas[(cy * side + cx) as usize] = (pixel.0[0] * 255.0).round() as u8;
        }
    }
    canvas
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    /// A `width`×`height` image of `background` with the rectangle `ink` filled with `ink_value`.
    fn gray_with_block(
        width: u32,
        height: u32,
        background: u8,
        ink: Rect,
        ink_value: u8,
    ) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            let inside =
                (ink.x..ink.x + ink.width).contains(&x) && (ink.y..ink.y + ink.height).contains(&y);
            Luma([if inside { ink_value } else { background }])
        })
    }

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// Bounding box of the pixels above half brightness in a 28×28 canvas.
    fn canvas_box(pixels: &[u8; MNIST_PIXELS]) -> Option<Rect> {
        bounding_box(28, 28, |x, y| pixels[(y * 28 + x) as usize] > 127)
    }

    fn centre_of_mass(pixels: &[u8; MNIST_PIXELS]) -> (f64, f64) {
        let (mut mass, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for (i, &p) in pixels.iter().enumerate() {
            let value = f64::from(p);
            mass += value;
            sx += value * ((i % 28) as f64 + 0.5);
            sy += value * ((i / 28) as f64 + 0.5);
        }
        (sx / mass, sy / mass)
    }

    #[test]
    fn alpha_is_composited_onto_white_and_luma_follows_itu_601() {
        let image = RgbaImage::from_fn(4, 1, |x, _| match x {
            0 => Rgba([0, 0, 0, 0]),       // transparent: white paper
            1 => Rgba([255, 0, 0, 255]),   // red: 0.299 × 255
            2 => Rgba([0, 0, 0, 128]),     // half-transparent black
            _ => Rgba([10, 200, 30, 255]), // green
        });
        let gray = composite_luma(DynamicImage::ImageRgba8(image.clone()));
        assert_eq!(gray.as_raw(), &vec![255, 76, 127, 124]);
        let rgba16 = DynamicImage::ImageRgba16(DynamicImage::ImageRgba8(image).to_rgba16());
        let gray = composite_luma(rgba16);
        assert_eq!(gray.as_raw(), &vec![255, 76, 127, 124]);
    }

    #[test]
    fn a_light_border_is_inverted_and_a_dark_one_kept() {
        let paper = gray_with_block(10, 10, 230, rect(3, 3, 4, 4), 20);
        let inverted = ink_bright(paper);
        assert_eq!(inverted.get_pixel(0, 0).0[0], 25);
        assert_eq!(inverted.get_pixel(4, 4).0[0], 235);
        let board = gray_with_block(10, 10, 20, rect(3, 3, 4, 4), 230);
        assert_eq!(ink_bright(board.clone()), board);
    }

    #[test]
    fn levels_span_background_to_ink_and_a_flat_image_has_none() {
        let image = gray_with_block(20, 20, 40, rect(5, 5, 8, 8), 200);
        let levels = Levels::measure(&image, &median3(&image)).expect("ink");
        assert_eq!(levels.stretch(40), 0.0);
        assert_eq!(levels.stretch(10), 0.0);
        assert_eq!(levels.stretch(200), 1.0);
        assert!((levels.stretch(120) - 0.5).abs() < 1e-6);
        let flat = GrayImage::from_pixel(20, 20, Luma([90]));
        assert_eq!(Levels::measure(&flat, &flat), None);
        let faint = gray_with_block(20, 20, 40, rect(5, 5, 8, 8), 50);
        assert_eq!(Levels::measure(&faint, &median3(&faint)), None);
    }

    #[test]
    fn the_median_filter_removes_specks_and_keeps_strokes() {
        let mut image = gray_with_block(12, 12, 0, rect(2, 2, 3, 8), 255);
        image.put_pixel(9, 9, Luma([255]));
        let filtered = median3(&image);
        assert_eq!(filtered.get_pixel(9, 9).0[0], 0, "the speck is gone");
        assert_eq!(filtered.get_pixel(3, 5).0[0], 255, "the stroke stays");
    }

    #[test]
    fn the_bounding_box_ignores_salt_noise_and_finds_thin_strokes() {
        let mut image = gray_with_block(40, 30, 0, rect(10, 6, 7, 15), 220);
        for (x, y) in [(1, 1), (38, 2), (35, 27), (2, 25), (25, 14)] {
            image.put_pixel(x, y, Luma([255]));
        }
        let filtered = median3(&image);
        let levels = Levels::measure(&image, &filtered).expect("ink");
        assert_eq!(
            ink_bounding_box(&image, &filtered, &levels),
            Some(rect(10, 6, 7, 15))
        );

        let line = gray_with_block(40, 30, 0, rect(12, 3, 1, 20), 255);
        let filtered = median3(&line);
        let levels = Levels {
            background: 0.0,
            peak: 255.0,
        };
        assert_eq!(
            ink_bounding_box(&line, &filtered, &levels),
            Some(rect(12, 3, 1, 20))
        );
    }

    #[test]
    fn the_longer_side_becomes_20_pixels_keeping_the_aspect() {
        let tall = FloatImage::from_pixel(10, 40, Luma([1.0]));
        assert_eq!(scale_to_box(&tall).dimensions(), (5, 20));
        let wide = FloatImage::from_pixel(300, 100, Luma([1.0]));
        let scaled = scale_to_box(&wide);
        assert_eq!(scaled.dimensions(), (20, 7));
        assert!(scaled.pixels().all(|p| (0.0..=1.0).contains(&p.0[0])));
        let sliver = FloatImage::from_pixel(1000, 1, Luma([1.0]));
        assert_eq!(scale_to_box(&sliver).dimensions(), (20, 1));
    }

    #[test]
    fn the_centre_of_mass_lands_on_14_14_and_the_digit_stays_whole() {
        let block = FloatImage::from_pixel(10, 20, Luma([1.0]));
        let canvas = centre_by_mass(&block);
        assert_eq!(canvas_box(&canvas), Some(rect(9, 4, 10, 20)));
        assert_eq!(centre_of_mass(&canvas), (14.0, 14.0));

        // Mass in the left column only: the shift that would centre it would push the digit out.
        let lopsided = FloatImage::from_fn(20, 20, |x, _| Luma([if x < 2 { 1.0 } else { 0.05 }]));
        let canvas = centre_by_mass(&lopsided);
        assert_eq!(
            canvas[4 * 28 + 8],
            255,
            "placed at the right edge's limit, x = 8"
        );
        assert_eq!(canvas[4 * 28 + 27], 13);
    }

    #[test]
    fn a_picture_without_ink_gives_a_black_canvas() {
        for image in [
            DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 200, Rgb([250, 250, 240]))),
            DynamicImage::ImageRgba8(RgbaImage::new(50, 50)),
            DynamicImage::ImageLuma8(GrayImage::new(1, 1)),
        ] {
            assert_eq!(mnist_style(image), [0; MNIST_PIXELS]);
        }
    }

    #[test]
    fn colours_polarity_and_size_do_not_change_the_result() {
        // An "L" drawn at 100×100: a reference in white on black.
        let draw = |scale: u32, ink: [u8; 3], paper: [u8; 3]| {
            RgbImage::from_fn(100 * scale, 100 * scale, |x, y| {
                let (x, y) = (x / scale, y / scale);
                let stroke = ((30..40).contains(&x) && (20..80).contains(&y))
                    || ((30..65).contains(&x) && (70..80).contains(&y));
                Rgb(if stroke { ink } else { paper })
            })
        };
        let reference = mnist_style(DynamicImage::ImageRgb8(draw(1, [255; 3], [0; 3])));
        assert_eq!(canvas_box(&reference).map(|b| b.height), Some(20));
        for (scale, ink, paper) in [
            (1, [0, 0, 0], [255, 255, 255]),
            (1, [200, 30, 30], [250, 240, 150]),
            (3, [20, 20, 120], [240, 240, 240]),
        ] {
            let result = mnist_style(DynamicImage::ImageRgb8(draw(scale, ink, paper)));
            let size =
                |pixels: &[u8; MNIST_PIXELS]| canvas_box(pixels).map(|b| (b.width, b.height));
            assert_eq!(
                size(&result),
                size(&reference),
                "scale {scale}, ink {ink:?}"
            );
            let (x, y) = centre_of_mass(&result);
            assert!(
                (x - 14.0).abs() <= 0.5 && (y - 14.0).abs() <= 0.5,
                "centre ({x}, {y})"
            );
            let mass =
                |pixels: &[u8; MNIST_PIXELS]| pixels.iter().map(|&p| f64::from(p)).sum::<f64>();
            let ratio = mass(&result) / mass(&reference);
            assert!(
                (0.95..=1.05).contains(&ratio),
                "scale {scale}, ink {ink:?}: mass ratio {ratio}"
            );
        }
    }
}

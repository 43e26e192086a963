//! Any picture of a digit → a 28×28 MNIST-style image, made the way MNIST itself was made:
//! ink bright on black, the digit's longer side 20 px, its centre of mass at the canvas centre.
//!
//! Steps: composite alpha onto white → luma → invert when the border is light → stretch the contrast
//! between background and ink → crop to the ink's bounding box (found on a median-filtered copy, so
//! specks of noise do not stretch it) → longer side to 20 px → centre of mass at (14, 14).

use image::imageops::{self, FilterType};
use image::{DynamicImage, GenericImageView, GrayImage, ImageBuffer, Luma};

use crate::{IMAGE_PIXELS, IMAGE_SIDE};

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
pub fn mnist_style(image: &DynamicImage) -> [u8; IMAGE_PIXELS] {
    let ink = ink_bright(shrink(composite_luma(image)));
    let filtered = median3(&ink);
    let Some(levels) = Levels::measure(&ink, &filtered) else {
        return [0; IMAGE_PIXELS];
    };
    let Some(bbox) = ink_bounding_box(&ink, &filtered, &levels) else {
        return [0; IMAGE_PIXELS];
    };
    let digit = FloatImage::from_fn(bbox.width, bbox.height, |x, y| {
        Luma([levels.stretch(ink.get_pixel(bbox.x + x, bbox.y + y).0[0])])
    });
    centre_by_mass(&scale_to_box(&digit))
}

/// Luma (ITU-R 601, as PIL's `convert("L")`) of the image composited onto white.
pub fn composite_luma(image: &DynamicImage) -> GrayImage {
    if let DynamicImage::ImageLuma8(gray) = image {
        return gray.clone();
    }
    let (width, height) = image.dimensions();
    let mut gray = GrayImage::new(width, height);
    for (x, y, pixel) in image.pixels() {
        let [r, g, b, a] = pixel.0.map(u32::from);
        let luma = (299 * r + 587 * g + 114 * b + 500) / 1000;
        let on_white = (luma * a + 255 * (255 - a) + 127) / 255;
        gray.put_pixel(x, y, Luma([on_white as u8]));
    }
    gray
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
pub fn centre_by_mass(digit: &FloatImage) -> [u8; IMAGE_PIXELS] {
    let side = IMAGE_SIDE as u32;
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
    let mut canvas = [0u8; IMAGE_PIXELS];
    for (x, y, pixel) in digit.enumerate_pixels() {
        let (cx, cy) = (left + x, top + y);
        if cx < side && cy < side {
            canvas[(cy * side + cx) as usize] = (pixel.0[0] * 255.0).round() as u8;
        }
    }
    canvas
}

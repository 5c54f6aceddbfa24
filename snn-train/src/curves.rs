//! A PNG of the training curves: training loss (left panel, scaled to its
//! own range; per logged step from `steps.jsonl` when there is one, else
//! per epoch) and test accuracy (right panel, 0 to 1 with a line every 0.1)
//! or, for models that do not classify, test loss (scaled to its range).
//! Drawn directly with `image` so no font or plotting stack is needed; the
//! numbers themselves are in `metrics.jsonl`.

use crate::records::{EpochMetrics, StepMetrics};
use image::{Rgb, RgbImage};
use snn_core::{Error, Result};
use std::path::Path;

const W: u32 = 400;
const H: u32 = 300;
const PAD: u32 = 20;

pub fn write_png(path: &Path, history: &[EpochMetrics], steps: &[StepMetrics]) -> Result<()> {
    let mut img = RgbImage::from_pixel(2 * W, H, Rgb([255, 255, 255]));
    let losses: Vec<f32> = if steps.len() >= 2 {
        steps.iter().map(|m| m.loss).collect()
    } else {
        history.iter().map(|m| m.train_loss).collect()
    };
    let (lo, hi) = range(&losses);
    panel(&mut img, 0, &losses, lo, hi, Rgb([200, 40, 40]), None);
    let accs: Option<Vec<f32>> = history.iter().map(|m| m.test_accuracy).collect();
    match accs {
        Some(accs) => panel(&mut img, W, &accs, 0.0, 1.0, Rgb([30, 90, 200]), Some(0.1)),
        None => {
            let test: Vec<f32> = history.iter().map(|m| m.test_loss).collect();
            let (lo, hi) = range(&test);
            panel(&mut img, W, &test, lo, hi, Rgb([30, 90, 200]), None);
        }
    }
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| Error::data(&tmp, format!("cannot write PNG: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// From 0 (or the minimum, if negative) to the maximum.
fn range(ys: &[f32]) -> (f32, f32) {
    let (lo, hi) = ys
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    (lo.min(0.0), hi.max(lo + 1e-6))
}

fn panel(
    img: &mut RgbImage,
    x0: u32,
    ys: &[f32],
    lo: f32,
    hi: f32,
    color: Rgb<u8>,
    grid: Option<f32>,
) {
    let (pw, ph) = (W - 2 * PAD, H - 2 * PAD);
    let to_px = |i: usize, v: f32| -> (i64, i64) {
        let n = ys.len().max(2) - 1;
        let x = x0 + PAD + (i as u32 * pw) / n as u32;
        let f = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        (x as i64, (PAD + ph) as i64 - (f * ph as f32) as i64)
    };
    if let Some(step) = grid {
        let mut g = lo;
        while g <= hi + 1e-6 {
            let (_, y) = to_px(0, g);
            line(
                img,
                (x0 + PAD) as i64,
                y,
                (x0 + PAD + pw) as i64,
                y,
                Rgb([225, 225, 225]),
            );
            g += step;
        }
    }
    // Axes.
    let black = Rgb([0, 0, 0]);
    line(
        img,
        (x0 + PAD) as i64,
        PAD as i64,
        (x0 + PAD) as i64,
        (PAD + ph) as i64,
        black,
    );
    line(
        img,
        (x0 + PAD) as i64,
        (PAD + ph) as i64,
        (x0 + PAD + pw) as i64,
        (PAD + ph) as i64,
        black,
    );
    for i in 1..ys.len() {
        let (a, b) = (to_px(i - 1, ys[i - 1]), to_px(i, ys[i]));
        line(img, a.0, a.1, b.0, b.1, color);
    }
    for (i, v) in ys.iter().enumerate() {
        let (x, y) = to_px(i, *v);
        for dx in -2..=2 {
            for dy in -2..=2 {
                put(img, x + dx, y + dy, color);
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn line(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb<u8>) {
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
    for s in 0..=steps {
        let x = x0 + (x1 - x0) * s / steps;
        let y = y0 + (y1 - y0) * s / steps;
        put(img, x, y, c);
    }
}

//! Per-epoch validation: every slice of each validation volume predicted, the 3-D
//! masks compared per volume at model resolution, and the sample slice for the
//! epoch's figure.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;

use super::config::TrainConfig;
use super::step::{batch_tensors, forward_loss};
use super::trainer::TrainError;
use crate::data::CachedSubject;
use crate::model::{UNet, logits_to_labels};
use ctseg_core::geometry::IDENTITY;
use ctseg_core::metrics::evaluate;
use ctseg_core::render::{FigureSlice, LabelTable, four_panels};
use ctseg_core::structures::catalog;
use ctseg_core::window::MODEL_WINDOW;
use ctseg_core::{Geometry, LabelVolume};

/// Validation results of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Mean loss over all validation slices.
    pub loss: f64,
    /// Per-structure Dice averaged over the volumes where it is defined.
    pub dice: BTreeMap<String, f64>,
    /// Mean of `dice` over structures.
    pub dice_mean: Option<f64>,
    /// The slice of the first validation volume with the most ground-truth pixels,
    /// with its prediction (for the per-epoch sample figure).
    pub sample: Option<SampleSlice>,
}

/// One validation slice at model resolution, with its ground truth and prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSlice {
    /// Subject id.
    pub subject: String,
    /// Axial slice index (canonical LPS order).
    pub slice: usize,
    /// Side of the square slice.
    pub size: usize,
    /// Model input in [0, 1] (the HU window [-200, 300]).
    pub image: Vec<f32>,
    /// Ground-truth labels.
    pub gt: Vec<u8>,
    /// Predicted labels.
    pub pred: Vec<u8>,
}

impl SampleSlice {
    /// The four-panel figure CT | GT | Pred | overlay as RGBA `(width, height, pixels)`;
    /// rows run anterior → posterior and columns right → left (radiological view).
    pub fn figure(&self) -> (usize, usize, Vec<u8>) {
        let hu: Vec<i16> = self
            .image
            .iter()
            .map(|&v| {
                let lo = MODEL_WINDOW.center - MODEL_WINDOW.width / 2.0;
                (lo + v * MODEL_WINDOW.width).round() as i16
            })
            .collect();
        let slice = FigureSlice {
            hu: &hu,
            gt: &self.gt,
            pred: &self.pred,
            width: self.size,
            height: self.size,
        };
        let table = LabelTable::from_catalog(catalog());
        four_panels(slice, self.size, MODEL_WINDOW, &table)
    }

    /// Write [`SampleSlice::figure`] as a PNG (temporary file, then renamed).
    pub fn write_png(&self, path: &Path) -> ctseg_core::Result<()> {
        let (w, h, rgba) = self.figure();
        let image = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
            .ok_or_else(|| ctseg_core::Error::Invalid("sample figure has the wrong size".into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ctseg_core::Error::io(dir, e))?;
        }
        ctseg_core::io::atomic_write(path, "png", |tmp| {
            image
                .save_with_format(tmp, image::ImageFormat::Png)
                .map_err(|e| ctseg_core::Error::format(path, e.to_string()))
        })
    }
}

/// Predict every slice of each validation volume and compare the 3-D label volumes
/// at model resolution (the cached grid) with the ground truth.
pub fn run_validation(
    model: &UNet,
    subjects: &[CachedSubject],
    batch_size: usize,
    device: &Device,
    threshold: f32,
    config: &TrainConfig,
) -> Result<Validation, TrainError> {
    let mut loss_sum = 0.0;
    let mut loss_slices = 0usize;
    let mut dice_sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut sample = None;
    let label_map = config.data.label_map();
    for subject in subjects {
        let size = subject.header.size;
        let n = size * size;
        let slices = subject.header.slices;
        let mut predicted = Vec::with_capacity(slices * n);
        let mut image = vec![0f32; n];
        let mut label_buf = vec![0u8; n];
        let mut k = 0;
        while k < slices {
            let b = batch_size.min(slices - k);
            let mut images = Vec::with_capacity(b * n);
            let mut labels = Vec::with_capacity(b * n);
            for j in 0..b {
                subject.read_slice(k + j, &mut image, &mut label_buf)?;
                images.extend_from_slice(&image);
                labels.extend(label_buf.iter().map(|&l| label_map[l as usize] as f32));
            }
            let (x, targets) =
                batch_tensors(images, labels, b, size, config.model.num_classes, device);
            let (logits, l) = forward_loss(model, x, targets, config.run.loss);
            let l = l.into_scalar::<f32>() as f64;
            loss_sum += l * b as f64;
            loss_slices += b;
            let labels = logits_to_labels(logits, threshold).into_data();
            predicted.extend(
                labels
                    .iter::<i64>()
                    .map(|v| label_map[v.clamp(0, 255) as usize]),
            );
            k += b;
        }
        let spacing = subject.header.source_spacing;
        let [sx, sy, _] = subject.header.source_shape;
        let mut affine = IDENTITY;
        affine[0][0] = spacing[0] * sx as f64 / size as f64;
        affine[1][1] = spacing[1] * sy as f64 / size as f64;
        affine[2][2] = spacing[2];
        let geometry = Geometry::new([size, size, slices], affine);
        let mut gt_labels = subject.read_all_labels()?;
        for l in &mut gt_labels {
            *l = label_map[*l as usize];
        }
        if sample.is_none() {
            sample = sample_slice(subject, &gt_labels, &predicted)?;
        }
        let gt = LabelVolume::new(geometry.clone(), gt_labels)?;
        let pred = LabelVolume::new(geometry, predicted)?;
        let evaluation = evaluate(&gt, &pred, catalog())?;
        for s in evaluation.structures {
            if let Some(d) = s.dice {
                let e = dice_sums.entry(s.name).or_insert((0.0, 0));
                e.0 += d;
                e.1 += 1;
            }
        }
    }
    let dice: BTreeMap<String, f64> = dice_sums
        .into_iter()
        .map(|(name, (sum, count))| (name, sum / count as f64))
        .collect();
    let dice_mean = (!dice.is_empty()).then(|| dice.values().sum::<f64>() / dice.len() as f64);
    Ok(Validation {
        loss: loss_sum / loss_slices.max(1) as f64,
        dice,
        dice_mean,
        sample,
    })
}

/// The slice of `subject` with the most labelled ground-truth pixels (the middle slice
/// when none has any).
fn sample_slice(
    subject: &CachedSubject,
    gt: &[u8],
    pred: &[u8],
) -> Result<Option<SampleSlice>, TrainError> {
    let n = subject.slice_len();
    let slices = subject.header.slices;
    if n == 0 || slices == 0 || gt.len() != n * slices || pred.len() != n * slices {
        return Ok(None);
    }
    let best = (0..slices)
        .map(|k| (gt[k * n..(k + 1) * n].iter().filter(|&&l| l > 0).count(), k))
        .max_by_key(|&(count, k)| (count, std::cmp::Reverse(k)))
        .filter(|&(count, _)| count > 0)
        .map_or(slices / 2, |(_, k)| k);
    let mut image = vec![0f32; n];
    let mut labels = vec![0u8; n]; // read_slice fills both; the remapped `gt` is used
    subject.read_slice(best, &mut image, &mut labels)?;
    Ok(Some(SampleSlice {
        subject: subject.header.id.clone(),
        slice: best,
        size: subject.header.size,
        image,
        gt: gt[best * n..(best + 1) * n].to_vec(),
        pred: pred[best * n..(best + 1) * n].to_vec(),
    }))
}

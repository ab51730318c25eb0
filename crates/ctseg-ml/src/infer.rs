//! Whole-volume inference: a [`Predictor`] turns a CT into a multilabel volume on the
//! CT's own grid.
//!
//! Pipeline: reorient to the canonical slice orientation (as in training) → for each
//! batch of axial slices: HU window [-200, 300] → [0, 1], bilinear resize to the model
//! input (the same function that fills the training cache), forward pass, sigmoid → optional smoothing of probabilities with the
//! neighbouring slices (weights ¼, ½, ¼) → bilinear resize of the probabilities back
//! to the slice grid (on the device) → per pixel the most probable structure among
//! those above the threshold → u8 labels written into the result, which is finally
//! put back into the source voxel order. Only one batch of probabilities exists at
//! a time; the full-resolution result is u8.

use std::path::{Path, PathBuf};

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{FloatDType, TensorData};

use crate::backend::BackendKind;
use crate::model::checkpoint::{CheckpointError, load_model};
use crate::model::{UNet, UNetConfig};
use ctseg_core::geometry::AxisTransform;
use ctseg_core::postprocess::keep_largest_components;
use ctseg_core::slicing::CANONICAL_ORIENTATION;
use ctseg_core::structures::NUM_STRUCTURES;
use ctseg_core::volume::IndexMap;
use ctseg_core::window::model_input_slice;
use ctseg_core::{LabelVolume, Volume};

/// Errors of inference.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The checkpoint could not be used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint predicts another set of classes.
    #[error(
        "{path}: the model has {classes} output classes; ctseg predicts the {NUM_STRUCTURES} TotalSegmentator structures"
    )]
    WrongClasses {
        /// Weights file.
        path: PathBuf,
        /// Its class count.
        classes: usize,
    },
    /// The input cannot be predicted.
    #[error(transparent)]
    Input(#[from] ctseg_core::Error),
    /// Cancelled through the progress callback.
    #[error("prediction cancelled")]
    Cancelled,
    /// The machine could not give the memory a buffer needs.
    #[error("not enough memory for {what} ({} MiB)", bytes >> 20)]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
        /// What they were for.
        what: &'static str,
    },
    /// A weight or BatchNorm statistic does not fit the requested type.
    #[error(
        "the model has a value of magnitude {largest:.3e}, beyond what {precision} can hold ({limit:.0}); choose bf16 or f32 (--precision)"
    )]
    OutOfRange {
        /// The requested precision.
        precision: Precision,
        /// Largest |value| among the weights and running statistics.
        largest: f32,
        /// Largest finite value of the type.
        limit: f32,
    },
    /// The device cannot compute in the requested precision.
    #[error(
        "{device} cannot compute in {precision} (its driver does not offer that type); choose f32 (--precision f32)"
    )]
    UnsupportedPrecision {
        /// The device, as `select` describes it.
        device: String,
        /// The requested precision.
        precision: Precision,
    },
}

/// Float type of the forward pass. Parameters and activations are stored and computed
/// in it; the logits are cast back to f32 before the sigmoid, the resampling and the
/// threshold.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (the training precision).
    #[default]
    F32,
    /// IEEE half precision: half the memory traffic, tensor cores on NVIDIA GPUs.
    F16,
    /// bfloat16: f32's range with 8 mantissa bits.
    Bf16,
}

impl Precision {
    /// The flag spelling: `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Burn's float type for this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// Largest finite value of the type.
    pub fn max_finite(self) -> f32 {
        match self {
            Precision::F16 => 65504.0,
            Precision::F32 | Precision::Bf16 => f32::MAX,
        }
    }

    /// Whether `device` can store and compute in this precision.
    pub fn supported_on(self, device: &Device) -> bool {
        device.supports_dtype(self.dtype())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `model` with every float parameter and buffer (BatchNorm running statistics
/// included) cast to `precision`. Its forward pass then expects input of that type.
pub fn cast_floats(model: UNet, precision: Precision) -> UNet {
    model.map(&mut CastFloats(precision.dtype()))
}

/// Largest |value| among a module's float parameters and buffers (NaN counts as
/// infinite).
struct LargestMagnitude(f32);

impl ModuleVisitor for LargestMagnitude {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let m = param.val().abs().max().into_scalar::<f32>();
        self.0 = if m.is_nan() {
            f32::INFINITY
        } else {
            self.0.max(m)
        };
    }
}

/// The [`ModuleMapper`] behind [`cast_floats`].
struct CastFloats(FloatDType);

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// Inference settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictOptions {
    /// Probability above which a structure is present.
    pub threshold: f32,
    /// Slices per forward pass.
    pub batch_size: usize,
    /// Smooth probabilities across neighbouring slices (¼, ½, ¼).
    pub smooth: bool,
    /// Keep only the largest 3-D connected component of single-object structures.
    pub largest_component: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            threshold: 0.5,
            batch_size: 8,
            smooth: false,
            largest_component: false,
        }
    }
}

/// A loaded model on a device, ready to predict volumes.
pub struct Predictor {
    model: UNet,
    config: UNetConfig,
    device: Device,
    kind: BackendKind,
    weights: PathBuf,
    precision: Precision,
}

impl Predictor {
    /// Load weights (file, checkpoint folder or run folder, whose `best` is used) onto
    /// `device`. The model must predict the 117 catalog structures.
    pub fn load(path: &Path, device: Device, kind: BackendKind) -> Result<Self, InferError> {
        let (model, config, weights) = load_model(path, &device)?;
        if config.num_classes != NUM_STRUCTURES {
            return Err(InferError::WrongClasses {
                path: weights,
                classes: config.num_classes,
            });
        }
        Ok(Predictor {
            model,
            config,
            device,
            kind,
            weights,
            precision: Precision::F32,
        })
    }

    /// Wrap an in-memory model (e.g. the one being trained).
    pub fn from_model(model: UNet, config: UNetConfig, device: Device, kind: BackendKind) -> Self {
        Predictor {
            model: model.valid(),
            config,
            device,
            kind,
            weights: PathBuf::new(),
            precision: Precision::F32,
        }
    }

    /// Compute in `precision` from now on (the weights are cast once, here). Fails when
    /// the device does not support the type; `device_name` is used in that message.
    pub fn with_precision(
        mut self,
        precision: Precision,
        device_name: &str,
    ) -> Result<Self, InferError> {
        if precision == self.precision {
            return Ok(self);
        }
        if !precision.supported_on(&self.device) {
            return Err(InferError::UnsupportedPrecision {
                device: device_name.to_string(),
                precision,
            });
        }
        let mut largest = LargestMagnitude(0.0);
        self.model.visit(&mut largest);
        if largest.0 > precision.max_finite() {
            return Err(InferError::OutOfRange {
                precision,
                largest: largest.0,
                limit: precision.max_finite(),
            });
        }
        self.model = cast_floats(self.model, precision);
        self.precision = precision;
        Ok(self)
    }

    /// The float type of the forward pass.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The weights file this predictor was loaded from.
    pub fn weights(&self) -> &Path {
        &self.weights
    }

    /// The model configuration.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Predict `ct` (HU). `progress(done, total)` is called after each batch of slices;
    /// returning `false` cancels. The result has the CT's shape and `world_from_voxel`.
    pub fn predict(
        &self,
        ct: &Volume<i16>,
        options: &PredictOptions,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<LabelVolume, InferError> {
        let source_geometry = ct.geometry().clone();
        let to_canonical = source_geometry
            .transform_to(CANONICAL_ORIENTATION)
            .ok_or_else(|| {
                ctseg_core::Error::Invalid("the CT's affine has no clear axis orientation".into())
            })?;
        // The canonical volume is never built: slices are read from the source and
        // labels written straight back in source order, so the peak stays at the CT,
        // its labels and one batch (no whole-volume copies).
        let map = IndexMap::new(source_geometry.shape, &to_canonical);
        let [nx, ny, nz] = map.new_shape;
        let s = self.config.input_size;
        let c = self.config.num_classes;
        let batch = options.batch_size.max(1);

        // Upsampling all classes of a batch at once needs b·C·nx·ny floats; split the
        // batch so one buffer stays within what every backend accepts (lavapipe: 128 MiB).
        let budget_bytes: usize = match self.kind {
            // Auto is resolved at load; the smallest budget is safe anyway.
            BackendKind::Wgpu | BackendKind::Auto => 96 << 20,
            BackendKind::Cuda => 1 << 30,
            BackendKind::Cpu => 256 << 20,
        };
        let per_slice = c * nx * ny * 4;
        let chunk = (budget_bytes / per_slice.max(1)).clamp(1, batch);
        // The peak: the labels, one batch through the network (its widest
        // activations are 32 channels at the input size, kept for the skip) with
        // its probabilities, and one chunk of probabilities at the CT's size.
        let input_bytes = (batch * s * s * 4) as u64;
        let batch_bytes = input_bytes * (3 * 32 + 2 * c as u64);
        let needed = ct.data().len() as u64 + batch_bytes + (chunk * per_slice) as u64;
        ctseg_core::memory::check_fits(Path::new("the CT"), needed, "predicting it")?;
        let mut labels: Vec<u8> = Vec::new();
        labels
            .try_reserve_exact(ct.data().len())
            .map_err(|_| InferError::OutOfMemory {
                bytes: ct.data().len() as u64,
                what: "the label volume",
            })?;
        labels.resize(ct.data().len(), 0);
        let mut chunk_labels = Vec::new();

        let mut k = 0;
        while k < nz {
            let b = batch.min(nz - k);
            // With smoothing, also run the neighbours of the batch's first and last slice.
            let lo = if options.smooth {
                k.saturating_sub(1)
            } else {
                k
            };
            let hi = if options.smooth {
                (k + b + 1).min(nz)
            } else {
                k + b
            };
            let probs = self.probabilities(ct, &to_canonical, [nx, ny], lo..hi, s)?;
            let probs = if options.smooth {
                smooth_slices(probs, k - lo, b, k == 0, k + b == nz)
            } else {
                probs
            };
            let mut j = 0;
            while j < b {
                let n = chunk.min(b - j);
                chunk_labels.resize(n * nx * ny, 0);
                self.label_chunk(
                    probs.clone().narrow(0, j, n),
                    [nx, ny],
                    options.threshold,
                    &mut chunk_labels,
                );
                // Rows of the chunk (canonical order) to their places in the source.
                for (row, values) in chunk_labels.chunks_exact(nx).enumerate() {
                    let (jj, kk) = (row % ny, k + j + row / ny);
                    let mut at = map.source_index(0, jj, kk) as isize;
                    for &v in values {
                        labels[at as usize] = v;
                        at += map.step[0];
                    }
                }
                j += n;
            }
            k += b;
            if !progress(k, nz) {
                return Err(InferError::Cancelled);
            }
        }
        let mut result = LabelVolume::new(source_geometry, labels)?;
        if options.largest_component {
            // Connected components do not depend on the voxel order.
            keep_largest_components(&mut result);
        }
        Ok(result)
    }

    /// Labels of a chunk of slices from their probabilities `[n, C, s, s]`: bilinear
    /// resampling to `nx × ny`, then per pixel the most probable structure above
    /// `threshold`. A bilinear sample is a convex combination of its neighbours, so a
    /// structure whose probability stays at or below the threshold everywhere in the
    /// chunk can never win; those are dropped before resampling (exact, and in a
    /// typical slice most of the 117 are).
    fn label_chunk(&self, probs: Tensor<4>, [nx, ny]: [usize; 2], threshold: f32, out: &mut [u8]) {
        let [n, c, s, _] = probs.dims();
        let peak: Vec<f32> = probs
            .clone()
            .swap_dims(0, 1)
            .reshape([c, n * s * s])
            .max_dim(1)
            .into_data()
            .iter::<f32>()
            .collect();
        let present: Vec<usize> = (0..c).filter(|&k| peak[k] > threshold).collect();
        if present.is_empty() {
            out.fill(0);
            return;
        }
        let probs = if present.len() < c {
            let index: Vec<i64> = present.iter().map(|&k| k as i64).collect();
            let index =
                Tensor::<1, Int>::from_data(TensorData::new(index, [present.len()]), &self.device);
            probs.select(1, index)
        } else {
            probs
        };
        let probs = if (nx, ny) == (s, s) {
            probs
        } else {
            interpolate(
                probs,
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([ny, nx]),
            )
        };
        let (max, index) = probs.max_dim_with_indices(1);
        let background = max.lower_equal_elem(threshold as f64);
        let index = index.mask_fill(background, -1).into_data();
        for (o, v) in out.iter_mut().zip(index.iter::<i64>()) {
            *o = usize::try_from(v)
                .ok()
                .and_then(|v| present.get(v))
                .map_or(0, |&k| (k + 1).min(255) as u8);
        }
    }

    /// Sigmoid probabilities `[slices, C, s, s]` for canonical slices `range`.
    fn probabilities(
        &self,
        ct: &Volume<i16>,
        to_canonical: &AxisTransform,
        [nx, ny]: [usize; 2],
        range: std::ops::Range<usize>,
        s: usize,
    ) -> Result<Tensor<4>, InferError> {
        let mut src = vec![0f32; nx * ny];
        let mut input = vec![0f32; range.len() * s * s];
        for (j, k) in range.clone().enumerate() {
            let slice = ct.transformed_slices(to_canonical, k..k + 1);
            model_input_slice(
                &slice,
                nx,
                ny,
                s,
                &mut src,
                &mut input[j * s * s..(j + 1) * s * s],
            );
        }
        let x =
            Tensor::<4>::from_data(TensorData::new(input, [range.len(), 1, s, s]), &self.device);
        let logits = match self.precision {
            Precision::F32 => self.model.forward(x),
            p => self.model.forward(x.cast(p.dtype())).cast(FloatDType::F32),
        };
        Ok(sigmoid(logits))
    }
}

/// Weighted average ¼·p[k-1] + ½·p[k] + ¼·p[k+1] for the `b` slices starting at
/// `offset` of `probs`; at the volume's first/last slice the missing neighbour is
/// replaced by the slice itself.
fn smooth_slices(probs: Tensor<4>, offset: usize, b: usize, first: bool, last: bool) -> Tensor<4> {
    let centre = probs.clone().narrow(0, offset, b);
    let prev = if first {
        if b > 1 {
            Tensor::cat(
                vec![
                    centre.clone().narrow(0, 0, 1),
                    centre.clone().narrow(0, 0, b - 1),
                ],
                0,
            )
        } else {
            centre.clone()
        }
    } else {
        probs.clone().narrow(0, offset - 1, b)
    };
    let next = if last {
        if b > 1 {
            Tensor::cat(
                vec![
                    centre.clone().narrow(0, 1, b - 1),
                    centre.clone().narrow(0, b - 1, 1),
                ],
                0,
            )
        } else {
            centre.clone()
        }
    } else {
        probs.narrow(0, offset + 1, b)
    };
    centre * 0.5 + (prev + next) * 0.25
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multiplies every float parameter and buffer.
    struct Scale(f32);

    impl ModuleMapper for Scale {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let k = self.0;
            param.map(|t| t * k)
        }
    }

    fn tiny() -> (UNet, UNetConfig) {
        let config = UNetConfig {
            base_channels: 2,
            depth: 2,
            input_size: 16,
            ..Default::default()
        };
        (config.init(&Device::flex()), config)
    }

    #[test]
    fn casting_changes_every_parameter_type_and_keeps_the_values() {
        let (model, config) = tiny();
        let reference = model.clone().valid();
        let p = Predictor::from_model(model, config, Device::flex(), BackendKind::Cpu)
            .with_precision(Precision::F16, "cpu")
            .expect("flex has f16");
        assert_eq!(p.precision(), Precision::F16);
        struct Types(Vec<burn::tensor::DType>);
        impl ModuleVisitor for Types {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.push(param.val().dtype());
            }
        }
        let mut types = Types(Vec::new());
        p.model.visit(&mut types);
        assert!(types.0.len() > 10, "{} tensors", types.0.len());
        assert!(
            types.0.iter().all(|t| *t == burn::tensor::DType::F16),
            "{:?}",
            types.0
        );
        let x = Tensor::<4>::random(
            [2, 1, 16, 16],
            burn::tensor::Distribution::Default,
            &p.device,
        );
        let half = p.model.forward(x.clone().cast(FloatDType::F16));
        assert_eq!(half.dtype(), burn::tensor::DType::F16);
        let full: Vec<f32> = reference.forward(x).into_data().iter::<f32>().collect();
        let half: Vec<f32> = half
            .cast(FloatDType::F32)
            .into_data()
            .iter::<f32>()
            .collect();
        let scale = full.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = full
            .iter()
            .zip(&half)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0);
        assert!(worst <= 1e-2 * scale, "max |Δ| {worst} at scale {scale}");
    }

    #[test]
    fn dropping_structures_below_the_threshold_gives_the_dense_labels() {
        let (model, config) = tiny();
        let device = Device::flex();
        let p = Predictor::from_model(model, config, device.clone(), BackendKind::Cpu);
        // 2 slices, 6 classes, 8×8: classes 1 and 4 reach above 0.5 somewhere, the
        // others stay below (class 2 just below, at 0.49).
        let probs = Tensor::<4>::random(
            [2, 6, 8, 8],
            burn::tensor::Distribution::Uniform(0.0, 0.49),
            &device,
        );
        let boost = Tensor::<4>::random(
            [2, 6, 8, 8],
            burn::tensor::Distribution::Uniform(0.0, 0.6),
            &device,
        );
        let mask: Vec<f32> = (0..2 * 6 * 64)
            .map(|i| {
                if matches!(i / 64 % 6, 1 | 4) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::<4>::from_data(TensorData::new(mask, [2, 6, 8, 8]), &device);
        let probs = probs + boost * mask;
        for (nx, ny) in [(8, 8), (19, 13)] {
            let mut fast = vec![0u8; 2 * nx * ny];
            p.label_chunk(probs.clone(), [nx, ny], 0.5, &mut fast);
            let dense = interpolate(
                probs.clone(),
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([ny, nx]),
            );
            let (max, index) = dense.max_dim_with_indices(1);
            let background = max.lower_equal_elem(0.5);
            let reference: Vec<u8> = index
                .add_scalar(1)
                .mask_fill(background, 0)
                .into_data()
                .iter::<i64>()
                .map(|v| v as u8)
                .collect();
            assert_eq!(fast, reference, "{nx}×{ny}");
            assert!(
                fast.contains(&2) && fast.contains(&5),
                "classes 1 and 4 win"
            );
            assert!(fast.contains(&0));
        }
        // Nothing above the threshold: all background, without resampling.
        let mut out = vec![9u8; 2 * 19 * 13];
        p.label_chunk(probs.clamp_max(0.5), [19, 13], 0.5, &mut out);
        assert!(out.iter().all(|&l| l == 0));
    }

    #[test]
    fn weights_beyond_the_half_range_are_refused_by_f16_not_bf16() {
        let (model, config) = tiny();
        let big = model.map(&mut Scale(1e6));
        let err = Predictor::from_model(
            big.clone(),
            config.clone(),
            Device::flex(),
            BackendKind::Cpu,
        )
        .with_precision(Precision::F16, "cpu")
        .err()
        .expect("refused")
        .to_string();
        assert!(err.contains("f16") && err.contains("bf16"), "{err}");
        Predictor::from_model(big, config, Device::flex(), BackendKind::Cpu)
            .with_precision(Precision::Bf16, "cpu")
            .expect("bf16 has f32's range");
    }

    #[test]
    fn smoothing_averages_neighbours_and_clamps_at_the_ends() {
        let device = Device::flex();
        // 4 slices, 1 class, 1×1 pixels with values 0, 4, 8, 12.
        let probs =
            Tensor::<4>::from_floats([[[[0.0]]], [[[4.0]]], [[[8.0]]], [[[12.0]]]], &device);
        let all = smooth_slices(probs.clone(), 0, 4, true, true);
        let v: Vec<f32> = all.into_data().iter::<f32>().collect();
        assert_eq!(v, vec![1.0, 4.0, 8.0, 11.0]);
        // Middle batch (slices 1..3) with neighbours 0 and 3 present.
        let mid = smooth_slices(probs, 1, 2, false, false);
        let v: Vec<f32> = mid.into_data().iter::<f32>().collect();
        assert_eq!(v, vec![4.0, 8.0]);
    }
}

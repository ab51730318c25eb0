//! Export of the U-Net as an ONNX model (`ctseg export`), for onnxruntime, TensorRT,
//! OpenVINO and other runtimes.
//!
//! The graph repeats [`UNet::forward`](crate::model::UNet::forward) with standard
//! operators only: `Conv` (3×3, zero padding 1; the 1×1 head), `BatchNormalization`
//! in inference form with the running statistics (kept as separate nodes, not folded
//! into the convolutions, so the weights stay those of the checkpoint and the
//! arithmetic is ctseg's; runtimes fold it themselves), `Relu`, `MaxPool` (2×2,
//! stride 2), `ConvTranspose` (2×2, stride 2) and `Concat` (`[skip, upsampled]`).
//! Input `image`: float32 NCHW `[batch, 1, size, size]`, CT slices windowed to
//! [-200, 300] HU → [0, 1]; output `logits`: `[batch, classes, size, size]`, no
//! sigmoid. The batch axis is symbolic (`batch`) or fixed. `metadata_props` say how to
//! make the input and name the output channels ([`metadata_keys`]).
//!
//! The protobuf messages are written by hand ([`proto`]): only the part of
//! `onnx.proto` the exporter needs.

mod onnx;
pub mod proto;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use prost::Message;

use crate::backend::{self, BackendError, BackendKind};
use crate::model::UNetConfig;
use crate::model::checkpoint::{CheckpointError, load_model, write_file};

pub use onnx::unet_to_onnx;

/// Name of the graph input.
pub const INPUT_NAME: &str = "image";
/// Name of the graph output.
pub const OUTPUT_NAME: &str = "logits";
/// Lowest opset written: `ConvTranspose`, `MaxPool` and `Concat` as used here are
/// defined from opset 11 on.
pub const MIN_OPSET: i64 = 11;
/// Highest opset written (the newest checked against onnx's checker and onnxruntime).
pub const MAX_OPSET: i64 = 21;
/// Opset written unless asked otherwise.
pub const DEFAULT_OPSET: i64 = 17;

/// Keys of the model's `metadata_props`.
pub mod metadata_keys {
    /// Side of the square input in pixels, e.g. `256`.
    pub const INPUT_SIZE: &str = "ctseg.input_size";
    /// The HU window mapped to [0, 1], as JSON: `[-200.0,300.0]`.
    pub const WINDOW_HU: &str = "ctseg.window_hu";
    /// How a CT slice becomes the input, in words.
    pub const PREPROCESSING: &str = "ctseg.preprocessing";
    /// What the output channels are, in words.
    pub const OUTPUT: &str = "ctseg.output";
    /// Structure names in channel order (channel c is label c + 1), as a JSON list.
    pub const LABELS: &str = "ctseg.labels";
    /// The model configuration (`UNetConfig`) as JSON.
    pub const MODEL_CONFIG: &str = "ctseg.model_config";
    /// The version of ctseg that wrote the file.
    pub const VERSION: &str = "ctseg.version";
}

/// Errors of the export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The weights could not be loaded or the file could not be written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The CPU device could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An opset outside what the exporter writes.
    #[error(
        "opset {opset} is not supported: ctseg writes ONNX opsets {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})"
    )]
    UnsupportedOpset {
        /// The opset asked for.
        opset: i64,
    },
    /// A model tensor the graph needs is absent.
    #[error("the model has no tensor '{name}': not a ctseg U-Net of this layout")]
    MissingTensor {
        /// Burn path of the tensor.
        name: String,
    },
    /// A model tensor has another shape than the configuration implies.
    #[error(
        "tensor '{name}' has shape {found:?}, expected {expected:?} from the model configuration"
    )]
    TensorShape {
        /// Burn path of the tensor.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape it has.
        found: Vec<usize>,
    },
    /// A model tensor the graph does not use (the exporter does not know the layout).
    #[error("the model has a tensor '{name}' that the exported graph would not use")]
    UnusedTensor {
        /// Burn path of the tensor.
        name: String,
    },
    /// The configuration or metadata could not be written.
    #[error("{detail}")]
    Metadata {
        /// What went wrong.
        detail: String,
    },
}

/// The batch axis of the exported input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchSize {
    /// Symbolic (`dim_param: "batch"`): any batch size at run time.
    #[default]
    Dynamic,
    /// This many slices per call.
    Fixed(u32),
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Dynamic => f.write_str("dynamic"),
            BatchSize::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for BatchSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("dynamic") {
            return Ok(BatchSize::Dynamic);
        }
        match s.parse::<u32>() {
            Ok(n) if n > 0 => Ok(BatchSize::Fixed(n)),
            _ => Err(format!(
                "'{s}' is not a batch size: give 'dynamic' or a positive number"
            )),
        }
    }
}

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// The batch axis.
    pub batch: BatchSize,
    /// The `ai.onnx` opset version ([`MIN_OPSET`]..=[`MAX_OPSET`]).
    pub opset: i64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            batch: BatchSize::Dynamic,
            opset: DEFAULT_OPSET,
        }
    }
}

impl ExportOptions {
    /// Check that the exporter can honour the options.
    pub fn validate(&self) -> Result<(), ExportError> {
        if !(MIN_OPSET..=MAX_OPSET).contains(&self.opset) {
            return Err(ExportError::UnsupportedOpset { opset: self.opset });
        }
        Ok(())
    }
}

/// The IR version written with `opset`: at least 8 (onnx 1.10), and what onnx's
/// version table pairs with the opset from opset 19 (IR 9) and 21 (IR 10) on.
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// What [`export_file`] wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The weights file the model came from.
    pub weights: PathBuf,
    /// The model configuration.
    pub config: UNetConfig,
    /// The options used.
    pub options: ExportOptions,
    /// The IR version written.
    pub ir_version: i64,
    /// Size of the written file in bytes.
    pub bytes: usize,
    /// Number of graph nodes.
    pub nodes: usize,
}

/// The encoded ONNX file of the model at `model_path` (run folder, checkpoint folder
/// or `.safetensors` file), loaded on the CPU.
pub fn export_bytes(
    model_path: &Path,
    options: &ExportOptions,
) -> Result<(Vec<u8>, ExportSummary), ExportError> {
    options.validate()?;
    let device = backend::select(BackendKind::Cpu)?.device;
    let (model, config, weights) = load_model(model_path, &device)?;
    let onnx = unet_to_onnx(&model, &config, options)?;
    let bytes = onnx.encode_to_vec();
    let summary = ExportSummary {
        weights,
        config,
        options: *options,
        ir_version: onnx.ir_version.unwrap_or_default(),
        bytes: bytes.len(),
        nodes: onnx.graph.as_ref().map_or(0, |g| g.node.len()),
    };
    Ok((bytes, summary))
}

/// Export the model at `model_path` to the ONNX file `out` (written to a temporary
/// name and renamed into place; an existing file is replaced).
pub fn export_file(
    model_path: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let (bytes, summary) = export_bytes(model_path, options)?;
    write_file(out, &bytes)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_parse_and_print() {
        assert_eq!("dynamic".parse(), Ok(BatchSize::Dynamic));
        assert_eq!("Dynamic".parse(), Ok(BatchSize::Dynamic));
        assert_eq!("8".parse(), Ok(BatchSize::Fixed(8)));
        for bad in ["0", "-1", "many", ""] {
            let err = bad.parse::<BatchSize>().unwrap_err();
            assert!(err.contains("positive number"), "{err}");
        }
        assert_eq!(BatchSize::Fixed(3).to_string(), "3");
        assert_eq!(BatchSize::default().to_string(), "dynamic");
    }

    #[test]
    fn opsets_outside_the_range_are_refused() {
        for opset in [MIN_OPSET, DEFAULT_OPSET, MAX_OPSET] {
            let options = ExportOptions {
                opset,
                ..Default::default()
            };
            assert!(options.validate().is_ok(), "{opset}");
        }
        for opset in [0, 10, 22, -17] {
            let options = ExportOptions {
                opset,
                ..Default::default()
            };
            let err = options.validate().unwrap_err().to_string();
            assert!(
                err.contains(&format!("opset {opset} is not supported"))
                    && err.contains("11 to 21"),
                "{err}"
            );
        }
    }

    #[test]
    fn ir_versions_follow_the_opset() {
        assert_eq!(ir_version_for(11), 8);
        assert_eq!(ir_version_for(17), 8);
        assert_eq!(ir_version_for(18), 8);
        assert_eq!(ir_version_for(19), 9);
        assert_eq!(ir_version_for(21), 10);
    }

    #[test]
    fn a_checkpoint_exports_to_a_file_that_decodes() {
        let config = UNetConfig {
            base_channels: 2,
            depth: 2,
            input_size: 16,
            num_classes: 3,
            ..Default::default()
        };
        let device = burn::prelude::Device::flex();
        let model = config.init_seeded(&device, 1);
        let dir = tempfile::tempdir().expect("tempdir");
        crate::model::save_weights(dir.path(), &model, &config).expect("save");
        let out = dir.path().join("model.onnx");
        let summary = export_file(dir.path(), &out, &ExportOptions::default()).expect("export");
        let bytes = std::fs::read(&out).expect("written");
        assert_eq!(bytes.len(), summary.bytes);
        let decoded = proto::ModelProto::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded.graph.map(|g| g.node.len()), Some(summary.nodes));
        assert_eq!(summary.config, config);

        let err = export_file(&dir.path().join("absent"), &out, &ExportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("absent") && err.contains("no such file"),
            "{err}"
        );
    }
}

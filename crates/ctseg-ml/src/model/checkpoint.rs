//! Model weights on disk.
//!
//! A checkpoint is a folder:
//! - `model.safetensors`: the weights with PyTorch-style names (`encoders.0.bn1.weight`,
//!   `…running_mean`), the model configuration in the safetensors metadata
//!   (`ctseg.model_config`), so the file loads on its own — and weights of the same
//!   U-Net trained in PyTorch load too (their configuration is read off the shapes);
//! - `model.json`: the same configuration, readable;
//! - `model.bpk`, `optimizer.bpk`, `state.json` (training checkpoints only): Burn's
//!   native records that keep parameter identities, so a resumed run continues exactly.
//!
//! Every file is written to a temporary name and renamed into place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::Device;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use super::{UNet, UNetConfig};
use ctseg_core::io::atomic_write;

/// File name of the weights inside a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the readable model configuration.
pub const CONFIG_FILE: &str = "model.json";
/// Burn-native model record (keeps parameter ids for resuming).
pub const RECORD_FILE: &str = "model.bpk";
/// Safetensors metadata key holding the model configuration as JSON.
pub const CONFIG_METADATA_KEY: &str = "ctseg.model_config";

/// Errors reading or writing model weights.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File-system error.
    #[error(transparent)]
    Io(#[from] ctseg_core::Error),
    /// Nothing loadable at the path.
    #[error("{path}: {detail}")]
    NotFound {
        /// Where we looked.
        path: PathBuf,
        /// What was missing.
        detail: String,
    },
    /// The file exists but is not a valid checkpoint.
    #[error("{path}: not a valid ctseg/U-Net checkpoint: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The problem.
        detail: String,
    },
}

/// Serialize the model's weights as safetensors bytes with PyTorch names and the
/// configuration in the metadata.
pub fn weights_to_bytes(model: &UNet, config: &UNetConfig) -> Result<Vec<u8>, String> {
    let config_json = serde_json::to_string(config).map_err(|e| e.to_string())?;
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata(CONFIG_METADATA_KEY, config_json)
        .metadata("format", "ctseg-unet");
    model.save_into(&mut store).map_err(|e| e.to_string())?;
    store.get_bytes().map_err(|e| e.to_string())
}

/// Write `model.safetensors` and `model.json` into `dir` (created if needed).
pub fn save_weights(dir: &Path, model: &UNet, config: &UNetConfig) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|e| ctseg_core::Error::io(dir, e))?;
    let bytes = weights_to_bytes(model, config).map_err(|detail| CheckpointError::Corrupt {
        path: dir.join(WEIGHTS_FILE),
        detail: format!("could not serialize the weights: {detail}"),
    })?;
    write_file(&dir.join(WEIGHTS_FILE), &bytes)?;
    let json = serde_json::to_string_pretty(config).map_err(|e| CheckpointError::Corrupt {
        path: dir.join(CONFIG_FILE),
        detail: format!("could not encode the model settings: {e}"),
    })?;
    write_file(&dir.join(CONFIG_FILE), json.as_bytes())?;
    Ok(())
}

/// Write bytes to `path` safely (temporary file, fsync, rename).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    atomic_write(path, ".part", |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| ctseg_core::Error::io(tmp, e))
    })?;
    Ok(())
}

/// The safetensors header: tensor names → shapes, and the metadata map.
#[derive(Debug, Default)]
pub struct SafetensorsHeader {
    /// Tensor name → shape.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// `__metadata__` entries.
    pub metadata: BTreeMap<String, String>,
}

/// Read only the JSON header of a safetensors file.
pub fn read_header(path: &Path) -> Result<SafetensorsHeader, CheckpointError> {
    use std::io::Read;
    let corrupt = |detail: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = std::fs::File::open(path).map_err(|e| ctseg_core::Error::io(path, e))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|_| corrupt("file is shorter than a safetensors header".into()))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len == 0 || header_len > 100_000_000 || header_len + 8 > file_len {
        return Err(corrupt(format!(
            "header length {header_len} does not fit the file ({file_len} bytes)"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| corrupt(format!("cannot read the header: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("header is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| corrupt("header is not a JSON object".into()))?;
    let mut out = SafetensorsHeader::default();
    for (name, entry) in object {
        if name == "__metadata__" {
            if let Some(map) = entry.as_object() {
                for (k, v) in map {
                    if let Some(s) = v.as_str() {
                        out.metadata.insert(k.clone(), s.to_string());
                    }
                }
            }
            continue;
        }
        let shape = entry
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| corrupt(format!("tensor '{name}' has no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| corrupt(format!("tensor '{name}' has a bad shape")))?;
        out.shapes.insert(name.clone(), shape);
    }
    Ok(out)
}

/// The model configuration of a safetensors file: from its metadata when ctseg wrote
/// it, otherwise read off the tensor shapes (weights exported from PyTorch), with
/// `input_size` defaulting to 256.
pub fn config_from_header(
    path: &Path,
    header: &SafetensorsHeader,
) -> Result<UNetConfig, CheckpointError> {
    let corrupt = |detail: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    if let Some(json) = header.metadata.get(CONFIG_METADATA_KEY) {
        let config: UNetConfig = serde_json::from_str(json)
            .map_err(|e| corrupt(format!("bad model configuration in metadata: {e}")))?;
        config.validate().map_err(corrupt)?;
        return Ok(config);
    }
    let first = header
        .shapes
        .get("encoders.0.conv1.weight")
        .ok_or_else(|| {
            corrupt("no tensor 'encoders.0.conv1.weight': not a U-Net of this layout".into())
        })?;
    let head = header
        .shapes
        .get("head.weight")
        .ok_or_else(|| corrupt("no tensor 'head.weight'".into()))?;
    let depth = (0..)
        .take_while(|i| {
            header
                .shapes
                .contains_key(&format!("encoders.{i}.conv1.weight"))
        })
        .count();
    if first.len() != 4 || head.len() != 4 {
        return Err(corrupt("convolution weights must be 4-D".into()));
    }
    let config = UNetConfig {
        in_channels: first[1],
        num_classes: head[0],
        base_channels: first[0],
        depth,
        input_size: 256,
    };
    config.validate().map_err(corrupt)?;
    Ok(config)
}

/// Where the weights are: a `.safetensors` file, a checkpoint folder, or a run folder
/// (its `checkpoints/best`, else `checkpoints/last`).
pub fn resolve_weights(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.exists() {
        return Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
            detail: "no such file or folder".into(),
        });
    }
    let candidates = [
        path.join(WEIGHTS_FILE),
        path.join("checkpoints").join("best").join(WEIGHTS_FILE),
        path.join("checkpoints").join("last").join(WEIGHTS_FILE),
    ];
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| CheckpointError::NotFound {
            path: path.to_path_buf(),
            detail: format!(
                "no {WEIGHTS_FILE} here, nor in checkpoints/best or checkpoints/last (is it a run or checkpoint folder?)"
            ),
        })
}

/// Load a model for inference from a weights file, checkpoint folder or run folder.
/// Returns the model (on `device`), its configuration and the weights file used.
pub fn load_model(
    path: &Path,
    device: &Device,
) -> Result<(UNet, UNetConfig, PathBuf), CheckpointError> {
    let (model, config, weights) = load_weights(path, device)?;
    Ok((model.valid(), config, weights))
}

/// Like [`load_model`], but the model stays on `device` as given (on an autodiff
/// device its parameters track gradients): the start of a fine-tuning run.
pub fn load_weights(
    path: &Path,
    device: &Device,
) -> Result<(UNet, UNetConfig, PathBuf), CheckpointError> {
    let weights = resolve_weights(path)?;
    let header = read_header(&weights)?;
    let config = config_from_header(&weights, &header)?;
    let mut model = config.init(device);
    let mut store = SafetensorsStore::from_file(&weights).with_from_adapter(PyTorchToBurnAdapter);
    let result = model
        .load_from(&mut store)
        .map_err(|e| CheckpointError::Corrupt {
            path: weights.clone(),
            detail: e.to_string(),
        })?;
    let corrupt = |detail: String| CheckpointError::Corrupt {
        path: weights.clone(),
        detail,
    };
    if !result.errors.is_empty() {
        return Err(corrupt(format!(
            "{} tensor(s) could not be applied, first: {:?}",
            result.errors.len(),
            result.errors[0]
        )));
    }
    if !result.missing.is_empty() {
        let names: Vec<&str> = result
            .missing
            .iter()
            .take(5)
            .map(|(p, _)| p.as_str())
            .collect();
        return Err(corrupt(format!(
            "{} tensor(s) missing, e.g. {}",
            result.missing.len(),
            names.join(", ")
        )));
    }
    Ok((model, config, weights))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    fn tiny() -> UNetConfig {
        UNetConfig {
            in_channels: 1,
            num_classes: 3,
            base_channels: 2,
            depth: 2,
            input_size: 8,
        }
    }

    #[test]
    fn weights_round_trip_with_pytorch_names() {
        let device = Device::flex();
        let config = tiny();
        let model = config.init(&device);
        let dir = tempfile::tempdir().expect("tempdir");
        save_weights(dir.path(), &model, &config).expect("save");
        let header = read_header(&dir.path().join(WEIGHTS_FILE)).expect("header");
        assert!(
            header.shapes.contains_key("encoders.0.bn1.weight"),
            "{:?}",
            header.shapes.keys()
        );
        assert!(header.shapes.contains_key("encoders.0.bn1.running_var"));
        assert_eq!(header.shapes["ups.0.weight"], vec![8, 4, 2, 2]);
        let (loaded, loaded_config, _) = load_model(dir.path(), &device).expect("load");
        assert_eq!(loaded_config, config);
        let x = Tensor::<4>::random([1, 1, 8, 8], burn::tensor::Distribution::Default, &device);
        let a = model.valid().forward(x.clone()).into_data();
        let b = loaded.forward(x).into_data();
        a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-6));
    }

    #[test]
    fn config_is_inferred_from_shapes_without_metadata() {
        let mut header = SafetensorsHeader::default();
        header
            .shapes
            .insert("encoders.0.conv1.weight".into(), vec![32, 1, 3, 3]);
        header
            .shapes
            .insert("encoders.1.conv1.weight".into(), vec![64, 32, 3, 3]);
        header
            .shapes
            .insert("encoders.2.conv1.weight".into(), vec![128, 64, 3, 3]);
        header
            .shapes
            .insert("encoders.3.conv1.weight".into(), vec![256, 128, 3, 3]);
        header
            .shapes
            .insert("head.weight".into(), vec![117, 32, 1, 1]);
        let config = config_from_header(Path::new("x"), &header).expect("config");
        assert_eq!(config, UNetConfig::default());
    }

    #[test]
    fn corrupt_and_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("model.safetensors");
        std::fs::write(&bad, b"this is not safetensors").expect("write");
        let err = load_model(&bad, &Device::flex()).unwrap_err().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("not a valid"),
            "{err}"
        );
        let err = load_model(&dir.path().join("nope"), &Device::flex())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
        let empty = tempfile::tempdir().expect("tempdir");
        let err = load_model(empty.path(), &Device::flex())
            .unwrap_err()
            .to_string();
        assert!(err.contains("checkpoints/best"), "{err}");
    }
}

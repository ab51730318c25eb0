//! `ctseg export`: the ONNX file passes onnx's full checker and onnxruntime gives
//! ctseg's logits on the same input (`benches/onnx_check.py`, run with the reference
//! venv's python: `$CTSEG_PYTHON`, else `$HOME/.cache/ctseg-venv/bin/python`), for a
//! small model and the design's model; bad arguments are one clear line.

use crate::common::{self, ctseg};

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use ctseg_ml::model::UNetConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest allowed |onnxruntime − ctseg| on a logit.
const TOLERANCE: f64 = 1e-4;

/// The reference venv's python, if it has onnx and onnxruntime.
fn reference_python() -> Option<PathBuf> {
    ctseg_core::testdata::reference_python(&["onnx", "onnxruntime", "numpy"])
}

/// Replaces BatchNorm scales, shifts and running statistics with random values, so
/// that a BatchNorm exported wrongly (inputs swapped, training form, another ε)
/// changes the logits.
struct RandomBatchNorm {
    path: Vec<String>,
    rng: ChaCha8Rng,
}

impl ModuleMapper for RandomBatchNorm {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        // Ranges that keep the activations alive through every block (wider ones
        // let the ReLUs zero everything, and the logits would be the head's bias).
        let (low, high) = match self.path.last().map(String::as_str) {
            Some("gamma") => (0.5f32, 1.5f32),
            Some("beta") => (-0.1, 0.1),
            Some("running_mean") => (-0.05, 0.05),
            Some("running_var") => (0.04, 0.3),
            _ => return param,
        };
        let rng = &mut self.rng;
        param.map(|t| {
            let dims = t.dims();
            let values: Vec<f32> = (0..dims.iter().product::<usize>())
                .map(|_| rng.random_range(low..high))
                .collect();
            Tensor::from_data(TensorData::new(values, dims), &t.device())
        })
    }
}

/// A checkpoint folder of `config` with seeded weights and random BatchNorm
/// statistics.
fn checkpoint(dir: &Path, config: &UNetConfig, seed: u64) -> PathBuf {
    let model = config.init_seeded(&Device::flex(), seed);
    let model = model.map(&mut RandomBatchNorm {
        path: Vec::new(),
        rng: ChaCha8Rng::seed_from_u64(seed),
    });
    let ckpt = dir.join("checkpoint");
    ctseg_ml::model::save_weights(&ckpt, &model, config).expect("save");
    ckpt
}

/// Write `values` of `shape` as a little-endian float32 `.npy` file (format 1.0).
fn write_npy(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).expect("write .npy");
}

/// ctseg's logits for a random input of `batch` slices, written as `input.npy` and
/// `logits.npy` in `dir`.
fn reference_logits(dir: &Path, ckpt: &Path, batch: usize) -> (PathBuf, PathBuf) {
    let device = Device::flex();
    let (model, config, _) = ctseg_ml::model::load_model(ckpt, &device).expect("load");
    let size = config.input_size;
    let shape = [batch, config.in_channels, size, size];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let input: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.random_range(0.0f32..1.0))
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(input.clone(), shape), &device);
    let logits = model.forward(x);
    let out_shape = logits.dims();
    let logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
    let (low, high) = logits
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(
        high - low > 0.5,
        "the logits span only [{low}, {high}]: the comparison would check little"
    );
    let (input_path, logits_path) = (dir.join("input.npy"), dir.join("logits.npy"));
    write_npy(&input_path, &shape, &input);
    write_npy(&logits_path, &out_shape, &logits);
    (input_path, logits_path)
}

/// Export `ckpt` with `extra` arguments and check the file against ctseg's logits
/// with onnxruntime; returns the script's results and the file size.
fn export_and_check(
    python: &Path,
    dir: &Path,
    ckpt: &Path,
    extra: &[&str],
    batch: usize,
) -> (serde_json::Value, u64) {
    let onnx = dir.join(format!("model{}.onnx", extra.join("_")));
    let mut args = vec![
        "export",
        "--model",
        ckpt.to_str().expect("utf-8 path"),
        "--onnx",
        onnx.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let run = ctseg(&args);
    assert_eq!(run.code, 0, "ctseg {args:?}: {}", run.stderr);
    assert!(run.stdout.contains("wrote"), "{}", run.stdout);
    let size = std::fs::metadata(&onnx).expect("written").len();
    let (input, logits) = reference_logits(dir, ckpt, batch);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/onnx_check.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&onnx)
        .arg("--input")
        .arg(&input)
        .arg("--logits")
        .arg(&logits)
        .args(["--tolerance", &TOLERANCE.to_string()])
        .args(["--expect-labels", "117"])
        .output()
        .expect("the check script runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {}: {stderr}",
        script.display(),
        onnx.display()
    );
    let result: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    let diff = result["max_abs_diff"].as_f64().expect("max_abs_diff");
    assert!(diff <= TOLERANCE, "{result}");
    eprintln!("ctseg export {extra:?}: {size} bytes, {result}");
    (result, size)
}

#[test]
fn small_models_export_to_what_onnxruntime_runs_alike() {
    let Some(python) = reference_python() else {
        return;
    };
    let dir = common::tempdir();
    let config = UNetConfig {
        base_channels: 4,
        depth: 3,
        input_size: 32,
        ..Default::default()
    };
    let ckpt = checkpoint(dir.path(), &config, 11);
    let (dynamic, _) = export_and_check(&python, dir.path(), &ckpt, &[], 1);
    assert_eq!(dynamic["batch"], "dynamic");
    assert_eq!(dynamic["opset"], 17);
    assert_eq!(dynamic["input_size"], 32);
    assert!(dynamic["batch_3_vs_1_max_abs_diff"].as_f64().is_some());
    let (fixed, _) = export_and_check(
        &python,
        dir.path(),
        &ckpt,
        &["--batch", "2", "--opset", "11"],
        2,
    );
    assert_eq!(
        (fixed["batch"].as_i64(), fixed["opset"].as_i64()),
        (Some(2), Some(11))
    );
    let (newest, _) = export_and_check(&python, dir.path(), &ckpt, &["--opset", "21"], 1);
    assert_eq!(newest["ir_version"], 10);
}

#[test]
fn the_design_model_exports_to_what_onnxruntime_runs_alike() {
    let Some(python) = reference_python() else {
        return;
    };
    let dir = common::tempdir();
    let ckpt = checkpoint(dir.path(), &UNetConfig::default(), 12);
    let (result, size) = export_and_check(&python, dir.path(), &ckpt, &["--batch", "dynamic"], 1);
    assert_eq!(result["input_size"], 256);
    assert_eq!(result["labels"], 117);
    // 7.8 million float32 parameters and the BatchNorm statistics.
    assert!((31_000_000..32_000_000).contains(&size), "{size} bytes");
}

#[test]
fn bad_export_arguments_are_one_clear_line() {
    let dir = common::tempdir();
    let d = dir.path();
    let config = UNetConfig {
        base_channels: 2,
        depth: 2,
        input_size: 16,
        ..Default::default()
    };
    let ckpt = checkpoint(d, &config, 1);
    let ckpt_s = ckpt.to_str().expect("utf-8 path");
    let out = d.join("model.onnx");
    let out_s = out.to_str().expect("utf-8 path");
    let absent = d.join("absent-run");
    let absent_s = absent.to_str().expect("utf-8 path");
    let fails = |case: &str, args: &[&str], expected: &[&str]| {
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        let run = ctseg(&all);
        assert_ne!(run.code, 0, "{case}: should fail");
        assert!(!run.stderr.contains("panicked"), "{case}: {}", run.stderr);
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{case}: one error line: {}", run.stderr);
        for e in expected {
            assert!(
                errors[0].contains(e),
                "{case}: {:?} should say {e:?}",
                errors[0]
            );
        }
        assert!(run.stdout.is_empty(), "{case}: no output on failure");
    };

    fails(
        "missing model",
        &["--model", absent_s, "--onnx", out_s],
        &["absent-run", "no such file"],
    );
    assert!(!out.exists(), "nothing is written for a missing model");
    fails(
        "opset too old",
        &["--model", ckpt_s, "--onnx", out_s, "--opset", "10"],
        &["opset 10 is not supported", "11 to 21"],
    );
    fails(
        "opset too new",
        &["--model", ckpt_s, "--onnx", out_s, "--opset", "22"],
        &["opset 22 is not supported"],
    );
    fails(
        "opset not a number",
        &["--model", ckpt_s, "--onnx", out_s, "--opset", "latest"],
        &["--opset", "latest"],
    );
    fails(
        "batch zero",
        &["--model", ckpt_s, "--onnx", out_s, "--batch", "0"],
        &["--batch", "'0'", "positive number"],
    );
    let nowhere = d.join("no-such-folder/model.onnx");
    fails(
        "missing output folder",
        &[
            "--model",
            ckpt_s,
            "--onnx",
            nowhere.to_str().expect("utf-8"),
        ],
        &["no-such-folder", "does not exist"],
    );

    std::fs::write(&out, b"keep me").expect("write");
    fails(
        "existing output",
        &["--model", ckpt_s, "--onnx", out_s],
        &["model.onnx", "already exists", "--force"],
    );
    assert_eq!(std::fs::read(&out).expect("read"), b"keep me");
    let run = ctseg(&["export", "--model", ckpt_s, "--onnx", out_s, "--force"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_ne!(std::fs::read(&out).expect("read"), b"keep me");

    let weights = ckpt.join("model.safetensors");
    fails(
        "output over the weights",
        &[
            "--model",
            ckpt_s,
            "--onnx",
            weights.to_str().expect("utf-8"),
            "--force",
        ],
        &["model.safetensors", "overwrite"],
    );
    assert!(
        ctseg_ml::model::load_model(&ckpt, &Device::flex()).is_ok(),
        "the weights are intact"
    );
}

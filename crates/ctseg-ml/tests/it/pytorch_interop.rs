//! Weights of the same U-Net trained in PyTorch load into ctseg and give the same
//! logits. The fixture (weights with PyTorch's own names, random BatchNorm statistics,
//! and PyTorch's logits for a fixed input) is made by
//! `benches/pytorch/make_interop_fixture.py`.

use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::TensorData;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn pytorch_weights_give_pytorch_logits() {
    let device = Device::flex();
    let (model, config, _) =
        ctseg_ml::model::load_model(&fixture("pytorch_unet_tiny.safetensors"), &device)
            .expect("PyTorch safetensors load");
    assert_eq!(
        (config.base_channels, config.depth, config.num_classes),
        (2, 2, 3)
    );
    let text = std::fs::read_to_string(fixture("pytorch_unet_tiny.json")).expect("fixture");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let floats = |key: &str| -> Vec<f32> {
        json[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_f64().expect("number") as f32)
            .collect()
    };
    let input = floats("input");
    let expected = floats("logits");
    let x = Tensor::<4>::from_data(TensorData::new(input, [1, 1, 16, 16]), &device);
    let logits: Vec<f32> = model.forward(x).into_data().iter::<f32>().collect();
    assert_eq!(logits.len(), expected.len());
    let max_diff = logits
        .iter()
        .zip(&expected)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(max_diff < 1e-4, "max |Δ| vs PyTorch = {max_diff}");

    // And back: ctseg's export uses the same names, so PyTorch can load it.
    let dir = tempfile::tempdir().expect("tempdir");
    ctseg_ml::model::save_weights(dir.path(), &model, &config).expect("save");
    let ours = ctseg_ml::model::checkpoint::read_header(&dir.path().join("model.safetensors"))
        .expect("header");
    let theirs =
        ctseg_ml::model::checkpoint::read_header(&fixture("pytorch_unet_tiny.safetensors"))
            .expect("header");
    assert_eq!(ours.shapes, theirs.shapes);
}

//! `ctseg eval --model RUN --data DIR`: a model over a dataset split, with surface
//! metrics, the summary files and the box plot — and agreement with `ctseg eval --gt
//! --pred` on a prediction written by `ctseg predict`.

use std::path::Path;
use std::process::Command;

use ctseg_ml::backend::BackendKind;
use ctseg_ml::train::{EventBus, TrainConfig, TrainControl, train};

fn ctseg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ctseg"))
        .args(args)
        .output()
        .expect("ctseg runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn a_model_is_scored_over_a_split_like_its_single_predictions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("phantoms");
    ctseg_core::phantom::write_dataset(
        &data,
        &ctseg_core::phantom::PhantomConfig {
            subjects: 10,
            seed: 3,
            shape: [40, 40, 8],
            ..Default::default()
        },
    )
    .expect("phantoms");
    let mut c = TrainConfig::default();
    c.data.root = data.clone();
    c.data.cache_dir = tmp.path().join("cache");
    c.run.backend = BackendKind::Cpu;
    c.run.epochs = 1;
    c.run.steps_per_epoch = 30;
    c.run.batch_size = 4;
    c.model.base_channels = 4;
    c.model.depth = 2;
    c.model.input_size = 32;
    c.augment.enabled = false;
    let run = tmp.path().join("run");
    train(&c, &run, false, &mut EventBus::new(), &TrainControl::new()).expect("training");

    let out = tmp.path().join("eval");
    let o = ctseg(&[
        "eval",
        "--model",
        s(&run),
        "--data",
        s(&data),
        "--split",
        "val",
        "--backend",
        "cpu",
        "--out",
        s(&out),
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let subjects = json["subjects"].as_array().expect("subjects");
    assert_eq!(
        subjects.len(),
        2,
        "the phantom split has 2 validation subjects"
    );
    assert_eq!(json["summary"]["subjects"], 2);
    assert_eq!(json["nsd_tolerance_mm"], 3.0);
    let structures = json["summary"]["structures"]
        .as_array()
        .expect("structures");
    assert!(!structures.is_empty());
    for st in structures {
        assert!(st["dice"]["n"].as_u64().unwrap_or(0) >= 1, "{st}");
        assert!(st.get("nsd").is_some() && st.get("hd95").is_some(), "{st}");
    }
    for name in ["summary.json", "per_subject.csv", "dice_boxplot.png"] {
        assert!(out.join(name).is_file(), "{name} written");
    }
    let png = image::open(out.join("dice_boxplot.png")).expect("a readable PNG");
    assert!(png.width() >= 800 && png.height() > 100);
    let csv = std::fs::read_to_string(out.join("per_subject.csv")).expect("csv");
    assert!(
        csv.starts_with("subject,label,name,dice,iou,nsd,hd95"),
        "{csv}"
    );

    // The first subject, predicted and scored on its own, gives the same numbers.
    let first = &subjects[0];
    let id = first["id"].as_str().expect("id");
    let pred = tmp.path().join("pred.nii.gz");
    let o = ctseg(&[
        "predict",
        "--model",
        s(&run),
        "--input",
        s(&data.join(id).join("ct.nii.gz")),
        "--out",
        s(&pred),
        "--backend",
        "cpu",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ctseg(&[
        "eval",
        "--gt",
        s(&data.join(id).join("segmentations")),
        "--pred",
        s(&pred),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let single: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let mut compared = 0;
    for (a, b) in single["structures"]
        .as_array()
        .expect("structures")
        .iter()
        .zip(
            first["evaluation"]["structures"]
                .as_array()
                .expect("structures"),
        )
    {
        assert_eq!(a["label"], b["label"]);
        for key in ["dice", "nsd", "hd95"] {
            match (a[key].as_f64(), b[key].as_f64()) {
                (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9, "{key} {x} vs {y}"),
                (x, y) => assert_eq!(x, y, "{key} of label {}", a["label"]),
            }
        }
        compared += a["nsd"].is_f64() as usize;
    }
    assert!(compared > 0, "some structure has a surface score");

    // The test split of 10 phantoms has one subject; a split without subjects is an
    // error naming the dataset.
    let o = ctseg(&[
        "eval",
        "--model",
        s(&run),
        "--data",
        s(&data),
        "--split",
        "test",
        "--backend",
        "cpu",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 subject(s)"));
    let single_subject = data.join("s0001");
    let o = ctseg(&[
        "eval",
        "--model",
        s(&run),
        "--data",
        s(&single_subject),
        "--split",
        "test",
        "--backend",
        "cpu",
        "--quiet",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no subjects") && err.contains("s0001"),
        "{err}"
    );
}

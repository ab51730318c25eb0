//! `benches/cpu_vs_pytorch.py --quick` runs end to end with this build's binary and
//! the reference venv's PyTorch, so the side-by-side benchmark behind the README's
//! CPU table cannot rot: both sides run in alternating rounds and the table's ratio
//! is ctseg's median over PyTorch's. Skips without torch (a failure under `CI=true`).

use std::path::Path;
use std::process::Command;

use ctseg_core::testdata::reference_python;

#[test]
fn cpu_vs_pytorch_quick_prints_medians_and_ratios() {
    let Some(python) = reference_python(&["torch"]) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let json = tmp.path().join("rounds.json");
    let out = Command::new(&python)
        .arg(root.join("benches/cpu_vs_pytorch.py"))
        .args(["--quick", "--rounds", "2", "--iters", "1", "--warmup", "0"])
        .arg("--ctseg")
        .arg(env!("CARGO_BIN_EXE_ctseg"))
        .arg("--python")
        .arg(&python)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("python runs the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "cpu_vs_pytorch.py failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
    // Two rounds, each side once per round, the first side alternating.
    let order: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("round "))
        .map(|l| {
            if l.contains("pytorch:") {
                "pytorch"
            } else {
                "ctseg"
            }
        })
        .collect();
    assert_eq!(order, ["ctseg", "pytorch", "pytorch", "ctseg"], "{stderr}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("--json written")).expect("JSON");
    for (label, key) in [
        ("training step, batch 2", "train_step_s"),
        ("inference per slice, batch 8", "infer_s_per_slice"),
        ("inference per slice, batch 1", "infer_batch1_s"),
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {label}")))
            .unwrap_or_else(|| panic!("no row '{label}':\n{stdout}"));
        let cells: Vec<f64> = row
            .split('|')
            .skip(2)
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.trim().parse().expect("a number"))
            .collect();
        let [ctseg, pytorch, ratio] = cells[..] else {
            panic!("three figures expected in {row}");
        };
        assert!(ctseg > 0.0 && pytorch > 0.0, "{row}");
        assert!(
            (ratio - ctseg / pytorch).abs() <= 0.01 + 0.01 * ratio,
            "{row}"
        );
        // The medians are those of the rounds written to --json.
        let rounds = |side: &str| -> Vec<f64> {
            report["rounds"][side]
                .as_array()
                .expect("rounds")
                .iter()
                .map(|r| r[key].as_f64().expect("figure"))
                .collect()
        };
        for side in ["ctseg", "pytorch"] {
            let mut v = rounds(side);
            assert_eq!(v.len(), 2, "{side} {key}");
            v.sort_by(f64::total_cmp);
            let median = (v[0] + v[1]) / 2.0;
            let reported = report["medians"][key][side].as_f64().expect("median");
            assert!((median - reported).abs() < 1e-12, "{side} {key}");
        }
    }
}

//! `scripts/gpu-check.sh --quick` runs end to end with this build's binary, so the
//! prepared GPU check cannot rot before a session with a GPU uses it: on lavapipe
//! (software Vulkan) where a wgpu adapter exists — required under
//! `CTSEG_REQUIRE_WGPU=1`, which `.ci/run` sets when lavapipe is installed — and
//! skipped with the reason otherwise.

use std::path::Path;
use std::process::Command;

#[test]
fn gpu_check_quick_runs_and_prints_its_table() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-check.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--quick")
        .env("CTSEG_BIN", env!("CARGO_BIN_EXE_ctseg"))
        .output()
        .expect("bash runs the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    let required = std::env::var("CTSEG_REQUIRE_WGPU").is_ok_and(|v| v == "1");
    if !required && stdout.contains("| wgpu | – | no device") {
        // As the other wgpu tests: without CTSEG_REQUIRE_WGPU a missing adapter skips.
        eprintln!(
            "skipping: no wgpu adapter for scripts/gpu-check.sh --quick (CTSEG_REQUIRE_WGPU=1 requires one)"
        );
        return;
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "gpu-check.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("GPU check (quick)"), "{stdout}");
    assert!(
        stdout.contains("| backend | precision | device |"),
        "{stdout}"
    );
    for precision in ["f32", "f16"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| wgpu | {precision} |")))
            .unwrap_or_else(|| panic!("no wgpu {precision} row:\n{stdout}"));
        assert!(row.contains("vs CPU: agree"), "{row}");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | backend | precision | device | check | train s | infer/s | CT s | CT/s | RSS |
        for (i, name) in [(5, "train step"), (6, "inference"), (7, "CT end to end")] {
            let v: f64 = cells[i]
                .parse()
                .unwrap_or_else(|_| panic!("{name} is not a number in {row}"));
            assert!(v > 0.0, "{name} in {row}");
        }
    }
}

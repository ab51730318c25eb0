//! NIfTI loading speed: `cargo bench --bench load`.
//!
//! Loads the shared real CTs (and `$CTSEG_BENCH_FILE`, e.g. a 512×512×300 scan) into
//! i16 HU volumes. Compare with `python3 benches/nibabel_load.py` on the same files.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ctseg_core::io::nifti;

fn files() -> Vec<PathBuf> {
    let root = ctseg_core::testdata::shared_root();
    let mut files: Vec<PathBuf> = ["totalseg/s0001/ct.nii.gz", "totalseg/ct_112slices.nii.gz"]
        .iter()
        .map(|f| root.join(f))
        .filter(|p| p.exists())
        .collect();
    if let Some(extra) = std::env::var_os("CTSEG_BENCH_FILE") {
        files.push(PathBuf::from(extra));
    }
    if files.is_empty() {
        eprintln!("no input files: shared data missing and CTSEG_BENCH_FILE unset");
    }
    files
}

fn bench_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("nifti_load_i16");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for path in files() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        group.bench_function(name, |b| {
            b.iter(|| {
                nifti::read::<i16>(&path)
                    .map(|img| img.volume.data().len())
                    .unwrap_or(0)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);

//! Locating the shared real-data folder (`../shared/data`) for tests and benchmarks.
//!
//! When a file is missing, tests skip with a printed reason; under `CI=true` a missing
//! file is a failure.

use std::path::PathBuf;

/// Root of the shared data: `$CTSEG_SHARED_DATA` or `<crate>/../shared/data`.
pub fn shared_root() -> PathBuf {
    std::env::var_os("CTSEG_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// `rel` under the shared data root if it exists. Otherwise prints why the caller
/// skips and returns `None` — or panics when `CI=true`, where data must be present.
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let path = shared_root().join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "shared test data {} is missing (required when CI=true)",
            path.display()
        );
    }
    // Written to the stderr handle directly (not `eprintln!`) so the test harness
    // does not capture it: the reason shows in every `cargo test` run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipping: shared test data {} is missing",
        path.display()
    );
    None
}

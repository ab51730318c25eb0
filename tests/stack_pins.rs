//! The named stack shares one wgpu: burn 0.22, eframe 0.37 and egui_plot 0.38 must all
//! resolve to wgpu 30.0.1 in Cargo.lock (they are optional features until their code
//! lands, but the lock file pins them now).

fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"")
            && let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
        {
            out.push(v.trim_matches('"').to_string());
        }
    }
    out
}

#[test]
fn one_wgpu_for_burn_and_egui() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock is committed");
    assert_eq!(locked_versions(&lock, "wgpu"), vec!["30.0.1"]);
    assert!(
        locked_versions(&lock, "burn")
            .iter()
            .all(|v| v.starts_with("0.22."))
    );
    assert_eq!(locked_versions(&lock, "burn").len(), 1);
    assert!(
        locked_versions(&lock, "eframe")
            .iter()
            .all(|v| v.starts_with("0.37."))
    );
    assert!(
        locked_versions(&lock, "egui_plot")
            .iter()
            .all(|v| v.starts_with("0.38."))
    );
    assert_eq!(locked_versions(&lock, "egui").len(), 1, "one egui");
}

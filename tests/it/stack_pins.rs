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

/// Each package of Cargo.lock with the names of its dependencies.
fn lock_graph(lock: &str) -> std::collections::HashMap<String, Vec<String>> {
    let mut graph = std::collections::HashMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let mut name = None;
        let mut deps = Vec::new();
        let mut in_deps = false;
        for line in block.lines().map(str::trim) {
            if let Some(n) = line.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_string());
            } else if line.starts_with("dependencies = [") {
                in_deps = true;
            } else if in_deps && line == "]" {
                in_deps = false;
            } else if in_deps {
                // `"name"` or `"name version"` (when several versions are locked).
                let dep = line.trim_end_matches(',').trim_matches('"');
                deps.push(dep.split(' ').next().unwrap_or(dep).to_string());
            }
        }
        if let Some(n) = name {
            graph.entry(n).or_insert_with(Vec::new).extend(deps);
        }
    }
    graph
}

/// Everything `root` depends on, directly or not (all versions of a name merged).
fn reachable(graph: &std::collections::HashMap<String, Vec<String>>, root: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen.into_iter().collect()
}

/// The layers are enforced by the crate graph: the core knows neither Burn nor egui,
/// the model layer and the service know no egui, and nothing below the viewer
/// depends on it.
#[test]
fn crate_layers_point_downward_only() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock is committed");
    let graph = lock_graph(&lock);
    let gui = [
        "egui",
        "eframe",
        "egui_plot",
        "egui-wgpu",
        "rfd",
        "ctseg-viewer",
    ];
    let core = reachable(&graph, "ctseg-core");
    for banned in gui
        .iter()
        .chain(&["burn", "wgpu", "cubecl", "ctseg-ml", "ctseg"])
    {
        assert!(
            !core.iter().any(|d| d == banned),
            "ctseg-core must not depend on {banned}"
        );
    }
    let ml = reachable(&graph, "ctseg-ml");
    assert!(ml.iter().any(|d| d == "burn"), "the lock graph was read");
    for banned in gui.iter().chain(&["ctseg"]) {
        assert!(
            !ml.iter().any(|d| d == banned),
            "ctseg-ml must not depend on {banned}"
        );
    }
    let serve = reachable(&graph, "ctseg-serve");
    assert!(serve.iter().any(|d| d == "axum"), "the lock graph was read");
    for banned in gui.iter().chain(&["ctseg"]) {
        assert!(
            !serve.iter().any(|d| d == banned),
            "ctseg-serve must not depend on {banned}"
        );
    }
    let viewer = reachable(&graph, "ctseg-viewer");
    assert!(
        !viewer.iter().any(|d| d == "ctseg"),
        "the viewer must not depend on the binary package"
    );
    // The CPU kernels sit under Burn: they know no Burn and no ctseg crate, and the
    // patched CPU backend (vendor/burn-flex) is the one in the lock file.
    let kernels = reachable(&graph, "ctseg-cpu-conv");
    assert!(
        kernels.iter().any(|d| d == "gemm"),
        "the lock graph was read"
    );
    for banned in gui
        .iter()
        .chain(&["burn", "burn-flex", "ctseg-core", "ctseg-ml", "ctseg"])
    {
        assert!(
            !kernels.iter().any(|d| d == banned),
            "ctseg-cpu-conv must not depend on {banned}"
        );
    }
    assert!(
        reachable(&graph, "burn-flex")
            .iter()
            .any(|d| d == "ctseg-cpu-conv"),
        "burn-flex must be vendor/burn-flex (patched to use ctseg-cpu-conv)"
    );
}

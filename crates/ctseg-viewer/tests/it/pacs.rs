//! The PACS browser against a real Orthanc with its DICOMweb plugin (the root
//! crate's harness, `tests/it/orthanc.rs`): search (the Search button clicked by its
//! label), a study's series, retrieving the CT series and opening it (equal to a
//! direct load of the same files), Send to PACS of a prediction (a SEG series
//! appears on the server), that SEG retrieved and opened as the ground truth (equal
//! labels), and the faults: a wrong password (HTTP 401) and a server that is down.

use std::path::PathBuf;
use std::time::Duration;

use ctseg_core::io::load_ct;
use ctseg_core::study::{CtView, LayerKind};
use ctseg_dicomweb::{Auth, Server};
use ctseg_viewer::app::Level;
use ctseg_viewer::pacs::{OpenAs, SendWhat};
use ctseg_viewer::{PacsAuthKind, PacsServer, PacsStartup, Startup, ViewerApp};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::{shared, tempdir};
use crate::orthanc::{Orthanc, free_port};

const PATIENT_ID: &str = "TSEG-0001";
const WAIT: Duration = Duration::from_secs(180);

/// The app with the PACS browser open on `url`, its first search done.
fn harness(url: String, auth: Auth, cache: PathBuf) -> Harness<'static, ViewerApp> {
    let startup = Startup {
        pacs: Some(PacsStartup {
            url,
            auth,
            study: None,
        }),
        ..Startup::default()
    };
    let mut h = ctseg_viewer::testing::harness(startup, [1400.0, 900.0]);
    h.state_mut().pacs.cache_dir = Some(cache);
    settle(&mut h);
    h
}

/// Finish every task and job (and those they start) and draw.
fn settle(h: &mut Harness<'static, ViewerApp>) {
    for _ in 0..4 {
        assert!(h.state_mut().wait_idle(WAIT), "the app did not become idle");
        h.run_steps(2);
    }
}

fn errors(app: &ViewerApp) -> Vec<String> {
    app.messages()
        .iter()
        .filter(|m| m.level == Level::Error)
        .map(|m| m.text.clone())
        .collect()
}

#[test]
fn pacs_search_open_send_and_open_the_seg_back() {
    let (Some(folder), Some(seg)) = (
        shared("totalseg/dicom_ct_pacs"),
        shared("totalseg/dicom_ct_seg_multilabel.nii.gz"),
    ) else {
        return;
    };
    let Some(orthanc) = Orthanc::start(None) else {
        return;
    };
    assert_eq!(orthanc.upload_folder(&folder), 20);
    let cache = tempdir();
    let mut h = harness(orthanc.dicomweb(), Auth::None, cache.path().to_path_buf());
    // The start-up search lists every study.
    assert_eq!(h.state().pacs.studies.len(), 1, "{:?}", errors(h.state()));

    // Search by patient ID with the window's button.
    h.state_mut().pacs.query.patient_id = PATIENT_ID.into();
    h.get_by_label("Search").click();
    h.run_steps(2);
    settle(&mut h);
    let app = h.state();
    assert!(errors(app).is_empty(), "{:?}", errors(app));
    assert_eq!(app.pacs.studies.len(), 1);
    let study = app.pacs.studies[0].clone();
    assert_eq!(study.patient_id, PATIENT_ID);

    // Click the study: its series are listed.
    let name = study.patient_name.replace('^', " ");
    h.get_by_label(&name).click();
    h.run_steps(2);
    settle(&mut h);
    let app = h.state();
    assert_eq!(app.pacs.study.as_deref(), Some(study.study_uid.as_str()));
    assert_eq!(app.pacs.series.len(), 1, "{:?}", app.pacs.series);
    assert_eq!(app.pacs.series[0].modality, "CT");
    assert_eq!(app.pacs.series[0].instance_count, Some(20));

    // Open the CT series: retrieved into the cache, opened like a direct load.
    h.get_by_label("Open").click();
    h.run_steps(2);
    settle(&mut h);
    let app = h.state();
    assert!(errors(app).is_empty(), "{:?}", errors(app));
    let ct = app.ct().expect("the CT is open");
    assert_eq!(ct.display.shape(), [512, 512, 20]);
    assert!(
        ct.path
            .as_ref()
            .is_some_and(|p| p.starts_with(cache.path())),
        "{:?}",
        ct.path
    );
    let direct = load_ct(&folder).unwrap();
    let direct = CtView::new(None, "direct".into(), &direct.volume, Vec::new()).unwrap();
    assert!(
        ct.display == direct.display,
        "retrieved CT differs from the files"
    );
    assert!(ct.dicom_seg_refusal().is_none());

    // The multilabel NIfTI on the series' grid as the prediction; Send to PACS.
    h.state_mut().open_layer(seg, LayerKind::Prediction);
    settle(&mut h);
    assert!(h.state().layer(LayerKind::Prediction).is_some());
    h.state_mut().send_to_pacs(SendWhat::Prediction);
    settle(&mut h);
    let app = h.state();
    assert!(errors(app).is_empty(), "{:?}", errors(app));
    let server_name = format!("127.0.0.1:{}", orthanc.url.rsplit(':').next().unwrap());
    let stored = format!("Stored 1 instance on {server_name}");
    assert!(
        app.messages().iter().any(|m| m.text == stored),
        "{:?}",
        app.messages().iter().map(|m| &m.text).collect::<Vec<_>>()
    );

    // Orthanc now has a SEG series in the study.
    let client = Server::new(&orthanc.dicomweb(), Auth::None).unwrap();
    let series = client.list_series(&study.study_uid).unwrap();
    let seg_series = series
        .iter()
        .find(|s| s.modality == "SEG")
        .unwrap_or_else(|| panic!("no SEG series: {series:?}\n{}", orthanc.log()));

    // The browser lists it; opened as the ground truth it equals the prediction.
    h.state_mut().pacs_select_study(&study.study_uid);
    settle(&mut h);
    assert!(
        h.state()
            .pacs
            .series
            .iter()
            .any(|s| s.series_uid == seg_series.series_uid)
    );
    h.state_mut().pacs_open(
        &seg_series.series_uid,
        OpenAs::Layer(LayerKind::GroundTruth),
    );
    settle(&mut h);
    let app = h.state();
    assert!(errors(app).is_empty(), "{:?}", errors(app));
    let gt = app.layer(LayerKind::GroundTruth).expect("the SEG is open");
    let pred = app.layer(LayerKind::Prediction).unwrap();
    assert!(
        gt.path
            .as_ref()
            .is_some_and(|p| p.starts_with(cache.path()))
    );
    assert!(
        gt.display == pred.display,
        "the SEG's labels differ from the prediction's"
    );
    assert!(pred.display.data().iter().any(|&l| l != 0));
}

#[test]
fn pacs_wrong_password_and_server_down_are_clear_messages() {
    let Some(folder) = shared("totalseg/dicom_ct_pacs") else {
        return;
    };
    let Some(orthanc) = Orthanc::start(Some(("ctseg", "right-pw"))) else {
        return;
    };
    assert_eq!(orthanc.upload_folder(&folder), 20);
    let cache = tempdir();
    let wrong = Auth::Basic {
        user: "ctseg".into(),
        password: "wrong-pw".into(),
    };
    let mut h = harness(orthanc.dicomweb(), wrong, cache.path().to_path_buf());
    let app = h.state();
    let errs = errors(app);
    assert!(
        errs.iter()
            .any(|e| e.contains("401") && e.contains("credentials")),
        "{errs:?}"
    );
    assert!(errs.iter().all(|e| !e.contains("wrong-pw")), "{errs:?}");
    let (_, status) = app.pacs.status.clone().expect("the window says why");
    assert!(status.contains("401"), "{status}");
    assert!(app.pacs.studies.is_empty());

    // The app lives on: the right password finds the study.
    let url = orthanc.dicomweb();
    h.state_mut().pacs_add_server(
        PacsServer {
            name: "orthanc".into(),
            url: url.clone(),
            auth: PacsAuthKind::Basic,
            user: "ctseg".into(),
            token_file: None,
        },
        Some("right-pw".into()),
    );
    h.state_mut().pacs_search();
    settle(&mut h);
    assert_eq!(h.state().pacs.studies.len(), 1);
    assert_eq!(h.state().pacs.studies[0].patient_id, PATIENT_ID);

    // A server nobody listens on.
    h.state_mut().pacs_add_server(
        PacsServer {
            name: "down".into(),
            url: format!("http://127.0.0.1:{}/dicom-web", free_port()),
            ..PacsServer::default()
        },
        None,
    );
    h.state_mut().pacs_search();
    settle(&mut h);
    let errs = errors(h.state());
    assert!(
        errs.last().is_some_and(|e| e.contains("cannot reach")),
        "{errs:?}"
    );
    // Settings never hold the password.
    let saved = serde_json::to_string(&h.state().settings).unwrap();
    assert!(
        !saved.contains("right-pw") && !saved.contains("wrong-pw"),
        "{saved}"
    );
}

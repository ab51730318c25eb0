//! `ctseg dicomweb` and the `ctseg-dicomweb` client against a real Orthanc with its
//! DICOMweb plugin ([`crate::orthanc`]): search, series, retrieval into the cache
//! (opened like a direct load of the same files), store, credentials, and faults
//! (server down, unknown study, a truncated multipart answer, a cancel, parts that
//! are not CT images) — the last ones from a tiny HTTP server in the test.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ctseg_core::io::load_ct;
use ctseg_dicomweb::{Auth, Error, Server, StudyQuery};

use crate::common::{self, shared};
use crate::orthanc::{Orthanc, free_port};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.87979699539472021332348858016319296264";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.11103706627168880259709461728433831053";
const PATIENT_ID: &str = "TSEG-0001";

/// The 20-slice CT series in the shared data, or `None` (skip).
fn pacs_series() -> Option<PathBuf> {
    shared("totalseg/dicom_ct_pacs")
}

/// An Orthanc holding the shared series, with its folder.
fn orthanc_with_series(user: Option<(&str, &str)>) -> Option<(Orthanc, PathBuf)> {
    let folder = pacs_series()?;
    let orthanc = Orthanc::start(user)?;
    assert_eq!(orthanc.upload_folder(&folder), 20);
    Some((orthanc, folder))
}

fn no_progress() -> impl FnMut(usize, Option<usize>, u64) {
    |_, _, _| {}
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Run the `ctseg` binary with extra environment variables.
fn ctseg_env(args: &[&str], env: &[(&str, &str)]) -> common::Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ctseg"))
        .args(args)
        .env_remove("CTSEG_DICOMWEB_USER")
        .env_remove("CTSEG_DICOMWEB_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("the ctseg binary runs");
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn search_finds_the_study_and_lists_its_series() {
    let Some((orthanc, _)) = orthanc_with_series(None) else {
        return;
    };
    let server = Server::new(&orthanc.dicomweb(), Auth::None).unwrap();
    let by_id = server
        .search_studies(&StudyQuery {
            patient_id: Some(PATIENT_ID.into()),
            ..StudyQuery::default()
        })
        .unwrap();
    assert_eq!(by_id.len(), 1, "{by_id:?}");
    let study = &by_id[0];
    assert_eq!(study.study_uid, STUDY);
    assert_eq!(study.patient_id, PATIENT_ID);
    assert_eq!(study.patient_name, "Test^TotalSegmentator");
    assert_eq!(study.study_date, "20221208");
    assert_eq!(study.accession_number, "A0001");
    assert_eq!(study.modalities, ["CT"]);
    assert_eq!(study.series_count, Some(1));
    assert_eq!(study.instance_count, Some(20));

    // `^` is sent as it is: Orthanc 1.10 would not decode `%5E`.
    let wildcard = StudyQuery {
        patient_name: Some("Test^Total*".into()),
        study_date: Some("20221201-20221231".into()),
        modality: Some("CT".into()),
        accession_number: Some("A0001".into()),
        limit: Some(10),
        ..StudyQuery::default()
    };
    assert_eq!(server.search_studies(&wildcard).unwrap(), by_id);
    let exact = StudyQuery {
        patient_name: Some("Test^TotalSegmentator".into()),
        ..StudyQuery::default()
    };
    assert_eq!(server.search_studies(&exact).unwrap(), by_id);
    for miss in [
        StudyQuery {
            study_date: Some("20200101-20200131".into()),
            ..StudyQuery::default()
        },
        StudyQuery {
            modality: Some("MR".into()),
            ..StudyQuery::default()
        },
        StudyQuery {
            // No fuzzy matching: a different name does not match.
            patient_name: Some("Test^TotalSegmentater".into()),
            ..StudyQuery::default()
        },
    ] {
        assert!(server.search_studies(&miss).unwrap().is_empty(), "{miss:?}");
    }
    let bad_date = StudyQuery {
        study_date: Some("2022-12-08".into()),
        ..StudyQuery::default()
    };
    assert!(matches!(
        server.search_studies(&bad_date),
        Err(Error::BadInput(_))
    ));

    let series = server.list_series(STUDY).unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].series_uid, SERIES);
    assert_eq!(series[0].modality, "CT");
    assert_eq!(series[0].instance_count, Some(20));
}

#[test]
fn retrieved_series_opens_like_the_original_files() {
    let Some((orthanc, folder)) = orthanc_with_series(None) else {
        return;
    };
    let server = Server::new(&orthanc.dicomweb(), Auth::None).unwrap();
    let cache = common::tempdir();
    let mut calls = Vec::new();
    let mut progress =
        |done: usize, total: Option<usize>, bytes: u64| calls.push((done, total, bytes));
    let got = server
        .retrieve_series(
            STUDY,
            SERIES,
            cache.path(),
            &mut progress,
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(got.instances, 20);
    assert!(got.warnings.is_empty(), "{:?}", got.warnings);
    assert_eq!(got.folder, cache.path().join(STUDY).join(SERIES));
    let files = files_under(cache.path());
    assert_eq!(files.len(), 20, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "dcm")
                && f.parent() == Some(got.folder.as_path()))
    );
    let last = calls.last().copied().unwrap();
    assert_eq!(last, (20, Some(20), got.bytes));
    assert!(
        calls
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].2 <= w[1].2)
    );

    let direct = load_ct(&folder).unwrap();
    let fetched = load_ct(&got.folder).unwrap();
    assert_eq!(fetched.volume.geometry(), direct.volume.geometry());
    assert!(
        fetched.volume.data() == direct.volume.data(),
        "voxels differ"
    );

    // The whole study, into the same cache: the files are replaced in place and
    // the study folder opens too.
    let study = server
        .retrieve_study(
            STUDY,
            cache.path(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(study.len(), 1);
    assert_eq!(study[0].instances, 20);
    assert_eq!(files_under(cache.path()).len(), 20);
    let again = load_ct(&cache.path().join(STUDY)).unwrap();
    assert!(again.volume.data() == direct.volume.data());
}

#[test]
fn cli_search_json_and_get() {
    let Some((orthanc, folder)) = orthanc_with_series(None) else {
        return;
    };
    let url = orthanc.dicomweb();
    let run = ctseg_env(
        &[
            "dicomweb",
            "search",
            &url,
            "--patient-id",
            PATIENT_ID,
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let studies: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(studies.as_array().map(Vec::len), Some(1), "{studies}");
    assert_eq!(studies[0]["study_uid"], STUDY);
    assert_eq!(studies[0]["patient_id"], PATIENT_ID);
    assert_eq!(studies[0]["modalities"], serde_json::json!(["CT"]));
    assert_eq!(studies[0]["series_count"], 1);

    let run = ctseg_env(&["dicomweb", "search", &url, "--modality", "CT"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("PATIENT") && run.stdout.contains(STUDY),
        "{}",
        run.stdout
    );

    let run = ctseg_env(
        &["dicomweb", "series", &url, "--study", STUDY, "--json"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let series: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(series[0]["series_uid"], SERIES);
    assert_eq!(series[0]["instance_count"], 20);

    let cache = common::tempdir();
    let out = cache.path().to_string_lossy().to_string();
    let run = ctseg_env(
        &["dicomweb", "get", &url, "--study", STUDY, "--out", &out],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written = PathBuf::from(run.stdout.trim());
    assert_eq!(written, cache.path().join(STUDY).join(SERIES));
    assert!(run.stderr.contains("20 instances"), "{}", run.stderr);

    // What predict --input would read: the same CT as the original files.
    let info = ctseg_env(&["info", run.stdout.trim(), "--json"], &[]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    let fetched: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    let original = ctseg_env(&["info", &folder.to_string_lossy(), "--json"], &[]);
    let original: serde_json::Value = serde_json::from_str(&original.stdout).unwrap();
    for key in ["shape", "spacing", "world_from_voxel", "hu_min", "hu_max"] {
        assert_eq!(fetched[key], original[key], "{key}");
    }
}

/// A copy of `source` with a new SOP Instance UID.
fn copy_with_new_uid(source: &Path, dest: &Path, uid: &str) {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    let mut obj = dicom_object::open_file(source).unwrap();
    obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, uid);
    obj.update_meta(|m| m.media_storage_sop_instance_uid = uid.to_string());
    obj.write_to_file(dest).unwrap();
}

#[test]
fn store_round_trip() {
    let Some((orthanc, folder)) = orthanc_with_series(None) else {
        return;
    };
    let server = Server::new(&orthanc.dicomweb(), Auth::None).unwrap();
    let dir = common::tempdir();
    let first = files_under(&folder)[0].clone();
    let copy = dir.path().join("copy.dcm");
    let uid = "1.2.826.0.1.3680043.8.498.99999999999999999999999999999999";
    copy_with_new_uid(&first, &copy, uid);
    let report = server.store(std::slice::from_ref(&copy)).unwrap();
    assert_eq!((report.stored, report.sent), (1, 1));
    assert_eq!(report.sop_instance_uids, [uid]);
    let series = server.list_series(STUDY).unwrap();
    assert_eq!(series[0].instance_count, Some(21));

    // Through the binary, a second copy.
    let copy2 = dir.path().join("copy2.dcm");
    copy_with_new_uid(
        &first,
        &copy2,
        "1.2.826.0.1.3680043.8.498.99999999999999999999999999999998",
    );
    let run = ctseg_env(
        &[
            "dicomweb",
            "store",
            &orthanc.dicomweb(),
            &copy2.to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("stored 1 of 1"), "{}", run.stderr);
    assert_eq!(
        server.list_series(STUDY).unwrap()[0].instance_count,
        Some(22)
    );

    // Not DICOM: refused before anything is sent, naming the file.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a DICOM file").unwrap();
    let e = server.store(&[copy.clone(), text.clone()]).unwrap_err();
    assert!(matches!(e, Error::NotDicom { .. }), "{e}");
    assert!(e.to_string().contains("notes.txt"), "{e}");
}

#[test]
fn credentials_are_checked_and_never_shown() {
    let Some((orthanc, _)) = orthanc_with_series(Some(("radiologist", "pw-7c1f"))) else {
        return;
    };
    let url = orthanc.dicomweb();
    let query = StudyQuery {
        patient_id: Some(PATIENT_ID.into()),
        ..StudyQuery::default()
    };
    let right = Auth::from_user_arg("radiologist:pw-7c1f").unwrap();
    let found = Server::new(&url, right)
        .unwrap()
        .search_studies(&query)
        .unwrap();
    assert_eq!(found.len(), 1);

    let wrong = Auth::from_user_arg("radiologist:guess").unwrap();
    let e = Server::new(&url, wrong)
        .unwrap()
        .search_studies(&query)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unauthorized {
                status: 401,
                credentials_given: true,
                ..
            }
        ),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("401") && text.contains("credentials"),
        "{text}"
    );
    assert!(!text.contains("guess"), "{text}");

    let e = Server::new(&url, Auth::None)
        .unwrap()
        .list_series(STUDY)
        .unwrap_err();
    assert!(e.to_string().contains("no credentials were given"), "{e}");
    let e = Server::new(&url, Auth::Bearer("tok-123".into()))
        .unwrap()
        .retrieve_series(
            STUDY,
            SERIES,
            common::tempdir().path(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("401") && !e.to_string().contains("tok-123"),
        "{e}"
    );

    // The binary: environment credentials work; wrong ones fail with one line.
    let run = ctseg_env(
        &["dicomweb", "search", &url, "--json"],
        &[("CTSEG_DICOMWEB_USER", "radiologist:pw-7c1f")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(STUDY));
    let run = ctseg_env(
        &["dicomweb", "search", &url, "--user", "radiologist:nope-x"],
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("401") && !run.stderr.contains("nope-x"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn unknown_study_and_series_say_not_found() {
    let Some((orthanc, _)) = orthanc_with_series(None) else {
        return;
    };
    let server = Server::new(&orthanc.dicomweb(), Auth::None).unwrap();
    let e = server.list_series("1.2.3.4").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains("study 1.2.3.4 not found on ")
            && e.to_string().contains(&orthanc.url),
        "{e}"
    );
    let cache = common::tempdir();
    let e = server
        .retrieve_series(
            STUDY,
            "1.2.3.4",
            cache.path(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let e = server
        .retrieve_study(
            "1.2.3.4",
            cache.path(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(files_under(cache.path()).is_empty());
    let run = ctseg_env(
        &[
            "dicomweb",
            "series",
            &orthanc.dicomweb(),
            "--study",
            "1.2.3.4",
        ],
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
}

#[test]
fn server_down_is_a_clear_error() {
    let url = format!("http://127.0.0.1:{}/dicom-web", free_port());
    let server = Server::new(&url, Auth::None).unwrap();
    let start = Instant::now();
    let e = server.search_studies(&StudyQuery::default()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot reach the DICOMweb server at {url}")),
        "{e}"
    );
    let run = ctseg_env(&["dicomweb", "search", &url], &[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
}

/// A one-shot HTTP server: answers each request (until one to a WADO-RS series URL)
/// with `[]` to QIDO and `body` as a multipart/related answer, then closes.
fn tiny_server(body: Vec<u8>, boundary: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/dicom-web", listener.local_addr().unwrap());
    let content_type =
        format!(r#"multipart/related; type="application/dicom"; boundary="{boundary}""#);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                request.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            if path.contains("/series/") {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
                );
                let sent = stream
                    .write_all(head.as_bytes())
                    .and_then(|_| stream.write_all(&body));
                if let Err(e) = sent {
                    // The client may hang up first (a cancel).
                    eprintln!("tiny server: the client hung up: {e}");
                }
                return;
            }
            let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]";
            if let Err(e) = stream.write_all(reply.as_bytes()) {
                eprintln!("tiny server: the client hung up: {e}");
            }
        }
    });
    url
}

/// A closed multipart body of `parts` (content type, bytes).
fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ty, bytes) in parts {
        out.extend_from_slice(format!("--{boundary}\r\nContent-Type: {ty}\r\n\r\n").as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[test]
fn truncated_answer_leaves_no_partial_file() {
    let Some(folder) = pacs_series() else {
        return;
    };
    let files = files_under(&folder);
    let a = std::fs::read(&files[0]).unwrap();
    let b = std::fs::read(&files[1]).unwrap();
    let boundary = "cut here";
    let whole = multipart(
        boundary,
        &[("application/dicom", &a), ("application/dicom", &b)],
    );

    // Cut inside the first instance: nothing at all in the cache.
    let url = tiny_server(whole[..a.len() / 2].to_vec(), boundary);
    let server = Server::new(&url, Auth::None).unwrap();
    let cache = common::tempdir();
    let e = server
        .retrieve_series(
            STUDY,
            SERIES,
            cache.path(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Truncated { instances: 0, .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("truncated multipart response from http://127.0.0.1:"),
        "{e}"
    );
    assert_eq!(files_under(cache.path()), Vec::<PathBuf>::new());

    // Cut inside the second: the first is whole and stays, nothing else.
    let url = tiny_server(whole[..whole.len() - b.len() / 2].to_vec(), boundary);
    let server = Server::new(&url, Auth::None).unwrap();
    let e = server
        .retrieve_series(
            STUDY,
            SERIES,
            cache.path(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert!(e.to_string().contains("after 1 instances"), "{e}");
    let left = files_under(cache.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(std::fs::read(&left[0]).unwrap(), a);

    // A cancel as the first bytes arrive: nothing written.
    let url = tiny_server(whole.clone(), boundary);
    let server = Server::new(&url, Auth::None).unwrap();
    let cache = common::tempdir();
    let cancel = AtomicBool::new(false);
    let mut progress = |_: usize, _: Option<usize>, bytes: u64| {
        if bytes > 0 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let e = server
        .retrieve_series(STUDY, SERIES, cache.path(), &mut progress, &cancel)
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert_eq!(files_under(cache.path()), Vec::<PathBuf>::new());
}

/// A DICOM object with no image (a Basic Text SR) of the test study and series.
fn structured_report() -> Vec<u8> {
    use dicom_core::VR;
    use dicom_dictionary_std::{tags, uids};
    let mut obj = dicom_object::InMemDicomObject::new_empty();
    obj.put_str(tags::SOP_CLASS_UID, VR::UI, uids::BASIC_TEXT_SR_STORAGE);
    obj.put_str(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.8.498.1",
    );
    obj.put_str(tags::STUDY_INSTANCE_UID, VR::UI, STUDY);
    obj.put_str(tags::SERIES_INSTANCE_UID, VR::UI, SERIES);
    obj.put_str(tags::MODALITY, VR::CS, "SR");
    let file = obj
        .with_meta(
            dicom_object::FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

#[test]
fn parts_that_are_not_ct_images() {
    let sr = structured_report();
    let boundary = "b0undary";
    let body = multipart(
        boundary,
        &[
            ("application/dicom", &sr),
            ("text/plain", b"hello"),
            ("application/dicom", b"not dicom"),
        ],
    );
    let url = tiny_server(body, boundary);
    let server = Server::new(&url, Auth::None).unwrap();
    let cache = common::tempdir();
    let got = server
        .retrieve_series(
            STUDY,
            SERIES,
            cache.path(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(got.instances, 1);
    assert_eq!(got.warnings.len(), 2, "{:?}", got.warnings);
    assert!(got.warnings[0].contains("text/plain"), "{:?}", got.warnings);
    assert!(
        got.warnings[1].contains("not a DICOM file"),
        "{:?}",
        got.warnings
    );
    let files = files_under(cache.path());
    assert_eq!(files, [got.folder.join("1.2.826.0.1.3680043.8.498.1.dcm")]);
    let e = load_ct(&got.folder).unwrap_err().to_string();
    eprintln!("load_ct on a folder holding only an SR: {e}");
    assert!(e.contains(&got.folder.display().to_string()), "{e}");
}

//! `ctseg serve` end to end: the real binary on a free loopback port with a small
//! model and a temporary datastore, driven over HTTP — the MONAI Label endpoints
//! (and, in `monailabel_client_drives_the_server`, MONAI Label's own Python client),
//! the /v1 endpoints, the token check, faults (bad IDs, bad uploads, a body over the
//! limit, a client that disconnects mid-upload, a full queue, `kill -9` during a
//! label save) and a bounded load test whose figures are printed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use burn::prelude::Device;
use ctseg_core::io::nifti;
use ctseg_core::testdata::reference_python;
use ctseg_ml::model::{UNetConfig, save_weights};
use serde_json::Value;

use crate::common;

/// Threshold of the reference and the server: the untrained tiny model predicts
/// about 1 % everywhere (its output prior), so 0.5 would leave every label empty.
const THRESHOLD: &str = "0.01";

/// The bundled sample CT (always in the repository).
fn sample_ct() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample/s0001/ct.nii.gz")
}

/// Its full-model segmentation, used as a "final" label.
fn sample_label() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample/s0001/seg_full_multilabel.nii.gz")
}

/// A small randomly initialised model (117 classes, base 4, 32² input), once per
/// test binary.
fn tiny_model() -> &'static PathBuf {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep().join("tiny");
        let config = UNetConfig {
            base_channels: 4,
            input_size: 32,
            ..UNetConfig::default()
        };
        let model = config.init_seeded(&Device::flex(), 11);
        save_weights(&dir, &model, &config).expect("save the tiny model");
        dir
    })
}

/// `ctseg predict` with the tiny model on the sample CT: the reference labels.
fn reference_labels() -> &'static PathBuf {
    static LABELS: OnceLock<PathBuf> = OnceLock::new();
    LABELS.get_or_init(|| {
        let out = tempfile::tempdir()
            .expect("tempdir")
            .keep()
            .join("reference.nii.gz");
        let run = common::ctseg(&[
            "predict",
            "--model",
            &tiny_model().to_string_lossy(),
            "--input",
            &sample_ct().to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--backend",
            "cpu",
            "--threshold",
            THRESHOLD,
            "--quiet",
        ]);
        assert_eq!(run.code, 0, "ctseg predict: {}", run.stderr);
        out
    })
}

/// A running `ctseg serve`, killed (and waited for) when dropped, also when the test fails.
struct Server {
    child: Child,
    url: String,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(datastore: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ctseg"))
            .args(["serve", "--model"])
            .arg(format!("tiny={}", tiny_model().display()))
            .arg("--datastore")
            .arg(datastore)
            .args(["--bind", "127.0.0.1:0", "--backend", "cpu"])
            // The untrained model starts every structure at 1 %.
            .args(["--threshold", THRESHOLD])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctseg serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.trim_end_matches('/').to_string();
                        if tx.send(addr).is_err() {
                            // The test gave up waiting; keep collecting the log.
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut server = Server {
            child,
            url: String::new(),
            addr: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(addr) => {
                assert!(addr.starts_with("127.0.0.1:"), "bound to {addr}");
                server.url = format!("http://{addr}");
                server.addr = addr;
            }
            Err(_) => panic!("ctseg serve did not start: {}", server.log_text()),
        }
        server
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill with SIGKILL and wait.
    fn kill(&mut self) {
        if self.child.kill().is_err() {
            // Already exited.
        }
        if self.child.wait().is_err() {
            // Not our child any more; nothing left to reap.
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// Status, headers of interest and body of a response.
struct Reply {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("the request reaches the server");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .expect("body");
    Reply {
        status: r.status().as_u16(),
        content_type,
        retry_after,
        body,
    }
}

fn get(url: &str, token: Option<&str>) -> Reply {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    reply(req.call())
}

/// A multipart body with a `params` field and one file field.
fn multipart(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "ctsegtestboundary7d1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{{}}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn send_multipart(method: &str, url: &str, field: &str, file_name: &str, bytes: &[u8]) -> Reply {
    let (content_type, body) = multipart(field, file_name, bytes);
    let a = agent();
    let r = match method {
        "PUT" => a
            .put(url)
            .header("Content-Type", &content_type)
            .send(&body[..]),
        _ => a
            .post(url)
            .header("Content-Type", &content_type)
            .send(&body[..]),
    };
    reply(r)
}

/// Send a body larger than the server's limit the way a careful client does: the
/// server may answer 413 and close before the whole body is sent, so a failed
/// write ends the sending and the reply is read from what the server wrote (an
/// HTTP client that gives up on the first write error would see a broken pipe).
fn send_over_limit(addr: &str, request_line: &str, content_type: &str, body: &[u8]) -> Reply {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let head = format!(
        "{request_line} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send the request head");
    for chunk in body.chunks(16 << 10) {
        if s.write_all(chunk).is_err() {
            break; // the server has answered and closed its side
        }
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the reply has arrived ends the reply.
            Err(e) if !raw.is_empty() => {
                eprintln!("reading the reply ended with: {e}");
                break;
            }
            Err(e) => panic!("no reply to the over-limit request: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {head}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        retry_after: None,
        body: body.as_bytes().to_vec(),
    }
}

fn upload_sample(server: &Server, id: &str) {
    let ct = std::fs::read(sample_ct()).unwrap();
    let r = send_multipart(
        "PUT",
        &format!("{}/datastore/?image={id}", server.url),
        "file",
        "ct.nii.gz",
        &ct,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["image"], id);
}

/// Labels of a gzipped NIfTI held in memory.
fn labels_of(bytes: &[u8]) -> (Vec<u8>, [[f64; 4]; 4]) {
    let dir = common::tempdir();
    let path = dir.path().join("l.nii.gz");
    std::fs::write(&path, bytes).unwrap();
    read_labels(&path)
}

fn read_labels(path: &Path) -> (Vec<u8>, [[f64; 4]; 4]) {
    let image = nifti::read::<u8>(path).expect("a label NIfTI");
    (
        image.volume.data().to_vec(),
        image.volume.geometry().world_from_voxel,
    )
}

fn the_reference() -> (Vec<u8>, [[f64; 4]; 4]) {
    let reference = read_labels(reference_labels());
    assert!(
        reference.0.iter().any(|&v| v != 0),
        "the reference prediction is empty: the comparison would prove nothing"
    );
    reference
}

#[test]
fn monai_label_endpoints_segment_store_and_fine_tune() {
    let store = common::tempdir();
    let server = Server::start(store.path(), &[]);
    let info = get(&format!("{}/info/", server.url), None).json();
    assert_eq!(info["labels"].as_array().unwrap().len(), 117);
    assert_eq!(info["models"]["tiny"]["dimension"], 2);
    assert_eq!(info["models"]["tiny"]["labels"]["liver"], 5);
    assert!(info["strategies"]["random"].is_object());

    upload_sample(&server, "s0001");
    upload_sample(&server, "s0002");
    // Inference by datastore ID, answered as the label NIfTI alone: the same labels,
    // voxel for voxel, on the same grid, as `ctseg predict`.
    let r = reply(
        agent()
            .post(&format!(
                "{}/infer/tiny?image=s0001&output=image",
                server.url
            ))
            .send_empty(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(labels_of(&r.body), the_reference());
    // The default answer: multipart with the params JSON and the file.
    let r = send_multipart(
        "POST",
        &format!("{}/infer/tiny?image=s0001", server.url),
        "unused",
        "x",
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.content_type.starts_with("multipart/form-data"),
        "{}",
        r.content_type
    );
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("name=\"params\"") && text.contains("\"label_names\""));
    // output=json: the params only.
    let r = reply(
        agent()
            .post(&format!(
                "{}/infer/tiny?image=s0001&output=json",
                server.url
            ))
            .send_empty(),
    );
    assert_eq!(r.json()["label_names"]["spleen"], 1);

    // Active learning: the first unlabelled image, then after labelling it, the next.
    let next = |strategy: &str| {
        reply(
            agent()
                .post(&format!("{}/activelearning/{strategy}", server.url))
                .send_empty(),
        )
    };
    assert_eq!(next("first").json()["id"], "s0001");
    let label = std::fs::read(sample_label()).unwrap();
    let r = send_multipart(
        "PUT",
        &format!("{}/datastore/label?image=s0001&tag=final", server.url),
        "label",
        "label.nii.gz",
        &label,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(next("first").json()["id"], "s0002");
    assert_eq!(next("random").json()["id"], "s0002");
    assert_eq!(next("nosuch").status, 404);
    let stats = get(&format!("{}/datastore/?output=stats", server.url), None).json();
    assert_eq!(
        (stats["total"].as_u64(), stats["completed"].as_u64()),
        (Some(2), Some(1))
    );
    let back = get(
        &format!("{}/datastore/label?label=s0001&tag=final", server.url),
        None,
    );
    assert_eq!(back.body, label);

    // Fine-tuning on the labelled image; the served model then uses the run's weights.
    assert_eq!(get(&format!("{}/train/", server.url), None).status, 404);
    let r = reply(
        agent()
            .post(&format!("{}/train/tiny", server.url))
            .header("Content-Type", "application/json")
            .send(r#"{"max_steps": 3, "batch_size": 2, "client_id": "test"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let again = reply(
        agent()
            .post(&format!("{}/train/tiny", server.url))
            .header("Content-Type", "application/json")
            .send(r#"{"max_steps": 3, "batch_size": 2}"#),
    );
    assert!(
        again.status == 429 || again.status == 200,
        "a second start while one runs: {}",
        again.status
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let task = loop {
        let t = get(&format!("{}/train/", server.url), None).json();
        if t["status"] != "RUNNING" {
            break t;
        }
        assert!(Instant::now() < deadline, "training did not finish: {t}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(task["status"], "DONE", "{task}");
    assert_eq!(task["step"], 3, "{task}");
    let info = get(&format!("{}/info/", server.url), None).json();
    let weights = get(&format!("{}/", server.url), None).text();
    assert!(
        weights.contains(".ctseg/train/"),
        "status page: {weights}\ninfo: {info}"
    );
    // Inference still works with the fine-tuned weights.
    let r = reply(
        agent()
            .post(&format!(
                "{}/infer/tiny?image=s0002&output=image",
                server.url
            ))
            .send_empty(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let log = server.log_text();
    assert!(log.contains("POST /infer/tiny 200"), "request log: {log}");
    assert!(
        !log.contains("image="),
        "queries must not reach the log: {log}"
    );
}

#[test]
fn v1_endpoints_segment_a_nifti_or_a_dicom_zip() {
    let store = common::tempdir();
    let server = Server::start(store.path(), &[]);
    let health = get(&format!("{}/health", server.url), None).json();
    assert_eq!(health["status"], "ok");
    let ct = std::fs::read(sample_ct()).unwrap();
    let r = reply(
        agent()
            .post(&format!("{}/v1/segment", server.url))
            .send(&ct[..]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(labels_of(&r.body), the_reference());
    // Asynchronous: 202, then poll the job, then fetch the result.
    let r = reply(
        agent()
            .post(&format!("{}/v1/segment?wait=false", server.url))
            .send(&ct[..]),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json()["job"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = get(&format!("{}/v1/jobs/{job}", server.url), None).json();
        if j["state"] == "done" {
            assert_eq!(j["progress"]["done"], j["progress"]["total"]);
            break;
        }
        assert!(j["state"] == "queued" || j["state"] == "running", "{j}");
        assert!(Instant::now() < deadline, "job did not finish: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = get(&format!("{}/v1/jobs/{job}/result", server.url), None);
    assert_eq!(labels_of(&r.body), the_reference());
    assert_eq!(
        get(&format!("{}/v1/jobs/999999", server.url), None).status,
        404
    );
    // The OpenAPI description is served.
    let api = get(&format!("{}/openapi.json", server.url), None).json();
    assert!(api["paths"]["/v1/segment"]["post"].is_object());

    // A zip of the shared DICOM series.
    let Some(series) = common::shared("totalseg/dicom_ct") else {
        return;
    };
    let zip_path = store.path().join("series.zip");
    let status = Command::new("python3")
        .args([
            "-c",
            "import shutil,sys; shutil.make_archive(sys.argv[1][:-4], 'zip', sys.argv[2])",
        ])
        .arg(&zip_path)
        .arg(&series)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let zip = std::fs::read(&zip_path).unwrap();
    let r = reply(
        agent()
            .post(&format!("{}/v1/segment", server.url))
            .send(&zip[..]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let reference = common::tempdir();
    let out = reference.path().join("dicom.nii.gz");
    let run = common::ctseg(&[
        "predict",
        "--model",
        &tiny_model().to_string_lossy(),
        "--input",
        &series.to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
        "--backend",
        "cpu",
        "--threshold",
        THRESHOLD,
        "--quiet",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(labels_of(&r.body), read_labels(&out));
}

#[test]
fn a_token_is_required_when_configured_and_never_logged() {
    let store = common::tempdir();
    let token_file = store.path().join("token");
    std::fs::write(&token_file, "s3cret-token-value\n").unwrap();
    let data = store.path().join("data");
    let server = Server::start(&data, &["--token-file", &token_file.to_string_lossy()]);
    let none = get(&format!("{}/info/", server.url), None);
    assert_eq!(none.status, 401);
    assert!(none.json()["detail"].as_str().unwrap().contains("Bearer"));
    assert_eq!(
        get(&format!("{}/info/", server.url), Some("wrong")).status,
        401
    );
    assert_eq!(
        get(
            &format!("{}/health", server.url),
            Some("s3cret-token-valuX")
        )
        .status,
        401
    );
    let ok = get(&format!("{}/info/", server.url), Some("s3cret-token-value"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        !server.log_text().contains("s3cret"),
        "{}",
        server.log_text()
    );
    assert!(server.log_text().contains("GET /info/ 401"));
}

#[test]
fn bad_requests_get_clear_4xx_and_the_server_keeps_serving() {
    let store = common::tempdir();
    let server = Server::start(store.path(), &["--max-body-mb", "1"]);
    upload_sample(&server, "s0001");
    let u = &server.url;
    let post = |path: &str| reply(agent().post(&format!("{u}{path}")).send_empty());
    // IDs never leave the datastore.
    for id in [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "a%2Fb",
    ] {
        let r = post(&format!("/infer/tiny?image={id}&output=image"));
        assert_eq!(r.status, 400, "{id}: {}", r.text());
        let r = get(&format!("{u}/datastore/image?image={id}"), None);
        assert_eq!(r.status, 400, "{id}: {}", r.text());
        let r = send_multipart(
            "PUT",
            &format!("{u}/datastore/?image={id}"),
            "file",
            "x.nii.gz",
            b"\x1f\x8b",
        );
        assert_eq!(r.status, 400, "{id}: {}", r.text());
    }
    let r = send_multipart(
        "PUT",
        &format!("{u}/datastore/"),
        "file",
        "../../evil.nii.gz",
        b"\x1f\x8b\x08",
    );
    assert!(r.status == 400 || r.status == 422, "{}", r.text());
    assert!(!store.path().parent().unwrap().join("evil.nii.gz").exists());
    // Unknown model, image, strategy, job, endpoint.
    let r = post("/infer/nosuch?image=s0001");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("tiny"), "{}", r.text());
    assert_eq!(post("/infer/tiny?image=s9999").status, 404);
    assert_eq!(get(&format!("{u}/nosuch"), None).status, 404);
    // Not a NIfTI: refused, named by the client's file name, nothing stored.
    let r = send_multipart(
        "PUT",
        &format!("{u}/datastore/?image=junk"),
        "file",
        "notes.txt",
        b"hello, not a CT",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("notes.txt"), "{}", r.text());
    let r = send_multipart(
        "PUT",
        &format!("{u}/datastore/?image=junk"),
        "file",
        "fake.nii.gz",
        b"\x1f\x8bnot really gzip",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    // A CT given as a label, and a label on another grid, are refused.
    let ct = std::fs::read(sample_ct()).unwrap();
    let r = send_multipart(
        "PUT",
        &format!("{u}/datastore/label?image=s0001"),
        "label",
        "ct.nii.gz",
        &ct,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    // Over the 1 MiB limit: 413.
    let big = vec![7u8; 3 << 19];
    let (big_type, big_body) = multipart("file", "big.nii", &big);
    let r = send_over_limit(
        &server.addr,
        "PUT /datastore/?image=big",
        &big_type,
        &big_body,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let r = send_over_limit(
        &server.addr,
        "POST /v1/segment",
        "application/octet-stream",
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    // A client that disconnects mid-upload.
    {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        let (ct_header, body) = multipart("file", "cut.nii.gz", &ct);
        write!(
            s,
            "PUT /datastore/?image=cut HTTP/1.1\r\nHost: x\r\nContent-Type: {ct_header}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body[..body.len() / 2]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(500));
    // Still serving; nothing of the failed uploads left behind.
    assert_eq!(get(&format!("{u}/health"), None).status, 200);
    let r = post("/infer/tiny?image=s0001&output=image");
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = get(&format!("{u}/datastore/"), None).json();
    assert_eq!(stats["total"], 1, "{stats}");
    let leftovers: Vec<_> = std::fs::read_dir(store.path().join(".ctseg/tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let store = common::tempdir();
    let server = Server::start(store.path(), &["--queue", "1", "--batch-size", "1"]);
    upload_sample(&server, "s0001");
    let url = format!("{}/infer/tiny?image=s0001&output=image", server.url);
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || reply(agent().post(&url).send_empty()))
        })
        .collect();
    let replies: Vec<Reply> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "statuses {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(busy.iter().all(|r| r.retry_after.is_some()));
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 503));
    assert!(replies.iter().any(|r| r.status == 200));
}

#[test]
fn kill_9_during_a_label_save_leaves_the_old_label() {
    let store = common::tempdir();
    let mut server = Server::start(store.path(), &[]);
    upload_sample(&server, "s0001");
    let label = std::fs::read(sample_label()).unwrap();
    let r = send_multipart(
        "PUT",
        &format!("{}/datastore/label?image=s0001", server.url),
        "label",
        "l.nii.gz",
        &label,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = store.path().join("labels/final/s0001.nii.gz");
    assert_eq!(std::fs::read(&stored).unwrap(), label);
    // A new label arrives slowly; the server is killed halfway.
    let mut other = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/sample/s0001/seg_fast_multilabel.nii.gz"),
    )
    .unwrap();
    other.extend(std::iter::repeat_n(0u8, 1 << 20));
    let (content_type, body) = multipart("label", "new.nii.gz", &other);
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "PUT /datastore/label?image=s0001&tag=final HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    s.flush().unwrap();
    let tmp = store.path().join(".ctseg/tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&tmp).unwrap().count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the upload never reached a temporary file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    drop(s);
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        label,
        "the old label was damaged"
    );
    let labels: Vec<_> = std::fs::read_dir(store.path().join("labels/final"))
        .unwrap()
        .collect();
    assert_eq!(labels.len(), 1, "{labels:?}");
    // A restart clears the half-written upload and serves the old label.
    let server = Server::start(store.path(), &[]);
    assert!(
        server.log_text().contains("removed 1 unfinished upload"),
        "{}",
        server.log_text()
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    let back = get(&format!("{}/datastore/label?label=s0001", server.url), None);
    assert_eq!(back.body, label);
}

/// 8 clients × 5 inference requests on the sample CT: all answered, all equal to
/// `ctseg predict`. Prints latency percentiles and the server's peak memory.
#[test]
fn load_8_clients_by_5_requests() {
    let store = common::tempdir();
    let server = Server::start(store.path(), &[]);
    upload_sample(&server, "s0001");
    let reference = the_reference();
    let url = format!("{}/infer/tiny?image=s0001&output=image", server.url);
    let start = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| {
                        let t = Instant::now();
                        let r = reply(agent().post(&url).send_empty());
                        (r, t.elapsed().as_secs_f64() * 1000.0)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        for (r, ms) in h.join().unwrap() {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(labels_of(&r.body), reference);
            latencies.push(ms);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: unknown")
        .to_string();
    let mut out = std::io::stderr();
    writeln!(
        out,
        "serve load: {} requests in {wall:.1} s ({:.2} req/s); latency ms p50 {:.0}, p90 {:.0}, p99 {:.0}, max {:.0}; server peak memory {}",
        latencies.len(),
        latencies.len() as f64 / wall,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        latencies[latencies.len() - 1],
        peak.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    )
    .unwrap();
    assert_eq!(latencies.len(), 40);
}

/// MONAI Label's own Python client (`monailabel.client.MONAILabelClient`) against
/// `ctseg serve`: info, upload, infer (same labels as `ctseg predict`), save label,
/// train, next sample, and a wrong token.
#[test]
fn monailabel_client_drives_the_server() {
    let Some(python) = reference_python(&["monailabel.client", "nibabel"]) else {
        return;
    };
    let store = common::tempdir();
    let token_file = store.path().join("token");
    std::fs::write(&token_file, "client-token\n").unwrap();
    let server = Server::start(
        &store.path().join("data"),
        &["--token-file", &token_file.to_string_lossy()],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/serve_client.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["--url", &server.url, "--token", "client-token"])
        .arg("--ct")
        .arg(sample_ct())
        .arg("--label")
        .arg(sample_label())
        .arg("--reference")
        .arg(reference_labels())
        .arg("--tmp")
        .arg(store.path())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut err = std::io::stderr();
    writeln!(err, "{stdout}").unwrap();
    assert!(
        out.status.success(),
        "serve_client.py failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

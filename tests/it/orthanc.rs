//! A throw-away Orthanc with its DICOMweb plugin for the DICOMweb tests: a config
//! in a temporary folder (storage, index and log there too), a free loopback port,
//! the DICOM protocol off, and a guard that kills and reaps the server when the test
//! ends — also when it fails.
//!
//! Orthanc 1.10 has no option to choose the listening address: it binds every
//! interface, and `RemoteAccessAllowed: false` is what refuses every client that is
//! not on this machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctseg_core::testdata::skip;

/// Where Orthanc's server binary is looked for.
const ORTHANC: [&str; 3] = [
    "/usr/sbin/Orthanc",
    "/usr/bin/Orthanc",
    "/usr/local/bin/Orthanc",
];
/// Where the DICOMweb plugin is looked for.
const PLUGIN: [&str; 4] = [
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/x86_64-linux-gnu/orthanc/plugins/libOrthancDicomWeb.so",
];

/// A running Orthanc, killed and waited for when dropped.
pub struct Orthanc {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Basic credentials when authentication is on.
    pub user: Option<(String, String)>,
    dir: tempfile::TempDir,
}

/// A free loopback port (bound, then released for Orthanc to take).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.is_file())
}

impl Orthanc {
    /// Start Orthanc (with `user` as its only registered user when given), or skip
    /// with a printed reason when it or its plugin is not installed (a failure under
    /// `CI=true`).
    pub fn start(user: Option<(&str, &str)>) -> Option<Orthanc> {
        let Some(binary) = first_existing(&ORTHANC) else {
            return skip(format!(
                "Orthanc is not installed (looked for {}; apt-get install orthanc orthanc-dicomweb)",
                ORTHANC.join(", ")
            ));
        };
        let Some(plugin) = first_existing(&PLUGIN) else {
            return skip(format!(
                "Orthanc's DICOMweb plugin is not installed (looked for {}; apt-get install orthanc-dicomweb)",
                PLUGIN.join(", ")
            ));
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        let mut config = serde_json::json!({
            "Name": "ctseg-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": port,
            "RemoteAccessAllowed": false,
            "DicomServerEnabled": false,
            "DicomPort": free_port(),
            "HttpTimeout": 30,
            "StableAge": 1,
            "Plugins": [plugin],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false },
            "AuthenticationEnabled": user.is_some(),
        });
        if let Some((name, password)) = user {
            config["RegisteredUsers"] = serde_json::json!({ name: password });
        }
        let config_path = dir.path().join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("orthanc.log")).unwrap();
        let child = Command::new(&binary)
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut orthanc = Orthanc {
            child,
            url: format!("http://127.0.0.1:{port}"),
            user: user.map(|(u, p)| (u.to_string(), p.to_string())),
            dir,
        };
        orthanc.wait_ready();
        Some(orthanc)
    }

    /// The DICOMweb base URL.
    pub fn dicomweb(&self) -> String {
        format!("{}/dicom-web", self.url)
    }

    /// Orthanc's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orthanc.log")).unwrap_or_default()
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into()
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.user {
            Some((u, p)) => {
                let token = base64(format!("{u}:{p}").as_bytes());
                request.header("Authorization", format!("Basic {token}"))
            }
            None => request,
        }
    }

    /// Wait (at most 20 s) until `GET /system` answers 200.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Orthanc exited ({status}) at start:\n{}", self.log());
            }
            let reply = self
                .authorize(Self::agent().get(format!("{}/system", self.url)))
                .call();
            if reply.is_ok_and(|r| r.status() == 200) {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!(
                    "Orthanc did not answer GET /system within 20 s:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Upload every file of `folder` through Orthanc's own REST API
    /// (`POST /instances`); returns how many were stored.
    pub fn upload_folder(&self, folder: &Path) -> usize {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            let reply = self
                .authorize(Self::agent().post(format!("{}/instances", self.url)))
                .header("Content-Type", "application/dicom")
                .send(&bytes[..])
                .unwrap_or_else(|e| panic!("upload {}: {e}", file.display()));
            assert_eq!(reply.status(), 200, "upload {}", file.display());
        }
        files.len()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if self.child.kill().is_err() {
            // Already exited.
        }
        if self.child.wait().is_err() {
            // Not our child any more; nothing left to reap.
        }
    }
}

/// Base64 for HTTP Basic in the harness's own requests.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                char::from(A[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

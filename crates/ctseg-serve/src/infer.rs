//! Running an inference job from a handler and shaping its answer: the params JSON
//! MONAI Label clients read, a NIfTI file, or both as multipart.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ctseg_ml::infer::PredictOptions;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::app::Shared;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;
use crate::upload::Upload;
use crate::worker::{InferJob, Prediction};

/// Where the CT of a job comes from.
pub enum InputSource {
    /// A datastore image.
    Datastore {
        /// Its ID.
        id: String,
        /// Its file.
        path: std::path::PathBuf,
    },
    /// An uploaded NIfTI (removed after the job).
    Upload(Upload),
    /// An unpacked DICOM series (removed after the job).
    Folder(tempfile::TempDir, String),
}

impl InputSource {
    /// The worker's job input: path, name for messages, what keeps it alive.
    fn into_parts(self) -> (std::path::PathBuf, String, Option<Box<dyn Send>>) {
        match self {
            InputSource::Datastore { id, path } => (path, format!("image {id}"), None),
            InputSource::Upload(upload) => {
                let name = upload
                    .client_name
                    .clone()
                    .unwrap_or_else(|| "the uploaded file".into());
                (upload.path.to_path_buf(), name, Some(Box::new(upload)))
            }
            InputSource::Folder(dir, name) => (dir.path().to_path_buf(), name, Some(Box::new(dir))),
        }
    }
}

/// The receiver of a job's result.
pub type Answer = oneshot::Receiver<ApiResult<Arc<Prediction>>>;

/// Queue a job and hand back the receiver of its result (503 when the queue is full).
pub fn submit(
    state: &Shared,
    model: &str,
    image: &str,
    input: InputSource,
    options: PredictOptions,
) -> ApiResult<(Arc<Job>, Answer)> {
    let job = state.jobs.create(model, image);
    let (input, input_name, keep) = input.into_parts();
    let (reply, answer) = oneshot::channel();
    state.worker.submit(InferJob {
        job: job.clone(),
        input,
        input_name,
        keep,
        options,
        reply,
    })?;
    Ok((job, answer))
}

/// Queue a job and wait for it. If this future is dropped (the client went away),
/// the job is cancelled at its next batch.
pub async fn predict(
    state: &Shared,
    model: &str,
    image: &str,
    input: InputSource,
    options: PredictOptions,
) -> ApiResult<(Arc<Job>, Arc<Prediction>)> {
    let (job, answer) = submit(state, model, image, input, options)?;
    let prediction = answer
        .await
        .map_err(|_| ApiError::internal("the inference worker dropped the job"))??;
    Ok((job, prediction))
}

/// The params JSON of a prediction (MONAI Label's result `params`).
pub fn prediction_params(p: &Prediction, job: u64) -> Value {
    let catalog = ctseg_core::structures::catalog();
    let label_names: serde_json::Map<String, Value> = catalog
        .all()
        .iter()
        .map(|s| (s.name.clone(), json!(s.label)))
        .collect();
    let [load, infer, write] = p.seconds;
    json!({
        "model": p.model,
        "job": job.to_string(),
        "label_names": label_names,
        "present": p.present.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
        "shape": p.shape,
        "latencies": {
            "pre": round3(load),
            "infer": round3(infer),
            "post": round3(write),
            "total": round3(load + infer + write),
        },
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A NIfTI download.
pub fn file_response(bytes: Vec<u8>, file_name: &str) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", file_name.replace('"', ""));
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// The multipart answer MONAI Label's client parses: a `params` JSON field and the
/// label file (keyed by its file name).
pub fn multipart_response(params: &Value, nifti: &[u8], file_name: &str) -> Response {
    let boundary = loop {
        let b = format!("ctseg-{:032x}", rand::random::<u128>());
        if !contains(nifti, b.as_bytes()) {
            break b;
        }
    };
    let mut body = Vec::with_capacity(nifti.len() + 4096);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\nContent-Type: application/json\r\n\r\n{params}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{}\"\r\nContent-Type: application/gzip\r\n\r\n",
            file_name.replace('"', "")
        )
        .as_bytes(),
    );
    body.extend_from_slice(nifti);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = Body::from(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}")) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

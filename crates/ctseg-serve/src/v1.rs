//! Plain endpoints for scripts: `POST /v1/segment`, `GET /v1/jobs/{id}[/result]`,
//! `GET /health`, `GET /openapi.json`, and the status page at `/`.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Shared;
use crate::error::{ApiError, ApiResult};
use crate::infer::{InputSource, file_response, predict, prediction_params, submit};
use crate::jobs::JobState;
use crate::monai::options_from;
use crate::upload::{FileKind, Upload, receive_bytes};

/// Files a DICOM zip may hold.
pub const MAX_ZIP_ENTRIES: usize = 20_000;
/// Bytes a DICOM zip may unpack to (ctseg's series limit is 4 GiB of voxels).
pub const MAX_ZIP_BYTES: u64 = 5 << 30;

/// Query of `POST /v1/segment`.
#[derive(Debug, Deserialize)]
pub struct SegmentQuery {
    /// Model name (default: the first served).
    pub model: Option<String>,
    /// Wait for the result (default) or answer 202 with a job to poll.
    pub wait: Option<bool>,
    /// Probability threshold.
    pub threshold: Option<f64>,
    /// Keep only the largest component of single-object structures.
    pub largest_component: Option<bool>,
    /// Smooth probabilities across neighbouring slices.
    pub smooth: Option<bool>,
}

/// `POST /v1/segment`: the body is a NIfTI (`.nii`/`.nii.gz`) or a zip of a DICOM
/// series. Answers the multilabel NIfTI (with ctseg's label table), or with
/// `wait=false` 202 and the job to poll.
pub async fn segment(
    State(state): State<Shared>,
    Query(q): Query<SegmentQuery>,
    body: Body,
) -> ApiResult<Response> {
    let model = match &q.model {
        Some(m) => m.clone(),
        None => state.worker.first_model()?,
    };
    if state.worker.model(&model).is_none() {
        return Err(ApiError::not_found(format!("no model named {model:?}")));
    }
    let options = options_from(
        &state,
        &json!({ "threshold": q.threshold, "largest_component": q.largest_component, "smooth": q.smooth }),
    )?;
    let upload = receive_body(body, &state).await?;
    let input = match upload.kind {
        FileKind::Zip => {
            let tmp = state.datastore.tmp_dir();
            let dir = tokio::task::spawn_blocking(move || unpack_zip(&upload.path, &tmp))
                .await
                .map_err(|_| ApiError::internal("unpacking the zip failed"))??;
            InputSource::Folder(dir, "the uploaded DICOM zip".into())
        }
        FileKind::Nifti | FileKind::NiftiGz => InputSource::Upload(upload),
    };
    if q.wait == Some(false) {
        let (job, answer) = submit(&state, &model, "upload", input, options)?;
        // Keep the answer's receiver alive so the job is not taken as abandoned;
        // the worker stores the result in the job.
        tokio::spawn(async move {
            let _finished = answer.await;
        });
        let mut response = (
            StatusCode::ACCEPTED,
            Json(json!({ "job": job.id.to_string(), "status": format!("/v1/jobs/{}", job.id) })),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(response);
    }
    let (job, prediction) = predict(&state, &model, "upload", input, options).await?;
    let mut response = file_response(
        prediction.nifti_gz.clone(),
        &format!("labels-{}.nii.gz", job.id),
    );
    if let Ok(v) = HeaderValue::from_str(&job.id.to_string()) {
        response.headers_mut().insert("x-ctseg-job", v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&prediction_params(&prediction, job.id)["latencies"].to_string())
    {
        response.headers_mut().insert("x-ctseg-latencies", v);
    }
    Ok(response)
}

/// Stream a raw request body to a temporary file, refusing (413) more than the limit.
async fn receive_body(mut body: Body, state: &Shared) -> ApiResult<Upload> {
    let limit = state.max_body_bytes as u64;
    let mut upload: Option<crate::upload::Sink> = None;
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than this server's limit of {} MiB",
                    limit >> 20
                ),
            ));
        }
        match &mut upload {
            Some(sink) => sink.write(&data).await?,
            None if data.is_empty() => {}
            None => {
                upload =
                    Some(crate::upload::Sink::start(&state.datastore.tmp_dir(), &data, None).await?)
            }
        }
    }
    match upload {
        Some(sink) => sink.finish().await,
        None => receive_bytes(Default::default(), &state.datastore.tmp_dir(), None).await,
    }
}

/// Unpack a zip into a new temporary folder: regular files only, names that stay
/// inside it, bounded count and size.
fn unpack_zip(zip_path: &Path, tmp_dir: &Path) -> ApiResult<tempfile::TempDir> {
    let bad = |m: String| ApiError::unprocessable(format!("the uploaded zip: {m}"));
    let file = std::fs::File::open(zip_path).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(bad(format!(
            "{} entries, more than {MAX_ZIP_ENTRIES}",
            archive.len()
        )));
    }
    let dir = tempfile::Builder::new()
        .prefix("dicom-")
        .tempdir_in(tmp_dir)
        .map_err(|e| ApiError::internal(format!("cannot create a temporary folder: {e}")))?;
    let mut written = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let Some(name) = entry.enclosed_name() else {
            return Err(bad(format!(
                "entry {:?} points outside the archive",
                entry.name()
            )));
        };
        let dest = dir.path().join(name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        let mut out =
            std::fs::File::create(&dest).map_err(|e| ApiError::internal(e.to_string()))?;
        let budget = MAX_ZIP_BYTES.saturating_sub(written);
        let copied = std::io::copy(&mut (&mut entry).take(budget + 1), &mut out)
            .map_err(|e| bad(format!("entry {:?}: {e}", entry.name())))?;
        written += copied;
        if written > MAX_ZIP_BYTES {
            return Err(bad(format!(
                "unpacks to more than {} GiB",
                MAX_ZIP_BYTES >> 30
            )));
        }
    }
    Ok(dir)
}

/// `GET /v1/jobs/{id}`: state and progress.
pub async fn job(
    State(state): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &id)?;
    Ok(Json(job.to_json()))
}

/// `GET /v1/jobs/{id}/result`: the labels of a finished job (409 before).
pub async fn job_result(
    State(state): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let job = find_job(&state, &id)?;
    match (job.state(), job.result()) {
        (JobState::Done, Some(p)) => Ok(file_response(
            p.nifti_gz.clone(),
            &format!("labels-{}.nii.gz", job.id),
        )),
        (JobState::Failed(message), _) => Err(ApiError::unprocessable(format!(
            "job {id} failed: {message}"
        ))),
        (s, _) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {id} is {s:?}, not done; poll /v1/jobs/{id}"),
        )),
    }
}

fn find_job(state: &Shared, id: &str) -> ApiResult<std::sync::Arc<crate::jobs::Job>> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| state.jobs.get(n))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no job {id:?} (jobs are kept while the server runs)"
            ))
        })
}

/// `GET /health`.
pub async fn health(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "models": state.worker.models().iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "device": state.worker.device(),
        "queue": { "waiting": state.worker.queued(), "capacity": state.worker.capacity() },
        "training": state.training.is_running(),
        "uptime_s": state.started.elapsed().as_secs(),
    }))
}

/// `GET /openapi.json`: the OpenAPI 3 description of every endpoint.
pub async fn openapi() -> Response {
    let mut response = Body::from(OPENAPI).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /`: a small status page (models, queue, jobs, training).
pub async fn status_page(State(state): State<Shared>) -> Html<String> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ctseg serve</title>\
         <style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 12px;text-align:left}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>ctseg serve {}</h1><p>Device: {}</p><h2>Models</h2><table><tr><th>name</th><th>weights</th><th>input</th></tr>",
        env!("CARGO_PKG_VERSION"),
        esc(state.worker.device())
    ));
    for m in state.worker.models() {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}²</td></tr>",
            esc(&m.name),
            esc(&m.weights.display().to_string()),
            m.config.input_size
        ));
    }
    html.push_str(&format!(
        "</table><h2>Queue</h2><p>{} waiting of {}</p><table><tr><th>job</th><th>model</th><th>state</th><th>slices</th></tr>",
        state.worker.queued(),
        state.worker.capacity()
    ));
    for j in state.jobs.active() {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}/{}</td></tr>",
            j.id,
            esc(&j.model),
            j.state(),
            j.done.load(Ordering::Relaxed),
            j.total.load(Ordering::Relaxed)
        ));
    }
    html.push_str("</table><h2>Training</h2>");
    match state.training.status(false) {
        Some(t) => html.push_str(&format!(
            "<p>{} {}: step {} of {}, loss {}</p>",
            esc(t["id"].as_str().unwrap_or("")),
            esc(t["status"].as_str().unwrap_or("")),
            t["step"],
            t["max_steps"],
            t["loss"]
        )),
        None => html.push_str("<p>none</p>"),
    }
    let ds = state.datastore.status();
    html.push_str(&format!(
        "<h2>Datastore</h2><p>{} images, {} with final labels</p><p><a href=\"/openapi.json\">API (OpenAPI)</a></p></body></html>",
        ds["total"], ds["completed"]
    ));
    Html(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the router is described, and nothing else.
    #[test]
    fn openapi_describes_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut described: Vec<String> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                described.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        described.sort();
        let mut routes: Vec<String> = crate::app::ROUTES
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        routes.sort();
        assert_eq!(described, routes);
    }
}

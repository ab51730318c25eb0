//! The MONAI Label endpoints its Python client and the 3D Slicer / OHIF plug-ins
//! use for segmentation: `/info/`, `/infer/{model}`, `/datastore/…`, `/train/…`
//! and `/activelearning/{strategy}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ctseg_ml::infer::PredictOptions;
use rand::seq::IndexedRandom;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Shared;
use crate::datastore::FINAL_TAG;
use crate::error::{ApiError, ApiResult};
use crate::ids::{id_from_file_name, parse_id};
use crate::infer::{InputSource, file_response, multipart_response, predict, prediction_params};
use crate::training::TrainParams;
use crate::upload::{Upload, receive_field};

/// A multipart form: its `params` JSON and its files by field name.
pub struct Form {
    /// The `params` field, parsed (`{}` when absent).
    pub params: Value,
    /// Uploaded files by field name.
    pub files: BTreeMap<String, Upload>,
}

/// Read a multipart form, streaming the file fields named in `file_fields` to
/// temporary files; other fields than `params` are ignored.
pub async fn read_form(
    state: &Shared,
    mut multipart: Multipart,
    file_fields: &[&str],
) -> ApiResult<Form> {
    let mut params = json!({});
    let mut files = BTreeMap::new();
    while let Some(mut field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        if file_fields.contains(&name.as_str()) {
            let upload = receive_field(&mut field, &state.datastore.tmp_dir()).await?;
            files.insert(name, upload);
        } else if name == "params" {
            let text = field.text().await?;
            if !text.trim().is_empty() {
                params = serde_json::from_str(&text).map_err(|e| {
                    ApiError::bad_request(format!("the params field is not JSON: {e}"))
                })?;
            }
        } else {
            // Drain and ignore (e.g. `client_id`).
            while field.chunk().await?.is_some() {}
        }
    }
    Ok(Form { params, files })
}

/// A form from a request that may have no body at all.
async fn optional_form(state: &Shared, request: Request, file_fields: &[&str]) -> ApiResult<Form> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        return Ok(Form {
            params: json!({}),
            files: BTreeMap::new(),
        });
    }
    let multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    read_form(state, multipart, file_fields).await
}

/// `GET /info/`: the app, its labels, models, trainers and strategies.
pub async fn info(State(state): State<Shared>) -> Json<Value> {
    let catalog = ctseg_core::structures::catalog();
    let labels: Vec<&str> = catalog.all().iter().map(|s| s.name.as_str()).collect();
    let label_map: serde_json::Map<String, Value> = catalog
        .all()
        .iter()
        .map(|s| (s.name.clone(), json!(s.label)))
        .collect();
    let mut models = serde_json::Map::new();
    let mut trainers = serde_json::Map::new();
    let mut train_stats = serde_json::Map::new();
    for m in state.worker.models() {
        models.insert(
            m.name.clone(),
            json!({
                "type": "segmentation",
                "labels": label_map,
                "dimension": 2,
                "description": format!(
                    "ctseg 2-D U-Net (base {}, depth {}, input {}²) for the {} TotalSegmentator structures; runs slice by slice over the whole CT",
                    m.config.base_channels, m.config.depth, m.config.input_size, m.config.num_classes
                ),
                "config": { "threshold": 0.5, "largest_component": false, "smooth": false },
                "weights": m.weights.file_name().map(|n| n.to_string_lossy().to_string()),
            }),
        );
        trainers.insert(
            m.name.clone(),
            json!({
                "description": "fine-tune on the datastore's images with final labels",
                "config": serde_json::to_value(TrainParams::default()).unwrap_or_default(),
            }),
        );
        train_stats.insert(
            m.name.clone(),
            state.training.status(false).unwrap_or(json!({})),
        );
    }
    Json(json!({
        "name": "ctseg",
        "description": "ctseg CT organ segmentation (TotalSegmentator's 117 structures)",
        "version": env!("CARGO_PKG_VERSION"),
        "labels": labels,
        "models": models,
        "trainers": trainers,
        "strategies": {
            "random": { "description": "a random image without a final label" },
            "first": { "description": "the first image (by ID) without a final label" },
        },
        "scoring": {},
        "train_stats": train_stats,
        "datastore": state.datastore.status(),
        "device": state.worker.device(),
    }))
}

/// Query of `POST /infer/{model}`.
#[derive(Debug, Deserialize)]
pub struct InferQuery {
    /// Datastore image ID (unless a file is uploaded).
    #[serde(default)]
    pub image: String,
    /// `image` (the label NIfTI), `json` (the params), or `all`/absent (multipart).
    pub output: Option<String>,
}

/// Inference options from a request's params (MONAI Label passes them as JSON).
pub fn options_from(state: &Shared, params: &Value) -> ApiResult<PredictOptions> {
    let mut options = state.predict.clone();
    if let Some(t) = params.get("threshold").filter(|v| !v.is_null()) {
        let t = t
            .as_f64()
            .filter(|t| *t > 0.0 && *t < 1.0)
            .ok_or_else(|| ApiError::bad_request("threshold must be a number in (0, 1)"))?;
        options.threshold = t as f32;
    }
    for (key, slot) in [
        ("largest_component", &mut options.largest_component),
        ("smooth", &mut options.smooth),
    ] {
        if let Some(v) = params.get(key).filter(|v| !v.is_null()) {
            *slot = v
                .as_bool()
                .ok_or_else(|| ApiError::bad_request(format!("{key} must be true or false")))?;
        }
    }
    Ok(options)
}

/// `POST /infer/{model}?image=ID[&output=image|json|all]`: segment a datastore image
/// or the uploaded `file`.
pub async fn infer(
    State(state): State<Shared>,
    Path(model): Path<String>,
    Query(query): Query<InferQuery>,
    request: Request,
) -> ApiResult<Response> {
    if state.worker.model(&model).is_none() {
        return Err(unknown_model(&state, &model));
    }
    let mut form = optional_form(&state, request, &["file", "label"]).await?;
    let options = options_from(&state, &form.params)?;
    let (input, image_id) = match form.files.remove("file") {
        Some(upload) => {
            let id = if query.image.is_empty() {
                upload
                    .client_name
                    .as_deref()
                    .and_then(|n| id_from_file_name(n).ok())
                    .unwrap_or_else(|| "upload".into())
            } else {
                parse_id(&query.image).map_err(ApiError::bad_request)?
            };
            (InputSource::Upload(upload), id)
        }
        None => {
            if query.image.is_empty() {
                return Err(ApiError::bad_request(
                    "give an image: ?image=ID of a datastore image, or upload it as the multipart field \"file\"",
                ));
            }
            let id = parse_id(&query.image).map_err(ApiError::bad_request)?;
            let path = datastore_image(&state, &id)?;
            (
                InputSource::Datastore {
                    id: id.clone(),
                    path,
                },
                id,
            )
        }
    };
    let (job, prediction) = predict(&state, &model, &image_id, input, options).await?;
    let params = prediction_params(&prediction, job.id);
    let file_name = format!("{image_id}-{}.nii.gz", job.id);
    Ok(match query.output.as_deref() {
        Some("json") => Json(params).into_response(),
        Some("image") => file_response(prediction.nifti_gz.clone(), &file_name),
        None | Some("all") => multipart_response(&params, &prediction.nifti_gz, &file_name),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "output={other:?}: ctseg answers image, json or all"
            )));
        }
    })
}

fn unknown_model(state: &Shared, model: &str) -> ApiError {
    let names: Vec<String> = state.worker.models().into_iter().map(|m| m.name).collect();
    ApiError::not_found(format!(
        "no model named {model:?}; served: {}",
        names.join(", ")
    ))
}

/// Query of the datastore listing.
#[derive(Debug, Deserialize)]
pub struct DatastoreQuery {
    /// `stats` (default), `all` or `train`.
    pub output: Option<String>,
}

/// `GET /datastore/?output=stats|all|train`.
pub async fn datastore(
    State(state): State<Shared>,
    Query(q): Query<DatastoreQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(match q.output.as_deref() {
        None | Some("stats") => state.datastore.status(),
        Some("all") => state.datastore.describe(),
        Some("train") => state.datastore.datalist(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "output={other:?}: use stats, all or train"
            )));
        }
    }))
}

/// Query naming an image.
#[derive(Debug, Deserialize)]
pub struct ImageQuery {
    /// Image ID.
    pub image: Option<String>,
    /// Label tag (labels only; default `final`).
    pub tag: Option<String>,
    /// Label ID (download: MONAI Label names it `label`).
    pub label: Option<String>,
}

impl ImageQuery {
    /// The label tag asked for (`final` when absent), checked like an ID.
    fn tag(&self) -> ApiResult<String> {
        parse_id(
            self.tag
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or(FINAL_TAG),
        )
        .map_err(|e| ApiError::bad_request(format!("tag: {e}")))
    }
}

/// The file of datastore image `id`, or 404.
fn datastore_image(state: &Shared, id: &str) -> ApiResult<std::path::PathBuf> {
    state
        .datastore
        .image_path(id)
        .ok_or_else(|| ApiError::not_found(format!("no image {id:?} in the datastore")))
}

/// `PUT /datastore/?image=ID` (and `/datastore/image`): upload an image as the
/// multipart field `file`. Checked as a CT before it is stored; stored by rename.
pub async fn upload_image(
    State(state): State<Shared>,
    Query(q): Query<ImageQuery>,
    multipart: Multipart,
) -> ApiResult<Json<Value>> {
    let mut form = read_form(&state, multipart, &["file"]).await?;
    let upload = form
        .files
        .remove("file")
        .ok_or_else(|| ApiError::bad_request("no multipart field \"file\" with the image"))?;
    let id = match q.image.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => parse_id(id),
        None => upload
            .client_name
            .as_deref()
            .ok_or_else(|| "no ?image=ID and no file name to take it from".to_string())
            .and_then(id_from_file_name),
    }
    .map_err(ApiError::bad_request)?;
    let upload = check_blocking(upload, |path| ctseg_core::io::load_ct(path).map(|_| ())).await?;
    state.datastore.store_image(&id, upload)?;
    Ok(Json(json!({ "image": id })))
}

/// `PUT /datastore/label?image=ID&tag=final`: save a label (multipart field
/// `label`) for a datastore image. It must be a ctseg/TotalSegmentator label map on
/// the image's voxel grid; the old label stays until the new one is complete.
pub async fn save_label(
    State(state): State<Shared>,
    Query(q): Query<ImageQuery>,
    multipart: Multipart,
) -> ApiResult<Json<Value>> {
    let id = parse_id(q.image.as_deref().unwrap_or_default()).map_err(ApiError::bad_request)?;
    let tag = q.tag()?;
    let image = datastore_image(&state, &id)?;
    let mut form = read_form(&state, multipart, &["label", "file"]).await?;
    let upload = form
        .files
        .remove("label")
        .or_else(|| form.files.remove("file"))
        .ok_or_else(|| ApiError::bad_request("no multipart field \"label\" with the label file"))?;
    let upload = check_blocking(upload, move |path| {
        let grid = ctseg_core::io::segmentation::segmentation_grid(&image)?;
        let loaded = ctseg_core::io::segmentation::load_multilabel(path)?;
        ctseg_core::io::segmentation::check_same_grid(&image, &grid, path, loaded.labels.geometry())
    })
    .await?;
    state.datastore.store_label(&id, &tag, upload)?;
    Ok(Json(json!({ "image": id, "label": id, "tag": tag })))
}

/// Run a file check on a blocking thread; a failure is a 422 naming the client's file.
async fn check_blocking(
    upload: Upload,
    check: impl FnOnce(&std::path::Path) -> ctseg_core::Result<()> + Send + 'static,
) -> ApiResult<Upload> {
    tokio::task::spawn_blocking(move || match check(&upload.path) {
        Ok(()) => Ok(upload),
        Err(e) => Err(ApiError::unprocessable(upload.rename_in(&e.to_string()))),
    })
    .await
    .map_err(|_| ApiError::internal("the upload check failed"))?
}

/// `GET /datastore/image?image=ID`: download an image.
pub async fn download_image(
    State(state): State<Shared>,
    Query(q): Query<ImageQuery>,
) -> ApiResult<Response> {
    let id = parse_id(q.image.as_deref().unwrap_or_default()).map_err(ApiError::bad_request)?;
    let path = datastore_image(&state, &id)?;
    send_file(path).await
}

/// `GET /datastore/label?label=ID&tag=final`: download a label.
pub async fn download_label(
    State(state): State<Shared>,
    Query(q): Query<ImageQuery>,
) -> ApiResult<Response> {
    let raw = q
        .label
        .as_deref()
        .or(q.image.as_deref())
        .unwrap_or_default();
    let id = parse_id(raw).map_err(ApiError::bad_request)?;
    let tag = q.tag()?;
    let path = state
        .datastore
        .label_path(&id, &tag)
        .ok_or_else(|| ApiError::not_found(format!("no {tag} label for {id:?}")))?;
    send_file(path).await
}

async fn send_file(path: std::path::PathBuf) -> ApiResult<Response> {
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "file.nii.gz".into());
    Ok(file_response(bytes, &name))
}

/// Query of `GET /train/`.
#[derive(Debug, Deserialize)]
pub struct TrainQuery {
    /// All tasks instead of the latest.
    #[serde(default)]
    pub all: bool,
    /// Only say (200 or 404) whether a task is running.
    #[serde(default)]
    pub check_if_running: bool,
}

/// `GET /train/`: the latest task (404 when none; with `check_if_running`, 404 when
/// none is running).
pub async fn train_status(
    State(state): State<Shared>,
    Query(q): Query<TrainQuery>,
) -> ApiResult<Json<Value>> {
    if q.check_if_running && !state.training.is_running() {
        return Err(ApiError::not_found("no training task is running"));
    }
    state
        .training
        .status(q.all)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no training task has run"))
}

/// `POST /train/{model}` with optional JSON settings (`max_steps`, `batch_size`,
/// `lr`, `seed`).
pub async fn train_model(
    State(state): State<Shared>,
    Path(model): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    start_training(&state, &model, &body)
}

/// `POST /train/`: fine-tune the first served model.
pub async fn train_first(
    State(state): State<Shared>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let model = state.worker.first_model()?;
    start_training(&state, &model, &body)
}

fn start_training(state: &Shared, model: &str, body: &[u8]) -> ApiResult<Json<Value>> {
    if state.worker.model(model).is_none() {
        return Err(unknown_model(state, model));
    }
    let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the training settings are not JSON: {e}"))
        })?
    };
    let params = TrainParams::from_json(&request)?;
    state
        .training
        .start(model, params, request)
        .map(|v| Json(json!({ model: v })))
}

/// `DELETE /train/`: stop the running task.
pub async fn train_stop(State(state): State<Shared>) -> Json<Value> {
    Json(state.training.stop())
}

/// `POST /activelearning/{strategy}`: the next image to label (`random` or
/// `first` among those without a final label); `{}` when every image is labelled.
pub async fn next_sample(
    State(state): State<Shared>,
    Path(strategy): Path<String>,
) -> ApiResult<Json<Value>> {
    let unlabelled: Vec<String> = state
        .datastore
        .images()
        .into_iter()
        .filter(|id| state.datastore.label_path(id, FINAL_TAG).is_none())
        .collect();
    let pick = match strategy.as_str() {
        "first" => unlabelled.first().cloned(),
        "random" => unlabelled.choose(&mut rand::rng()).cloned(),
        other => {
            return Err(ApiError::not_found(format!(
                "no strategy {other:?}; ctseg offers random and first"
            )));
        }
    };
    Ok(Json(match pick {
        Some(id) => {
            let path = state.datastore.image_path(&id);
            json!({ "id": id, "strategy": strategy, "path": path, "remaining": unlabelled.len() })
        }
        None => json!({}),
    }))
}

//! The HTTP application: shared state, the router, the token check and the
//! one-line-per-request log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ctseg_ml::backend::BackendKind;
use ctseg_ml::infer::PredictOptions;
use subtle::ConstantTimeEq;

use crate::datastore::Datastore;
use crate::error::ApiError;
use crate::jobs::Jobs;
use crate::training::TrainManager;
use crate::worker::WorkerHandle;
use crate::{monai, v1};

/// Default request-body limit: a 512×512×1000 int16 CT (500 MiB raw) uploaded
/// uncompressed still fits, with room for the multipart framing.
pub const DEFAULT_MAX_BODY_BYTES: usize = 768 << 20;

/// Everything `ctseg serve` is started with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Served models: (name, run folder / checkpoint / weights file).
    pub models: Vec<(String, PathBuf)>,
    /// The datastore folder.
    pub datastore: PathBuf,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Compute backend.
    pub backend: BackendKind,
    /// Bearer token every request must carry (`None`: no authentication).
    pub token: Option<String>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Inference jobs that may wait; more are answered 503 with `Retry-After`.
    pub queue: usize,
    /// Slices per forward pass.
    pub batch_size: usize,
    /// Default probability threshold.
    pub threshold: f32,
}

/// State shared by all handlers.
pub struct AppState {
    /// The device-owning inference worker.
    pub worker: Arc<WorkerHandle>,
    /// Inference jobs.
    pub jobs: Jobs,
    /// The datastore.
    pub datastore: Datastore,
    /// Fine-tuning.
    pub training: Arc<TrainManager>,
    /// The bearer token, if required.
    pub token: Option<String>,
    /// Inference defaults (batch size).
    pub predict: PredictOptions,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// When the server started.
    pub started: Instant,
}

/// Handlers' view of the state.
pub type Shared = Arc<AppState>;

/// Every endpoint (method, path), as the router below defines them and
/// `openapi.json` describes them (a test keeps the three together).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/segment"),
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/result"),
    ("GET", "/info/"),
    ("POST", "/infer/{model}"),
    ("GET", "/datastore/"),
    ("PUT", "/datastore/"),
    ("PUT", "/datastore/image"),
    ("GET", "/datastore/image"),
    ("PUT", "/datastore/label"),
    ("GET", "/datastore/label"),
    ("GET", "/train/"),
    ("POST", "/train/"),
    ("DELETE", "/train/"),
    ("POST", "/train/{model}"),
    ("POST", "/activelearning/{strategy}"),
];

/// The router with every endpoint, the body limit, the token check and the log.
pub fn router(state: Shared) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/", get(v1::status_page))
        .route("/health", get(v1::health))
        .route("/openapi.json", get(v1::openapi))
        .route("/v1/segment", post(v1::segment))
        .route("/v1/jobs/{id}", get(v1::job))
        .route("/v1/jobs/{id}/result", get(v1::job_result))
        .route("/info/", get(monai::info))
        .route("/infer/{model}", post(monai::infer))
        .route(
            "/datastore/",
            get(monai::datastore).put(monai::upload_image),
        )
        .route(
            "/datastore/image",
            put(monai::upload_image).get(monai::download_image),
        )
        .route(
            "/datastore/label",
            put(monai::save_label).get(monai::download_label),
        )
        .route(
            "/train/",
            get(monai::train_status)
                .post(monai::train_first)
                .delete(monai::train_stop),
        )
        .route("/train/{model}", post(monai::train_model))
        .route("/activelearning/{strategy}", post(monai::next_sample))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {} {} (see /openapi.json)",
        request.method(),
        request.uri().path()
    ))
}

/// With a token configured, refuse (401) requests without `Authorization: Bearer
/// <token>`. The comparison takes the same time whatever the token's content.
async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    if bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())) {
        return next.run(request).await;
    }
    let message = if request.headers().contains_key(header::AUTHORIZATION) {
        "the bearer token is wrong"
    } else {
        "this server needs a bearer token: send Authorization: Bearer <token>"
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// One line per request on stderr: method, path (no query: IDs and tokens stay
/// out of logs), status, milliseconds.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    eprintln!(
        "ctseg serve: {method} {path} {} {:.0} ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    response
}

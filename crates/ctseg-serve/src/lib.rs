//! `ctseg serve`: an HTTP service over ctseg's models. It speaks the part of MONAI
//! Label's REST API that its Python client and the 3D Slicer / OHIF plug-ins use
//! for segmentation ([`monai`]), plus plain endpoints for scripts ([`v1`]).
//! Inference runs on one device-owning worker thread fed by a bounded queue
//! ([`worker`]); fine-tuning runs one at a time ([`training`]); images and labels
//! live in a datastore folder ([`datastore`]) and arrive by temporary file and
//! rename ([`upload`]).

pub mod app;
pub mod datastore;
pub mod error;
pub mod ids;
pub mod infer;
pub mod jobs;
pub mod monai;
pub mod training;
pub mod upload;
pub mod v1;
pub mod worker;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ctseg_ml::infer::PredictOptions;

pub use app::{DEFAULT_MAX_BODY_BYTES, ServeConfig};

/// Start the service and serve until Ctrl-C or SIGTERM. Models are loaded before
/// the port is opened, so a bad model fails at once; the line
/// `ctseg serve: listening on http://ADDR/` on stderr says when it is ready (with
/// the real port when `bind` asked for port 0).
pub fn run(config: ServeConfig) -> anyhow::Result<()> {
    let (datastore, leftovers) = datastore::Datastore::open(&config.datastore)
        .with_context(|| format!("cannot use the datastore {}", config.datastore.display()))?;
    if leftovers > 0 {
        eprintln!("ctseg serve: removed {leftovers} unfinished upload(s) left by an earlier run");
    }
    if !config.bind.ip().is_loopback() && config.token.is_none() {
        eprintln!(
            "warning: serving on {} without --token-file: anyone who can reach this address can run and train models",
            config.bind
        );
    }
    let worker = worker::WorkerHandle::start(
        config.models.clone(),
        config.backend,
        config.queue,
        datastore.tmp_dir(),
    )?;
    let training = Arc::new(training::TrainManager::new(
        datastore.clone(),
        worker.clone(),
        config.backend,
    ));
    let state = Arc::new(app::AppState {
        worker: worker.clone(),
        jobs: jobs::Jobs::default(),
        datastore,
        training,
        token: config.token.clone(),
        predict: PredictOptions {
            batch_size: config.batch_size.max(1),
            threshold: config.threshold,
            ..PredictOptions::default()
        },
        max_body_bytes: config.max_body_bytes,
        started: Instant::now(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let names: Vec<String> = worker.models().into_iter().map(|m| m.name).collect();
        eprintln!(
            "ctseg serve: models {} on {}",
            names.join(", "),
            worker.device()
        );
        eprintln!("ctseg serve: listening on http://{addr}/");
        axum::serve(listener, app::router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the server stopped")
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    eprintln!("ctseg serve: stopping");
}

//! `ctseg serve`: the HTTP service (MONAI Label-compatible API and `/v1` endpoints).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ctseg_ml::backend::BackendKind;
use ctseg_serve::ids::parse_id;
use ctseg_serve::{DEFAULT_MAX_BODY_BYTES, ServeConfig};

/// Arguments of `ctseg serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A model to serve: `RUN` (run folder, checkpoint folder or `.safetensors`) or
    /// `NAME=RUN`. Repeat for several models; an unnamed one is named after its folder.
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Datastore folder (MONAI Label layout: `<id>.nii.gz` images, `labels/final/`).
    /// Created if missing.
    #[arg(long)]
    pub datastore: PathBuf,
    /// Address to listen on. Loopback by default; port 0 picks a free port (the
    /// chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// File holding the bearer token every request must carry
    /// (`Authorization: Bearer <token>`). The token is never printed or logged.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Largest request body in MiB (uploads of CTs and labels).
    #[arg(long, default_value_t = (DEFAULT_MAX_BODY_BYTES >> 20) as u64)]
    pub max_body_mb: u64,
    /// Inference requests that may wait while one runs; more are answered 503
    /// with Retry-After.
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Default probability above which a structure is present (a request's
    /// `threshold` parameter overrides it).
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
}

/// Split `NAME=RUN` or name a bare `RUN` after its folder.
fn model_spec(spec: &str) -> Result<(String, PathBuf)> {
    if let Some((name, path)) = spec.split_once('=')
        && !name.is_empty()
        && !name.contains('/')
    {
        let name =
            parse_id(name).map_err(|e| anyhow::anyhow!("--model {spec}: the name is {e}"))?;
        return Ok((name, PathBuf::from(path)));
    }
    let path = PathBuf::from(spec);
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".safetensors").unwrap_or(&stem);
    let name = parse_id(stem).unwrap_or_else(|_| "segmentation".into());
    Ok((name, path))
}

/// Run `ctseg serve`.
pub fn run(args: &ServeArgs) -> Result<()> {
    let mut models: Vec<(String, PathBuf)> = Vec::new();
    for spec in &args.model {
        let (name, path) = model_spec(spec)?;
        if models.iter().any(|(n, _)| *n == name) {
            bail!("two models are named {name:?}: name them with --model NAME=RUN");
        }
        if !path.exists() {
            return Err(ctseg_core::io::missing(&path)).context(format!("--model {spec}"));
        }
        models.push((name, path));
    }
    if args.max_body_mb == 0 || args.max_body_mb > 64 << 10 {
        bail!("--max-body-mb must be in 1..=65536");
    }
    if !(args.threshold > 0.0 && args.threshold < 1.0) {
        bail!("--threshold must be in (0, 1), got {}", args.threshold);
    }
    if args.queue == 0 || args.batch_size == 0 {
        bail!("--queue and --batch-size must be positive");
    }
    let token = match &args.token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                bail!("the token file {} is empty", path.display());
            }
            if token.chars().any(|c| c.is_control() || c == ' ') {
                bail!(
                    "the token in {} holds spaces or control characters; use one line of printable characters",
                    path.display()
                );
            }
            Some(token)
        }
    };
    ctseg_serve::run(ServeConfig {
        models,
        datastore: args.datastore.clone(),
        bind: args.bind,
        backend: args.backend,
        token,
        max_body_bytes: (args.max_body_mb << 20) as usize,
        queue: args.queue,
        batch_size: args.batch_size,
        threshold: args.threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_are_named() {
        assert_eq!(
            model_spec("liver=runs/a").unwrap(),
            ("liver".to_string(), PathBuf::from("runs/a"))
        );
        assert_eq!(model_spec("runs/exp1").unwrap().0, "exp1");
        assert_eq!(model_spec("w/best.safetensors").unwrap().0, "best");
        assert!(model_spec("a b=runs/a").is_err());
    }
}

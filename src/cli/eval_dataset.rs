//! `ctseg eval --model RUN --data DIR [--split S] [--out DIR]`: predict every subject
//! of a split, score it (Dice, IoU, NSD, HD95 per structure) and print the summary.

use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::eval::EvalArgs;
use crate::cli::{emit, print_warnings};
use ctseg_core::dataset::DatasetIndex;
use ctseg_ml::backend;
use ctseg_ml::evaluate::{evaluate_dataset, per_subject_csv, summary_table, write_outputs};
use ctseg_ml::infer::{PredictOptions, Predictor};
use ctseg_ml::train::load_run_config;

/// Evaluate `model` on `data`'s split.
pub fn run(args: &EvalArgs, model: &Path, data: &Path) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    // The split of a dataset without meta.csv is the one training used: the run's
    // validation fraction and seed when the model is a run folder.
    let (val_fraction, seed) = match load_run_config(model) {
        Ok(c) => (c.data.val_fraction, c.run.seed),
        Err(_) => {
            let defaults = ctseg_ml::train::TrainConfig::default();
            (defaults.data.val_fraction, defaults.run.seed)
        }
    };
    let index = DatasetIndex::open(data, val_fraction, seed)?;
    let selected = backend::select(args.backend)?;
    let predictor = Predictor::load(model, selected.device.clone(), selected.kind)?;
    if !args.quiet {
        eprintln!(
            "model {} on {}; {} ({})",
            predictor.weights().display(),
            selected.describe(),
            data.display(),
            index.split_source
        );
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "evaluating [{bar:30.cyan/blue}] {pos}/{len} subjects {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    };
    let options = PredictOptions {
        batch_size: args.batch_size,
        ..PredictOptions::default()
    };
    let evaluation = evaluate_dataset(
        &predictor,
        &index,
        args.split,
        &options,
        args.nsd_tolerance,
        &mut |done, total, id| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(id.to_string());
        },
    )?;
    bar.finish_and_clear();
    print_warnings(&evaluation.warnings);
    if let Some(out) = &args.out {
        write_outputs(out, &evaluation)
            .with_context(|| format!("cannot write the evaluation into {}", out.display()))?;
        eprintln!(
            "wrote summary.json, per_subject.csv and dice_boxplot.png to {}",
            out.display()
        );
    }
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&evaluation)?))
    } else if args.csv {
        emit(&per_subject_csv(&evaluation))
    } else {
        emit(&summary_table(&evaluation))
    }
}

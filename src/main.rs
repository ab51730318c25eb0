//! The `ctseg` binary.

use std::process::ExitCode;

#[cfg(not(feature = "gui"))]
use clap::CommandFactory;
use clap::Parser;
use ctseg::cli::{
    Cli, Command, bench, convert, dicomweb, eval, export, info, phantom, predict, serve, train,
};

fn main() -> ExitCode {
    // openjpeg's own log lines (through the jpeg2k crate) would come before, and
    // repeat, the one error ctseg prints for an undecodable slice; wgpu's OpenGL
    // fallback reports a missing EGL driver as an error while the device search
    // goes on (and usually succeeds through Vulkan, or falls back to the CPU).
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,jpeg2k=off,wgpu_hal::gles=off"),
    )
    .init();
    let cli = Cli::parse();
    // The commands that repeat large CPU allocations keep freed memory for reuse (see
    // `ctseg::heap`); the viewer, a long-lived process, gives it back as usual.
    if matches!(
        cli.command,
        Some(Command::Train(_) | Command::Bench(_) | Command::Predict(_))
    ) {
        ctseg::heap::keep_freed_memory_for_reuse();
    }
    let result = match &cli.command {
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Export(args)) => export::run(args),
        Some(Command::Convert(args)) => convert::run(args),
        Some(Command::Dicomweb(args)) => dicomweb::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Phantom(args)) => phantom::run(args),
        #[cfg(feature = "gui")]
        Some(Command::View(args)) => ctseg::cli::view::run_view(args),
        #[cfg(feature = "gui")]
        None => ctseg::cli::view::run_view(&Default::default()),
        #[cfg(not(feature = "gui"))]
        None => Cli::command()
            .print_help()
            .map_err(|e| anyhow::anyhow!("could not print the help: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `busbar-zenoh` program (see the library's docs).

use std::process::ExitCode;

use busbar_zenoh::cli::Args;
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.check() {
        eprintln!("busbar-zenoh: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "busbar_zenoh=info,zenoh=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match busbar_zenoh::start::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("busbar-zenoh: {e}");
            ExitCode::FAILURE
        }
    }
}

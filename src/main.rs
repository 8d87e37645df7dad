//! The `appliance` binary: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = appliance::cli::Cli::parse();
    ExitCode::from(appliance::run(cli))
}

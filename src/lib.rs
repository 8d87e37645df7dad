//! appliance: a self-hosted auth appliance in one synchronous binary over SQLite.
//!
//! The server side is `serve` (http → app → db); the admin commands work on the
//! database file; `client` is what the CLI and Rust services use to talk to a server.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod files;
pub mod http;
pub mod metrics;
mod serve;
pub mod text;

use cli::{Cli, Command};

/// Runs one command line; returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Admin { command } => admin::run(command),
        Command::Healthcheck(args) => client::commands::healthcheck(&args),
        Command::Login(args) => client::commands::login(&args),
        Command::Logout => client::commands::logout(),
        Command::Whoami => client::commands::whoami(),
        Command::Token => client::commands::token(),
        Command::Agent(args) => client::commands::agent(&args),
    }
}

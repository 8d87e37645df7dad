//! The client commands of the CLI (in progress: see issue 5).

use crate::cli::{AgentArgs, HealthcheckArgs, LoginArgs};

fn not_yet(what: &str) -> u8 {
    eprintln!("`appliance {what}` is not available in this build yet.");
    1
}

pub fn healthcheck(_args: &HealthcheckArgs) -> u8 {
    not_yet("healthcheck")
}
pub fn login(_args: &LoginArgs) -> u8 {
    not_yet("login")
}
pub fn logout() -> u8 {
    not_yet("logout")
}
pub fn whoami() -> u8 {
    not_yet("whoami")
}
pub fn agent(_args: &AgentArgs) -> u8 {
    not_yet("agent")
}

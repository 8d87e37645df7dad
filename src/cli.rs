//! The command line surface: clap definitions only, no logic.
//!
//! Raw strings (durations, addresses) are turned into typed values by `config.rs`.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "appliance",
    version,
    about = "A self-hosted auth appliance: sessions, personal access tokens, validation and revocation.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server on the SQLite database.
    Serve(Box<ServeArgs>),
    /// Operate on the database directly (safe while `serve` runs).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Exit 0 when the server's /healthz answers 200, else 1 (used by the Docker HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// Log in to an appliance server and store the token.
    Login(LoginArgs),
    /// Revoke the stored token on the server and remove the stored credentials.
    Logout,
    /// Show which server and user the stored credentials belong to.
    Whoami,
    /// Keep a stored personal access token alive by renewing it periodically.
    Agent(AgentArgs),
}

/// `--db PATH`, accepted by `serve` and every admin subcommand.
#[derive(Debug, Args, Clone)]
pub struct DbArg {
    /// SQLite database file (created on first start).
    #[arg(
        long,
        env = "APPLIANCE_DB",
        default_value = "./appliance.db",
        value_name = "PATH"
    )]
    pub db: String,
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(
        long,
        env = "APPLIANCE_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: String,
    #[command(flatten)]
    pub db: DbArg,
    /// Sliding window: each use of a session pushes its expiry to now + this.
    #[arg(
        long,
        env = "APPLIANCE_SESSION_WINDOW",
        default_value = "30d",
        value_name = "DURATION"
    )]
    pub session_window: String,
    /// Absolute session lifetime: no sliding past created_at + this.
    #[arg(
        long,
        env = "APPLIANCE_SESSION_LIFETIME",
        default_value = "365d",
        value_name = "DURATION"
    )]
    pub session_lifetime: String,
    /// PAT lifetime at creation and on renew.
    #[arg(
        long,
        env = "APPLIANCE_PAT_LIFETIME",
        default_value = "90d",
        value_name = "DURATION"
    )]
    pub pat_lifetime: String,
    /// A PAT is renewed only when this much or less of its life is left.
    #[arg(
        long,
        env = "APPLIANCE_PAT_RENEW_THRESHOLD",
        default_value = "7d",
        value_name = "DURATION"
    )]
    pub pat_renew_threshold: String,
    /// Largest accepted request body, in bytes.
    #[arg(
        long,
        env = "APPLIANCE_BODY_LIMIT",
        default_value = "65536",
        value_name = "BYTES"
    )]
    pub body_limit: String,
    /// Failed logins per username in 5 minutes before further attempts get 429.
    #[arg(
        long,
        env = "APPLIANCE_LOGIN_MAX_FAILURES_USER",
        default_value = "10",
        value_name = "N"
    )]
    pub login_max_failures_user: String,
    /// Failed logins per client address in 5 minutes before further attempts get 429.
    #[arg(
        long,
        env = "APPLIANCE_LOGIN_MAX_FAILURES_ADDR",
        default_value = "100",
        value_name = "N"
    )]
    pub login_max_failures_addr: String,
    /// Comma-separated IPs/CIDRs whose X-Forwarded-For is trusted (default: none).
    #[arg(
        long,
        env = "APPLIANCE_TRUSTED_PROXIES",
        default_value = "",
        value_name = "LIST"
    )]
    pub trusted_proxies: String,
    /// Accepted for compatibility: each connection's thread now serves its own requests (see --max-connections); N only sizes the database pool (N + 4).
    #[arg(long, env = "APPLIANCE_WORKERS", value_name = "N")]
    pub workers: Option<String>,
    /// Client connections served at once; beyond it new ones wait in the kernel's backlog.
    #[arg(
        long,
        env = "APPLIANCE_MAX_CONNECTIONS",
        default_value = "1024",
        value_name = "N"
    )]
    pub max_connections: String,
    /// Threads that hash passwords with Argon2id (default: cores - 1, at least 1).
    #[arg(long, env = "APPLIANCE_LOGIN_WORKERS", value_name = "N")]
    pub login_workers: Option<String>,
    /// Rows of expired and revoked tokens are deleted this long after they stopped working.
    #[arg(
        long,
        env = "APPLIANCE_PURGE_AFTER",
        default_value = "7d",
        value_name = "DURATION"
    )]
    pub purge_after: String,
    /// A request has this long, from its first byte, to arrive in full; an idle keep-alive connection is closed after it; each write waits at most this long.
    #[arg(
        long,
        env = "APPLIANCE_CLIENT_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub client_timeout: String,
    /// Leave `Secure` off the session cookie (plain-HTTP development only).
    #[arg(long, env = "APPLIANCE_INSECURE_COOKIES")]
    pub insecure_cookies: bool,
    /// Domain attribute of the session cookie; also the domain `rd` redirects may go to.
    #[arg(long, env = "APPLIANCE_COOKIE_DOMAIN", value_name = "DOMAIN")]
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage personal access tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Revoke one token, or every token of a user (break-glass).
    Revoke(RevokeArgs),
    /// List the audit log, oldest first.
    Audit(AuditArgs),
    /// Write a consistent copy of the live database to PATH.
    Backup(BackupArgs),
    /// Benchmark helper: add COUNT live sessions for a user in one transaction and
    /// print the first few tokens.
    #[command(hide = true)]
    Seed(SeedArgs),
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[arg(long, value_name = "USERNAME")]
    pub user: String,
    #[arg(long)]
    pub count: u64,
    /// How many of the new tokens to print.
    #[arg(long, default_value = "1")]
    pub print: u64,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; prints the new user id.
    Add(UserAddArgs),
    /// List users.
    List(UserListArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// 1-64 characters of a-z 0-9 . _ - @
    pub username: String,
    /// Read the password from one line of standard input instead of a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token for a user; prints the token alone on its line.
    Create(TokenCreateArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("expiry").multiple(false))]
pub struct TokenCreateArgs {
    /// The user who owns the token.
    #[arg(long, value_name = "USERNAME")]
    pub user: String,
    /// A name to recognise the token by.
    #[arg(long)]
    pub name: String,
    /// Expire after N days (1-3650).
    #[arg(long, value_name = "N", group = "expiry")]
    pub expires_in_days: Option<String>,
    /// Expire after a duration such as 12h or 30d.
    #[arg(long, value_name = "DURATION", group = "expiry")]
    pub expires_in: Option<String>,
    /// The token never expires.
    #[arg(long, group = "expiry")]
    pub never_expires: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(false))]
pub struct RevokeArgs {
    /// Revoke this session or PAT (`-` reads it from standard input).
    #[arg(long, value_name = "TOKEN", group = "what")]
    pub token: Option<String>,
    /// Break-glass: reject every token this user holds now.
    #[arg(long, value_name = "USERNAME", group = "what")]
    pub user: Option<String>,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist yet).
    pub path: String,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Base URL of the server (default: derived from APPLIANCE_LISTEN).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[arg(
        long,
        env = "APPLIANCE_LISTEN",
        default_value = "127.0.0.1:8080",
        hide = true
    )]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// One or more server URLs, comma-separated, tried in order.
    #[arg(long, value_name = "URL[,URL...]", required = true)]
    pub server_url: String,
    /// Log in with this username (password from a prompt or --password-stdin).
    #[arg(
        long,
        conflicts_with = "token_stdin",
        required_unless_present = "token_stdin"
    )]
    pub username: Option<String>,
    /// Read the password from one line of standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Store an existing token (typically a PAT) read from standard input.
    #[arg(long)]
    pub token_stdin: bool,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Time between renewals (30s, 10m, 72h, 3d).
    #[arg(long, default_value = "72h", value_name = "DURATION")]
    pub interval: String,
    /// Renew once and exit with the class exit code.
    #[arg(long)]
    pub once: bool,
}

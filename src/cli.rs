//! The command line surface: clap definitions only, no logic.
//!
//! Raw strings (durations, addresses) are turned into typed values by `config.rs`.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "appliance",
    version,
    about = "A self-hosted auth appliance: sessions, personal access tokens, validation and revocation.",
    propagate_version = true,
    after_help = "Examples:
  appliance serve                             # http://127.0.0.1:8080 on ./appliance.db
  appliance admin user add alice              # the first user (asks for a password)
  appliance login --server-url http://127.0.0.1:8080 --username alice

Each command has --help, with examples."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server on the database (SQLite file or PostgreSQL).
    #[command(after_help = "Examples:
  appliance serve
  appliance serve --listen 0.0.0.0:8080 --db /var/lib/appliance/appliance.db
  APPLIANCE_DB=postgres://appliance@db.internal/appliance appliance serve
  APPLIANCE_SESSION_WINDOW=7d appliance serve --trusted-proxies 127.0.0.1

Every flag is also an environment variable (shown as [env: …]).")]
    Serve(Box<ServeArgs>),
    /// Operate on the database directly (safe while `serve` runs).
    #[command(after_help = "Examples:
  appliance admin user add alice
  appliance admin revoke --user alice --db /var/lib/appliance/appliance.db

Every admin command takes --db PATH (or APPLIANCE_DB) after its name; all but
`user add` refuse a database file that does not exist.")]
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Exit 0 when the server's /healthz answers 200, else 1 (used by the Docker HEALTHCHECK).
    #[command(after_help = "Examples:
  appliance healthcheck                       # the server on APPLIANCE_LISTEN
  appliance healthcheck --url http://127.0.0.1:8080")]
    Healthcheck(HealthcheckArgs),
    /// Log in to an appliance server and store the token.
    #[command(after_help = CREDENTIALS_HELP)]
    Login(LoginArgs),
    /// Revoke the stored token on the server and remove the stored credentials.
    #[command(after_help = "Example:
  appliance logout

Removes $APPLIANCE_CONFIG_DIR/credentials.json (default ~/.config/appliance/).")]
    Logout,
    /// Show which server and user the stored credentials belong to.
    #[command(after_help = "Example:
  appliance whoami                # Logged in to http://127.0.0.1:8080 as alice.

Reads $APPLIANCE_CONFIG_DIR/credentials.json (default ~/.config/appliance/).")]
    Whoami,
    /// Print a fresh signed access token for the stored credentials, alone on its line.
    #[command(after_help = "Example:
  curl -H \"Authorization: Bearer $(appliance token)\" https://app.example.com/api/things

Uses $APPLIANCE_CONFIG_DIR/credentials.json (default ~/.config/appliance/).")]
    Token,
    /// Keep a stored personal access token alive by renewing it periodically.
    #[command(
        after_help = "A personal access token (apt_…) must be stored first, with
  appliance login --server-url URL --token-stdin < pat.txt
(`appliance admin token create` or POST /api/tokens makes one). A session token from
a password login is refused.

Examples:
  appliance agent                          # renew now, then every 72h
  appliance agent --interval 24h
  appliance agent --once                   # for cron: renew once, exit with its code"
    )]
    Agent(AgentArgs),
}

/// Where `login` keeps what it stores, for its `--help`.
const CREDENTIALS_HELP: &str =
    "Credentials are stored in $APPLIANCE_CONFIG_DIR/credentials.json (default
~/.config/appliance/credentials.json), mode 0600; every other client command reads
them from there.

Examples:
  appliance login --server-url http://127.0.0.1:8080 --username alice
  printf '%s\\n' \"$PASSWORD\" | appliance login --server-url https://auth.example.com \\
      --username alice --password-stdin
  appliance login --server-url https://auth.example.com --token-stdin < pat.txt";

/// `--db PATH|URL`, accepted by `serve` and every admin subcommand.
#[derive(Debug, Args, Clone)]
pub struct DbArg {
    /// SQLite database file (`serve` and `admin user add` create it if missing), or a
    /// PostgreSQL URL (postgres://USER@HOST:PORT/DBNAME?sslmode=require; password from
    /// the URL or the file named by APPLIANCE_DB_PASSWORD_FILE).
    // hide_env_values: the variable may hold a URL with a password; --help must not print it.
    #[arg(
        long,
        env = "APPLIANCE_DB",
        hide_env_values = true,
        default_value = "./appliance.db",
        value_name = "PATH|URL"
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
    /// Database connections this process holds at most (independent of --workers).
    #[arg(
        long,
        env = "APPLIANCE_DB_POOL_SIZE",
        default_value = "16",
        value_name = "N"
    )]
    pub db_pool_size: String,
    /// Sliding window: each use of a session pushes its expiry to now + this.
    #[arg(
        long,
        env = "APPLIANCE_SESSION_WINDOW",
        default_value = crate::app::DEFAULT_SESSION_WINDOW,
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
        default_value = crate::app::DEFAULT_PAT_LIFETIME,
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
        hide_default_value = true,
        value_name = "LIST"
    )]
    pub trusted_proxies: String,
    /// Accepted for compatibility and otherwise ignored: each connection's thread serves its own requests (see --max-connections), and --db-pool-size sizes the database pool.
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
    /// The log on stderr: `text` (one line a request, RFC 3339 time first) or `json`
    /// (one JSON object a line, for log shippers).
    #[arg(long, env = "APPLIANCE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: crate::http::log::Format,
    /// Lifetime of a signed access token (1m to 24h); never past its parent's expiry.
    #[arg(
        long,
        env = "APPLIANCE_ACCESS_TOKEN_LIFETIME",
        default_value = "1h",
        value_name = "DURATION"
    )]
    pub access_token_lifetime: String,
    /// Issuer written into and required of access tokens: the URL users reach, such as
    /// https://auth.example.com (default: http:// + the listen address with its real port).
    #[arg(long, env = "APPLIANCE_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage users.
    #[command(after_help = "Examples:
  appliance admin user add alice
  appliance admin user list
  appliance admin user passwd alice
  appliance admin user delete alice")]
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage personal access tokens.
    #[command(after_help = "Example:
  appliance admin token create --user alice --name backup-daemon")]
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Revoke one token, or every token of a user (break-glass).
    #[command(after_help = "Examples:
  appliance admin revoke --token - < token.txt     # one session or PAT, kept out of ps
  appliance admin revoke --user alice              # every token alice holds now")]
    Revoke(RevokeArgs),
    /// The keys that sign access tokens: list them, or rotate to a new one.
    #[command(after_help = "Examples:
  appliance admin keys list
  appliance admin keys rotate")]
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// List the audit log, oldest first.
    #[command(after_help = "Examples:
  appliance admin audit
  appliance admin audit --json")]
    Audit(AuditArgs),
    /// Write a consistent copy of the live database to PATH (SQLite; use pg_dump for PostgreSQL).
    #[command(after_help = "Example:
  appliance admin backup /backups/appliance-$(date +%F).db     # safe while serve runs")]
    Backup(BackupArgs),
    /// Copy every user, token, audit entry and key of the SQLite database (--db) into
    /// an empty PostgreSQL database at URL.
    MigrateTo(MigrateToArgs),
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
    /// Add a user; prints the new user id. Creates the database if it does not exist.
    #[command(after_help = "Examples:
  appliance admin user add alice                  # asks for the password twice
  printf '%s\\n' \"$PASSWORD\" | appliance admin user add alice --password-stdin")]
    Add(UserAddArgs),
    /// List users.
    #[command(after_help = "Examples:
  appliance admin user list
  appliance admin user list --json")]
    List(UserListArgs),
    /// Set a new password; every token of the user issued before is rejected unless
    /// --keep-sessions.
    #[command(after_help = "Examples:
  appliance admin user passwd alice               # asks for the password twice
  printf '%s\\n' \"$PASSWORD\" | appliance admin user passwd alice --password-stdin --keep-sessions")]
    Passwd(UserPasswdArgs),
    /// Remove a user: every token of theirs is rejected from then on; the audit log
    /// keeps their history.
    #[command(after_help = "Example:
  appliance admin user delete alice")]
    Delete(UserDeleteArgs),
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
pub struct UserPasswdArgs {
    pub username: String,
    /// Read the new password from one line of standard input instead of a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    /// Keep the user's sessions and PATs working (by default they are all rejected).
    #[arg(long)]
    pub keep_sessions: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
pub struct UserDeleteArgs {
    pub username: String,
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
    #[command(after_help = "Examples:
  appliance admin token create --user alice --name backup-daemon           # 90 days
  appliance admin token create --user alice --name ci --expires-in 12h
  appliance admin token create --user alice --name cron --never-expires")]
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
    /// Revoke this session or PAT, or the family of this refresh token (`-` reads it
    /// from standard input).
    #[arg(long, value_name = "TOKEN", group = "what")]
    pub token: Option<String>,
    /// Break-glass: reject every token this user holds now.
    #[arg(long, value_name = "USERNAME", group = "what")]
    pub user: Option<String>,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the served keys: the active one and any still retiring.
    #[command(after_help = "Examples:
  appliance admin keys list
  appliance admin keys list --json")]
    List(KeysListArgs),
    /// Make a new active key; the old one is served as retiring until every token it
    /// signed has expired, then dropped.
    #[command(after_help = "Example:
  appliance admin keys rotate       # audited; tokens signed before stay valid")]
    Rotate(KeysRotateArgs),
}

#[derive(Debug, Args)]
pub struct KeysListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, Args)]
pub struct KeysRotateArgs {
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
pub struct MigrateToArgs {
    /// The PostgreSQL database to fill (postgres://…; it must hold no users or tokens).
    pub url: String,
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

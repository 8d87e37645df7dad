//! `appliance admin …`: direct operations on the database file, safe while `serve`
//! runs (SQLite WAL and a busy timeout serialise the writers). Each change is audited
//! with the actor `cli:<OS user>`.
//!
//! Only `user add` creates a missing database (and says so): any other command pointed
//! at a mistyped path must not act on a new empty file, where a revocation would
//! "succeed" while the real token keeps working.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::app::{self, issue};
use crate::auth::password::{hash_password, MIN_PASSWORD_LEN};
use crate::auth::token::{self, Kind};
use crate::auth::valid_username;
use crate::cli::{
    AdminCommand, KeysCommand, RevokeArgs, SeedArgs, TokenCommand, TokenCreateArgs, UserAddArgs,
    UserCommand, UserDeleteArgs, UserPasswdArgs,
};
use crate::clock::{rfc3339, Clock, SystemClock};
use crate::config::parse_duration;
use crate::db::tokens::RevokeOutcome;
use crate::db::{is_postgres, redact, AuditEntry, Store, StoreError, User};
use crate::error::exit;
use crate::{files, text};

/// A refusal: the exit code and the sentence for stderr.
pub struct Refusal(pub u8, pub String);

type Outcome = Result<(), Refusal>;

fn usage(msg: impl Into<String>) -> Refusal {
    Refusal(exit::USAGE, msg.into())
}
fn refused(msg: impl Into<String>) -> Refusal {
    Refusal(exit::REFUSED, msg.into())
}
fn store_refusal(e: StoreError) -> Refusal {
    refused(match e {
        StoreError::Busy => "The database is locked by another process; try again.".to_string(),
        other => format!("Database error: {other}."),
    })
}

pub fn run(command: AdminCommand) -> u8 {
    let result = match command {
        AdminCommand::User {
            command: UserCommand::Add(a),
        } => user_add(&a),
        AdminCommand::User {
            command: UserCommand::List(a),
        } => open_existing(&a.db.db).and_then(|s| user_list(&s, a.json)),
        AdminCommand::User {
            command: UserCommand::Passwd(a),
        } => user_passwd(&a),
        AdminCommand::User {
            command: UserCommand::Delete(a),
        } => user_delete(&a),
        AdminCommand::Token {
            command: TokenCommand::Create(a),
        } => token_create(&a),
        AdminCommand::Revoke(a) => revoke(&a),
        AdminCommand::Keys {
            command: KeysCommand::List(a),
        } => open_existing(&a.db.db).and_then(|s| keys_list(&s, a.json)),
        AdminCommand::Keys {
            command: KeysCommand::Rotate(a),
        } => open_existing(&a.db.db).and_then(|s| keys_rotate(&s)),
        AdminCommand::Audit(a) => open_existing(&a.db.db).and_then(|s| audit(&s, a.json)),
        AdminCommand::Backup(a) => backup(&a.db.db, &a.path),
        AdminCommand::MigrateTo(a) => migrate_to(&a.db.db, &a.url),
        AdminCommand::Seed(a) => seed(&a),
    };
    match result {
        Ok(()) => exit::OK,
        Err(Refusal(code, msg)) => {
            eprintln!("{msg}");
            code
        }
    }
}

/// `path` made absolute (not resolving links), for messages a user can act on from
/// any directory.
pub fn absolute(path: &str) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path))
}

/// `s` quoted for a POSIX shell when it needs it, so a printed command pastes as is.
pub fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@=%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Opens the database of an admin command that must not create one: a missing SQLite
/// file is refused, naming its absolute path and how to make one. A PostgreSQL URL is
/// never "a missing file": it is opened (and migrated) like `serve` does.
pub fn open_existing(path: &str) -> Result<Store, Refusal> {
    if !is_postgres(path) && !Path::new(path).exists() {
        let abs = absolute(path);
        return Err(refused(format!(
            "No database at {shown}: nothing was changed. Check --db (or APPLIANCE_DB); \
             `appliance admin user add --db {quoted} USERNAME` creates one with its first user.",
            shown = text::escape(&abs.display().to_string()),
            quoted = shell_word(&abs.display().to_string())
        )));
    }
    open(path)
}

/// Opens (creating and migrating if needed) the database for an admin command.
pub fn open(target: &str) -> Result<Store, Refusal> {
    // A PostgreSQL URL's password is never printed; a path is escaped for the terminal.
    let shown = text::escape(&redact(target)).to_string();
    let store = Store::open(target, 2).map_err(|e| match e {
        StoreError::TooNew { .. } => refused(format!("Cannot use {shown}: {e}.")),
        other => refused(format!("Cannot open the database {shown}: {other}.")),
    })?;
    if !is_postgres(target) {
        for warning in files::loose_file_warnings(Path::new(target)) {
            eprintln!("WARN {}", text::escape(&warning));
        }
    }
    Ok(store)
}

/// `cli:<OS user>` for the audit log: the login name of the real uid (from /etc/passwd),
/// not `$USER`, which anyone can set; `uid<N>` when the uid has no name.
pub fn cli_actor() -> String {
    format!("cli:{}", os_user().unwrap_or_else(|| "unknown".to_string()))
}

fn os_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or(format!("uid{uid}")))
}

fn existing_user(store: &Store, username: &str) -> Result<User, Refusal> {
    store
        .user_by_username(username)
        .map_err(store_refusal)?
        .ok_or_else(|| no_such_user(username))
}

fn no_such_user(username: &str) -> Refusal {
    refused(format!("No user named '{}'.", text::escape(username)))
}

fn entry(action: &'static str, target: &str, detail: String) -> AuditEntry {
    AuditEntry {
        actor: cli_actor(),
        action,
        target: target.to_string(),
        detail,
    }
}

/// Reads a new password: one line of stdin with `--password-stdin` (or when stdin is
/// not a terminal), else a no-echo prompt asked twice. Refuses (exit 2) an empty one,
/// a mismatch and a short one, each with its own sentence. `command` (`user add alice`)
/// completes the example of the empty-stdin sentence.
fn new_password(from_stdin: bool, command: &str) -> Result<String, Refusal> {
    let prompting = !from_stdin && std::io::stdin().is_terminal();
    let password = read_secret(from_stdin, "Password: ").map_err(usage)?;
    if password.is_empty() {
        return Err(usage(if prompting {
            "No password was typed; nothing was changed.".to_string()
        } else {
            format!(
                "Standard input held no password; nothing was changed. Pass it as one line: \
                 printf '%s\\n' \"$PASSWORD\" | appliance admin {command} --password-stdin"
            )
        }));
    }
    if prompting {
        let again = read_secret(false, "Repeat the password: ").map_err(usage)?;
        if again != password {
            return Err(usage("The two passwords differ; nothing was changed."));
        }
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(usage(format!(
            "The password must be at least {MIN_PASSWORD_LEN} characters."
        )));
    }
    Ok(password)
}

/// Reads a secret: one line of stdin, or a no-echo prompt.
pub fn read_secret(from_stdin: bool, prompt: &str) -> Result<String, String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("Could not read standard input: {e}."))?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    } else {
        rpassword::prompt_password(prompt).map_err(|e| format!("Could not read the password: {e}."))
    }
}

fn user_add(a: &UserAddArgs) -> Outcome {
    if !valid_username(&a.username) {
        return Err(usage(format!(
            "'{}' is not a valid username: use 1 to 64 characters of a-z 0-9 . _ - @.",
            text::escape(&a.username)
        )));
    }
    let password = new_password(a.password_stdin, &format!("user add {}", a.username))?;
    let created = !is_postgres(&a.db.db) && !Path::new(&a.db.db).exists();
    let store = open(&a.db.db)?;
    if created {
        eprintln!(
            "Created a new database at {}.",
            text::escape(&absolute(&a.db.db).display().to_string())
        );
    }
    let phc = hash_password(&password).map_err(refused)?;
    let id =
        token::random_id("usr_").map_err(|e| refused(format!("OS random source failed: {e}.")))?;
    let now = SystemClock.now_ms();
    match store.create_user(
        &id,
        &a.username,
        &phc,
        now,
        &entry("user.add", &a.username, String::new()),
    ) {
        Ok(user) => {
            println!("{}", user.id);
            Ok(())
        }
        Err(StoreError::Conflict) => Err(refused(format!(
            "A user named '{}' already exists.",
            a.username
        ))),
        Err(e) => Err(store_refusal(e)),
    }
}

fn user_passwd(a: &UserPasswdArgs) -> Outcome {
    let store = open_existing(&a.db.db)?;
    existing_user(&store, &a.username)?;
    let password = new_password(a.password_stdin, &format!("user passwd {}", a.username))?;
    let phc = hash_password(&password).map_err(refused)?;
    let bump = !a.keep_sessions;
    let version = match store.set_password(
        &a.username,
        &phc,
        bump,
        SystemClock.now_ms(),
        &entry("user.passwd", &a.username, String::new()),
    ) {
        Ok(v) => v,
        Err(StoreError::NotFound) => return Err(no_such_user(&a.username)),
        Err(e) => return Err(store_refusal(e)),
    };
    if bump {
        println!(
            "Password of '{}' changed; every token issued before is rejected (session_version {version}).",
            a.username
        );
    } else {
        println!(
            "Password of '{}' changed; their sessions and PATs keep working.",
            a.username
        );
    }
    Ok(())
}

fn user_delete(a: &UserDeleteArgs) -> Outcome {
    let store = open_existing(&a.db.db)?;
    match store.delete_user(
        &a.username,
        SystemClock.now_ms(),
        &entry("user.delete", &a.username, String::new()),
    ) {
        Ok(user) => {
            println!(
                "User '{}' ({}) deleted; every token of theirs is rejected.",
                user.username, user.id
            );
            Ok(())
        }
        Err(StoreError::NotFound) => Err(no_such_user(&a.username)),
        Err(e) => Err(store_refusal(e)),
    }
}

fn user_list(store: &Store, as_json: bool) -> Outcome {
    let users = store.list_users().map_err(store_refusal)?;
    if as_json {
        let list: Vec<_> = users
            .iter()
            .map(|u| json!({ "id": u.id, "username": u.username, "created_at": rfc3339(u.created_at), "session_version": u.session_version }))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!(
            "{:<26} {:<32} {:<21} SESSION_VERSION",
            "ID", "USERNAME", "CREATED_AT"
        );
        for u in users {
            println!(
                "{:<26} {:<32} {:<21} {}",
                text::escape(&u.id),
                text::escape(&u.username),
                rfc3339(u.created_at),
                u.session_version
            );
        }
    }
    Ok(())
}

fn token_create(a: &TokenCreateArgs) -> Outcome {
    let name = app::pat_name(&a.name).map_err(|e| usage(format!("--name: {e}")))?;
    let lifetime_ms = match (&a.expires_in_days, &a.expires_in, a.never_expires) {
        (Some(days), _, _) => Some(
            days.parse::<i64>()
                .map_err(|_| String::new())
                .and_then(app::pat_lifetime_days)
                .map_err(|_| {
                    usage(format!(
                        "--expires-in-days: '{}' is not a whole number from 1 to {}.",
                        text::escape(days),
                        app::PAT_MAX_DAYS
                    ))
                })?,
        ),
        (_, Some(d), _) => {
            Some(parse_duration(d).map_err(|e| usage(format!("--expires-in: {e}.")))?)
        }
        (_, _, true) => None,
        _ => {
            let default = std::env::var("APPLIANCE_PAT_LIFETIME")
                .unwrap_or_else(|_| app::DEFAULT_PAT_LIFETIME.into());
            Some(
                parse_duration(&default)
                    .map_err(|e| usage(format!("APPLIANCE_PAT_LIFETIME: {e}.")))?,
            )
        }
    };
    let store = open_existing(&a.db.db)?;
    let user = existing_user(&store, &a.user)?;
    let now = SystemClock.now_ms();
    let audit = entry(
        "token.create",
        "",
        format!("user={} name={name}", user.username),
    );
    let issued = issue(
        &store,
        Kind::Pat,
        &user.id,
        Some(name),
        now,
        lifetime_ms.map(|l| now + l),
        Some(audit),
    )
    .map_err(|e| refused(format!("Could not create the token: {e}.")))?;
    println!("{}", issued.token);
    Ok(())
}

fn revoke(a: &RevokeArgs) -> Outcome {
    let store = open_existing(&a.db.db)?;
    let now = SystemClock.now_ms();
    if let Some(username) = &a.user {
        let user = existing_user(&store, username)?;
        let version = store
            .bump_session_version(
                &user.id,
                now,
                &entry("user.revoke_all", username, String::new()),
            )
            .map_err(store_refusal)?;
        println!(
            "Every token of '{}' issued before now is rejected (session_version {version}).",
            text::escape(username)
        );
        return Ok(());
    }
    let presented = match a.token.as_deref() {
        Some("-") => read_secret(true, "").map_err(usage)?.trim().to_string(),
        Some(t) => t.to_string(),
        None => return Err(usage("Give --token TOKEN or --user USERNAME.")),
    };
    match token::kind_of(&presented) {
        None | Some(Kind::Access) => {
            return Err(refused(
                "That is not an appliance token (aps_…, apt_… or apr_…); nothing was revoked.",
            ))
        }
        Some(Kind::Refresh) => {
            return match store
                .revoke_refresh_family(
                    &token::hash(&presented),
                    now,
                    Some(&entry("refresh.revoke", "", String::new())),
                )
                .map_err(store_refusal)?
            {
                Some(true) => {
                    println!("Refresh token revoked, with every token of its family.");
                    Ok(())
                }
                Some(false) => {
                    println!("Refresh token was already revoked.");
                    Ok(())
                }
                None => Err(refused("No such token; nothing was revoked.")),
            };
        }
        Some(_) => {}
    }
    match store
        .revoke_token(
            &token::hash(&presented),
            now,
            Some(&entry("token.revoke", "", String::new())),
        )
        .map_err(store_refusal)?
    {
        RevokeOutcome::Revoked => {
            println!("Token revoked.");
            Ok(())
        }
        RevokeOutcome::AlreadyRevoked => {
            println!("Token was already revoked.");
            Ok(())
        }
        RevokeOutcome::NotFound => Err(refused("No such token; nothing was revoked.")),
    }
}

fn keys_list(store: &Store, as_json: bool) -> Outcome {
    let keys = store
        .list_keys(SystemClock.now_ms())
        .map_err(store_refusal)?;
    let status = |active: bool| if active { "active" } else { "retiring" };
    if as_json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| json!({ "kid": k.kid, "public_key": k.public_key, "status": status(k.active), "created_at": rfc3339(k.created_at) }))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for k in keys {
            println!(
                "{}  {:<8}  {}",
                rfc3339(k.created_at),
                status(k.active),
                k.kid
            );
        }
    }
    Ok(())
}

fn keys_rotate(store: &Store) -> Outcome {
    let kid = crate::app::oauth::rotate_signing_key(
        store,
        SystemClock.now_ms(),
        &entry("keys.rotate", "", String::new()),
    )
    .map_err(|e| refused(format!("Key rotation failed: {e}.")))?;
    println!("New active signing key {kid}; the previous one is served as retiring until its tokens expire.");
    Ok(())
}

fn audit(store: &Store, as_json: bool) -> Outcome {
    let log = store.audit_log().map_err(store_refusal)?;
    if as_json {
        let list: Vec<_> = log
            .iter()
            .map(|r| json!({ "at": rfc3339(r.at), "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail }))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for r in log {
            println!(
                "{}  {:<20} {:<16} {:<26} {}",
                rfc3339(r.at),
                text::escape(&r.actor),
                text::escape(&r.action),
                text::escape(&r.target),
                text::escape(&r.detail)
            );
        }
    }
    Ok(())
}

/// The copy is made in a private temporary directory beside `dest`, then written
/// through a file descriptor opened `O_CREAT|O_EXCL` (mode 0600): an existing path or a
/// symlink (even dangling) at `dest` is refused, with no window between check and
/// create.
fn backup(db: &str, dest: &str) -> Outcome {
    if is_postgres(db) {
        return Err(refused(
            "admin backup copies a SQLite file; back up a PostgreSQL database with pg_dump (for example: pg_dump -Fc -f appliance.dump DBNAME).",
        ));
    }
    let store = open_existing(db)?;
    let dest_path = Path::new(dest);
    let shown = text::escape(dest);
    let mut out = files::create_new_private(dest_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => refused(format!(
            "{shown} already exists (or is a symlink); choose a new path for the backup."
        )),
        _ => refused(format!("Cannot create {shown}: {e}.")),
    })?;
    let copied = copy_backup(&store, dest_path, &mut out);
    if let Err(e) = copied {
        drop(out);
        let _ = std::fs::remove_file(dest_path);
        return Err(refused(format!("Backup to {shown} failed: {e}.")));
    }
    println!("Backed up {} to {shown}.", text::escape(db));
    Ok(())
}

fn migrate_to(db: &str, url: &str) -> Outcome {
    if is_postgres(db) || !is_postgres(url) {
        return Err(usage(
            "migrate-to copies a SQLite file (--db PATH) into a PostgreSQL database: appliance admin migrate-to postgres://USER@HOST/DBNAME --db PATH.",
        ));
    }
    if !Path::new(db).exists() {
        return Err(refused(format!(
            "No SQLite database at {}.",
            text::escape(db)
        )));
    }
    let from = open(db)?;
    let to = open(url)?;
    let shown = text::escape(&redact(url)).to_string();
    let copied = from
        .copy_into(
            &to,
            SystemClock.now_ms(),
            &entry("db.migrate_to", &redact(url), format!("from={db}")),
        )
        .map_err(|e| refused(format!("Nothing was copied to {shown}: {e}.")))?;
    println!(
        "Copied {} users, {} tokens, {} refresh families ({} refresh tokens), {} signing keys and {} audit entries from {} to {shown}. Point every serve at it with --db/APPLIANCE_DB.",
        copied.users,
        copied.tokens,
        copied.refresh_families,
        copied.refresh_tokens,
        copied.keys,
        copied.audit,
        text::escape(db)
    );
    Ok(())
}

fn copy_backup(store: &Store, dest: &Path, out: &mut std::fs::File) -> Result<(), String> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = files::PrivateDir::new_in(parent).map_err(|e| e.to_string())?;
    let snapshot = tmp.path().join("backup.db");
    store.backup_to(&snapshot).map_err(|e| e.to_string())?;
    let mut from = std::fs::File::open(&snapshot).map_err(|e| e.to_string())?;
    std::io::copy(&mut from, out).map_err(|e| e.to_string())?;
    out.sync_all().map_err(|e| e.to_string())
}

/// Not audited: a benchmark fixture, hidden from `--help`.
fn seed(a: &SeedArgs) -> Outcome {
    let store = open_existing(&a.db.db)?;
    let user = existing_user(&store, &a.user)?;
    let now = SystemClock.now_ms();
    let window = std::env::var("APPLIANCE_SESSION_WINDOW")
        .unwrap_or_else(|_| app::DEFAULT_SESSION_WINDOW.into());
    let window_ms =
        parse_duration(&window).map_err(|e| usage(format!("APPLIANCE_SESSION_WINDOW: {e}.")))?;
    let tokens = store
        .seed_sessions(&user.id, a.count, a.print, now, now + window_ms)
        .map_err(store_refusal)?;
    for t in tokens {
        println!("{t}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn printed_paths_paste_into_a_shell() {
        assert_eq!(shell_word("/srv/app/appliance.db"), "/srv/app/appliance.db");
        assert_eq!(shell_word("/my dir/a.db"), "'/my dir/a.db'");
        assert_eq!(shell_word("/it's/a.db"), r"'/it'\''s/a.db'");
        assert_eq!(shell_word(""), "''");
    }
}

//! A newcomer's first minutes: admin commands never act on a database made by a typo,
//! `serve`'s hint pastes as printed, and every `--help` shows examples.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// `appliance ARGS` run in `dir` (so relative paths are relative to it).
fn run_in(dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    run_with(appliance().current_dir(dir).args(args), stdin)
}

#[test]
fn admin_commands_refuse_a_missing_database_and_create_none() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().join("typo.db");
    let commands: &[&[&str]] = &[
        &["admin", "user", "list"],
        &["admin", "user", "passwd", "alice", "--password-stdin"],
        &["admin", "user", "delete", "alice"],
        &["admin", "token", "create", "--user", "alice", "--name", "x"],
        &["admin", "revoke", "--token", "-"],
        &["admin", "revoke", "--user", "alice"],
        &["admin", "audit"],
        &["admin", "backup", "copy.db"],
        &["admin", "keys", "list"],
        &["admin", "keys", "rotate"],
    ];
    for args in commands {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--db", "typo.db"]);
        let out = run_in(dir.path(), &all, "aps_whatever\n");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("No database at {}", abs.display())),
            "{args:?} does not name the absolute path: {err}"
        );
        assert!(err.contains("admin user add --db"), "{args:?}: {err}");
        assert!(!abs.exists(), "{args:?} created {}", abs.display());
        assert!(!dir.path().join("copy.db").exists());
    }
    // The same through APPLIANCE_DB.
    let out = run_with(
        appliance()
            .current_dir(dir.path())
            .env("APPLIANCE_DB", "typo.db")
            .args(["admin", "user", "list"]),
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!abs.exists());
}

#[test]
fn a_postgres_url_is_never_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the URL is tried as a database, not looked up as a file.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/appliance");
    for args in [
        &["admin", "user", "list"][..],
        &["admin", "audit"],
        &["admin", "keys", "list"],
        &["admin", "revoke", "--user", "alice"],
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--db", &url]);
        let out = run_in(dir.path(), &all, "");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("No database at"), "{args:?}: {err}");
        assert!(
            err.contains(&format!("127.0.0.1:{port}")),
            "{args:?} names the server: {err}"
        );
        assert!(!err.contains("hunter2"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn user_add_on_a_missing_file_says_it_created_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--db",
            "new.db",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let abs = dir.path().join("new.db");
    assert!(
        stderr(&out).contains(&format!("Created a new database at {}.", abs.display())),
        "{}",
        stderr(&out)
    );
    // stdout stays the new user id alone, for scripts.
    assert!(stdout(&out).trim().starts_with("usr_"), "{}", stdout(&out));
    assert_eq!(stdout(&out).lines().count(), 1);
    // A second user on the now existing file: no such sentence.
    let out = run_in(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--db",
            "new.db",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Created"), "{}", stderr(&out));
}

#[test]
fn an_empty_password_on_stdin_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    for stdin in ["", "\n"] {
        let out = run_in(
            dir.path(),
            &[
                "admin",
                "user",
                "add",
                "alice",
                "--password-stdin",
                "--db",
                "a.db",
            ],
            stdin,
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("Standard input held no password"), "{err}");
        assert!(!err.contains("at least 8"), "{err}");
        assert!(
            !dir.path().join("a.db").exists(),
            "a refused add made a database"
        );
    }
    let out = run_in(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--db",
            "a.db",
        ],
        "short\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at least 8"), "{}", stderr(&out));
}

/// A child process killed on drop.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` in `dir` on `--db ./appliance.db` and returns its first stderr (log)
/// lines, up to and including the "No users yet" hint.
fn serve_hint(dir: &Path) -> (Running, Vec<String>) {
    let mut child = Running(
        appliance()
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", "./appliance.db"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let err = BufReader::new(child.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        let hint = line.contains(" INFO No users yet.");
        lines.push(line);
        if hint {
            return (child, lines);
        }
    }
    panic!("serve printed no hint: {lines:?}");
}

#[test]
fn serve_prints_absolute_paths_and_a_hint_that_runs_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lines) = serve_hint(dir.path());
    let abs = dir.path().join("appliance.db");
    let created = format!(" INFO Created a new database at {}.", abs.display());
    assert!(lines.iter().any(|l| l.ends_with(&created)), "{lines:?}");
    let hint = lines.last().unwrap();
    let command = hint
        .split_once("(it asks for a password): ")
        .unwrap_or_else(|| panic!("{hint}"))
        .1
        .to_string();
    assert!(
        command.contains(&format!("--db {}", abs.display())),
        "{command}"
    );
    assert!(!command.contains("./"), "{command}");
    // Pasted into a POSIX shell in another directory, where `appliance` is not on PATH;
    // the password comes from stdin, as it does when stdin is not a terminal.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_with(
        Command::new("sh")
            .args(["-c", &command])
            .current_dir(elsewhere.path())
            .env("PATH", "/usr/bin:/bin"),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    assert!(stdout(&out).starts_with("usr_"), "{}", stdout(&out));
    let out = run_in(
        dir.path(),
        &["admin", "user", "list", "--db", "appliance.db"],
        "",
    );
    assert!(stdout(&out).contains("alice"), "{}", stdout(&out));
    drop(server);
}

#[test]
fn every_help_shows_examples() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["admin"],
        &["admin", "user"],
        &["admin", "user", "add"],
        &["admin", "user", "list"],
        &["admin", "user", "passwd"],
        &["admin", "user", "delete"],
        &["admin", "token"],
        &["admin", "token", "create"],
        &["admin", "revoke"],
        &["admin", "audit"],
        &["admin", "backup"],
        &["admin", "keys"],
        &["admin", "keys", "list"],
        &["admin", "keys", "rotate"],
        &["token"],
        &["healthcheck"],
        &["login"],
        &["logout"],
        &["whoami"],
        &["agent"],
    ];
    for args in commands {
        let mut all = args.to_vec();
        all.push("--help");
        let out = run(&all, "");
        assert!(out.status.success(), "{args:?}");
        let help = stdout(&out);
        assert!(
            help.contains("Example:") || help.contains("Examples:"),
            "{args:?} --help shows no example:\n{help}"
        );
        assert!(help.contains("appliance "), "{args:?}");
    }
    let login = stdout(&run(&["login", "--help"], ""));
    assert!(
        login.contains("$APPLIANCE_CONFIG_DIR/credentials.json")
            && login.contains("~/.config/appliance/credentials.json"),
        "{login}"
    );
    let agent = stdout(&run(&["agent", "--help"], ""));
    assert!(
        agent.contains("must be stored first") && agent.contains("--token-stdin"),
        "{agent}"
    );
    let serve = stdout(&run(&["serve", "--help"], ""));
    // The option's entry: its line and its description, up to the next option.
    let mut entry = serve
        .lines()
        .skip_while(|l| !l.contains("--trusted-proxies <LIST>"));
    let first = entry.next().unwrap().to_string();
    let trusted: String = std::iter::once(first)
        .chain(
            entry
                .take_while(|l| !l.trim_start().starts_with('-'))
                .map(str::to_string),
        )
        .collect();
    assert_eq!(trusted.matches("default").count(), 1, "{trusted}");
}

#[test]
fn the_readme_stands_alone_and_pastes_into_a_posix_shell() {
    let readme = include_str!("../../README.md");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for link in readme.split("](").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        assert!(
            !target.contains("://") && !target.starts_with('/') && !target.contains(".."),
            "README links outside the repository: {target}"
        );
        let file = target.split('#').next().unwrap();
        assert!(file.is_empty() || root.join(file).exists(), "{target}");
    }
    assert!(!readme.contains("<<<"), "a bash-only here-string in README");
    // The quickstart's next step is what serve prints.
    assert!(readme
        .contains("No users yet. Add the first one in another terminal (it asks for a password):"));
}

/// Runs `appliance ARGS` on a terminal (util-linux `script` makes one), answering
/// each prompt in turn; returns everything the terminal showed and the exit status.
fn on_a_terminal(args: &str, answers: &[&str]) -> Option<(String, bool)> {
    use std::io::{Read, Write};
    let script = crate::nginx::proxy_or_skip(
        "the_password_prompt_asks_twice_on_a_terminal",
        "script",
        "/usr/bin/script",
    )?;
    let mut child = Running(
        Command::new(script)
            .args(["-qec", &format!("{BIN} {args}"), "/dev/null"])
            .env_remove("APPLIANCE_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let mut stdout = child.0.stdout.take().unwrap();
    let mut shown = String::new();
    for answer in answers {
        // Answer once the prompt is up. (Echo may still be on for a moment after it is
        // printed, so what the terminal echoes is not checked here.)
        let seen = shown.matches(": ").count();
        while shown.matches(": ").count() == seen {
            let mut buf = [0u8; 256];
            let n = stdout.read(&mut buf).unwrap();
            assert!(n > 0, "no prompt: {shown}");
            shown.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    stdout.read_to_string(&mut shown).unwrap();
    let ok = child.0.wait().unwrap().success();
    Some((shown, ok))
}

#[test]
fn the_password_prompt_asks_twice_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let add = format!("admin user add alice --db {}", db.display());
    let Some((shown, ok)) = on_a_terminal(&add, &[PASSWORD, "something-else"]) else {
        return;
    };
    assert!(!ok, "{shown}");
    assert!(shown.contains("Repeat the password: "), "{shown}");
    assert!(shown.contains("The two passwords differ"), "{shown}");
    assert!(!db.exists(), "a refused add made a database");

    let (shown, ok) = on_a_terminal(&add, &[PASSWORD, PASSWORD]).unwrap();
    assert!(ok, "{shown}");
    assert!(shown.contains("usr_"), "{shown}");
    let passwd = format!("admin user passwd alice --db {}", db.display());
    let (shown, ok) = on_a_terminal(&passwd, &["a-new-password", "a-new-password"]).unwrap();
    assert!(ok, "{shown}");
    assert!(shown.contains("session_version 2"), "{shown}");
}

#[test]
fn a_taken_port_is_named_with_the_flag_to_change_and_leaves_no_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["serve", "--listen", &addr], "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "Cannot listen on {addr}: another program is already listening there"
        )),
        "{err}"
    );
    assert!(
        err.contains("--listen") && err.contains("APPLIANCE_LISTEN"),
        "{err}"
    );
    // No "next step" for a server that never started, and no database made for it.
    assert!(!err.contains("No users yet"), "{err}");
    assert!(!dir.path().join("appliance.db").exists(), "{err}");
    drop(taken);
}

/// Every `serve` flag of `--help` is a row of the README's settings table, with the
/// same variable and default.
#[test]
fn the_readme_settings_table_lists_every_serve_flag() {
    let readme = include_str!("../../README.md");
    let help = stdout(&run(&["serve", "--help"], ""));
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `--")).collect();
    let mut flags = 0;
    for entry in help.split("\n      --").skip(1) {
        let flag = entry.split([' ', '\n']).next().unwrap();
        let Some(env) = entry
            .split("[env: ")
            .nth(1)
            .and_then(|e| e.split(['=', ']']).next())
        else {
            continue; // --help, --version
        };
        flags += 1;
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `--{flag}` |")))
            .unwrap_or_else(|| panic!("README's settings table has no row for --{flag}"));
        assert!(row.contains(&format!("| `{env}` |")), "--{flag}: {row}");
        if let Some(default) = entry.split("[default: ").nth(1) {
            let default = default.split(']').next().unwrap();
            assert!(
                row.contains(&format!("| `{default}`")),
                "--{flag} defaults to {default}: {row}"
            );
        }
    }
    assert!(flags >= 18, "{help}");
}

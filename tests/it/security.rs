//! What an attacker outside the HTTP loop tried: file modes, log and audit forgery,
//! cookies that are not sessions. (The throttle race, CSRF and forced sign-out are
//! tested beside the features in api.rs and web.rs.)

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `sh -c 'umask 022; exec appliance ARGS…'`, like a shell with the usual umask.
fn under_umask_022(args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 022 && exec \"$0\" \"$@\"", BIN])
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("APPLIANCE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn the_database_its_wal_and_shm_and_backups_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/appliance.db");
    let mut cmd = under_umask_022(&["serve", "--listen", "127.0.0.1:0", "--db"]);
    cmd.arg(&db);
    let s = Server::spawn(cmd, dir, db.clone());
    s.add_user("alice");
    s.login("alice");
    assert_eq!(
        mode(db.parent().unwrap()),
        0o700,
        "the directory it created"
    );
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", db.display());
        assert_eq!(mode(Path::new(&file)), 0o600, "{file}");
    }
    let backup = s.dir.path().join("backup.db");
    let mut cmd = under_umask_022(&["admin", "backup", backup.to_str().unwrap(), "--db"]);
    cmd.arg(&db);
    let out = run_with(&mut cmd, "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(sqlite(&backup, "SELECT count(*) FROM users")[0][0], 1);
    // Nothing was left beside it.
    let names: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn backup_refuses_an_existing_path_and_symlinks_dangling_or_not() {
    let s = Server::start(&[]);
    s.add_user("alice");
    let dir = s.dir.path();
    let existing = dir.join("existing");
    std::fs::write(&existing, "keep me").unwrap();
    let target = dir.join("target.db");
    let dangling = dir.join("dangling");
    symlink(&target, &dangling).unwrap();
    let to_existing = dir.join("to-existing");
    symlink(&existing, &to_existing).unwrap();
    for dest in [&existing, &dangling, &to_existing] {
        let out = s.admin(&["backup", dest.to_str().unwrap()], "");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    }
    assert!(!target.exists(), "followed a dangling symlink");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
}

#[test]
fn a_database_others_can_read_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("appliance.db");
    drop(Server::start_on(
        tempfile::tempdir().unwrap(),
        db.clone(),
        &[],
    ));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = Server::start_on(dir, db.clone(), &[]);
    sleep(Duration::from_millis(100));
    let log = s.log_lines().join("\n");
    assert!(
        log.contains(&format!("WARN {} has mode 0644", db.display())) && log.contains("chmod 600"),
        "{log}"
    );
}

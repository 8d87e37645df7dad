//! Files that hold secrets (the database with its password hashes and signing keys, its
//! `-wal` and `-shm` companions, backups): created `0600`, in a directory created
//! `0700`, whatever the umask, and never through a symlink.
//!
//! SQLite creates the `-wal` and `-shm` files with the mode of the database file, so
//! creating the database file `0600` before SQLite opens it covers all three.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` as a new, empty file, `0600`. Refuses a path that exists, a symlink
/// included (dangling or not): `create_new` is `O_CREAT|O_EXCL`, which never follows a
/// symlink in the last component, so there is no check-then-create window.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Makes sure the database file at `path` exists `0600` before SQLite opens it (its
/// directory created `0700` when missing). An existing file is left as it is.
pub fn prepare_database(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
    }
    match create_new_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The database file and its companions that exist and that other users may read or
/// write, with their modes.
pub fn loose_database_files(path: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if let Ok(meta) = fs::metadata(&file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                found.push((file, mode));
            }
        }
    }
    found
}

/// One warning per loose database file, for stderr at start (plain text: the path is
/// escaped where it is printed).
pub fn loose_file_warnings(path: &Path) -> Vec<String> {
    loose_database_files(path)
        .into_iter()
        .map(|(file, mode)| {
            let file = file.to_string_lossy();
            format!("{file} has mode {mode:04o}: other users can read the password hashes and keys in it; run: chmod 600 {file}")
        })
        .collect()
}

/// A directory only this user can enter, removed (with its content) on drop.
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    /// A new `0700` directory with a random name inside `parent`.
    pub fn new_in(parent: &Path) -> io::Result<PrivateDir> {
        let name = crate::auth::token::random_id(".appliance-tmp-")
            .map_err(|e| io::Error::other(format!("OS random source failed: {e}")))?;
        let path = parent.join(name);
        DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_private_file_refuses_existing_paths_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new");
        create_new_private(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(create_new_private(&path).is_err());
        let target = dir.path().join("target");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(&target, &dangling).unwrap();
        assert!(create_new_private(&dangling).is_err());
        assert!(!target.exists(), "followed a dangling symlink");
    }

    #[test]
    fn a_database_gets_a_private_file_in_a_private_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new-dir/sub/app.db");
        prepare_database(&db).unwrap();
        assert_eq!(
            fs::metadata(&db).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sub = db.parent().unwrap();
        assert_eq!(
            fs::metadata(sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(loose_database_files(&db).is_empty());
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(loose_database_files(&db), vec![(db.clone(), 0o644)]);
    }
}

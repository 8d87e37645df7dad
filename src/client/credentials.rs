//! The credentials store: `credentials.json` in the config directory, replaced
//! atomically under an exclusive flock so concurrent logins never interleave.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use super::http::parse_server_urls;
use crate::error::exit;

const FILE: &str = "credentials.json";
const LOCK: &str = "credentials.json.lock";
/// One fixed name is enough: it is only written under the lock, and a leftover from a
/// crash is replaced by the next write instead of piling up.
const TEMP: &str = ".credentials.json.tmp";

/// What `appliance login` stores.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub server_urls: Vec<String>,
    pub username: String,
    pub token: String,
}

// Hand-written so the token never reaches a log or a panic message.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server_urls", &self.server_urls)
            .field("username", &self.username)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why stored credentials cannot be used; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    Missing(PathBuf),
    Invalid(PathBuf, String),
}

impl LoadError {
    /// Every load failure means "log in": the contract's exit 3.
    pub fn exit_code(&self) -> u8 {
        exit::AUTH
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Missing(p) => write!(
                f,
                "You are not logged in: there are no credentials at {}. Run `appliance login --server-url=URL --username=NAME` first.",
                p.display()
            ),
            LoadError::Invalid(p, why) => write!(
                f,
                "The credentials at {} cannot be used ({why}). Run `appliance login --server-url=URL --username=NAME` to replace them.",
                p.display()
            ),
        }
    }
}

/// The directory that holds `credentials.json`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// `$APPLIANCE_CONFIG_DIR`, else `~/.config/appliance`.
    pub fn from_env() -> Result<Store, String> {
        if let Some(dir) = std::env::var_os("APPLIANCE_CONFIG_DIR").filter(|d| !d.is_empty()) {
            return Ok(Store::new(dir));
        }
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => Ok(Store::new(
                PathBuf::from(home).join(".config").join("appliance"),
            )),
            None => Err(
                "Neither APPLIANCE_CONFIG_DIR nor HOME is set, so there is no place for credentials."
                    .to_string(),
            ),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn load(&self) -> Result<Credentials, LoadError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(LoadError::Missing(path)),
            Err(e) => return Err(LoadError::Invalid(path, format!("unreadable: {e}"))),
        };
        let creds: Credentials = serde_json::from_str(&text)
            .map_err(|_| LoadError::Invalid(path.clone(), "not the expected JSON".into()))?;
        if creds.server_urls.is_empty() || creds.token.is_empty() || creds.username.is_empty() {
            return Err(LoadError::Invalid(
                path,
                "a server URL, the username or the token is empty".into(),
            ));
        }
        if let Some(bad) = creds
            .server_urls
            .iter()
            .find(|u| parse_server_urls(u).is_err())
        {
            return Err(LoadError::Invalid(
                path,
                format!("'{bad}' is not a server URL"),
            ));
        }
        Ok(creds)
    }

    /// Replaces the credentials: temp file (0600), fsync, rename, fsync of the directory,
    /// all under the exclusive lock.
    pub fn save(&self, creds: &Credentials) -> Result<(), String> {
        self.ensure_private_dir()?;
        let _lock = self.lock()?;
        let fail = |what: &str, e: std::io::Error| {
            format!(
                "Could not {what} in {}: {e}. The credentials were not stored.",
                self.dir.display()
            )
        };
        let temp = self.dir.join(TEMP);
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(fail("remove a leftover temporary file", e)),
        }
        let json = serde_json::to_vec_pretty(creds).map_err(|e| e.to_string())?;
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&temp, self.path())?;
            // The rename is durable only once the directory entry is.
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(fail("write the credentials", e));
        }
        Ok(())
    }

    /// Removes the credentials; `Ok(false)` when there were none.
    pub fn remove(&self) -> Result<bool, String> {
        if !self.dir.exists() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        match fs::remove_file(self.path()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("Could not remove {}: {e}.", self.path().display())),
        }
    }

    /// The exclusive flock on `credentials.json.lock`, released when the file closes.
    fn lock(&self) -> Result<File, String> {
        let path = self.dir.join(LOCK);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("Could not open the lock file {}: {e}.", path.display()))?;
        FileExt::lock_exclusive(&f)
            .map_err(|e| format!("Could not lock {}: {e}.", path.display()))?;
        Ok(f)
    }

    /// Creates the directory 0700, or tightens an existing one that others can enter.
    fn ensure_private_dir(&self) -> Result<(), String> {
        let dir = &self.dir;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("Could not create {}: {e}.", dir.display()))?;
        let mode = fs::metadata(dir)
            .map_err(|e| format!("Could not read {}: {e}.", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!(
                    "{} is open to other users and could not be made private ({e}); set APPLIANCE_CONFIG_DIR to a private directory.",
                    dir.display()
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sample() -> Credentials {
        Credentials {
            server_urls: vec!["http://127.0.0.1:1".into()],
            username: "alice".into(),
            token: "aps_secret".into(),
        }
    }

    #[test]
    fn saved_credentials_load_back_private() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("cfg"));
        store.save(&sample()).unwrap();
        assert_eq!(store.load().unwrap(), sample());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(mode(&tmp.path().join("cfg")), 0o700);
        assert!(!tmp.path().join("cfg").join(TEMP).exists());
    }

    #[test]
    fn missing_and_corrupt_files_ask_for_a_login() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let e = store.load().unwrap_err();
        assert!(matches!(e, LoadError::Missing(_)));
        assert!(e.to_string().contains("appliance login"));
        fs::write(store.path(), "{\"server_urls\": []").unwrap();
        let e = store.load().unwrap_err();
        assert!(matches!(e, LoadError::Invalid(..)));
        assert!(e.to_string().contains("appliance login"));
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn debug_output_hides_the_token() {
        assert!(!format!("{:?}", sample()).contains("secret"));
    }

    #[test]
    fn remove_reports_whether_there_was_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        assert!(!store.remove().unwrap());
        store.save(&sample()).unwrap();
        assert!(store.remove().unwrap());
        assert!(store.load().is_err());
    }
}

//! Argon2id password hashing on a bounded pool of its own threads.
//!
//! Hashing is deliberately slow (tens of ms of CPU with OWASP parameters), so it runs on
//! `--login-workers` threads behind a bounded queue: a login storm can occupy those
//! threads, never the connection threads that validate tokens. When the queue is full the
//! caller is told to come back later instead of piling up.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_PASSWORD_LEN: usize = 8;

/// The nice value of the hashing threads: when the CPU is contended, the scheduler
/// prefers the connection threads (weight 1024 at nice 0 against 110 at nice 10), so a login
/// storm slows logins down rather than token validation. An idle CPU still goes to
/// logins in full.
#[cfg(target_os = "linux")]
const HASHING_NICE: i32 = 10;

/// Argon2id with the crate's defaults, which are OWASP's (19 MiB, t=2, p=1).
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes)
        .map_err(|e| format!("cannot read the OS random source: {e}"))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| format!("cannot encode salt: {e}"))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

/// True when `password` matches the PHC string `phc`. A malformed PHC string is a
/// mismatch (the user cannot log in), never a panic.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

struct Job {
    password: String,
    phc: String,
    reply: SyncSender<bool>,
}

/// A fixed set of threads that verify passwords, fed through a bounded queue.
pub struct PasswordPool {
    queue: SyncSender<Job>,
    /// Verified against when the username is unknown, so an unknown user costs the same.
    dummy_phc: Arc<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    Busy,
    /// The pool has shut down.
    Gone,
}

impl PasswordPool {
    pub fn new(threads: usize, queue_len: usize) -> Result<PasswordPool, String> {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue_len);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx))
                .map_err(|e| format!("cannot start password worker: {e}"))?;
        }
        Ok(PasswordPool {
            queue: tx,
            dummy_phc: Arc::new(hash_password("appliance-dummy-password")?),
        })
    }

    /// Verifies `password` against `phc`, or against the dummy hash when the user is
    /// unknown (`phc` = None), which then always fails after the same work.
    pub fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, PoolError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            password: password.to_string(),
            phc: phc.unwrap_or(&self.dummy_phc).to_string(),
            reply,
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Gone),
        }
        let ok = answer.recv().map_err(|_| PoolError::Gone)?;
        Ok(ok && phc.is_some())
    }
}

/// Lowers the calling thread's scheduling priority (Linux: nice is per thread).
/// Raising it back would need privileges; failing to lower it is harmless.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let me = rustix::thread::gettid();
        let _ = rustix::process::setpriority_process(Some(me), HASHING_NICE);
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job, not while hashing.
        let job = match rx.lock() {
            Ok(guard) => match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let ok = verify_password(&job.password, &job.phc);
        let _ = job.reply.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsE", &phc));
        assert!(!verify_password("correct horse", "not a phc string"));
    }

    #[test]
    fn an_unknown_user_never_verifies_even_with_the_dummy_password() {
        let pool = PasswordPool::new(1, 4).unwrap();
        assert_eq!(pool.verify("appliance-dummy-password", None), Ok(false));
        let phc = hash_password("hunter22!").unwrap();
        assert_eq!(pool.verify("hunter22!", Some(&phc)), Ok(true));
        assert_eq!(pool.verify("hunter23!", Some(&phc)), Ok(false));
    }
}

//! Credentials: token minting, hashing and constant-time comparison; Argon2id passwords
//! on their own bounded pool; login throttling.

pub mod access;
pub mod password;
pub mod shared_throttle;
pub mod throttle;
pub mod token;

/// Usernames are 1-64 characters of `a-z 0-9 . _ - @`, so lookups are exact.
pub fn valid_username(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::valid_username;

    #[test]
    fn usernames_have_one_exact_shape() {
        for ok in [
            "alice",
            "a",
            "bob.smith@example.com",
            "x_y-z.0",
            &"a".repeat(64),
        ] {
            assert!(valid_username(ok), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "al ice",
            "alice\n",
            "ålice",
            "a/b",
            &"a".repeat(65),
        ] {
            assert!(!valid_username(bad), "{bad:?}");
        }
    }
}

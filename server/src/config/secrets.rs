//! `*_file` settings: secrets read from files, as Docker and Kubernetes
//! mount them, so they need not sit in the configuration file or the
//! environment. Each file's content (without its trailing newline) takes
//! the place of the value it stands for; giving both is an error.

use std::path::Path;

use super::{Problem, RawConfig};

/// Reads `jwt_secret_file` into `jwt_secret` and `database_password_file`
/// into the password of `database_url`.
pub(super) fn read_files(raw: &mut RawConfig, problems: &mut Vec<Problem>) {
    if let Some(path) = raw.jwt_secret_file.clone() {
        if !raw.jwt_secret.is_empty() {
            problems.push(Problem {
                key: "jwt_secret_file",
                value: path.display().to_string(),
                allowed: "either jwt_secret or jwt_secret_file, not both".into(),
            });
        } else if let Some(secret) = read("jwt_secret_file", &path, problems) {
            raw.jwt_secret = secret;
        }
    }
    if let Some(path) = raw.database_password_file.clone() {
        let Some(password) = read("database_password_file", &path, problems) else {
            return;
        };
        match reqwest::Url::parse(raw.database_url.trim()) {
            Ok(mut url) if url.scheme().starts_with("postgres") && url.has_host() => {
                if url.set_password(Some(&password)).is_ok() {
                    raw.database_url = url.to_string();
                }
            }
            _ => problems.push(Problem {
                key: "database_password_file",
                value: path.display().to_string(),
                allowed: "a password file for a postgres:// database_url (SQLite has no password)"
                    .into(),
            }),
        }
    }
}

fn read(key: &'static str, path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Some(text.trim_end_matches(['\n', '\r']).to_owned()),
        Ok(_) => {
            problems.push(Problem {
                key,
                value: path.display().to_string(),
                allowed: "a file holding the secret; this one is empty".into(),
            });
            None
        }
        Err(e) => {
            problems.push(Problem {
                key,
                value: path.display().to_string(),
                allowed: format!("a readable file holding the secret ({e})"),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_take_the_place_of_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("jwt");
        std::fs::write(&secret, "s".repeat(40) + "\n").unwrap();
        let password = dir.path().join("pw");
        std::fs::write(&password, "p@ss word\n").unwrap();
        let mut raw = RawConfig {
            jwt_secret_file: Some(secret.clone()),
            database_url: "postgres://app@db.example:5432/switchyard".into(),
            database_password_file: Some(password),
            ..RawConfig::default()
        };
        let mut problems = Vec::new();
        read_files(&mut raw, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(raw.jwt_secret, "s".repeat(40));
        assert_eq!(
            raw.database_url,
            "postgres://app:p%40ss%20word@db.example:5432/switchyard"
        );

        let mut both = RawConfig {
            jwt_secret: "x".repeat(40),
            jwt_secret_file: Some(secret),
            database_password_file: Some(dir.path().join("missing")),
            ..RawConfig::default()
        };
        read_files(&mut both, &mut problems);
        let keys: Vec<&str> = problems.iter().map(|p| p.key).collect();
        assert_eq!(keys, ["jwt_secret_file", "database_password_file"]);
    }
}

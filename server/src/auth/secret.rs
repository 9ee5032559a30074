//! The HS256 secret: configured, or generated once into the data directory.
//!
//! A hub started with nothing configured must still be secure: it creates a
//! random secret in `<data_dir>/jwt-secret` (mode 0600) on first start, and
//! reuses it afterwards so issued tokens survive restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;

/// The file name of the generated secret inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// Where the secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    Loaded(PathBuf),
    /// Generated just now: the caller prints a first admin token.
    Generated(PathBuf),
}

/// Returns the secret to use and where it came from.
pub fn load_or_generate(
    configured: Option<&str>,
    data_dir: &Path,
) -> std::io::Result<(String, SecretSource)> {
    if let Some(secret) = configured {
        return Ok((secret.to_owned(), SecretSource::Configured));
    }
    let path = data_dir.join(SECRET_FILE);
    if path.is_file() {
        let secret = std::fs::read_to_string(&path)?.trim().to_owned();
        if secret.len() < 32 {
            return Err(std::io::Error::other(format!(
                "{} holds fewer than 32 characters; delete it to have a new secret generated",
                path.display()
            )));
        }
        return Ok((secret, SecretSource::Loaded(path)));
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok((secret, SecretSource::Generated(path)))
}

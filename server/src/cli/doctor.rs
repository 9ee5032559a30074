//! `switchyard doctor`: checks a setup without starting the hub, the way
//! `serve` would read it (same flags, file and environment), and says for
//! each check what is wrong and how to fix it. It changes nothing: no
//! migration runs, no file or secret is created. Exits non-zero when a
//! check fails.

use std::path::Path;

use super::ServeArgs;
use crate::config::{self, Settings};
use crate::store::migrate;

/// One check's verdict.
struct Check {
    name: &'static str,
    ok: bool,
    says: String,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    match config::load(args.config.config.as_deref(), &args.overrides()) {
        Err(e) => checks.push(Check {
            name: "configuration",
            ok: false,
            says: e.to_string(),
        }),
        Ok(settings) => {
            checks.push(Check {
                name: "configuration",
                ok: true,
                says: format!(
                    "valid ({})",
                    match args.config.config.as_deref() {
                        Some(file) => format!("file {}, environment and flags", file.display()),
                        None if Path::new(config::DEFAULT_FILE).is_file() =>
                            format!("./{}, environment and flags", config::DEFAULT_FILE),
                        None => "defaults, environment and flags".to_owned(),
                    }
                ),
            });
            checks.push(data_dir(&settings));
            checks.push(secret(&settings));
            checks.push(store(&settings).await);
            checks.push(listen(&settings).await);
        }
    }
    let mut failed = 0;
    for c in &checks {
        println!(
            "{} {:<14} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.says
        );
        failed += usize::from(!c.ok);
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed; see above", checks.len());
    }
    println!("all {} checks passed", checks.len());
    Ok(())
}

fn data_dir(settings: &Settings) -> Check {
    let dir = &settings.data_dir;
    let says = |ok: bool, says: String| Check {
        name: "data directory",
        ok,
        says,
    };
    if !dir.exists() {
        // `serve` creates it: its nearest existing ancestor must be writable.
        let ancestor = dir.ancestors().skip(1).find(|a| a.exists());
        return match ancestor {
            Some(a) if writable(a) => {
                says(true, format!("{} will be created on start", dir.display()))
            }
            Some(a) => says(
                false,
                format!(
                    "{} does not exist and {} is not writable: create it, or set data_dir (SWITCHYARD_DATA_DIR) to a writable folder",
                    dir.display(),
                    a.display()
                ),
            ),
            None => says(false, format!("{} cannot be created", dir.display())),
        };
    }
    if !dir.is_dir() {
        return says(
            false,
            format!(
                "{} is not a folder: set data_dir (SWITCHYARD_DATA_DIR) to a folder",
                dir.display()
            ),
        );
    }
    if writable(dir) {
        says(true, format!("{} is writable", dir.display()))
    } else {
        says(
            false,
            format!(
                "{} is not writable by this user: fix its permissions, or set data_dir (SWITCHYARD_DATA_DIR) elsewhere",
                dir.display()
            ),
        )
    }
}

/// Whether a file can be created in `dir` (tried, then removed).
fn writable(dir: &Path) -> bool {
    tempfile::NamedTempFile::new_in(dir).is_ok()
}

fn secret(settings: &Settings) -> Check {
    let file = settings.data_dir.join(crate::auth::secret::SECRET_FILE);
    let (ok, says) = if settings.jwt_secret.is_some() {
        (true, "set by the configuration (jwt_secret)".to_owned())
    } else if settings.jwt_public_key.is_some() {
        (
            true,
            "tokens are checked with the configured public key".to_owned(),
        )
    } else if file.is_file() {
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => (true, format!("read from {}", file.display())),
            Ok(_) => (
                false,
                format!(
                    "{} is empty: delete it (a new one is generated on start, and old tokens stop working) or set jwt_secret",
                    file.display()
                ),
            ),
            Err(e) => (
                false,
                format!(
                    "{} cannot be read ({e}): fix its permissions",
                    file.display()
                ),
            ),
        }
    } else {
        (
            true,
            format!("none yet: generated into {} on first start", file.display()),
        )
    };
    Check {
        name: "signing secret",
        ok,
        says,
    }
}

async fn store(settings: &Settings) -> Check {
    let shown = crate::config::settings::redact_url(&settings.database_url);
    let (ok, says) = match migrate::probe(&settings.database_url).await {
        Ok(None) => (
            true,
            format!("{shown}: a new SQLite database, created on start"),
        ),
        Ok(Some(status)) if status.applied > status.known => (
            false,
            format!(
                "{shown}: its schema (version {}) is newer than this build knows ({}): run a newer switchyard",
                status.applied, status.known
            ),
        ),
        Ok(Some(status)) if status.is_current() => (
            true,
            format!(
                "{shown}: reachable, schema up to date (version {})",
                status.known
            ),
        ),
        Ok(Some(status)) => (
            true,
            format!(
                "{shown}: reachable, schema at version {} of {}: serve applies the rest on start",
                status.applied, status.known
            ),
        ),
        Err(e) => (
            false,
            format!(
                "{shown}: cannot be opened ({e}): check that the server runs, the database exists and the URL's user may connect (database_url, DATABASE_URL or --database-url)"
            ),
        ),
    };
    Check {
        name: "store",
        ok,
        says,
    }
}

async fn listen(settings: &Settings) -> Check {
    let (ok, says) = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(_) => (true, format!("{} is free", settings.listen)),
        Err(e) => (
            false,
            format!(
                "cannot listen on {} ({e}): another hub or program holds it; stop it, or set listen (SWITCHYARD_LISTEN, --listen)",
                settings.listen
            ),
        ),
    };
    Check {
        name: "listen address",
        ok,
        says,
    }
}

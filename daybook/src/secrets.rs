//! Secrets kept in the data directory, generated once, so that `daybook run` and
//! `daybook token` on the same directory agree without any setup.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// 256 random bits as hex (from the OS generator, through uuid v4).
fn random_hex() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Shortest token secret accepted from any source: HS256 with a short key lets anyone who
/// guesses it mint device and viewer tokens.
pub const MIN_SECRET_BYTES: usize = 32;

/// Reads `dir/name`, creating it (mode 0600) with `make()` the first time.
///
/// The value is written to a temporary file, fsynced, then linked into place: `link` fails if
/// the name exists, so the file appears whole or not at all (a kill -9 leaves at most a stray
/// temporary file), and of processes starting at the same moment the first link wins and the
/// others read the winner's value.
fn read_or_create(dir: &Path, name: &str, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(s) => return Ok(s.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let value = make();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(value.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The new name is durable once the directory is.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(value)
        }
        // Another process linked its value first: use theirs (whole, since it was linked whole).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?.trim().to_owned())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The token-signing secret: `DAYBOOK_TOKEN_SECRET`, else `DIR/token-secret`.
pub(crate) fn token_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    secret_from(std::env::var("DAYBOOK_TOKEN_SECRET").ok(), data_dir)
}

fn secret_from(env: Option<String>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = env {
        // Counted without surrounding whitespace (a blank secret is no secret), used as given.
        let len = s.trim().len();
        anyhow::ensure!(
            len >= MIN_SECRET_BYTES,
            "DAYBOOK_TOKEN_SECRET is {len} bytes; at least {MIN_SECRET_BYTES} are needed"
        );
        return Ok(s.into_bytes());
    }
    let secret = read_or_create(data_dir, "token-secret", random_hex)?;
    anyhow::ensure!(
        secret.len() >= MIN_SECRET_BYTES,
        "{} holds a {}-byte token secret; at least {MIN_SECRET_BYTES} are needed (delete the file to have a new one \
         generated, which invalidates every token issued, or set DAYBOOK_TOKEN_SECRET)",
        data_dir.join("token-secret").display(),
        secret.len()
    );
    Ok(secret.into_bytes())
}

/// Access and secret key of the embedded S3 endpoint, `DIR/s3-credentials`.
pub(crate) fn embedded_s3_credentials(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let text = read_or_create(data_dir, "s3-credentials", || {
        format!("daybook{}:{}", &uuid::Uuid::new_v4().simple().to_string()[..12], random_hex())
    })?;
    let (ak, sk) = text.split_once(':').context("malformed s3-credentials file")?;
    Ok((ak.to_owned(), sk.to_owned()))
}

/// Signs and verifies the bearer tokens of the data directory's deployment (with
/// `DAYBOOK_TOKEN_SECRET`, of any deployment sharing that secret).
pub fn auth(data_dir: &Path) -> anyhow::Result<seams::auth::Auth> {
    Ok(seams::auth::Auth::new(&token_secret(data_dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("token-secret"), "").unwrap();
        let e = token_secret(dir.path()).expect_err("an empty secret must be refused");
        assert!(e.to_string().contains("token-secret"), "{e}");
    }

    #[test]
    fn a_short_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("token-secret"), "0123456789abcdef\n").unwrap();
        assert!(token_secret(dir.path()).is_err());
    }

    #[test]
    fn a_short_secret_from_the_environment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(secret_from(Some("short".into()), dir.path()).is_err());
        assert!(secret_from(Some(" ".repeat(40)), dir.path()).is_err(), "whitespace is no secret");
        assert_eq!(secret_from(Some("k".repeat(32)), dir.path()).unwrap(), vec![b'k'; 32]);
    }

    /// Processes starting at the same moment on one directory agree on one secret, and none
    /// ever reads a half-written one.
    #[test]
    fn concurrent_creation_agrees_on_one_secret() {
        for _ in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let secrets: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8).map(|_| s.spawn(|| token_secret(dir.path()))).collect();
                handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
            });
            assert!(secrets.iter().all(|s| s.len() >= 32 && *s == secrets[0]), "{secrets:?}");
        }
    }
}

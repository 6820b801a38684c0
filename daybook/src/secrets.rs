//! Secrets kept in the data directory, generated once, so that `daybook run` and
//! `daybook token` on the same directory agree without any setup.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// 256 random bits as hex (from the OS generator, through uuid v4).
pub(crate) fn random_hex() -> String {
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
pub(crate) fn read_or_create(dir: &Path, name: &str, make: impl FnOnce() -> String) -> anyhow::Result<String> {
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
#[cfg(test)]
fn token_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
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
pub fn embedded_s3_credentials(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let text = read_or_create(data_dir, "s3-credentials", || {
        format!("daybook{}:{}", &uuid::Uuid::new_v4().simple().to_string()[..12], random_hex())
    })?;
    let (ak, sk) = text.split_once(':').context("malformed s3-credentials file")?;
    Ok((ak.to_owned(), sk.to_owned()))
}

/// File of the token key ring: one key per line, `KID SECRET`, the first signs. Without it,
/// the single key is `DAYBOOK_TOKEN_SECRET` or `token-secret`.
pub const KEYS_FILE: &str = "token-keys";
/// File of revoked devices: `CID EPOCH_SECONDS` per line; that device's tokens issued before
/// that second are refused.
pub const REVOKED_FILE: &str = "revoked-devices";

/// The keys and revocations of the data directory's deployment: `DAYBOOK_TOKEN_SECRET` (one
/// key), else `DIR/token-keys` (rotation), else `DIR/token-secret` (generated once); plus
/// `DIR/revoked-devices`. Read again by running processes every few seconds.
pub fn key_ring(data_dir: &Path) -> anyhow::Result<seams::auth::KeyRing> {
    let env = std::env::var("DAYBOOK_TOKEN_SECRET").ok();
    let keys_path = data_dir.join(KEYS_FILE);
    let mut ring = match (&env, read_optional(&keys_path)?) {
        (None, Some(text)) => {
            seams::auth::KeyRing { keys: parse_keys(&text, &keys_path)?, revoked: Default::default() }
        }
        _ => seams::auth::KeyRing::single(&secret_from(env, data_dir)?),
    };
    let revoked_path = data_dir.join(REVOKED_FILE);
    if let Some(text) = read_optional(&revoked_path)? {
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let parsed = line.split_once(' ').and_then(|(cid, at)| Some((cid.trim(), at.trim().parse::<i64>().ok()?)));
            let (cid, at) = parsed
                .with_context(|| format!("{} line {}: expected `CID EPOCH_SECONDS`", revoked_path.display(), n + 1))?;
            ring.revoked.insert(cid.to_owned(), at);
        }
    }
    ring.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ring)
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn parse_keys(text: &str, path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, line)| {
            let (kid, secret) = line
                .trim()
                .split_once(' ')
                .with_context(|| format!("{} line {}: expected `KID SECRET`", path.display(), n + 1))?;
            Ok((kid.trim().to_owned(), secret.trim().as_bytes().to_vec()))
        })
        .collect()
}

/// Replaces `dir/name` with `text` atomically (temporary file, fsync, rename, directory fsync).
fn replace_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name)).with_context(|| format!("cannot replace {}", dir.join(name).display()))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_keys(data_dir: &Path, keys: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let mut text = String::from("# daybook token keys: KID SECRET, the first signs, all verify\n");
    for (kid, secret) in keys {
        text.push_str(&format!("{kid} {}\n", String::from_utf8_lossy(secret)));
    }
    replace_file(data_dir, KEYS_FILE, &text)
}

fn current_keys(data_dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    anyhow::ensure!(
        std::env::var_os("DAYBOOK_TOKEN_SECRET").is_none(),
        "DAYBOOK_TOKEN_SECRET is set: its single key cannot be rotated here; unset it to use {KEYS_FILE}"
    );
    Ok(key_ring(data_dir)?.keys)
}

/// Adds a new signing key (its id `k<epoch seconds>`), keeping the others for verification.
/// The first time, the existing secret is kept as key `default`, so tokens issued before
/// keep working until it is retired. Returns the new key's id.
pub fn add_key(data_dir: &Path) -> anyhow::Result<String> {
    let mut keys = current_keys(data_dir)?;
    let kid = format!("k{}", chrono::Utc::now().timestamp());
    anyhow::ensure!(keys.iter().all(|k| k.0 != kid), "key {kid} exists already; try again in a second");
    keys.insert(0, (kid.clone(), random_hex().into_bytes()));
    write_keys(data_dir, &keys)?;
    Ok(kid)
}

/// Retires key `kid`: tokens signed with it are refused from the next reload on. The last
/// key cannot be retired.
pub fn retire_key(data_dir: &Path, kid: &str) -> anyhow::Result<()> {
    let mut keys = current_keys(data_dir)?;
    let before = keys.len();
    keys.retain(|k| k.0 != kid);
    anyhow::ensure!(keys.len() < before, "no key {kid}");
    anyhow::ensure!(!keys.is_empty(), "{kid} is the only key; add another first (`daybook token keys add`)");
    write_keys(data_dir, &keys)
}

/// Revokes device `cid`'s tokens issued before `before` (epoch seconds).
pub fn revoke(data_dir: &Path, cid: &schemas::DeviceId, before: i64) -> anyhow::Result<()> {
    let mut ring = key_ring(data_dir)?;
    ring.revoked.insert(cid.to_string(), before);
    let mut entries: Vec<_> = ring.revoked.into_iter().collect();
    entries.sort();
    let mut text = String::from("# daybook revoked devices: CID EPOCH_SECONDS (tokens issued before it are refused)\n");
    for (cid, at) in entries {
        text.push_str(&format!("{cid} {at}\n"));
    }
    replace_file(data_dir, REVOKED_FILE, &text)
}

/// Signs and verifies the bearer tokens of the data directory's deployment (with
/// `DAYBOOK_TOKEN_SECRET`, of any deployment sharing that secret).
pub fn auth(data_dir: &Path) -> anyhow::Result<seams::auth::Auth> {
    seams::auth::Auth::from_ring(key_ring(data_dir)?).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Reads the key ring and revocations again every `interval` until `shutdown`, so a rotated
/// key or a revoked device takes effect in a running process within that time. A file that
/// does not parse keeps the previous keys (logged).
pub(crate) async fn reload_keys(
    auth: seams::auth::Auth,
    data_dir: std::path::PathBuf,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let dir = data_dir.clone();
        let ring = match tokio::task::spawn_blocking(move || key_ring(&dir)).await {
            Ok(Ok(ring)) => ring,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "token keys not reloaded; keeping the previous ones");
                continue;
            }
            Err(_) => continue,
        };
        match auth.reload(ring) {
            Ok(true) => tracing::info!("token keys or revocations changed; reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "token keys not reloaded; keeping the previous ones"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_then_retire_then_revoke_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let first = auth(dir.path()).unwrap();
        let cid = schemas::DeviceId::parse("cam-1").unwrap();
        let old = first.device_token(&cid, std::time::Duration::from_secs(600));
        let kid = add_key(dir.path()).unwrap();
        let ring = key_ring(dir.path()).unwrap();
        assert_eq!(ring.keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(), [kid.as_str(), "default"]);
        let rotated = auth(dir.path()).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {old}").parse().unwrap());
        assert!(rotated.device(&headers, "cam-1").is_ok(), "tokens of the old key still verify");
        retire_key(dir.path(), "default").unwrap();
        assert!(auth(dir.path()).unwrap().device(&headers, "cam-1").is_err(), "retired");
        assert!(retire_key(dir.path(), &kid).is_err(), "the last key stays");
        let new = auth(dir.path()).unwrap().device_token(&cid, std::time::Duration::from_secs(600));
        revoke(dir.path(), &cid, chrono::Utc::now().timestamp() + 5).unwrap();
        headers.insert("authorization", format!("Bearer {new}").parse().unwrap());
        let e = auth(dir.path()).unwrap().device(&headers, "cam-1").unwrap_err();
        assert!(e.message.contains("revoked"), "{}", e.message);
    }

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

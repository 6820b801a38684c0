//! Where backups go: a directory, or `s3://BUCKET/PREFIX` on any S3-protocol endpoint.
//!
//! Each backup is `<id>/` with its files and, written last, `<id>/manifest.json`: a backup
//! without a manifest is incomplete (a crash, a full disk) and never used. In a directory the
//! files are written into `<id>.partial/` and the whole directory renamed into place at the end.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use super::manifest::{is_id, MANIFEST};

/// The operations the backup code needs from a destination (blocking).
pub(crate) trait Dest: Send + Sync {
    /// How to name it in messages.
    fn describe(&self) -> String;
    /// Ids of complete backups (with a manifest), oldest first.
    fn ids(&self) -> io::Result<Vec<String>>;
    /// Ids of backups begun but never completed.
    fn incomplete(&self) -> io::Result<Vec<String>>;
    /// A local directory where the files of backup `id` are written.
    fn stage(&self, id: &str) -> io::Result<PathBuf>;
    /// Stores a file written in [`stage`](Self::stage).
    fn put(&self, id: &str, name: &str) -> io::Result<()>;
    /// Writes the manifest, completing backup `id`.
    fn commit(&self, id: &str, manifest: &[u8]) -> io::Result<()>;
    /// Reads a whole (small) file.
    fn get_bytes(&self, id: &str, name: &str) -> io::Result<Vec<u8>>;
    /// Reads a file as a stream.
    fn open(&self, id: &str, name: &str) -> io::Result<Box<dyn Read + Send>>;
    /// Deletes backup `id` (complete or not).
    fn delete(&self, id: &str) -> io::Result<()>;
    /// Stores a small file at `path` (relative to the destination, outside the backups: the
    /// shipped log, `wal/…`), whole: a reader sees all of it or nothing of it.
    fn put_path(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Reads a file [`put_path`](Self::put_path) stored.
    fn get_path(&self, path: &str) -> io::Result<Vec<u8>>;
    /// The paths stored under `prefix` (which ends with `/`), sorted.
    fn list_paths(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Deletes a file [`put_path`](Self::put_path) stored (gone already is fine).
    fn delete_path(&self, path: &str) -> io::Result<()>;
}

/// A path of [`Dest::put_path`]: relative, `/`-separated, no `.` or `..` parts.
fn check_path(path: &str) -> io::Result<()> {
    let fine = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.ends_with(TMP_SUFFIX));
    if fine {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a destination path: {path:?}")))
    }
}

/// Suffix of a file being written by [`Dest::put_path`] into a directory.
const TMP_SUFFIX: &str = ".tmp";

/// Opens `DEST`: `s3://BUCKET[/PREFIX]` or a directory path (created when `create`).
pub(crate) fn open(dest: &str, s3: &S3Options, create: bool) -> anyhow::Result<Box<dyn Dest>> {
    if let Some(rest) = dest.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "{dest}: no bucket (s3://BUCKET/PREFIX)");
        return Ok(Box::new(S3Dest::new(bucket, prefix.trim_matches('/'), s3)?));
    }
    let root = PathBuf::from(dest);
    if create {
        fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    }
    anyhow::ensure!(root.is_dir(), "{}: no such directory", root.display());
    Ok(Box::new(DirDest { root }))
}

/// How destination `to` is named in metrics labels, logs and the audit trail, as
/// `Dest::describe` names it: the directory as given, or `s3://BUCKET/PREFIX` — never
/// credentials (they come from the AWS chain; anything up to an `@` before the bucket is
/// dropped).
pub fn repo_label(to: &str) -> String {
    match to.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket = bucket.rsplit('@').next().unwrap_or(bucket);
            format!("s3://{bucket}/{}", prefix.trim_matches('/'))
        }
        None => to.to_owned(),
    }
}

/// Reaching an S3 destination: the endpoint (else AWS), the region; credentials come from the
/// AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profile, instance role).
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug)]
struct DirDest {
    root: PathBuf,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl DirDest {
    fn partial(&self, id: &str) -> PathBuf {
        self.root.join(format!("{id}.partial"))
    }
}

impl Dest for DirDest {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn ids(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if is_id(&name) && entry.path().join(MANIFEST).is_file() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn incomplete(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if let Some(id) = name.strip_suffix(".partial").filter(|id| is_id(id)) {
                ids.push(id.to_owned());
            } else if is_id(&name) && !entry.path().join(MANIFEST).is_file() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn stage(&self, id: &str) -> io::Result<PathBuf> {
        let dir = self.partial(id);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn put(&self, id: &str, name: &str) -> io::Result<()> {
        fs::File::open(self.partial(id).join(name))?.sync_all()
    }

    fn commit(&self, id: &str, manifest: &[u8]) -> io::Result<()> {
        let partial = self.partial(id);
        let mut f = fs::File::create(partial.join(MANIFEST))?;
        f.write_all(manifest)?;
        f.sync_all()?;
        sync_dir(&partial)?;
        fs::rename(&partial, self.root.join(id))?;
        sync_dir(&self.root)
    }

    fn get_bytes(&self, id: &str, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.root.join(id).join(name))
    }

    fn open(&self, id: &str, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(fs::File::open(self.root.join(id).join(name))?))
    }

    fn delete(&self, id: &str) -> io::Result<()> {
        for dir in [self.root.join(id), self.partial(id)] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        sync_dir(&self.root)
    }

    fn put_path(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        check_path(path)?;
        let target = self.root.join(path);
        let dir = target.parent().expect("under the root");
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            "{}.{}{TMP_SUFFIX}",
            target.file_name().expect("a name").to_string_lossy(),
            std::process::id()
        ));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        sync_dir(dir)
    }

    fn get_path(&self, path: &str) -> io::Result<Vec<u8>> {
        check_path(path)?;
        fs::read(self.root.join(path))
    }

    fn list_paths(&self, prefix: &str) -> io::Result<Vec<String>> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    walk(root, &path, out)?;
                } else if !path.to_string_lossy().ends_with(TMP_SUFFIX) {
                    let rel = path.strip_prefix(root).expect("under the root");
                    out.push(rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"));
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root.join(prefix.trim_end_matches('/')), &mut out)?;
        out.sort();
        Ok(out)
    }

    fn delete_path(&self, path: &str) -> io::Result<()> {
        check_path(path)?;
        match fs::remove_file(self.root.join(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A bucket and prefix. Files are staged in a local temporary directory, uploaded one by one
/// as they are written (and deleted locally), the manifest last.
struct S3Dest {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    runtime: Runtime,
    stages: Mutex<BTreeMap<String, tempfile::TempDir>>,
}

impl std::fmt::Debug for S3Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Dest(s3://{}/{})", self.bucket, self.prefix)
    }
}

/// The async runtime S3 calls run on: the caller's (from a blocking thread), or our own.
enum Runtime {
    Handle(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

impl Runtime {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Self::Handle(h) => h.block_on(f),
            Self::Own(r) => r.block_on(f),
        }
    }
}

fn s3_error(e: impl std::error::Error) -> io::Error {
    io::Error::other(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
}

impl S3Dest {
    fn new(bucket: &str, prefix: &str, opts: &S3Options) -> anyhow::Result<Self> {
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(h) => Runtime::Handle(h),
            Err(_) => Runtime::Own(tokio::runtime::Builder::new_current_thread().enable_all().build()?),
        };
        let region = opts.region.clone().unwrap_or_else(|| "us-east-1".into());
        let endpoint = opts.endpoint.clone();
        let client = runtime.block_on(async move {
            use aws_sdk_s3::config::{BehaviorVersion, Region};
            let shared = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region)).load().await;
            let mut b = aws_sdk_s3::config::Builder::from(&shared);
            if let Some(e) = endpoint {
                b = b.endpoint_url(e).force_path_style(true);
            }
            aws_sdk_s3::Client::from_conf(b.build())
        });
        Ok(Self {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            runtime,
            stages: Mutex::new(BTreeMap::new()),
        })
    }

    fn key(&self, id: &str, name: &str) -> String {
        if self.prefix.is_empty() {
            format!("{id}/{name}")
        } else {
            format!("{}/{id}/{name}", self.prefix)
        }
    }

    /// Every key under the prefix, relative to it.
    fn keys(&self) -> io::Result<Vec<String>> {
        self.keys_under("")
    }

    /// Every key under the prefix and then `sub`, relative to the prefix.
    fn keys_under(&self, sub: &str) -> io::Result<Vec<String>> {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let listed = format!("{prefix}{sub}");
        self.runtime.block_on(async {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let resp = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&listed)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(s3_error)?;
                for o in resp.contents() {
                    if let Some(k) = o.key().and_then(|k| k.strip_prefix(prefix.as_str())) {
                        out.push(k.to_owned());
                    }
                }
                match resp.next_continuation_token() {
                    Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_owned()),
                    _ => return Ok(out),
                }
            }
        })
    }

    fn ids_where(&self, complete: bool) -> io::Result<Vec<String>> {
        let mut seen: BTreeMap<String, bool> = BTreeMap::new();
        for key in self.keys()? {
            if let Some((id, name)) = key.split_once('/') {
                if is_id(id) {
                    *seen.entry(id.to_owned()).or_default() |= name == MANIFEST;
                }
            }
        }
        Ok(seen.into_iter().filter(|(_, c)| *c == complete).map(|(id, _)| id).collect())
    }

    fn put_body(&self, id: &str, name: &str, body: aws_sdk_s3::primitives::ByteStream) -> io::Result<()> {
        self.runtime.block_on(async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.key(id, name))
                .body(body)
                .send()
                .await
                .map_err(s3_error)
                .map(|_| ())
        })
    }
}

impl Dest for S3Dest {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn ids(&self) -> io::Result<Vec<String>> {
        self.ids_where(true)
    }

    fn incomplete(&self) -> io::Result<Vec<String>> {
        self.ids_where(false)
    }

    fn stage(&self, id: &str) -> io::Result<PathBuf> {
        let mut stages = self.stages.lock().expect("stages lock");
        if let Some(dir) = stages.get(id) {
            return Ok(dir.path().to_owned());
        }
        let dir = tempfile::Builder::new().prefix("daybook-backup-").tempdir()?;
        let path = dir.path().to_owned();
        stages.insert(id.to_owned(), dir);
        Ok(path)
    }

    fn put(&self, id: &str, name: &str) -> io::Result<()> {
        let path = self.stage(id)?.join(name);
        let body = self
            .runtime
            .block_on(aws_sdk_s3::primitives::ByteStream::from_path(&path))
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.put_body(id, name, body)?;
        fs::remove_file(path)
    }

    fn commit(&self, id: &str, manifest: &[u8]) -> io::Result<()> {
        self.put_body(id, MANIFEST, manifest.to_vec().into())?;
        self.stages.lock().expect("stages lock").remove(id);
        Ok(())
    }

    fn get_bytes(&self, id: &str, name: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(id, name)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn open(&self, id: &str, name: &str) -> io::Result<Box<dyn Read + Send>> {
        // Downloaded into an anonymous temporary file first: the readers are blocking.
        let mut file = tempfile::tempfile()?;
        self.runtime.block_on(async {
            let resp = self.client.get_object().bucket(&self.bucket).key(self.key(id, name)).send().await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    let not_found = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                    let kind = if not_found { io::ErrorKind::NotFound } else { io::ErrorKind::Other };
                    return Err(io::Error::new(kind, s3_error(e).to_string()));
                }
            };
            let mut body = resp.body;
            while let Some(chunk) = body.try_next().await.map_err(|e| io::Error::other(e.to_string()))? {
                file.write_all(&chunk)?;
            }
            Ok::<_, io::Error>(())
        })?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
        Ok(Box::new(file))
    }

    fn delete(&self, id: &str) -> io::Result<()> {
        let keys: Vec<String> =
            self.keys()?.into_iter().filter(|k| k.split_once('/').is_some_and(|(i, _)| i == id)).collect();
        // The manifest first: a backup half deleted is an incomplete one, never a damaged one.
        let mut keys = keys;
        keys.sort_by_key(|k| !k.ends_with(MANIFEST));
        for k in keys {
            let (i, name) = k.split_once('/').expect("filtered");
            let key = self.key(i, name);
            self.runtime
                .block_on(async { self.client.delete_object().bucket(&self.bucket).key(key).send().await })
                .map_err(s3_error)?;
        }
        Ok(())
    }

    fn put_path(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        check_path(path)?;
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        // One PUT: S3 stores an object whole or not at all.
        self.put_body(dir, name, bytes.to_vec().into())
    }

    fn get_path(&self, path: &str) -> io::Result<Vec<u8>> {
        check_path(path)?;
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        self.get_bytes(dir, name)
    }

    fn list_paths(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = self.keys_under(prefix)?;
        keys.sort();
        Ok(keys)
    }

    fn delete_path(&self, path: &str) -> io::Result<()> {
        check_path(path)?;
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let key = self.key(dir, name);
        self.runtime
            .block_on(async { self.client.delete_object().bucket(&self.bucket).key(key).send().await })
            .map_err(s3_error)
            .map(drop)
    }
}

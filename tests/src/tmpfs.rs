//! A small file system of its own for disk-full tests: a tmpfs mounted on a fresh temporary
//! directory (needs root; tests say why they skip otherwise), and a filler that takes every
//! free byte.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// A tmpfs of `size` mounted on a fresh temporary directory; unmounted on drop, pass or fail.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err(why)` when it cannot be mounted (not root, no mount(8), a container without
    /// CAP_SYS_ADMIN).
    pub fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open (an app left running by a failed assertion) does not keep
        // the mount around once it is closed.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes `path` until the file system refuses a byte more. Returns the bytes written.
pub fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create the filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).and_then(|()| f.flush()).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = f.sync_all();
    written
}

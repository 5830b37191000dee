//! The local-directory backend.
//!
//! A write is atomic and durable: the bytes go to a temporary file in the
//! target directory, which is fsynced, then hard-linked to its final name
//! (linking, unlike renaming, fails if the name exists, which gives
//! put-if-absent), and the directory is fsynced. A crash leaves at most a
//! `.tmp-*` file, which listings ignore.
//!
//! A vault holds a company's core data, encrypted but still private: its
//! directories are created 0700 and its files 0600, whatever the umask.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Dir, Listed, ObjectName, Storage};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    /// Whether [`Storage::prepare_new_vault`] made the root directory
    /// itself (rather than being given an empty one): then a failed
    /// `init` removes the directory whole. Unset until then.
    made_root: OnceLock<bool>,
}

impl LocalDir {
    /// Opens an existing vault directory (no check of its contents).
    pub fn open(root: impl Into<PathBuf>) -> LocalDir {
        LocalDir {
            root: root.into(),
            made_root: OnceLock::new(),
        }
    }

    /// Creates the directory layout for a new vault. The directory may exist
    /// but must be empty, so `init` never mixes two vaults.
    pub fn create(root: impl Into<PathBuf>) -> Result<LocalDir> {
        let dir = LocalDir::open(root);
        dir.prepare_new_vault()?;
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &ObjectName) -> PathBuf {
        self.root.join(name.path())
    }

    fn not_found(&self, name: &ObjectName) -> Error {
        Error::NotFound(format!(
            "{} is missing from the vault at {}",
            name,
            self.root.display()
        ))
    }

    fn open_file(&self, name: &ObjectName) -> Result<File> {
        let p = self.path(name);
        File::open(&p).map_err(|e| match e.kind() {
            ErrorKind::NotFound => self.not_found(name),
            _ => Error::io("opening", &p, e),
        })
    }
}

/// Makes the directory layout of a new vault at `root`, which may exist
/// but must be empty, so `init` never mixes two vaults. Returns whether
/// `root` itself was made. On failure nothing half-made stays behind: a
/// second `init` must not find a directory that is "not empty".
fn make_layout(root: &Path) -> Result<bool> {
    let mut created = false;
    match fs::read_dir(root) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Usage(format!(
                    "{} exists and is not empty; choose a new path for the vault",
                    root.display()
                )));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(root)
                .map_err(|e| Error::io("creating the vault directory", root, e))?;
            created = true;
            // `backups` has the parent "" (the working directory).
            let parent = match root.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            sync_dir(parent)?;
        }
        Err(e) => return Err(Error::io("opening the vault directory", root, e)),
    }
    let layout = (|| {
        private_dir(root)?;
        for k in Dir::MADE_BY_INIT {
            let d = root.join(k.dir());
            fs::create_dir(&d).map_err(|e| Error::io("creating the vault layout", &d, e))?;
            private_dir(&d)?;
        }
        sync_dir(root)
    })();
    if let Err(e) = layout {
        if created {
            let _ = fs::remove_dir_all(root);
        } else {
            for k in Dir::MADE_BY_INIT {
                let _ = fs::remove_dir(root.join(k.dir()));
            }
        }
        return Err(e);
    }
    Ok(created)
}

/// Makes `dir` readable by its owner only.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("making the directory private", dir, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// Objects at least this big (packs) are written around the page cache.
const DIRECT_MIN: usize = 1 << 20;
/// O_DIRECT's alignment of buffer, offset and length on every filesystem
/// Linux has (most need only the 512-byte sector).
const DIRECT_ALIGN: usize = 4096;

/// Creates `path` (which must not exist) with `data`, durably. A pack is
/// written once and read rarely, so its bytes go straight to the disk
/// (O_DIRECT) rather than through the page cache: on a host whose memory
/// is full of cached Kafka segments, copying into fresh cache pages cost a
/// snapshot more CPU than encrypting the same bytes (docs/benchmarks.md §
/// Small records). The unaligned tail, and filesystems that refuse
/// O_DIRECT (tmpfs), take the ordinary path.
fn write_new_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_new_file_with(path, data, write_around_cache)
}

/// [`write_new_file`], with the O_DIRECT attempt as a parameter so the
/// fallback can be tested on any kernel (tmpfs takes O_DIRECT since 6.6).
fn write_new_file_with(
    path: &Path,
    data: &[u8],
    direct: fn(&Path, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if data.len() >= DIRECT_MIN {
        match direct(path, data) {
            // Not for this filesystem: start over the ordinary way. The
            // name is this process's own random one, so only its
            // partial file is removed.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                let _ = fs::remove_file(path);
            }
            done => return done,
        }
    }
    let mut f = create_new(path, 0)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    f.sync_all()
}

fn create_new(path: &Path, flags: i32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(flags)
        .open(path)
}

/// The aligned bulk with O_DIRECT, the unaligned tail through the cache,
/// then one fsync for both.
fn write_around_cache(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let f = create_new(path, libc::O_DIRECT)?;
    // The umask can only take bits away; this sets exactly these.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    let aligned = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
    write_direct(&f, &data[..aligned])?;
    drop(f);
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(aligned as u64))?;
    f.write_all(&data[aligned..])?;
    f.sync_all()
}

/// Writes `data` (a multiple of [`DIRECT_ALIGN`] long) from an aligned copy.
fn write_direct(mut f: &File, data: &[u8]) -> std::io::Result<()> {
    const PIECE: usize = 4 << 20;
    let mut buf = vec![0u8; PIECE.min(data.len()) + DIRECT_ALIGN];
    let at = buf.as_ptr().align_offset(DIRECT_ALIGN);
    for piece in data.chunks(PIECE) {
        let dst = &mut buf[at..at + piece.len()];
        dst.copy_from_slice(piece);
        f.write_all(dst)?;
    }
    Ok(())
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    vault_format::id::hex_encode(&b)
}

impl Storage for LocalDir {
    fn put_if_absent(&self, name: &ObjectName, data: &[u8]) -> Result<bool> {
        let dest = self.path(name);
        let dir = dest
            .parent()
            .expect("object paths have a parent")
            .to_path_buf();
        // The folders below the root, outermost first, that are missing
        // (a vault copied from object storage has no empty ones). The root
        // itself is never made here: a missing root is an unmounted vault.
        let mut missing = Vec::new();
        let mut d = dir.as_path();
        while d != self.root && !d.exists() {
            missing.push(d.to_path_buf());
            d = d.parent().expect("below the vault root");
        }
        for dir in missing.iter().rev() {
            match fs::create_dir(dir) {
                Ok(()) => private_dir(dir)?,
                // Another process made it meanwhile.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("creating directory", dir, e)),
            }
            sync_dir(dir.parent().expect("below the vault root"))?;
        }
        if dest.exists() {
            return Ok(false);
        }
        let tmp = dir.join(format!(".tmp-{}", random_suffix()));
        let written = write_new_file(&tmp, data);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(format!("writing {name}"), &tmp, e));
        }
        let linked = fs::hard_link(&tmp, &dest);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&dir)?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(format!("storing {name}"), &dest, e)),
        }
    }

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>> {
        let mut f = self.open_file(name)?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)
            .map_err(|e| Error::io("reading", self.path(name), e))?;
        Ok(v)
    }

    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut f = self.open_file(name)?;
        let p = self.path(name);
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("seeking", &p, e))?;
        let mut v = Vec::with_capacity(len.min(1 << 30) as usize);
        f.take(len)
            .read_to_end(&mut v)
            .map_err(|e| Error::io("reading", &p, e))?;
        Ok(v)
    }

    fn size(&self, name: &ObjectName) -> Result<u64> {
        let p = self.path(name);
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => self.not_found(name),
                _ => Error::io("reading metadata of", &p, e),
            })
    }

    fn list(&self, kind: Dir) -> Result<Vec<Listed>> {
        let base = self.root.join(kind.dir());
        let mut out = Vec::new();
        let mut dirs = vec![base.clone()];
        while let Some(dir) = dirs.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound && dir != base => continue,
                // A folder with nothing in it, in a vault copied from
                // object storage (which has no empty folders). Only when
                // the config is there: an unmounted vault must not look
                // empty to gc.
                Err(e)
                    if e.kind() == ErrorKind::NotFound
                        && dir == base
                        && kind != Dir::Config
                        && self.root.join("config").is_file() =>
                {
                    break;
                }
                Err(e) => return Err(Error::io(format!("listing {}", kind.dir()), &dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let ft = entry
                    .file_type()
                    .map_err(|e| Error::io("listing", entry.path(), e))?;
                if ft.is_dir() && kind == Dir::Packs && dir == base {
                    dirs.push(entry.path());
                } else if ft.is_file() && kind != Dir::Config {
                    let meta = match entry.metadata() {
                        Ok(m) => m,
                        // Deleted since the directory was read.
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io("listing", entry.path(), e)),
                    };
                    out.push(Listed {
                        name,
                        size: meta.len(),
                        modified: meta.modified().ok(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &ObjectName) -> Result<()> {
        let p = self.path(name);
        match fs::remove_file(&p) {
            Ok(()) => sync_dir(p.parent().expect("below the root")),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("deleting", &p, e)),
        }
    }

    fn exists(&self, name: &ObjectName) -> Result<bool> {
        Ok(self.path(name).exists())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn prepare_new_vault(&self) -> Result<()> {
        let made = make_layout(&self.root)?;
        let _ = self.made_root.set(made);
        Ok(())
    }

    /// The whole directory if `init` made it, else what `init` put into
    /// the empty directory it was given. A handle that did not prepare a
    /// new vault removes nothing: its folder may be anyone's (a vault that
    /// lost its config is still someone's data).
    fn remove_unfinished_vault(&self) {
        if self.root.join("config").exists() {
            return;
        }
        match self.made_root.get() {
            None => return,
            Some(true) => {
                let _ = fs::remove_dir_all(&self.root);
                return;
            }
            Some(false) => {}
        }
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_objects_round_trip_around_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::create(dir.path().join("v")).unwrap();
        for len in [DIRECT_MIN, DIRECT_MIN + 1, 5 * DIRECT_MIN + 4095, 9 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let name = ObjectName::new(Dir::Packs, format!("{len:064x}"));
            assert!(store.put_if_absent(&name, &data).unwrap());
            assert_eq!(store.get(&name).unwrap(), data);
            let mode = fs::metadata(store.path(&name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A filesystem that refuses O_DIRECT, part way through: the partial
    /// file goes and the ordinary path writes the same bytes.
    #[test]
    fn big_objects_on_a_filesystem_without_o_direct() {
        fn refuses(path: &Path, data: &[u8]) -> std::io::Result<()> {
            fs::write(path, &data[..10])?;
            Err(std::io::Error::from_raw_os_error(libc::EINVAL))
        }
        fn fails(_: &Path, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(libc::EIO))
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack");
        let data: Vec<u8> = (0..3 * DIRECT_MIN + 17).map(|i| (i % 253) as u8).collect();
        write_new_file_with(&path, &data, refuses).unwrap();
        assert_eq!(fs::read(&path).unwrap(), data);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Create-only, as on every other path.
        assert!(write_new_file(&path, &data).is_err());
        // Any other error is the caller's to report, not a reason to retry.
        let other = dir.path().join("other");
        assert!(write_new_file_with(&other, &data, fails).is_err());
    }

    #[test]
    fn put_is_once_only_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDir::create(dir.path().join("v")).unwrap();
        let n = ObjectName::new(Dir::Packs, "abcdef");
        assert!(s.put_if_absent(&n, b"one").unwrap());
        assert!(!s.put_if_absent(&n, b"two").unwrap());
        assert_eq!(s.get(&n).unwrap(), b"one");
        assert_eq!(s.get_range(&n, 1, 5).unwrap(), b"ne");
        assert_eq!(s.size(&n).unwrap(), 3);
        let listed = s.list(Dir::Packs).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_str(), listed[0].size), ("abcdef", 3));
        assert!(listed[0].modified.is_some());
        // A leftover temporary file from a crash is not listed.
        std::fs::write(dir.path().join("v/packs/ab/.tmp-123"), b"x").unwrap();
        assert_eq!(s.list(Dir::Packs).unwrap().len(), 1);
        s.delete(&n).unwrap();
        s.delete(&n).unwrap();
        assert!(matches!(s.get(&n), Err(Error::NotFound(_))));
    }

    /// A failed `init` takes away the directory it made, but only the
    /// contents of an empty one it was given; a finished vault stays.
    #[test]
    fn an_unfinished_vault_is_removed_as_far_as_init_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let made = LocalDir::open(dir.path().join("new"));
        made.prepare_new_vault().unwrap();
        made.remove_unfinished_vault();
        assert!(!dir.path().join("new").exists());
        let given = LocalDir::open(dir.path());
        given.prepare_new_vault().unwrap();
        given.remove_unfinished_vault();
        assert!(dir.path().exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let done = LocalDir::create(dir.path().join("done")).unwrap();
        assert!(done.put_if_absent(&ObjectName::config(), b"c").unwrap());
        done.remove_unfinished_vault();
        assert!(done.exists(&ObjectName::config()).unwrap());
        // A vault that lost its config, opened by a handle that prepared
        // nothing, is someone's data: nothing is removed.
        let lost = dir.path().join("lost");
        let writer = LocalDir::create(&lost).unwrap();
        let pack = ObjectName::new(Dir::Packs, "ab".repeat(32));
        assert!(writer.put_if_absent(&pack, b"p").unwrap());
        LocalDir::open(&lost).remove_unfinished_vault();
        assert!(writer.exists(&pack).unwrap());
    }

    #[test]
    fn create_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"").unwrap();
        assert!(matches!(LocalDir::create(dir.path()), Err(Error::Usage(_))));
    }
}

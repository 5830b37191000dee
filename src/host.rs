//! What this process is and where it runs: the host name, the identity a
//! lock or a run records as its holder, fresh random bytes and the default
//! cache folder. A leaf: it names nothing else in the crate, so storage,
//! locks and the index cache can all use it.

use serde::{Deserialize, Serialize};

/// `N` bytes from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

/// Where the local caches live unless `--cache-dir` or `KVAULT_CACHE_DIR` says
/// otherwise: `$XDG_CACHE_HOME/kvault`, else `~/.cache/kvault`.
pub fn default_cache_dir() -> std::path::PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return std::path::PathBuf::from(x).join("kvault");
    }
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("kvault")
}

/// This machine's host name, for snapshot manifests and lock owners.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Who holds a lock: enough to tell whether it is this process's own
/// machine and namespace, where a dead pid can be trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id`: a pid from another boot means nothing.
    #[serde(default)]
    pub boot_id: String,
    /// `/proc/self/ns/pid`: two containers may share a host name, not a pid namespace.
    #[serde(default)]
    pub pid_namespace: String,
    pub pid: u32,
}

impl Holder {
    pub fn this_process() -> Holder {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Holder {
            host: hostname(),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
        }
    }

    /// Whether this holder is certainly dead: same host, boot and pid
    /// namespace as `me`, and no such process.
    pub(crate) fn is_dead_here(&self, me: &Holder) -> bool {
        !me.boot_id.is_empty()
            && !me.pid_namespace.is_empty()
            && self.host == me.host
            && self.boot_id == me.boot_id
            && self.pid_namespace == me.pid_namespace
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

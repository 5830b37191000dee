//! Settings for a vault's storage: `--storage-option KEY=VALUE` and
//! `KVAULT_STORAGE_KEY=VALUE` (an endpoint, a region, vault's retry and
//! upload settings), the command line winning. Secrets among them are
//! registered so that no message ever shows them.

use std::time::Duration;

use super::object::Cloud;
use super::object::Tuning;
use crate::error::{Error, Result};

/// Settings for the vault's storage: the cloud's own configuration keys
/// (`endpoint`, `region`, `allow_http`...) and vault's (`retry_timeout`,
/// `max_retries`, `multipart_threshold`, `part_size`, `concurrency`).
#[derive(Clone, Default)]
pub struct StorageOptions {
    /// In order of precedence, lowest first: the environment, then the
    /// command line.
    pairs: Vec<(String, String)>,
    /// The keys the operator gave for this vault (the command line, or
    /// explicit pairs), as opposed to the environment's.
    explicit: Vec<String>,
}

/// Keys vault reads itself; the rest go to the cloud's client.
const VAULT_KEYS: [&str; 5] = [
    "retry_timeout",
    "max_retries",
    "multipart_threshold",
    "part_size",
    "concurrency",
];

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self
            .pairs
            .iter()
            .map(|(k, v)| {
                if is_secret_option(k) {
                    format!("{k}=****")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        f.debug_tuple("StorageOptions").field(&shown).finish()
    }
}

/// Whether a storage setting holds a secret (an access key, a SAS token).
pub(crate) fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("access_key_id") || k.ends_with("client_id") {
        return false;
    }
    ["secret", "key", "token", "sas", "password", "credential"]
        .iter()
        .any(|s| k.contains(s))
}

/// The storage option an environment variable sets, if any:
/// `KVAULT_STORAGE_KEY` sets `key`. `KVAULT_STORAGE_FAULTS` is the debug
/// build's fault plan (`crate::faults::wrap_storage`), not a store's
/// setting: read as one, it made every object-store vault refuse to open.
fn option_of_env(var: &str) -> Option<String> {
    var.strip_prefix("KVAULT_STORAGE_")
        .filter(|rest| !rest.is_empty() && *rest != "FAULTS")
        .map(str::to_ascii_lowercase)
}

impl StorageOptions {
    /// `KVAULT_STORAGE_*` from the environment, then each `KEY=VALUE` of
    /// `--storage-option`.
    pub fn from_env_and_args(args: &[String]) -> Result<StorageOptions> {
        // The clouds' own variables (read by their credential chains)
        // may hold secrets too: whatever they hold is never printed.
        for (k, v) in std::env::vars() {
            let cloud_var = Cloud::ALL.iter().any(|c| k.starts_with(c.env_prefix()));
            if cloud_var && is_secret_option(&k) {
                crate::secrets::register(&v);
            }
        }
        let mut pairs: Vec<(String, String)> = std::env::vars()
            .filter_map(|(k, v)| option_of_env(&k).map(|o| (o, v)))
            .collect();
        pairs.sort();
        let mut explicit = Vec::new();
        for a in args {
            let (k, v) = a.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "--storage-option {a:?}: expected KEY=VALUE, e.g. endpoint=https://s3.example.com"
                ))
            })?;
            let k = k.trim();
            if k.is_empty() {
                return Err(Error::Usage(format!("--storage-option {a:?}: empty key")));
            }
            pairs.push((k.to_ascii_lowercase(), v.to_string()));
            explicit.push(k.to_ascii_lowercase());
        }
        let opts = StorageOptions { pairs, explicit };
        for (k, v) in &opts.pairs {
            if is_secret_option(k) {
                crate::secrets::register(v);
            }
        }
        Ok(opts)
    }

    /// Options from explicit pairs (tests, benchmarks).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> StorageOptions {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string()))
            .collect();
        StorageOptions {
            explicit: pairs.iter().map(|(k, _)| k.clone()).collect(),
            pairs,
        }
    }

    /// The value in force for `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The options for the cloud's client, later ones winning.
    pub(crate) fn client_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .filter(|(k, _)| !VAULT_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// vault's own settings for object storage.
    pub(crate) fn tuning(&self) -> Result<Tuning> {
        let mut t = Tuning::default();
        if let Some(v) = self.get("retry_timeout") {
            t.retry_timeout = parse_duration("retry_timeout", v)?;
        }
        if let Some(v) = self.get("max_retries") {
            t.max_retries = parse_number("max_retries", v)?;
        }
        if let Some(v) = self.get("multipart_threshold") {
            t.multipart_threshold = parse_size("multipart_threshold", v)?;
        }
        if let Some(v) = self.get("part_size") {
            t.part_size = parse_size("part_size", v)?.max(5 << 20);
        }
        // A part is at least 5 MiB (S3's rule), and splitting an object
        // into one part gains nothing.
        t.multipart_threshold = t.multipart_threshold.max(t.part_size);
        if let Some(v) = self.get("concurrency") {
            t.concurrency = parse_number("concurrency", v)?.clamp(1, 256);
        }
        Ok(t)
    }

    /// A local vault takes no storage options; one given is a mistake.
    /// The environment may carry settings for other vaults; only the
    /// command line's are the operator's intent for this one.
    pub(crate) fn refuse_for_local(&self, path: &std::path::Path) -> Result<()> {
        match self.explicit.first() {
            Some(k) => Err(Error::Usage(format!(
                "--storage-option {k}: {} is a local directory, which takes no storage options",
                path.display()
            ))),
            None => Ok(()),
        }
    }
}

fn parse_number(key: &str, v: &str) -> Result<usize> {
    v.trim()
        .parse()
        .map_err(|_| Error::Usage(format!("storage option {key}={v:?}: expected a number")))
}

/// Plain seconds, or a duration as vault's other flags take it (`30s`,
/// `2m`, `500ms`...).
fn parse_duration(key: &str, v: &str) -> Result<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    crate::time::parse_duration(v)
        .map(Duration::from_millis)
        .map_err(|e| Error::Usage(format!("storage option {key}: {e}")))
}

/// `8MiB`, `64KiB`, `1GiB`, or plain bytes.
fn parse_size(key: &str, v: &str) -> Result<u64> {
    let t = v.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, ""), |i| t.split_at(i));
    let n: u64 = num.parse().map_err(|_| {
        Error::Usage(format!(
            "storage option {key}={v:?}: expected a size such as 8MiB"
        ))
    })?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => {
            return Err(Error::Usage(format!(
                "storage option {key}={v:?}: expected a size such as 8MiB"
            )));
        }
    };
    Ok(n.saturating_mul(mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_plan_variable_is_no_storage_option() {
        assert_eq!(
            option_of_env("KVAULT_STORAGE_ENDPOINT").as_deref(),
            Some("endpoint")
        );
        assert_eq!(option_of_env("KVAULT_STORAGE_FAULTS"), None);
        assert_eq!(option_of_env("KVAULT_STORAGE_"), None);
        assert_eq!(option_of_env("KVAULT_REPO"), None);
    }

    #[test]
    fn options_are_typed_and_secrets_hidden() {
        let o = StorageOptions::from_pairs(&[
            ("endpoint", "http://127.0.0.1:9000"),
            ("aws_secret_access_key", "very-secret-value"),
            ("retry_timeout", "10s"),
            ("multipart_threshold", "8MiB"),
        ]);
        let t = o.tuning().unwrap();
        assert_eq!(t.retry_timeout, Duration::from_secs(10));
        assert_eq!(t.multipart_threshold, 8 << 20);
        let client: Vec<_> = o.client_pairs().map(|(k, _)| k).collect();
        assert_eq!(client, ["endpoint", "aws_secret_access_key"]);
        let shown = format!("{o:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(is_secret_option("azure_storage_account_key"));
        assert!(is_secret_option("sas_token"));
        assert!(!is_secret_option("aws_access_key_id"));
        assert!(!is_secret_option("region"));
        for (text, want) in [("30", 30_000), ("500ms", 500), ("2m", 120_000)] {
            let t = StorageOptions::from_pairs(&[("retry_timeout", text)])
                .tuning()
                .unwrap();
            assert_eq!(t.retry_timeout, Duration::from_millis(want), "{text}");
        }
        assert!(
            StorageOptions::from_pairs(&[("retry_timeout", "soon")])
                .tuning()
                .is_err()
        );
    }
}

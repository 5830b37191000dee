//! Where a vault lives: a local directory, or a bucket (and prefix) of an
//! object store, named by a URL, plus the settings to reach it.
//!
//! * `/path`, `./path`, `path` and `file:///path`: a local directory.
//! * `s3://bucket/prefix`: Amazon S3 or an S3-compatible store.
//! * `az://container/prefix` (also `azure://`): Azure Blob Storage.
//! * `gs://bucket/prefix`: Google Cloud Storage.
//!
//! Credentials come from each cloud's own chain (environment, profile,
//! instance or workload identity); [`StorageOptions`] set anything else.

use std::path::PathBuf;
use std::sync::Arc;

use super::local::LocalDir;
pub use super::object::Cloud;
use super::object::ObjectStorage;
pub use super::options::StorageOptions;
use super::{ObjectName, Storage};
use crate::error::{Error, Result};

/// Where a vault lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaultLocation {
    Local(PathBuf),
    Object {
        cloud: Cloud,
        /// The bucket (or Azure container).
        bucket: String,
        /// The folder inside it, without leading or trailing `/`; may be empty.
        prefix: String,
    },
}

impl VaultLocation {
    /// Parses `--vault`: a URL with a known scheme, else a local path.
    pub fn parse(text: &str) -> Result<VaultLocation> {
        let Some((scheme, rest)) = text.split_once("://") else {
            if text.is_empty() {
                return Err(Error::Usage("--vault is empty".into()));
            }
            return Ok(VaultLocation::Local(PathBuf::from(text)));
        };
        let cloud = match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(Error::Usage(format!(
                        "{text}: a file URL needs an absolute path (file:///path/to/vault)"
                    )));
                }
                return Ok(VaultLocation::Local(PathBuf::from(rest)));
            }
            "s3" => Cloud::S3,
            "az" | "azure" => Cloud::Azure,
            "gs" => Cloud::Gcs,
            other => {
                return Err(Error::Usage(format!(
                    "{text}: unknown vault location scheme {other:?}; use a path, file:///path, \
                     s3://bucket/prefix, az://container/prefix or gs://bucket/prefix"
                )));
            }
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Usage(format!(
                "{text}: the URL names no bucket ({}://BUCKET/prefix)",
                cloud.scheme()
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            && !prefix.is_empty()
        {
            return Err(Error::Usage(format!(
                "{text}: the prefix has an empty, `.` or `..` segment"
            )));
        }
        Ok(VaultLocation::Object {
            cloud,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The location as the operator would write it, for messages.
    pub fn display(&self) -> String {
        match self {
            VaultLocation::Local(p) => p.display().to_string(),
            VaultLocation::Object {
                cloud,
                bucket,
                prefix,
            } => cloud.url(bucket, prefix),
        }
    }

    /// Opens the storage of an existing vault (no check of its contents).
    /// A debug build wraps it in the fault storage when
    /// `KVAULT_STORAGE_FAULTS` says so (`crate::faults::wrap_storage`).
    pub fn open(&self, options: &StorageOptions) -> Result<Arc<dyn Storage>> {
        let (storage, root): (Arc<dyn Storage>, _) = match self {
            VaultLocation::Local(p) => {
                options.refuse_for_local(p)?;
                (Arc::new(LocalDir::open(p)), Some(p.as_path()))
            }
            VaultLocation::Object {
                cloud,
                bucket,
                prefix,
            } => (
                Arc::new(ObjectStorage::open(*cloud, bucket, prefix, options)?),
                None,
            ),
        };
        crate::faults::wrap_storage(storage, root)
    }
}

/// The storage of a vault being created, until `init` has written its
/// config; a failed `init` removes what it made.
pub struct NewVault {
    storage: Arc<dyn Storage>,
}

impl NewVault {
    /// Makes sure nothing is at `location` yet (an empty directory or an
    /// empty prefix) and readies it.
    pub fn prepare(location: &VaultLocation, options: &StorageOptions) -> Result<NewVault> {
        let storage = location.open(options)?;
        if storage.exists(&ObjectName::config())? {
            return Err(Error::Usage(format!(
                "a vault already exists at {}",
                location.display()
            )));
        }
        storage.prepare_new_vault()?;
        Ok(NewVault { storage })
    }

    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.storage)
    }

    /// Removes what a failed `init` wrote. The location held no vault
    /// before (`prepare` checked), so nothing here is anyone's data.
    pub fn remove_unfinished(&self) {
        self.storage.remove_unfinished_vault();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            VaultLocation::parse("backups").unwrap(),
            VaultLocation::Local("backups".into())
        );
        assert_eq!(
            VaultLocation::parse("file:///srv/v").unwrap(),
            VaultLocation::Local("/srv/v".into())
        );
        assert_eq!(
            VaultLocation::parse("s3://b/kafka/prod/").unwrap(),
            VaultLocation::Object {
                cloud: Cloud::S3,
                bucket: "b".into(),
                prefix: "kafka/prod".into()
            }
        );
        let az = VaultLocation::parse("az://c").unwrap();
        assert_eq!(az.display(), "az://c");
        assert_eq!(
            VaultLocation::parse("gs://b/p").unwrap().display(),
            "gs://b/p"
        );
        assert!(VaultLocation::parse("s3:///p").is_err());
        assert!(VaultLocation::parse("ftp://x").is_err());
        assert!(VaultLocation::parse("s3://b/a//c").is_err());
        assert!(VaultLocation::parse("s3://b/../c").is_err());
        assert!(VaultLocation::parse("file://relative").is_err());
    }

    #[test]
    fn a_local_vault_refuses_storage_options_from_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let local = VaultLocation::Local(dir.path().join("v"));
        let err = local
            .open(&StorageOptions::from_pairs(&[("endpoint", "http://x")]))
            .unwrap_err();
        assert!(err.to_string().contains("local directory"), "{err}");
        assert!(local.open(&StorageOptions::default()).is_ok());
    }
}

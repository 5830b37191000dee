//! Connecting to a cloud's object store. The clouds' client builders
//! differ only in their names, so one function configures them all: the
//! bucket, vault's retry settings, then every client option the operator
//! gave, each checked against that cloud's own keys.

use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::RetryConfig;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::MultipartStore;

use super::cloud::Cloud;
use crate::error::{Error, Result};
use crate::storage::options::StorageOptions;

/// One client, seen both ways vault uses it: plain requests, and
/// multipart uploads.
pub(super) type Clients = (Arc<dyn ObjectStore>, Arc<dyn MultipartStore>);

/// Makes the client for `bucket` of `cloud` (no request is made yet).
/// `url` names the vault in messages.
pub(super) fn connect(
    cloud: Cloud,
    bucket: &str,
    retry: RetryConfig,
    options: &StorageOptions,
    url: &str,
) -> Result<Clients> {
    match cloud {
        Cloud::S3 => build::<AmazonS3Builder>(cloud, bucket, retry, options, url),
        Cloud::Azure => build::<MicrosoftAzureBuilder>(cloud, bucket, retry, options, url),
        Cloud::Gcs => build::<GoogleCloudStorageBuilder>(cloud, bucket, retry, options, url),
    }
}

/// What the clouds' client builders have in common.
trait CloudBuilder: Sized {
    /// The cloud's configuration keys (`endpoint`, `region`...).
    type Key: FromStr;
    type Client: ObjectStore + MultipartStore + 'static;
    /// A builder from the cloud's environment variables, for `bucket`.
    fn for_bucket(bucket: &str) -> Self;
    fn retry(self, retry: RetryConfig) -> Self;
    fn set(self, key: Self::Key, value: &str) -> Self;
    fn finish(self) -> object_store::Result<Self::Client>;
}

fn build<B: CloudBuilder>(
    cloud: Cloud,
    bucket: &str,
    retry: RetryConfig,
    options: &StorageOptions,
    url: &str,
) -> Result<Clients> {
    let mut b = B::for_bucket(bucket).retry(retry);
    for (k, v) in options.client_pairs() {
        let key: B::Key = k.parse().map_err(|_| {
            Error::Usage(format!(
                "storage option {k:?} is not a setting of {}:// stores; see docs/operator-guide.md § Object storage",
                cloud.scheme()
            ))
        })?;
        b = b.set(key, v);
    }
    let client = Arc::new(
        b.finish()
            .map_err(|e| Error::Usage(format!("{url}: {e}")))?,
    );
    Ok((
        client.clone() as Arc<dyn ObjectStore>,
        client as Arc<dyn MultipartStore>,
    ))
}

/// The three builders have the same methods but no trait in common.
macro_rules! cloud_builder {
    ($builder:ty, $key:ty, $client:ty, $with_bucket:ident) => {
        impl CloudBuilder for $builder {
            type Key = $key;
            type Client = $client;
            fn for_bucket(bucket: &str) -> Self {
                <$builder>::from_env().$with_bucket(bucket)
            }
            fn retry(self, retry: RetryConfig) -> Self {
                self.with_retry(retry)
            }
            fn set(self, key: Self::Key, value: &str) -> Self {
                self.with_config(key, value)
            }
            fn finish(self) -> object_store::Result<Self::Client> {
                self.build()
            }
        }
    };
}

cloud_builder!(
    AmazonS3Builder,
    AmazonS3ConfigKey,
    object_store::aws::AmazonS3,
    with_bucket_name
);
cloud_builder!(
    MicrosoftAzureBuilder,
    AzureConfigKey,
    object_store::azure::MicrosoftAzure,
    with_container_name
);
cloud_builder!(
    GoogleCloudStorageBuilder,
    GoogleConfigKey,
    object_store::gcp::GoogleCloudStorage,
    with_bucket_name
);

//! The clouds whose object stores vault speaks to. A leaf, so that the
//! location parser and the storage options can name a cloud without
//! depending on the backend that connects to it.

/// A cloud's object store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    S3,
    Azure,
    Gcs,
}

impl Cloud {
    pub const ALL: [Cloud; 3] = [Cloud::S3, Cloud::Azure, Cloud::Gcs];

    pub fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Azure => "az",
            Cloud::Gcs => "gs",
        }
    }

    /// How the cloud's own environment variables begin: its credential
    /// chain reads them, so any secret among them is kept out of messages.
    pub(crate) fn env_prefix(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_",
            Cloud::Azure => "AZURE_",
            Cloud::Gcs => "GOOGLE_",
        }
    }

    /// A vault's URL, as the operator would write it: `prefix` is the
    /// folder in the bucket, without leading or trailing `/` ("" for the
    /// bucket's root).
    pub fn url(self, bucket: &str, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("{}://{bucket}", self.scheme())
        } else {
            format!("{}://{bucket}/{prefix}", self.scheme())
        }
    }
}

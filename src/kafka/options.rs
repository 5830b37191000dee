//! How vault reaches a cluster: bootstrap servers, librdkafka properties
//! from -X and -F, secrets kept out of logs, and the clients built from them.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::metadata::Metadata;

use super::context::{ClientLog, Detached, MetadataClient, creation_error};
use crate::error::{Error, Result};

/// How to reach a cluster: bootstrap servers plus any librdkafka property,
/// given as `-X key=value` like kcat does (security.protocol, sasl.*, ssl.*).
#[derive(Clone)]
pub struct KafkaOptions {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
    /// How long one metadata or offsets request may take before vault gives up.
    pub request_timeout: Duration,
    /// What the operator should hear about these settings.
    pub warnings: Vec<String>,
}

/// Secret settings are shown as `****`.
impl std::fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let props: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if crate::secrets::is_secret_key(k) {
                    "****"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaOptions")
            .field("brokers", &self.brokers)
            .field("properties", &props)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl KafkaOptions {
    pub fn new(brokers: impl Into<String>) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.into(),
            properties: Vec::new(),
            request_timeout: Duration::from_secs(30),
            warnings: Vec::new(),
        }
    }

    /// Parses `key=value` as given to `-X`. A secret's value is
    /// registered, so no message ever shows it.
    pub(crate) fn parse_property(s: &str) -> Result<(String, String)> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let k = k.trim().to_string();
                if crate::secrets::is_secret_key(&k) {
                    crate::secrets::register(v);
                }
                Ok((k, v.to_string()))
            }
            // The text may hold a secret without its `=`: never echo it.
            _ => Err(Error::Usage(
                "-X takes key=value, e.g. -X security.protocol=SASL_SSL".into(),
            )),
        }
    }

    /// The client settings of a librdkafka properties file, as kcat's
    /// `-F` reads it: `key=value` lines, `#` comments and blank lines.
    pub(crate) fn read_properties_file(path: &std::path::Path) -> Result<Vec<(String, String)>> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::io("reading the client properties file", path, e))?,
        );
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // `key = value`, as Java properties files allow.
            let line = match line.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => line.to_string(),
            };
            let p = KafkaOptions::parse_property(&line).map_err(|_| {
                Error::Usage(format!(
                    "{} line {}: expected key=value",
                    path.display(),
                    n + 1
                ))
            })?;
            out.push(p);
        }
        Ok(out)
    }

    /// The options for `brokers` from kcat-style settings: a properties
    /// file (`-F`), then a SASL password file, then each `-X key=value`,
    /// later ones winning.
    pub fn from_settings(
        brokers: &str,
        properties_file: Option<&std::path::Path>,
        sasl_password_file: Option<&std::path::Path>,
        properties: &[String],
    ) -> Result<KafkaOptions> {
        let mut o = KafkaOptions::new(brokers);
        if let Some(f) = properties_file {
            o.properties.extend(KafkaOptions::read_properties_file(f)?);
        }
        if let Some(f) = sasl_password_file {
            o.properties
                .push(KafkaOptions::secret_from_file("sasl.password", f)?);
        }
        for p in properties {
            let (k, v) = KafkaOptions::parse_property(p)?;
            if k == "sasl.password" {
                o.warnings.push(
                    "-X sasl.password puts the password on the command line, where `ps` shows it; \
                     use --sasl-password-file (or -F) instead"
                        .into(),
                );
            }
            o.properties.push((k, v));
        }
        Ok(o)
    }

    /// A secret setting read from a file's first line (`--sasl-password-file`),
    /// so that it never sits on a command line where `ps` shows it.
    pub(crate) fn secret_from_file(key: &str, path: &std::path::Path) -> Result<(String, String)> {
        let secret = crate::password::read_password_file(path)?;
        let value = String::from_utf8(secret.to_vec())
            .map_err(|_| Error::Usage(format!("{}: the secret is not UTF-8", path.display())))?;
        crate::secrets::register(&value);
        Ok((key.to_string(), value))
    }

    /// A client config with vault's defaults, then the user's `-X` properties
    /// (which win).
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set("client.id", "kvault");
        // An unreachable cluster should fail in bounded time, not retry forever.
        c.set("socket.connection.setup.timeout.ms", "10000");
        c.set("log_level", "3");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A client config with vault's defaults, then `tune`'s settings for
    /// one kind of client, then the user's `-X` properties, which win over both.
    pub(crate) fn client_config_with(&self, tune: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
        let mut c = self.client_config();
        tune(&mut c);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    pub(crate) fn kafka_err(&self, context: &str, e: impl std::fmt::Display) -> Error {
        Error::Kafka {
            context: format!("{context} (brokers {})", self.brokers),
            message: format!("{e}; check --brokers and that the cluster is reachable"),
        }
    }

    /// A consumer used only for metadata and offset queries. It never joins
    /// its group; having one lets it carry per-group admin calls safely
    /// (see `admin_ffi::run_per_group`).
    pub(crate) fn metadata_client(&self, read_committed: bool) -> Result<MetadataClient> {
        let mut c = self.client_config();
        c.set("group.id", "kvault-metadata");
        c.set("enable.auto.commit", "false");
        c.set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
        c.create_with_context(ClientLog::default())
            .map(Detached::new)
            .map_err(|e| self.kafka_err("creating a Kafka client", creation_error(&e)))
    }

    pub fn admin(&self) -> Result<Detached<AdminClient<DefaultClientContext>>> {
        self.client_config()
            .create()
            .map(Detached::new)
            .map_err(|e| self.kafka_err("creating a Kafka admin client", creation_error(&e)))
    }

    /// The cluster's metadata. Asks again each second up to the request
    /// timeout, but stops at once when the cluster refuses the client's
    /// credentials or TLS, and says so.
    pub fn fetch_metadata(&self, client: &MetadataClient) -> Result<Metadata> {
        let deadline = std::time::Instant::now() + self.request_timeout;
        loop {
            let step = Duration::from_secs(1).min(self.request_timeout);
            match client.fetch_metadata(None, step) {
                Ok(md) => return Ok(md),
                Err(e) => {
                    // Serves librdkafka's error events (a consumer hears of
                    // them only when polled); nothing is assigned, so no
                    // record can come.
                    let _ = client.poll(Duration::ZERO);
                    let refused = client.context().refused();
                    if refused || std::time::Instant::now() >= deadline {
                        return Err(match client.context().last_error() {
                            Some(why) if refused => Error::Kafka {
                                context: format!("connecting to {}", self.brokers),
                                message: format!(
                                    "{why}; check the credentials and TLS settings (-F, -X, --sasl-password-file)"
                                ),
                            },
                            Some(why) => {
                                self.kafka_err("reading cluster metadata", format!("{e} ({why})"))
                            }
                            None => self.kafka_err("reading cluster metadata", e),
                        });
                    }
                }
            }
        }
    }

    /// The id of the cluster the brokers belong to (`None` when it gives none).
    pub fn current_cluster_id(&self) -> Result<Option<String>> {
        let client = self.metadata_client(true)?;
        self.fetch_metadata(&client)?;
        Ok(self.cluster_id(&client))
    }

    pub fn cluster_id(&self, client: &MetadataClient) -> Option<String> {
        client
            .client()
            .fetch_cluster_id(self.request_timeout)
            .filter(|id| !id.is_empty())
    }
}

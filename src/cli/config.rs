//! An optional configuration file with named profiles, as operators keep
//! for their other tools:
//!
//! ```toml
//! [profile.prod]
//! vault = "s3://acme-backups/kafka/prod"
//! brokers = "kafka-1:9092"
//! target_brokers = "dr-kafka-1:9092"
//! password_file = "/etc/kvault/pw"
//! sasl_password_file = "/etc/kvault/sasl"
//! topic_regex = "orders\\..*"
//! [profile.prod.client]           # librdkafka settings, as -X
//! "security.protocol" = "SASL_SSL"
//! [profile.prod.keep]             # gc, stats and snapshot --every
//! daily = 30
//! tags = ["release"]
//! ```
//!
//! `--config FILE` (or `KVAULT_CONFIG`) names the file; without it,
//! `~/.config/kvault/config.toml`, then `/etc/kvault/config.toml`, is read
//! if present. `--profile NAME` (or `KVAULT_PROFILE`) picks a profile;
//! without it, `default` is used if the file has one. Precedence: flags,
//! then environment variables, then the profile (a profile value is a
//! flag added to the command line), except for the keep rules: those of
//! the profile and of the command line add up (`vault::gc::rules`).
//! Secrets only as `*_file` paths.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Deserialize;
use vault::gc::{KeepRules, Origin};
use vault::{Error, Result};

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Keep {
    last: Option<usize>,
    hourly: Option<usize>,
    daily: Option<usize>,
    weekly: Option<usize>,
    monthly: Option<usize>,
    within: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Profile {
    vault: Option<String>,
    brokers: Option<String>,
    target_brokers: Option<String>,
    password_file: Option<PathBuf>,
    sasl_password_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    topics: Option<Vec<String>>,
    topic_regex: Option<String>,
    exclude: Option<String>,
    #[serde(default)]
    client: BTreeMap<String, String>,
    #[serde(default)]
    keep: Keep,
    /// Refused with a clear message: secrets go in files.
    password: Option<toml::Value>,
    sasl_password: Option<toml::Value>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profile: BTreeMap<String, Profile>,
}

/// The profile's librdkafka settings: the lowest layer under `-F` and `-X`.
static CLIENT: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// The profile's keep rules, merged with the command's own by
/// `vault::gc::rules` (never replaced by them).
static KEEP: OnceLock<(Origin, KeepRules)> = OnceLock::new();

pub fn profile_client_properties() -> &'static [(String, String)] {
    CLIENT.get().map_or(&[], Vec::as_slice)
}

/// The chosen profile's keep block, if it has a rule.
pub fn profile_keep_rules() -> Option<(Origin, KeepRules)> {
    KEEP.get().cloned()
}

fn keep_rules(k: &Keep, name: &str, path: &std::path::Path) -> Result<KeepRules> {
    let within_ms = k
        .within
        .as_deref()
        .map(|w| {
            vault::time::parse_duration(w).map_err(|e| {
                Error::Usage(format!(
                    "profile {name} in {}: keep.within: {e}",
                    path.display()
                ))
            })
        })
        .transpose()?;
    Ok(KeepRules {
        last: k.last.unwrap_or(0),
        hourly: k.hourly.unwrap_or(0),
        daily: k.daily.unwrap_or(0),
        weekly: k.weekly.unwrap_or(0),
        monthly: k.monthly.unwrap_or(0),
        within_ms,
        tags: k.tags.clone().unwrap_or_default(),
    })
}

/// The value of `--NAME VALUE` or `--NAME=VALUE` among the raw arguments.
fn raw_flag(args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let eq = format!("--{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == &long {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&eq).map(str::to_string)
        }
    })
}

fn has_flag(args: &[String], name: &str) -> bool {
    let long = format!("--{name}");
    args.iter()
        .any(|a| a == &long || a.starts_with(&format!("{long}=")))
}

/// The flags the chosen profile adds to the command line: each only when
/// the command line does not give it and its environment variable is
/// unset, so flags win over the environment, and both over the profile.
pub fn profile_args(args: &[String]) -> Result<Vec<String>> {
    let explicit_file = raw_flag(args, "config").or_else(|| std::env::var("KVAULT_CONFIG").ok());
    let explicit_profile =
        raw_flag(args, "profile").or_else(|| std::env::var("KVAULT_PROFILE").ok());
    let path = match &explicit_file {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            home.map(|h| h.join(".config/kvault/config.toml"))
                .into_iter()
                .chain([PathBuf::from("/etc/kvault/config.toml")])
                .find(|p| p.is_file())
        }
    };
    let Some(path) = path else {
        if let Some(p) = explicit_profile {
            return Err(Error::Usage(format!(
                "--profile {p}: no configuration file (give --config FILE, or create ~/.config/kvault/config.toml)"
            )));
        }
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io("reading the configuration file", &path, e))?;
    // toml's own message quotes the offending line, which may hold a
    // secret typed where it does not belong: say only where and what.
    let mut file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        Error::Usage(format!(
            "configuration file {}{}: {}",
            path.display(),
            line.map(|l| format!(", line {l}")).unwrap_or_default(),
            e.message()
        ))
    })?;
    let name = explicit_profile.clone().unwrap_or_else(|| "default".into());
    let Some(profile) = file.profile.remove(&name) else {
        if explicit_profile.is_some() {
            let names: Vec<&str> = file.profile.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!(
                "profile {name} is not in {} (it has: {})",
                path.display(),
                names.join(", ")
            )));
        }
        return Ok(Vec::new());
    };
    if profile.password.is_some() || profile.sasl_password.is_some() {
        return Err(Error::Usage(format!(
            "profile {name} in {}: secrets go in files, never in the configuration; use password_file / \
             sasl_password_file",
            path.display()
        )));
    }
    if let Some(k) = profile
        .client
        .keys()
        .find(|k| vault::secrets::is_secret_key(k))
    {
        return Err(Error::Usage(format!(
            "profile {name} in {}: client setting {k} is a secret; keep secrets in files \
             (sasl_password_file, or a -F properties file readable only by vault's user)",
            path.display()
        )));
    }
    let _ = CLIENT.set(profile.client.clone().into_iter().collect());
    let keep = keep_rules(&profile.keep, &name, &path)?;
    if !keep.is_empty() {
        let _ = KEEP.set((Origin::Profile(name.clone()), keep));
    }
    Ok(extra_flags(&profile, args))
}

/// The subcommand the command line runs: its first word that is neither a
/// flag nor the value of --config or --profile.
fn subcommand(args: &[String]) -> Option<&str> {
    let mut skip = false;
    for a in args.iter().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if a == "--config" || a == "--profile" || a == "--log-format" {
            skip = true;
            continue;
        }
        if !a.starts_with('-') {
            return Some(a.as_str());
        }
    }
    None
}

fn extra_flags(p: &Profile, args: &[String]) -> Vec<String> {
    let Some(sub) = subcommand(args) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let env_unset = |vars: &[&str]| vars.iter().all(|v| std::env::var_os(v).is_none());
    let mut add = |flag: &str, value: Option<String>, vars: &[&str]| {
        if let Some(v) = value
            && !has_flag(args, flag)
            && env_unset(vars)
        {
            // One word, so a value that starts with '-' stays a value.
            out.push(format!("--{flag}={v}"));
        }
    };
    let path = |b: &Option<PathBuf>| b.as_ref().map(|p| p.to_string_lossy().into_owned());
    let opens_vault = !matches!(sub, "completions" | "man" | "help");
    if opens_vault {
        add("vault", p.vault.clone(), &["KVAULT_REPO"]);
        add(
            "password-file",
            path(&p.password_file),
            &["KVAULT_PASSWORD_FILE", "KVAULT_PASSWORD"],
        );
        add("cache-dir", path(&p.cache_dir), &["KVAULT_CACHE_DIR"]);
    }
    if matches!(sub, "snapshot" | "restore" | "status") {
        add(
            "sasl-password-file",
            path(&p.sasl_password_file),
            &["KVAULT_SASL_PASSWORD_FILE"],
        );
    }
    match sub {
        "snapshot" => add("brokers", p.brokers.clone(), &["KVAULT_BROKERS"]),
        "restore" | "status" => add(
            "brokers",
            p.target_brokers.clone(),
            &["KVAULT_TARGET_BROKERS"],
        ),
        _ => {}
    }
    // A selection on the command line replaces the profile's as a whole.
    let selected = ["topics", "topic-regex", "exclude"]
        .iter()
        .any(|f| has_flag(args, f));
    if sub == "snapshot" && !selected {
        add("topics", p.topics.as_ref().map(|t| t.join(",")), &[]);
        add("topic-regex", p.topic_regex.clone(), &[]);
        add("exclude", p.exclude.clone(), &[]);
    }
    out
}

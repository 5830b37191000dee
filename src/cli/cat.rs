//! `vault cat SNAPSHOT --topic T`: records out of a snapshot without a
//! cluster, as JSON Lines or in kcat's `-f` format.

use std::io::Write;

use base64::Engine;
use clap::Args;
use vault::inspect::{RecordQuery, read_records};
use vault::lock::LockKind;
use vault::reader::StoredRecord;
use vault::{Error, Result};

use super::args::VaultArgs;

#[derive(Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The snapshot: `latest`, an id, or a unique prefix of one.
    snapshot: String,
    #[arg(long)]
    topic: String,
    /// Only this partition (default: all, one after another).
    #[arg(long)]
    partition: Option<u32>,
    /// Records at or after this offset.
    #[arg(long, value_name = "OFFSET", conflicts_with = "from_time")]
    from_offset: Option<i64>,
    /// Records with a timestamp at or after this (RFC 3339 or epoch ms).
    #[arg(long, value_name = "TIME")]
    from_time: Option<String>,
    /// Records before this offset.
    #[arg(long, value_name = "OFFSET", conflicts_with = "to_time")]
    to_offset: Option<i64>,
    /// Records with a timestamp before this (RFC 3339 or epoch ms).
    #[arg(long, value_name = "TIME")]
    to_time: Option<String>,
    /// Only records with this key (UTF-8).
    #[arg(long)]
    key: Option<String>,
    /// Stop after N records.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// `json` (JSON Lines, the default) or a kcat -f format string: %t topic,
    /// %p partition, %o offset, %k key, %s value, %K key length, %S value
    /// length, %T timestamp (ms), %h headers (k=v,...), %% and \n \t \\.
    #[arg(long, default_value = "json")]
    format: String,
}

/// A byte field in JSON: a string when it is UTF-8, else `{"base64": ...}`.
fn bytes_json(b: Option<&[u8]>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::Value::String(s.to_string()),
            Err(_) => serde_json::json!({
                "base64": base64::engine::general_purpose::STANDARD.encode(b)
            }),
        },
    }
}

fn json_line(topic: &str, partition: u32, r: &StoredRecord) -> serde_json::Value {
    serde_json::json!({
        "topic": topic,
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestamp_type": match r.timestamp_type {
            vault_format::record::TimestampType::CreateTime => "create_time",
            vault_format::record::TimestampType::LogAppendTime => "log_append_time",
            vault_format::record::TimestampType::NotAvailable => "not_available",
        },
        "key": bytes_json(r.key.as_deref()),
        "headers": r.headers.iter().map(|(k, v)| serde_json::json!({
            "key": bytes_json(Some(k)),
            "value": bytes_json(v.as_deref()),
        })).collect::<Vec<_>>(),
        "value": bytes_json(r.value.as_deref()),
    })
}

/// Writes one record in a kcat `-f` format (raw bytes, as kcat does).
fn kcat_line(out: &mut Vec<u8>, fmt: &str, topic: &str, partition: u32, r: &StoredRecord) {
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('%', Some(t)) => {
                chars.next();
                match t {
                    't' => out.extend_from_slice(topic.as_bytes()),
                    'p' => out.extend_from_slice(partition.to_string().as_bytes()),
                    'o' => out.extend_from_slice(r.offset.to_string().as_bytes()),
                    'k' => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                    's' => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                    'K' => out.extend_from_slice(
                        r.key
                            .as_ref()
                            .map_or(-1, |k| i64::try_from(k.len()).unwrap_or(-1))
                            .to_string()
                            .as_bytes(),
                    ),
                    'S' => out.extend_from_slice(
                        r.value
                            .as_ref()
                            .map_or(-1, |v| i64::try_from(v.len()).unwrap_or(-1))
                            .to_string()
                            .as_bytes(),
                    ),
                    'T' => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                    'h' => {
                        for (i, (k, v)) in r.headers.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(k);
                            out.push(b'=');
                            out.extend_from_slice(v.as_deref().unwrap_or_default());
                        }
                    }
                    '%' => out.push(b'%'),
                    other => {
                        out.push(b'%');
                        out.extend_from_slice(other.to_string().as_bytes());
                    }
                }
            }
            ('\\', Some(e @ ('n' | 't' | '\\'))) => {
                chars.next();
                out.push(match e {
                    'n' => b'\n',
                    't' => b'\t',
                    _ => b'\\',
                });
            }
            (c, _) => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

pub fn run(a: &CatArgs) -> Result<()> {
    let query = RecordQuery {
        topic: a.topic.clone(),
        partition: a.partition,
        from_offset: a.from_offset,
        to_offset: a.to_offset,
        from_time: a
            .from_time
            .as_deref()
            .map(|t| vault::time::parse_time(t, "--from-time"))
            .transpose()?,
        to_time: a
            .to_time
            .as_deref()
            .map(|t| vault::time::parse_time(t, "--to-time"))
            .transpose()?,
        key: a.key.as_ref().map(|k| k.as_bytes().to_vec()),
        limit: a.limit,
    };
    // Shared, as a restore: gc cannot remove chunks while they are read.
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "cat")?;
    let id = repo.resolve_snapshot(&a.snapshot)?;
    let m = repo.read_snapshot(&id)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let json = a.format == "json";
    let mut line = Vec::new();
    read_records(&repo, &m, &query, &mut |topic, partition, r| {
        line.clear();
        if json {
            serde_json::to_writer(&mut line, &json_line(topic, partition, r))
                .map_err(|e| Error::Internal(format!("encoding a record as JSON: {e}")))?;
            line.push(b'\n');
        } else {
            kcat_line(&mut line, &a.format, topic, partition, r);
        }
        match out.write_all(&line) {
            Ok(()) => Ok(true),
            // The reader went away (`| head`): stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(Error::io("writing records", "standard output", e)),
        }
    })?;
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing records", "standard output", e))
        }
        _ => Ok(()),
    }
}

//! The cluster estate a snapshot records beside its topics: ACLs, client
//! quotas, SCRAM users and dynamic broker configs (docs/format.md § Cluster
//! estate). It travels inside the snapshot manifest (version 3), so it is
//! sealed with it and needs no chunk of its own.
//!
//! Each part is either what vault read, or "not read" with the reason. An
//! empty list means the cluster has none; a part vault could not read (no
//! authorizer, no permission, a listener it cannot speak to) is never
//! written as empty, so a restore can tell "no ACLs" from "ACLs unknown".

use crate::error::{FormatError, Result};
use crate::wire::{Reader, Writer};

/// One part of the estate: what was read, or why it was not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part<T> {
    Read(Vec<T>),
    NotRead(String),
}

impl<T> Part<T> {
    pub fn items(&self) -> Option<&[T]> {
        match self {
            Part::Read(v) => Some(v),
            Part::NotRead(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterEstate {
    pub acls: Part<AclEntry>,
    pub quotas: Part<QuotaEntry>,
    pub scram_users: Part<ScramUser>,
    pub broker_configs: Part<BrokerConfigs>,
}

impl ClusterEstate {
    /// An estate with every part "not read" for the same reason.
    pub fn not_read(reason: &str) -> ClusterEstate {
        ClusterEstate {
            acls: Part::NotRead(reason.to_string()),
            quotas: Part::NotRead(reason.to_string()),
            scram_users: Part::NotRead(reason.to_string()),
            broker_configs: Part::NotRead(reason.to_string()),
        }
    }
}

/// One ACL binding, with Kafka's protocol codes (the numbers of
/// `org.apache.kafka.common.resource.ResourceType`, `PatternType`,
/// `acl.AclOperation` and `acl.AclPermissionType`), kept as numbers so a
/// code this reader does not name still round-trips.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclEntry {
    pub resource_type: u8,
    pub resource_name: String,
    pub pattern_type: u8,
    pub principal: String,
    pub host: String,
    pub operation: u8,
    pub permission: u8,
}

/// Kafka's resource type codes.
pub mod resource_type {
    pub const TOPIC: u8 = 2;
    pub const GROUP: u8 = 3;
    pub const CLUSTER: u8 = 4;
    pub const TRANSACTIONAL_ID: u8 = 5;
    pub const DELEGATION_TOKEN: u8 = 6;
    pub const USER: u8 = 7;

    pub fn name(code: u8) -> &'static str {
        match code {
            TOPIC => "topic",
            GROUP => "group",
            CLUSTER => "cluster",
            TRANSACTIONAL_ID => "transactional-id",
            DELEGATION_TOKEN => "delegation-token",
            USER => "user",
            _ => "unknown",
        }
    }
}

/// Kafka's pattern type codes.
pub mod pattern_type {
    pub const LITERAL: u8 = 3;
    pub const PREFIXED: u8 = 4;

    pub fn name(code: u8) -> &'static str {
        match code {
            LITERAL => "literal",
            PREFIXED => "prefixed",
            _ => "unknown",
        }
    }
}

/// Kafka's ACL operation codes.
pub mod operation {
    pub fn name(code: u8) -> &'static str {
        match code {
            2 => "all",
            3 => "read",
            4 => "write",
            5 => "create",
            6 => "delete",
            7 => "alter",
            8 => "describe",
            9 => "cluster-action",
            10 => "describe-configs",
            11 => "alter-configs",
            12 => "idempotent-write",
            13 => "create-tokens",
            14 => "describe-tokens",
            _ => "unknown",
        }
    }
}

/// Kafka's ACL permission codes.
pub mod permission {
    pub const DENY: u8 = 2;
    pub const ALLOW: u8 = 3;

    pub fn name(code: u8) -> &'static str {
        match code {
            DENY => "deny",
            ALLOW => "allow",
            _ => "unknown",
        }
    }
}

/// The quotas of one entity (a user, a client id, an IP, or a user and
/// client id together; a `None` name is that type's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaEntry {
    /// (entity type, name), sorted by type: `user`, `client-id`, `ip`.
    pub entity: Vec<(String, Option<String>)>,
    /// (quota key, value), e.g. `producer_byte_rate`.
    pub values: Vec<(String, QuotaValue)>,
}

/// A quota's value: Kafka sends a double. Compared by its bits, so the type
/// is `Eq` and a value round-trips exactly.
#[derive(Clone, Copy, Debug)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for QuotaValue {}

/// A SCRAM user: its name and the mechanisms it has credentials for. Kafka
/// never gives out the salted passwords, so a restore needs them supplied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramUser {
    pub name: String,
    /// (mechanism, iterations); mechanism 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
    pub credentials: Vec<(u8, u32)>,
}

pub fn scram_mechanism_name(code: u8) -> &'static str {
    match code {
        1 => "SCRAM-SHA-256",
        2 => "SCRAM-SHA-512",
        _ => "unknown",
    }
}

/// The dynamic configs of one broker, or the cluster-wide defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfigs {
    /// `None`: the cluster-wide default (DescribeConfigs on broker "").
    pub broker: Option<u32>,
    /// (name, value); a `None` value is a sensitive config Kafka does not
    /// give out (a password), which a restore must be given again.
    pub entries: Vec<(String, Option<String>)>,
}

const WHAT: &str = "cluster estate";

fn bad(detail: &str) -> FormatError {
    FormatError::malformed(WHAT, detail.to_string())
}

fn write_part<T>(w: &mut Writer, part: &Part<T>, item: impl Fn(&mut Writer, &T)) {
    match part {
        Part::NotRead(why) => {
            w.u8(0).str(why);
        }
        Part::Read(items) => {
            w.u8(1).varint(items.len() as u64);
            for i in items {
                item(w, i);
            }
        }
    }
}

fn read_part<'a, T>(
    r: &mut Reader<'a>,
    min_item: usize,
    mut item: impl FnMut(&mut Reader<'a>) -> Result<T>,
) -> Result<Part<T>> {
    match r.u8()? {
        0 => Ok(Part::NotRead(r.str()?.to_string())),
        1 => {
            let n = r.count(min_item)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(item(r)?);
            }
            Ok(Part::Read(v))
        }
        _ => Err(bad("part flag")),
    }
}

fn opt_str(r: &mut Reader<'_>) -> Result<Option<String>> {
    r.opt_bytes()?
        .map(|b| String::from_utf8(b.to_vec()).map_err(|_| bad("name is not UTF-8")))
        .transpose()
}

impl ClusterEstate {
    pub fn write(&self, w: &mut Writer) {
        write_part(w, &self.acls, |w, a| {
            w.u8(a.resource_type)
                .str(&a.resource_name)
                .u8(a.pattern_type)
                .str(&a.principal)
                .str(&a.host)
                .u8(a.operation)
                .u8(a.permission);
        });
        write_part(w, &self.quotas, |w, q| {
            w.varint(q.entity.len() as u64);
            for (t, n) in &q.entity {
                w.str(t).opt_bytes(n.as_deref().map(str::as_bytes));
            }
            w.varint(q.values.len() as u64);
            for (k, v) in &q.values {
                w.str(k).u64(v.0.to_bits());
            }
        });
        write_part(w, &self.scram_users, |w, u| {
            w.str(&u.name).varint(u.credentials.len() as u64);
            for (m, it) in &u.credentials {
                w.u8(*m).varint(u64::from(*it));
            }
        });
        write_part(w, &self.broker_configs, |w, b| {
            match b.broker {
                None => w.u8(0),
                Some(id) => w.u8(1).varint(u64::from(id)),
            };
            w.varint(b.entries.len() as u64);
            for (k, v) in &b.entries {
                w.str(k).opt_bytes(v.as_deref().map(str::as_bytes));
            }
        });
    }

    pub fn read(r: &mut Reader<'_>) -> Result<ClusterEstate> {
        let acls = read_part(r, 7, |r| {
            Ok(AclEntry {
                resource_type: r.u8()?,
                resource_name: r.str()?.to_string(),
                pattern_type: r.u8()?,
                principal: r.str()?.to_string(),
                host: r.str()?.to_string(),
                operation: r.u8()?,
                permission: r.u8()?,
            })
        })?;
        let quotas = read_part(r, 2, |r| {
            let ne = r.count(2)?;
            let entity = (0..ne)
                .map(|_| Ok((r.str()?.to_string(), opt_str(r)?)))
                .collect::<Result<Vec<_>>>()?;
            let nv = r.count(9)?;
            let values = (0..nv)
                .map(|_| Ok((r.str()?.to_string(), QuotaValue(f64::from_bits(r.u64()?)))))
                .collect::<Result<Vec<_>>>()?;
            Ok(QuotaEntry { entity, values })
        })?;
        let scram_users = read_part(r, 2, |r| {
            let name = r.str()?.to_string();
            let n = r.count(2)?;
            let credentials = (0..n)
                .map(|_| {
                    let m = r.u8()?;
                    let it = u32::try_from(r.varint()?).map_err(|_| bad("iterations"))?;
                    Ok((m, it))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ScramUser { name, credentials })
        })?;
        let broker_configs = read_part(r, 2, |r| {
            let broker = match r.u8()? {
                0 => None,
                1 => Some(u32::try_from(r.varint()?).map_err(|_| bad("broker id"))?),
                _ => return Err(bad("broker flag")),
            };
            let n = r.count(2)?;
            let entries = (0..n)
                .map(|_| Ok((r.str()?.to_string(), opt_str(r)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(BrokerConfigs { broker, entries })
        })?;
        Ok(ClusterEstate {
            acls,
            quotas,
            scram_users,
            broker_configs,
        })
    }

    /// The estate on its own (as it appears inside a manifest), for the
    /// fuzz target and tests.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_inner()
    }

    pub fn decode(bytes: &[u8]) -> Result<ClusterEstate> {
        let mut r = Reader::new(bytes, WHAT);
        let e = ClusterEstate::read(&mut r)?;
        r.finish()?;
        Ok(e)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> ClusterEstate {
        ClusterEstate {
            acls: Part::Read(vec![
                AclEntry {
                    resource_type: resource_type::TOPIC,
                    resource_name: "orders".into(),
                    pattern_type: pattern_type::LITERAL,
                    principal: "User:billing".into(),
                    host: "*".into(),
                    operation: 3,
                    permission: permission::ALLOW,
                },
                AclEntry {
                    resource_type: resource_type::GROUP,
                    resource_name: "billing-".into(),
                    pattern_type: pattern_type::PREFIXED,
                    principal: "User:billing".into(),
                    host: "10.0.0.1".into(),
                    operation: 2,
                    permission: permission::DENY,
                },
            ]),
            quotas: Part::Read(vec![
                QuotaEntry {
                    entity: vec![("user".into(), Some("billing".into()))],
                    values: vec![("producer_byte_rate".into(), QuotaValue(1_048_576.0))],
                },
                QuotaEntry {
                    entity: vec![("client-id".into(), None)],
                    values: vec![("request_percentage".into(), QuotaValue(12.5))],
                },
            ]),
            scram_users: Part::Read(vec![ScramUser {
                name: "billing".into(),
                credentials: vec![(2, 4096)],
            }]),
            broker_configs: Part::NotRead("not authorized: DESCRIBE_CONFIGS on the cluster".into()),
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(ClusterEstate::decode(&e.encode()).unwrap(), e);
        let none = ClusterEstate::not_read("no authorizer");
        assert_eq!(ClusterEstate::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn every_truncation_fails() {
        let b = sample().encode();
        for n in 0..b.len() {
            assert!(ClusterEstate::decode(&b[..n]).is_err(), "prefix {n}");
        }
    }
}

//! `vault ls SNAPSHOT --metadata`: the estate a snapshot recorded, in
//! words and in JSON. A part not read says why; a snapshot made before
//! vault recorded the estate says so, rather than showing empty lists.

use serde::Serialize;
use vault_format::estate::{
    ClusterEstate, Part, operation, pattern_type, permission, resource_type, scram_mechanism_name,
};
use vault_format::manifest::SnapshotManifest;

/// One part: `read` with its items, or `not_read` with the reason (and no
/// `items` at all, so a script cannot take "unknown" for "none").
#[derive(Serialize, Debug)]
pub struct PartListing<T: Serialize> {
    pub read: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_read: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<T>>,
}

#[derive(Serialize, Debug)]
pub struct AclListing {
    pub resource_type: String,
    pub resource_name: String,
    pub pattern_type: String,
    pub principal: String,
    pub host: String,
    pub operation: String,
    pub permission: String,
}

#[derive(Serialize, Debug)]
pub struct QuotaListing {
    /// `type=name` pairs; `type=<default>` for a type's default.
    pub entity: Vec<String>,
    pub values: Vec<(String, f64)>,
}

#[derive(Serialize, Debug)]
pub struct ScramListing {
    pub user: String,
    pub mechanisms: Vec<(String, u32)>,
}

#[derive(Serialize, Debug)]
pub struct BrokerConfigListing {
    /// `cluster default` or `broker N`.
    pub scope: String,
    /// `None`: a sensitive value Kafka does not give out.
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Serialize, Debug)]
pub struct TopicMetadataListing {
    pub topic: String,
    pub partitions: usize,
    pub replication_factor: u32,
    pub configs: Vec<(String, String)>,
}

/// Everything `--metadata` shows.
#[derive(Serialize, Debug)]
pub struct EstateListing {
    /// False for a snapshot written before vault recorded the estate.
    pub recorded: bool,
    pub topics: Vec<TopicMetadataListing>,
    pub acls: PartListing<AclListing>,
    pub quotas: PartListing<QuotaListing>,
    pub scram_users: PartListing<ScramListing>,
    pub broker_configs: PartListing<BrokerConfigListing>,
}

const NOT_RECORDED: &str =
    "this snapshot was taken by a vault that did not record the cluster estate";

fn part<S, T: Serialize>(p: Option<&Part<S>>, f: impl Fn(&S) -> T) -> PartListing<T> {
    match p {
        None => PartListing {
            read: false,
            not_read: Some(NOT_RECORDED.into()),
            items: None,
        },
        Some(Part::NotRead(why)) => PartListing {
            read: false,
            not_read: Some(why.clone()),
            items: None,
        },
        Some(Part::Read(items)) => PartListing {
            read: true,
            not_read: None,
            items: Some(items.iter().map(f).collect()),
        },
    }
}

/// `type=name`, or `type=<default>` for a type's default entity.
pub fn entity_words(entity: &[(String, Option<String>)]) -> Vec<String> {
    entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect()
}

impl EstateListing {
    pub fn of(m: &SnapshotManifest) -> EstateListing {
        let e: Option<&ClusterEstate> = m.estate.as_ref();
        EstateListing {
            recorded: e.is_some(),
            topics: m
                .topics
                .iter()
                .map(|t| TopicMetadataListing {
                    topic: t.name.clone(),
                    partitions: t.partitions.len(),
                    replication_factor: t.replication_factor,
                    configs: t.configs.clone(),
                })
                .collect(),
            acls: part(e.map(|e| &e.acls), |a| AclListing {
                resource_type: resource_type::name(a.resource_type).into(),
                resource_name: a.resource_name.clone(),
                pattern_type: pattern_type::name(a.pattern_type).into(),
                principal: a.principal.clone(),
                host: a.host.clone(),
                operation: operation::name(a.operation).into(),
                permission: permission::name(a.permission).into(),
            }),
            quotas: part(e.map(|e| &e.quotas), |q| QuotaListing {
                entity: entity_words(&q.entity),
                values: q.values.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
            }),
            scram_users: part(e.map(|e| &e.scram_users), |u| ScramListing {
                user: u.name.clone(),
                mechanisms: u
                    .credentials
                    .iter()
                    .map(|(m, it)| (scram_mechanism_name(*m).to_string(), *it))
                    .collect(),
            }),
            broker_configs: part(e.map(|e| &e.broker_configs), |b| BrokerConfigListing {
                scope: match b.broker {
                    None => "cluster default".into(),
                    Some(id) => format!("broker {id}"),
                },
                configs: b.entries.clone(),
            }),
        }
    }

    /// The listing as an operator reads it.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "topics ({}):", self.topics.len());
        for t in &self.topics {
            let configs: Vec<String> = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                s,
                "  {}  {} partitions, replication factor {}{}",
                t.topic,
                t.partitions,
                t.replication_factor,
                if configs.is_empty() {
                    String::new()
                } else {
                    format!(", {}", configs.join(" "))
                }
            );
        }
        section(&mut s, "ACLs", &self.acls, |a| {
            format!(
                "{} {} {}:{} {} {} from {}",
                a.permission,
                a.principal,
                a.resource_type,
                a.resource_name,
                a.pattern_type,
                a.operation,
                a.host
            )
        });
        section(&mut s, "client quotas", &self.quotas, |q| {
            let v: Vec<String> = q.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}  {}", q.entity.join(","), v.join(" "))
        });
        section(&mut s, "SCRAM users", &self.scram_users, |u| {
            let m: Vec<String> = u
                .mechanisms
                .iter()
                .map(|(m, it)| format!("{m} ({it} iterations)"))
                .collect();
            format!("{}  {}", u.user, m.join(", "))
        });
        section(
            &mut s,
            "dynamic broker configs",
            &self.broker_configs,
            |b| {
                let c: Vec<String> = b
                    .configs
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            v.as_deref().unwrap_or("(sensitive, not given out)")
                        )
                    })
                    .collect();
                format!("{}: {}", b.scope, c.join(" "))
            },
        );
        s
    }
}

fn section<T: Serialize>(
    s: &mut String,
    title: &str,
    p: &PartListing<T>,
    line: impl Fn(&T) -> String,
) {
    use std::fmt::Write;
    match &p.not_read {
        Some(why) => {
            let _ = writeln!(s, "{title}: not read: {why}");
        }
        None => {
            let items = p.items.as_deref().unwrap_or_default();
            let _ = writeln!(s, "{title} ({}):", items.len());
            for i in items {
                let _ = writeln!(s, "  {}", line(i));
            }
        }
    }
}

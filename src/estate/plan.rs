//! What restoring a snapshot's estate would change on a target cluster,
//! worked out before anything is written: the ACLs, quotas and SCRAM
//! users to create, what is already there, what cannot be restored, and
//! the conflicts, where the target holds something different that the
//! restore would overwrite. A plan with conflicts is refused unless the
//! operator asked to merge. Pure: the target's estate comes in as data.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vault_format::estate::{
    AclEntry, BrokerConfigs, ClusterEstate, Part, QuotaEntry, pattern_type, resource_type,
    scram_mechanism_name,
};

use super::listing::entity_words;

/// A quota entity: (type, name), a `None` name for the type's default.
type Entity = (String, Option<String>);

/// Which parts of the estate a restore brings back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EstateParts {
    pub acls: bool,
    pub quotas: bool,
    pub users: bool,
    /// The cluster-wide dynamic broker configs: only where asked
    /// (`--with configs`), since they change how the whole target runs.
    pub configs: bool,
}

impl EstateParts {
    pub fn any(self) -> bool {
        self.acls || self.quotas || self.users || self.configs
    }
}

/// One SCRAM credential to set: the user, the mechanism and iterations
/// the snapshot recorded, and the password the operator supplied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserUpsert {
    pub user: String,
    pub mechanism: u8,
    pub iterations: u32,
    pub password: String,
}

/// One entity's quotas to set.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaSet {
    pub entity: Vec<(String, Option<String>)>,
    pub values: Vec<(String, f64)>,
}

/// What the restore of the estate will do, and what it found.
#[derive(Clone, Debug, Default)]
pub struct EstatePlan {
    pub parts: EstateParts,
    pub create_acls: Vec<AclEntry>,
    pub set_quotas: Vec<QuotaSet>,
    pub upsert_users: Vec<UserUpsert>,
    /// Cluster-wide default broker configs to set.
    pub set_configs: Vec<(String, String)>,
    /// Already on the target as the snapshot has it: nothing to do.
    pub already_there: Vec<String>,
    /// Where the target holds something different: refused unless merging.
    pub conflicts: Vec<String>,
    /// What the restore leaves alone, and why (not read at snapshot time,
    /// a user without a password, a prefixed ACL under --rename).
    pub not_restored: Vec<String>,
}

/// The target's estate as read before the restore, and the operator's
/// choices.
pub struct EstateInputs<'a> {
    pub parts: EstateParts,
    /// Topic renames, source name to target name.
    pub renames: &'a BTreeMap<String, String>,
    /// SCRAM passwords the operator supplied, by user.
    pub passwords: &'a BTreeMap<String, String>,
    pub target: &'a ClusterEstate,
    /// Why vault cannot send its own requests (quotas, cluster configs) to
    /// the target, if it cannot: those parts are then not restored, rather
    /// than failing after other parts were written.
    pub own_requests: Option<String>,
}

fn acl_words(a: &AclEntry) -> String {
    format!(
        "{} {}:{} ({}) {} {} from {}",
        vault_format::estate::permission::name(a.permission),
        resource_type::name(a.resource_type),
        a.resource_name,
        pattern_type::name(a.pattern_type),
        a.principal,
        vault_format::estate::operation::name(a.operation),
        a.host
    )
}

impl EstatePlan {
    /// Plans the restore of `snapshot`'s estate (`None`: the snapshot was
    /// taken before vault recorded it) onto the target in `inputs`.
    pub fn make(snapshot: Option<&ClusterEstate>, inputs: &EstateInputs<'_>) -> EstatePlan {
        let mut plan = EstatePlan {
            parts: inputs.parts,
            ..EstatePlan::default()
        };
        let Some(estate) = snapshot else {
            if inputs.parts.any() {
                plan.not_restored.push(
                    "this snapshot was taken before vault recorded ACLs, quotas and users: none are restored"
                        .into(),
                );
            }
            return plan;
        };
        if inputs.parts.acls
            && let Some(acls) = plan.recorded(&estate.acls, "ACLs")
        {
            plan.plan_acls(acls, inputs);
        }
        if inputs.parts.quotas
            && plan.can_set("client quotas", inputs)
            && let Some(quotas) = plan.recorded(&estate.quotas, "client quotas")
        {
            plan.plan_quotas(quotas, inputs);
        }
        if inputs.parts.users
            && let Some(users) = plan.recorded(&estate.scram_users, "SCRAM users")
        {
            plan.plan_users(users, inputs);
        }
        if inputs.parts.configs
            && plan.can_set("cluster-wide broker configs", inputs)
            && let Some(configs) = plan.recorded(&estate.broker_configs, "dynamic broker configs")
        {
            plan.plan_configs(configs, inputs);
        }
        plan
    }

    /// A part's items, or `None` with the reason it was not read noted.
    fn recorded<'e, T>(&mut self, part: &'e Part<T>, what: &str) -> Option<&'e [T]> {
        match part {
            Part::Read(items) => Some(items),
            Part::NotRead(why) => {
                self.not_restored.push(format!(
                    "{what}: not read when the snapshot was taken ({why}); none restored"
                ));
                None
            }
        }
    }

    /// Whether vault can send the target its own requests (quotas and
    /// cluster configs have no librdkafka call); if not, says so.
    fn can_set(&mut self, what: &str, inputs: &EstateInputs<'_>) -> bool {
        match &inputs.own_requests {
            None => true,
            Some(why) => {
                self.not_restored
                    .push(format!("{what}: cannot be set on this target: {why}"));
                false
            }
        }
    }

    fn plan_configs(&mut self, configs: &[BrokerConfigs], inputs: &EstateInputs<'_>) {
        let target: Option<BTreeMap<&str, &Option<String>>> =
            inputs.target.broker_configs.items().map(|t| {
                t.iter()
                    .filter(|b| b.broker.is_none())
                    .flat_map(|b| b.entries.iter().map(|(k, v)| (k.as_str(), v)))
                    .collect()
            });
        for set in configs {
            let Some(broker) = set.broker else {
                continue;
            };
            if !set.entries.is_empty() {
                let names: Vec<&str> = set.entries.iter().map(|(k, _)| k.as_str()).collect();
                self.not_restored.push(format!(
                    "broker {broker}'s own configs ({}) are not restored: broker ids need not match \
                     between clusters; set them with kafka-configs --entity-type brokers --entity-name ID",
                    names.join(", ")
                ));
            }
        }
        for (name, value) in configs
            .iter()
            .filter(|b| b.broker.is_none())
            .flat_map(|b| &b.entries)
        {
            let Some(value) = value else {
                self.not_restored.push(format!(
                    "cluster config {name}: sensitive, and Kafka does not give out its value; set it again \
                     with kafka-configs --entity-type brokers --entity-default"
                ));
                continue;
            };
            match &target {
                None => {
                    self.conflicts.push(format!(
                        "cluster config {name}: the target's configs could not be read, so vault cannot \
                         tell whether it would overwrite one"
                    ));
                }
                Some(t) => match t.get(name.as_str()) {
                    Some(Some(there)) if there == value => {
                        self.already_there
                            .push(format!("cluster config {name}={value}"));
                        continue;
                    }
                    Some(there) => self.conflicts.push(format!(
                        "cluster config {name} is {} on the target, {value} in the snapshot",
                        there.as_deref().unwrap_or("a sensitive value")
                    )),
                    None => {}
                },
            }
            self.set_configs.push((name.clone(), value.clone()));
        }
    }

    fn plan_acls(&mut self, acls: &[AclEntry], inputs: &EstateInputs<'_>) {
        let on_target: Option<BTreeSet<&AclEntry>> =
            inputs.target.acls.items().map(|t| t.iter().collect());
        for a in acls {
            let mut a = a.clone();
            if a.resource_type == resource_type::TOPIC {
                if a.pattern_type == pattern_type::LITERAL {
                    if let Some(new) = inputs.renames.get(&a.resource_name) {
                        a.resource_name.clone_from(new);
                    }
                } else if a.pattern_type == pattern_type::PREFIXED {
                    let renamed: Vec<String> = inputs
                        .renames
                        .iter()
                        .filter(|(from, _)| from.starts_with(&a.resource_name))
                        .map(|(from, to)| format!("{from}={to}"))
                        .collect();
                    if !renamed.is_empty() {
                        self.not_restored.push(format!(
                            "the prefixed ACL {} covers renamed topics ({}); it is restored unchanged and \
                             does not follow the rename: add one for the new names if they need it",
                            acl_words(&a),
                            renamed.join(", ")
                        ));
                    }
                }
            }
            match &on_target {
                Some(t) if t.contains(&a) => {
                    self.already_there.push(format!("ACL {}", acl_words(&a)));
                }
                _ => {
                    self.create_acls.push(a);
                }
            }
        }
        // A target whose ACLs vault cannot read (no authorizer, not
        // authorized) would most likely refuse to create them too, and
        // only after the records are written: a conflict, before anything.
        if let Part::NotRead(why) = &inputs.target.acls
            && !self.create_acls.is_empty()
        {
            self.conflicts.push(format!(
                "ACLs: the target's could not be read ({why}), so creating {} ACLs there would likely \
                 fail after the records are restored; --merge tries anyway",
                self.create_acls.len()
            ));
        }
    }

    fn plan_quotas(&mut self, quotas: &[QuotaEntry], inputs: &EstateInputs<'_>) {
        let target: Option<BTreeMap<&[Entity], &QuotaEntry>> = inputs
            .target
            .quotas
            .items()
            .map(|t| t.iter().map(|q| (q.entity.as_slice(), q)).collect());
        for q in quotas {
            let who = entity_words(&q.entity).join(",");
            let values: Vec<(String, f64)> =
                q.values.iter().map(|(k, v)| (k.clone(), v.0)).collect();
            match &target {
                None => self.conflicts.push(format!(
                    "quotas of {who}: the target's quotas could not be read ({}), so vault cannot tell \
                     whether it would overwrite them",
                    match &inputs.target.quotas {
                        Part::NotRead(why) => why.as_str(),
                        Part::Read(_) => "",
                    }
                )),
                Some(t) => match t.get(q.entity.as_slice()) {
                    Some(there) if there.values == q.values => {
                        self.already_there.push(format!("quotas of {who}"));
                        continue;
                    }
                    Some(there) => {
                        let differ: Vec<String> = q
                            .values
                            .iter()
                            .filter_map(|(k, v)| {
                                let theirs = there.values.iter().find(|(tk, _)| tk == k).map(|(_, tv)| tv.0);
                                (theirs != Some(v.0)).then(|| match theirs {
                                    Some(tv) => format!("{k} is {tv} on the target, {} in the snapshot", v.0),
                                    None => format!("{k} is unset on the target, {} in the snapshot", v.0),
                                })
                            })
                            .collect();
                        if !differ.is_empty() {
                            self.conflicts.push(format!("quotas of {who}: {}", differ.join("; ")));
                        }
                    }
                    None => {}
                },
            }
            self.set_quotas.push(QuotaSet {
                entity: q.entity.clone(),
                values,
            });
        }
    }

    fn plan_users(&mut self, users: &[vault_format::estate::ScramUser], inputs: &EstateInputs<'_>) {
        let target: Option<BTreeMap<&str, &vault_format::estate::ScramUser>> = inputs
            .target
            .scram_users
            .items()
            .map(|t| t.iter().map(|u| (u.name.as_str(), u)).collect());
        for u in users {
            let Some(password) = inputs.passwords.get(&u.name) else {
                self.not_restored.push(format!(
                    "SCRAM user {}: no password for it in --scram-passwords; Kafka never gives out \
                     credentials, so vault does not create it (never with a made-up password)",
                    u.name
                ));
                continue;
            };
            for &(mechanism, iterations) in &u.credentials {
                let cred = format!(
                    "SCRAM user {} ({})",
                    u.name,
                    scram_mechanism_name(mechanism)
                );
                if !matches!(mechanism, 1 | 2) || iterations == 0 {
                    self.not_restored.push(format!(
                        "{cred}: mechanism {mechanism} with {iterations} iterations cannot be set \
                         (SCRAM-SHA-256 or SCRAM-SHA-512, at least one iteration)"
                    ));
                    continue;
                }
                match &target {
                    None => self.conflicts.push(format!(
                        "{cred}: the target's SCRAM users could not be read, so vault cannot tell whether \
                         it would replace a password"
                    )),
                    Some(t) if t.get(u.name.as_str()).is_some_and(|there| {
                        there.credentials.iter().any(|(m, _)| *m == mechanism)
                    }) =>
                    {
                        self.conflicts.push(format!(
                            "{cred}: the target has this user already; restoring would replace its password"
                        ));
                    }
                    Some(_) => {}
                }
                self.upsert_users.push(UserUpsert {
                    user: u.name.clone(),
                    mechanism,
                    iterations,
                    password: password.clone(),
                });
            }
        }
    }

    /// The plan in the words of a dry run: one line per change.
    pub fn changes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .create_acls
            .iter()
            .map(|a| format!("create ACL {}", acl_words(a)))
            .collect();
        out.extend(self.set_quotas.iter().map(|q| {
            let v: Vec<String> = q.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "set quotas of {}: {}",
                entity_words(&q.entity).join(","),
                v.join(" ")
            )
        }));
        out.extend(
            self.set_configs
                .iter()
                .map(|(k, v)| format!("set cluster-wide broker config {k}={v}")),
        );
        out.extend(self.upsert_users.iter().map(|u| {
            format!(
                "set SCRAM user {} ({}, {} iterations) with the supplied password",
                u.user,
                scram_mechanism_name(u.mechanism),
                u.iterations
            )
        }));
        out
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

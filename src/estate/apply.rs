//! Restoring the estate: the plan against the target as it is now, then
//! the changes (ACLs, quotas, users, cluster configs), each part all at
//! once. The restore writes them after the records (docs/design.md § The
//! cluster estate).

use std::collections::BTreeMap;

use vault_format::manifest::SnapshotManifest;

use super::plan::{EstateInputs, EstateParts, EstatePlan};
use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;
use crate::kafka::config_wire::set_cluster_default_configs;
use crate::kafka::estate_write::{ScramUpsert, can_create, create_acls, upsert_scram_users};
use crate::kafka::quota_wire::{QuotaAlteration, alter_client_quotas};

/// Reads the target's estate and plans the restore of `manifest`'s onto it.
pub fn plan_estate(
    kafka: &KafkaOptions,
    manifest: &SnapshotManifest,
    parts: EstateParts,
    renames: &BTreeMap<String, String>,
    passwords: &BTreeMap<String, String>,
) -> Result<EstatePlan> {
    if !parts.any() {
        return Ok(EstatePlan::default());
    }
    let target = crate::kafka::read_estate_of(kafka)?;
    let mut plan = EstatePlan::make(
        manifest.estate.as_ref(),
        &EstateInputs {
            parts,
            renames,
            passwords,
            target: &target,
            own_requests: crate::kafka::sends_own_requests(kafka).err(),
        },
    );
    // librdkafka names no user or delegation-token resource (it read them
    // as "unknown"), so those ACLs cannot be created through it.
    let (ok, cannot): (Vec<_>, Vec<_>) = plan.create_acls.drain(..).partition(can_create);
    plan.create_acls = ok;
    for a in cannot {
        plan.not_restored.push(format!(
            "an ACL for {} on {:?} (resource type {}, operation {}) is not restored: librdkafka cannot \
             create ACLs on user or delegation-token resources; add it with kafka-acls",
            a.principal, a.resource_name, a.resource_type, a.operation
        ));
    }
    Ok(plan)
}

/// What restoring the estate did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EstateOutcome {
    pub acls_created: usize,
    pub quotas_set: usize,
    pub users_set: usize,
    pub configs_set: usize,
}

/// Refuses a plan with conflicts unless `merge`: nothing is written then.
pub fn check_conflicts(plan: &EstatePlan, merge: bool) -> Result<()> {
    if plan.conflicts.is_empty() || merge {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the target cluster holds something different from the snapshot, and restoring would overwrite it:\n  {}\n\
         nothing was changed; look at `vault restore --dry-run`, then restore with --merge to overwrite, \
         or leave the part out of --with",
        plan.conflicts.join("\n  ")
    )))
}

/// Applies the plan: ACLs, then quotas, then users, then cluster configs.
/// A step that fails says what the steps before it wrote: running the same
/// restore again with `--merge` finishes it (what is on the target from
/// this run is the snapshot's, so merging over it changes nothing else).
pub fn apply_estate(kafka: &KafkaOptions, plan: &EstatePlan) -> Result<EstateOutcome> {
    let mut done = EstateOutcome::default();
    let partial = |done: &EstateOutcome, e: Error| -> Error {
        if done.acls_created + done.quotas_set + done.users_set == 0 {
            return e;
        }
        // A Kafka failure, with what was written before it.
        Error::Kafka {
            context: "restoring the estate".into(),
            message: format!(
                "{e}\nthe estate is restored in part: {} ACLs created, {} quota entities set, {} SCRAM \
                 credentials set; restoring it again with --merge finishes it",
                done.acls_created, done.quotas_set, done.users_set
            ),
        }
    };
    let needs_client = !plan.create_acls.is_empty() || !plan.upsert_users.is_empty();
    let client = needs_client
        .then(|| kafka.metadata_client(false))
        .transpose()?;
    if let Some(client) = &client {
        create_acls(kafka, client, &plan.create_acls)?;
        done.acls_created = plan.create_acls.len();
    }
    if !plan.set_quotas.is_empty() {
        set_quotas(kafka, plan).map_err(|e| partial(&done, e))?;
        done.quotas_set = plan.set_quotas.len();
    }
    if let Some(client) = &client {
        let users: Vec<ScramUpsert<'_>> = plan
            .upsert_users
            .iter()
            .map(|u| ScramUpsert {
                user: &u.user,
                mechanism: u.mechanism,
                iterations: u.iterations,
                password: &u.password,
            })
            .collect();
        upsert_scram_users(kafka, client, &users).map_err(|e| partial(&done, e))?;
        done.users_set = users.len();
    }
    if !plan.set_configs.is_empty() {
        set_cluster_default_configs(kafka, &plan.set_configs).map_err(|e| {
            partial(
                &done,
                kafka.kafka_err("setting cluster-wide broker configs", e),
            )
        })?;
        done.configs_set = plan.set_configs.len();
    }
    Ok(done)
}

fn set_quotas(kafka: &KafkaOptions, plan: &EstatePlan) -> Result<()> {
    let alterations: Vec<QuotaAlteration<'_>> = plan
        .set_quotas
        .iter()
        .map(|q| QuotaAlteration {
            entity: &q.entity,
            ops: q
                .values
                .iter()
                .map(|(k, v)| (k.clone(), Some(*v)))
                .collect(),
        })
        .collect();
    let results = alter_client_quotas(kafka, &alterations, false)
        .map_err(|e| kafka.kafka_err("setting client quotas", e))?;
    let errors: Vec<String> = results.into_iter().flatten().collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(kafka.kafka_err("setting client quotas", errors.join("; ")))
    }
}

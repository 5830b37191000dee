//! Writing a cluster estate to a target: ACLs through librdkafka's
//! CreateAcls, SCRAM credentials through AlterUserScramCredentials (the
//! salt is made by librdkafka, the iterations are the snapshot's), quotas
//! through `quota_wire`.

// librdkafka calls the rdkafka crate does not wrap: each unsafe block
// says why it is sound (handles owned by RAII types, counts bounding reads).
#![allow(unsafe_code)]

use std::ffi::CString;

use rdkafka::bindings as rd;
use vault_format::estate::{AclEntry, resource_type};

use super::admin_call::{admin_request, item_error, result_slice};
use super::admin_ffi::cstr;
use super::options::KafkaOptions;
use crate::error::{Error, Result};

fn c(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Usage(format!("{what} {s:?} holds a NUL")))
}

fn restype(code: u8) -> Option<rd::rd_kafka_ResourceType_t> {
    use rd::rd_kafka_ResourceType_t as T;
    Some(match code {
        resource_type::TOPIC => T::RD_KAFKA_RESOURCE_TOPIC,
        resource_type::GROUP => T::RD_KAFKA_RESOURCE_GROUP,
        resource_type::CLUSTER => T::RD_KAFKA_RESOURCE_BROKER,
        resource_type::TRANSACTIONAL_ID => T::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
        _ => return None,
    })
}

fn pattern(code: u8) -> Option<rd::rd_kafka_ResourcePatternType_t> {
    use rd::rd_kafka_ResourcePatternType_t as P;
    Some(match code {
        3 => P::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
        4 => P::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
        _ => return None,
    })
}

fn operation(code: u8) -> Option<rd::rd_kafka_AclOperation_t> {
    use rd::rd_kafka_AclOperation_t as O;
    Some(match code {
        2 => O::RD_KAFKA_ACL_OPERATION_ALL,
        3 => O::RD_KAFKA_ACL_OPERATION_READ,
        4 => O::RD_KAFKA_ACL_OPERATION_WRITE,
        5 => O::RD_KAFKA_ACL_OPERATION_CREATE,
        6 => O::RD_KAFKA_ACL_OPERATION_DELETE,
        7 => O::RD_KAFKA_ACL_OPERATION_ALTER,
        8 => O::RD_KAFKA_ACL_OPERATION_DESCRIBE,
        9 => O::RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION,
        10 => O::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
        11 => O::RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS,
        12 => O::RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE,
        _ => return None,
    })
}

fn permission(code: u8) -> Option<rd::rd_kafka_AclPermissionType_t> {
    use rd::rd_kafka_AclPermissionType_t as P;
    Some(match code {
        2 => P::RD_KAFKA_ACL_PERMISSION_TYPE_DENY,
        3 => P::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
        _ => return None,
    })
}

/// Whether librdkafka can create `a` (it names no user or delegation-token
/// resources, and not every operation).
pub(crate) fn can_create(a: &AclEntry) -> bool {
    restype(a.resource_type).is_some()
        && pattern(a.pattern_type).is_some()
        && operation(a.operation).is_some()
        && permission(a.permission).is_some()
}

/// Creates `acls` on the cluster `client` talks to. Each must pass
/// [`can_create`]. Fails with every ACL the cluster refused.
pub(crate) fn create_acls(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
    acls: &[AclEntry],
) -> Result<()> {
    if acls.is_empty() {
        return Ok(());
    }
    let mut strings = Vec::with_capacity(acls.len());
    for a in acls {
        strings.push((
            c(&a.resource_name, "resource name")?,
            c(&a.principal, "principal")?,
            c(&a.host, "host")?,
        ));
    }
    // The bindings first, outside the request: one librdkafka refuses
    // fails the whole call before anything is sent, and the results line
    // up with `acls` one for one.
    let mut bindings = AclBindings(Vec::with_capacity(acls.len()));
    for (a, (name, principal, host)) in acls.iter().zip(&strings) {
        let (Some(t), Some(p), Some(o), Some(perm)) = (
            restype(a.resource_type),
            pattern(a.pattern_type),
            operation(a.operation),
            permission(a.permission),
        ) else {
            return Err(Error::Usage(format!(
                "the ACL on {:?} for {} has a code librdkafka cannot create",
                a.resource_name, a.principal
            )));
        };
        let mut errstr = [0 as std::ffi::c_char; 256];
        // SAFETY: the strings live for the call, which copies them; errstr
        // is a buffer of the length passed.
        let b = unsafe {
            rd::rd_kafka_AclBinding_new(
                t,
                name.as_ptr(),
                p,
                principal.as_ptr(),
                host.as_ptr(),
                o,
                perm,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if b.is_null() {
            // SAFETY: librdkafka wrote a NUL-terminated message.
            let why = unsafe { cstr(errstr.as_ptr()) };
            return Err(Error::Usage(format!(
                "the ACL on {:?}: {why}",
                a.resource_name
            )));
        }
        bindings.0.push(b);
    }
    let mut errors = Vec::new();
    // SAFETY: the bindings are live (freed by AclBindings' Drop); the call
    // copies them.
    let event = admin_request(
        opts,
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
        rd::RD_KAFKA_EVENT_CREATEACLS_RESULT,
        "CreateAcls",
        |rk, options, queue| unsafe {
            rd::rd_kafka_CreateAcls(
                rk,
                bindings.0.as_mut_ptr(),
                bindings.0.len(),
                options,
                queue,
            );
        },
    )
    .map_err(|(_, m)| opts.kafka_err("creating ACLs", m))?;
    // SAFETY: the results belong to the live event; the count bounds them.
    unsafe {
        let result = rd::rd_kafka_event_CreateAcls_result(event.0);
        let mut n = 0usize;
        for (i, &r) in result_slice(rd::rd_kafka_CreateAcls_result_acls(result, &mut n), n)
            .iter()
            .enumerate()
        {
            if let Some((_, msg)) = item_error(rd::rd_kafka_acl_result_error(r)) {
                let what = acls.get(i).map_or("?", |a| a.resource_name.as_str());
                errors.push(format!("ACL on {what}: {msg}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(opts.kafka_err("creating ACLs", errors.join("; ")))
    }
}

/// ACL bindings vault made, freed once.
struct AclBindings(Vec<*mut rd::rd_kafka_AclBinding_t>);

impl Drop for AclBindings {
    fn drop(&mut self) {
        // SAFETY: each was made by rd_kafka_AclBinding_new and is freed here only.
        unsafe { rd::rd_kafka_AclBinding_destroy_array(self.0.as_mut_ptr(), self.0.len()) }
    }
}

/// One SCRAM credential to set on the target.
pub(crate) struct ScramUpsert<'a> {
    pub user: &'a str,
    pub mechanism: u8,
    pub iterations: u32,
    pub password: &'a str,
}

/// Sets each credential (a random salt each). Fails with every user the
/// cluster refused.
pub(crate) fn upsert_scram_users(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
    users: &[ScramUpsert<'_>],
) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut names = Vec::with_capacity(users.len());
    for u in users {
        names.push(c(u.user, "user name")?);
    }
    // SAFETY: the alterations are made from live buffers and freed right
    // after the call, which copies them; a null salt asks librdkafka for a
    // random one.
    let event = admin_request(
        opts,
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
        rd::RD_KAFKA_EVENT_ALTERUSERSCRAMCREDENTIALS_RESULT,
        "AlterUserScramCredentials",
        |rk, options, queue| unsafe {
            let mut alterations: Vec<*mut rd::rd_kafka_UserScramCredentialAlteration_t> = users
                .iter()
                .zip(&names)
                .map(|(u, name)| {
                    let mech = if u.mechanism == 1 {
                        rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_256
                    } else {
                        rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512
                    };
                    rd::rd_kafka_UserScramCredentialUpsertion_new(
                        name.as_ptr(),
                        mech,
                        i32::try_from(u.iterations).unwrap_or(i32::MAX),
                        u.password.as_ptr(),
                        u.password.len(),
                        std::ptr::null(),
                        0,
                    )
                })
                .collect();
            rd::rd_kafka_AlterUserScramCredentials(
                rk,
                alterations.as_mut_ptr(),
                alterations.len(),
                options,
                queue,
            );
            rd::rd_kafka_UserScramCredentialAlteration_destroy_array(
                alterations.as_mut_ptr(),
                alterations.len(),
            );
        },
    )
    .map_err(|(_, m)| opts.kafka_err("setting SCRAM credentials", m))?;
    let mut errors = Vec::new();
    // SAFETY: the responses belong to the live event; the count bounds them.
    unsafe {
        let result = rd::rd_kafka_event_AlterUserScramCredentials_result(event.0);
        let mut n = 0usize;
        for &r in result_slice(
            rd::rd_kafka_AlterUserScramCredentials_result_responses(result, &mut n),
            n,
        ) {
            if let Some((_, msg)) =
                item_error(rd::rd_kafka_AlterUserScramCredentials_result_response_error(r))
            {
                errors.push(format!(
                    "user {}: {msg}",
                    cstr(rd::rd_kafka_AlterUserScramCredentials_result_response_user(
                        r
                    ))
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(opts.kafka_err("setting SCRAM credentials", errors.join("; ")))
    }
}

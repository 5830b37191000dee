//! Reading the cluster estate a snapshot records beside its topics: ACLs,
//! SCRAM users and dynamic broker configs through librdkafka (DescribeAcls,
//! DescribeUserScramCredentials, DescribeConfigs), client quotas through
//! vault's own DescribeClientQuotas request (`quota_wire`; librdkafka has
//! none).
//!
//! A part vault cannot read is recorded as "not read" with the reason the
//! cluster gave, never as empty: a restore must tell "no ACLs" from "ACLs
//! unknown".

// librdkafka calls the rdkafka crate does not wrap: each unsafe block
// says why it is sound (handles owned by RAII types, counts bounding reads).
#![allow(unsafe_code)]

use std::ffi::CString;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;
use vault_format::estate::{AclEntry, BrokerConfigs, ClusterEstate, Part, ScramUser};

use super::acl_wire::DescribedAcls;
use super::admin_call::{RdError, admin_request, item_error, result_slice};
use super::admin_ffi::cstr;
use super::options::KafkaOptions;

// librdkafka copies these two from the broker's answer without a range
// check; bindgen declares them as Rust enums, for which an unlisted value
// would be undefined behaviour. Read as plain integers instead.
#[allow(clashing_extern_declarations)]
unsafe extern "C" {
    #[link_name = "rd_kafka_ScramCredentialInfo_mechanism"]
    fn scram_mechanism_raw(info: *const rd::rd_kafka_ScramCredentialInfo_t) -> std::ffi::c_int;
    #[link_name = "rd_kafka_ConfigEntry_source"]
    fn config_source_raw(entry: *const rd::rd_kafka_ConfigEntry_t) -> std::ffi::c_int;
}

/// Reads every part of the estate. Never fails: a part that cannot be
/// read says why. `brokers` are the cluster's broker ids.
pub(crate) fn read_cluster_estate(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
    brokers: &[i32],
) -> ClusterEstate {
    let describe = may_describe_cluster(opts, client);
    let broker_configs = describe_broker_configs(opts, client, brokers);
    let acls = match super::acl_wire::describe_acls(opts) {
        // vault's own request: the cluster's answer, or its refusal.
        Ok(DescribedAcls::Read(acls)) => Part::Read(acls),
        Ok(DescribedAcls::Refused(code, msg)) => Part::NotRead(match code {
            54 => format!("the cluster has no authorizer, so it keeps no ACLs (Kafka: {msg})"),
            31 => format!(
                "not authorized: the principal vault connects as may not describe the cluster (Kafka: {msg})"
            ),
            _ => format!("DescribeAcls: Kafka error {code}: {msg}"),
        }),
        // Not PLAINTEXT: librdkafka's DescribeAcls, which reports a
        // refused request as an empty list, so vault asks only when it
        // knows the answer will be the cluster's ACLs: the principal may
        // DESCRIBE the cluster, and the brokers name an authorizer.
        Err(_) => match (&describe, &broker_configs) {
            (Err((code, msg)), _) => Part::NotRead(not_read_reason(*code, msg)),
            (Ok(()), Ok((_, Some(authorizer)))) if authorizer.is_empty() => Part::NotRead(
                "the cluster has no authorizer (authorizer.class.name is empty), so it keeps no ACLs".into(),
            ),
            (Ok(()), Ok((_, None))) => Part::NotRead(
                "could not tell whether the cluster has an authorizer: no broker reported \
                 authorizer.class.name"
                    .into(),
            ),
            // A broker refused its configs: there is an authorizer.
            (Ok(()), Ok(_) | Err((RDKafkaErrorCode::ClusterAuthorizationFailed, _))) => {
                part(describe_acls(opts, client))
            }
            (Ok(()), Err((code, msg))) => Part::NotRead(format!(
                "could not tell whether the cluster has an authorizer, from its broker configs ({})",
                not_read_reason(*code, msg)
            )),
        },
    };
    ClusterEstate {
        acls,
        quotas: match super::quota_wire::describe_client_quotas(opts) {
            Ok(q) => Part::Read(q),
            Err(why) => Part::NotRead(why),
        },
        scram_users: part(describe.and_then(|()| describe_scram_users(opts, client))),
        broker_configs: part(broker_configs.map(|(configs, _)| configs)),
    }
}

fn part<T>(r: Result<Vec<T>, RdError>) -> Part<T> {
    match r {
        Ok(v) => Part::Read(v),
        Err((code, msg)) => Part::NotRead(not_read_reason(code, &msg)),
    }
}

/// Why a part could not be read, in the operator's words.
fn not_read_reason(code: RDKafkaErrorCode, msg: &str) -> String {
    match code {
        RDKafkaErrorCode::SecurityDisabled => {
            format!("the cluster has no authorizer (Kafka: {msg})")
        }
        RDKafkaErrorCode::ClusterAuthorizationFailed => format!(
            "not authorized: the principal vault connects as may not describe the cluster (Kafka: {msg})"
        ),
        _ => format!("{code}: {msg}"),
    }
}

/// Every ACL binding of the cluster, sorted.
fn describe_acls(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
) -> Result<Vec<AclEntry>, RdError> {
    let mut errstr = [0 as std::ffi::c_char; 256];
    // SAFETY: the filter matches everything (null strings are "any"); it
    // is freed right after the call, which copies it.
    let event = admin_request(
        opts,
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
        rd::RD_KAFKA_EVENT_DESCRIBEACLS_RESULT,
        "DescribeAcls",
        |rk, options, queue| unsafe {
            let filter = rd::rd_kafka_AclBindingFilter_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_ANY,
                std::ptr::null(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_ANY,
                std::ptr::null(),
                std::ptr::null(),
                rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ANY,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            rd::rd_kafka_DescribeAcls(rk, filter, options, queue);
            rd::rd_kafka_AclBinding_destroy(filter);
        },
    )?;
    // SAFETY: everything read belongs to the live event and is copied out.
    let mut out: Vec<AclEntry> = unsafe {
        let result = rd::rd_kafka_event_DescribeAcls_result(event.0);
        let mut n = 0usize;
        let acls = result_slice(rd::rd_kafka_DescribeAcls_result_acls(result, &mut n), n);
        acls.iter()
            .map(|&a| AclEntry {
                resource_type: rd::rd_kafka_AclBinding_restype(a) as u8,
                resource_name: cstr(rd::rd_kafka_AclBinding_name(a)),
                pattern_type: rd::rd_kafka_AclBinding_resource_pattern_type(a) as u8,
                principal: cstr(rd::rd_kafka_AclBinding_principal(a)),
                host: cstr(rd::rd_kafka_AclBinding_host(a)),
                operation: rd::rd_kafka_AclBinding_operation(a) as u8,
                permission: rd::rd_kafka_AclBinding_permission_type(a) as u8,
            })
            .collect()
    };
    out.sort();
    Ok(out)
}

/// Whether the principal may DESCRIBE the cluster, from DescribeCluster's
/// authorized operations. DescribeUserScramCredentials needs it, and
/// librdkafka (2.12) frees a static string when that request fails as a
/// whole (rdkafka_admin.c, the response parser's request-level error), so
/// vault must not send it to be refused. A permission taken away between
/// the two requests still aborts the process: the snapshot fails loudly
/// and commits nothing.
fn may_describe_cluster(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
) -> Result<(), RdError> {
    // SAFETY: the options are live for the call; the error, if any, is ours.
    let event = admin_request(
        opts,
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER,
        rd::RD_KAFKA_EVENT_DESCRIBECLUSTER_RESULT,
        "DescribeCluster",
        |rk, options, queue| unsafe {
            let err = rd::rd_kafka_AdminOptions_set_include_authorized_operations(options, 1);
            if !err.is_null() {
                rd::rd_kafka_error_destroy(err);
            }
            rd::rd_kafka_DescribeCluster(rk, options, queue);
        },
    )?;
    // SAFETY: the array belongs to the live event; the count bounds it.
    let ops: Vec<rd::rd_kafka_AclOperation_t> = unsafe {
        let result = rd::rd_kafka_event_DescribeCluster_result(event.0);
        let mut n = 0usize;
        result_slice(
            rd::rd_kafka_DescribeCluster_result_authorized_operations(result, &mut n),
            n,
        )
        .to_vec()
    };
    use rd::rd_kafka_AclOperation_t::{
        RD_KAFKA_ACL_OPERATION_ALL as ALL, RD_KAFKA_ACL_OPERATION_DESCRIBE as DESCRIBE,
    };
    if ops.is_empty() {
        // Kafka sends the operations a principal may do, or none when it
        // may do nothing at all on the cluster.
        return Err((
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            "DescribeCluster lists no operation this principal may do on the cluster".into(),
        ));
    }
    if ops.iter().any(|&o| o == DESCRIBE || o == ALL) {
        Ok(())
    } else {
        Err((
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            "DESCRIBE on the cluster is not among the operations DescribeCluster allows this principal".into(),
        ))
    }
}

/// Every SCRAM user and its mechanisms, sorted by name.
fn describe_scram_users(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
) -> Result<Vec<ScramUser>, RdError> {
    // SAFETY: no user names: describe them all.
    let event = admin_request(
        opts,
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEUSERSCRAMCREDENTIALS,
        rd::RD_KAFKA_EVENT_DESCRIBEUSERSCRAMCREDENTIALS_RESULT,
        "DescribeUserScramCredentials",
        |rk, options, queue| unsafe {
            rd::rd_kafka_DescribeUserScramCredentials(rk, std::ptr::null_mut(), 0, options, queue);
        },
    )?;
    let mut out = Vec::new();
    // SAFETY: everything read belongs to the live event and is copied out;
    // counts bound every read.
    unsafe {
        let result = rd::rd_kafka_event_DescribeUserScramCredentials_result(event.0);
        let mut n = 0usize;
        let descs = result_slice(
            rd::rd_kafka_DescribeUserScramCredentials_result_descriptions(result, &mut n),
            n,
        );
        for &d in descs {
            let name = cstr(rd::rd_kafka_UserScramCredentialsDescription_user(d));
            if let Some((code, msg)) =
                item_error(rd::rd_kafka_UserScramCredentialsDescription_error(d))
            {
                // Describing every user answers with the users there are;
                // an error on one is the cluster refusing the whole part.
                return Err((code, format!("user {name}: {msg}")));
            }
            let count = rd::rd_kafka_UserScramCredentialsDescription_scramcredentialinfo_count(d);
            let credentials = (0..count)
                .map(|i| {
                    let info =
                        rd::rd_kafka_UserScramCredentialsDescription_scramcredentialinfo(d, i);
                    (
                        u8::try_from(scram_mechanism_raw(info)).unwrap_or(0),
                        u32::try_from(rd::rd_kafka_ScramCredentialInfo_iterations(info))
                            .unwrap_or(0),
                    )
                })
                .collect();
            out.push(ScramUser { name, credentials });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The dynamic configs of the cluster default and of every broker.
/// librdkafka describes one broker per request and has no resource for the
/// cluster default (broker ""), so the default comes from each broker's
/// answer: entries, and their synonyms, whose source is the dynamic
/// default. Sensitive values (passwords) come back without their value.
fn describe_broker_configs(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
    brokers: &[i32],
) -> Result<(Vec<BrokerConfigs>, Option<String>), RdError> {
    let mut ids = brokers.to_vec();
    ids.sort_unstable();
    let mut defaults = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    let mut authorizer: Option<String> = None;
    for id in ids {
        let (own, default, class) = describe_one_broker(opts, client, id)?;
        defaults.extend(default);
        // A broker that names one wins over one that says none.
        if let Some(class) = class
            && authorizer.as_deref().is_none_or(str::is_empty)
        {
            authorizer = Some(class);
        }
        out.push(BrokerConfigs {
            broker: Some(u32::try_from(id).map_err(|_| {
                (
                    RDKafkaErrorCode::Fail,
                    format!("broker id {id} is negative"),
                )
            })?),
            entries: own,
        });
    }
    out.insert(
        0,
        BrokerConfigs {
            broker: None,
            entries: defaults.into_iter().collect(),
        },
    );
    Ok((out, authorizer))
}

type ConfigEntries = Vec<(String, Option<String>)>;

/// One broker's own dynamic configs, the cluster defaults it reports, and
/// its `authorizer.class.name` (empty: none; `None`: not reported).
fn describe_one_broker(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
    id: i32,
) -> Result<(ConfigEntries, ConfigEntries, Option<String>), RdError> {
    let name = CString::new(id.to_string()).expect("digits hold no NUL");
    // SAFETY: the resource is freed right after the call, which copies it.
    let event = admin_request(
        opts,
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
        rd::RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
        "DescribeConfigs",
        |rk, options, queue| unsafe {
            let mut res = [rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER,
                name.as_ptr(),
            )];
            rd::rd_kafka_DescribeConfigs(rk, res.as_mut_ptr(), res.len(), options, queue);
            rd::rd_kafka_ConfigResource_destroy_array(res.as_mut_ptr(), res.len());
        },
    )?;
    // ConfigSource: DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG.
    const OWN: std::ffi::c_int = 2;
    const DEFAULT: std::ffi::c_int = 3;
    let mut own = Vec::new();
    let mut default = Vec::new();
    let mut authorizer: Option<String> = None;
    // SAFETY: everything read belongs to the live event and is copied out;
    // counts bound every read.
    unsafe {
        let entry = |e: *const rd::rd_kafka_ConfigEntry_t| {
            let value = rd::rd_kafka_ConfigEntry_value(e);
            let sensitive = rd::rd_kafka_ConfigEntry_is_sensitive(e) != 0;
            (
                cstr(rd::rd_kafka_ConfigEntry_name(e)),
                (!sensitive && !value.is_null()).then(|| cstr(value)),
            )
        };
        let result = rd::rd_kafka_event_DescribeConfigs_result(event.0);
        let mut n = 0usize;
        let resources = result_slice(
            rd::rd_kafka_DescribeConfigs_result_resources(result, &mut n),
            n,
        );
        for &r in resources {
            let err = rd::rd_kafka_ConfigResource_error(r);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err((
                    err.into(),
                    cstr(rd::rd_kafka_ConfigResource_error_string(r)),
                ));
            }
            let mut cn = 0usize;
            for &e in result_slice(rd::rd_kafka_ConfigResource_configs(r, &mut cn), cn) {
                let source = config_source_raw(e);
                let (name, value) = entry(e);
                if name == "authorizer.class.name" {
                    authorizer = Some(value.clone().unwrap_or_default().trim().to_string());
                }
                if source == OWN {
                    own.push(entry(e));
                }
                let mut sn = 0usize;
                let synonyms = result_slice(rd::rd_kafka_ConfigEntry_synonyms(e, &mut sn), sn);
                if source == DEFAULT {
                    default.push(entry(e));
                }
                for &syn in synonyms {
                    if config_source_raw(syn) == DEFAULT {
                        default.push(entry(syn));
                    }
                }
            }
        }
    }
    own.sort();
    own.dedup();
    default.sort();
    default.dedup();
    Ok((own, default, authorizer))
}

/// The estate of the cluster `opts` reaches, on a client of its own (a
/// restore reads its target's before it changes anything).
pub(crate) fn read_estate_of(opts: &KafkaOptions) -> crate::error::Result<ClusterEstate> {
    let client = opts.metadata_client(false)?;
    let md = opts.fetch_metadata(&client)?;
    let brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    Ok(read_cluster_estate(opts, &client, &brokers))
}

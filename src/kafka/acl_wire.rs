//! Every ACL of the cluster through vault's own DescribeAcls (API key 29,
//! version 1; `super::wire`). librdkafka's DescribeAcls drops the answer's
//! error code, so a refusal (not authorized, no authorizer) reads as an
//! empty list, and it turns resource types and operations it does not
//! name (users, delegation tokens) into "unknown". Here the error is the
//! cluster's and every code is kept as sent.

use vault_format::estate::AclEntry;

use super::options::KafkaOptions;
use super::wire::{Cursor, round_trip};

const DESCRIBE_ACLS: i16 = 29;
/// The filters' ANY, for resource type, pattern type, operation and permission.
const ANY: u8 = 1;
const NULL_STRING: [u8; 2] = (-1i16).to_be_bytes();

/// Why DescribeAcls was refused, or the cluster's ACLs, sorted.
pub(crate) enum DescribedAcls {
    Read(Vec<AclEntry>),
    /// Kafka's error code and message.
    Refused(i16, String),
}

pub(crate) fn describe_acls(opts: &KafkaOptions) -> Result<DescribedAcls, String> {
    let mut body = vec![ANY];
    body.extend_from_slice(&NULL_STRING); // resource name
    body.push(ANY); // pattern type
    body.extend_from_slice(&NULL_STRING); // principal
    body.extend_from_slice(&NULL_STRING); // host
    body.push(ANY); // operation
    body.push(ANY); // permission
    let resp = round_trip(opts, DESCRIBE_ACLS, 1, "ACL requests", &body)?;
    let mut r = Cursor::new(&resp);
    let _throttle = r.i32()?;
    let code = r.i16()?;
    let message = r.nullable_string()?.unwrap_or_default();
    if code != 0 {
        return Ok(DescribedAcls::Refused(code, message));
    }
    let n = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let resource_type = r.i8()?.cast_unsigned();
        let resource_name = r.string()?;
        let pattern_type = r.i8()?.cast_unsigned();
        let m = r.i32()?;
        for _ in 0..m.max(0) {
            out.push(AclEntry {
                resource_type,
                resource_name: resource_name.clone(),
                pattern_type,
                principal: r.string()?,
                host: r.string()?,
                operation: r.i8()?.cast_unsigned(),
                permission: r.i8()?.cast_unsigned(),
            });
        }
    }
    out.sort();
    Ok(DescribedAcls::Read(out))
}

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
#[derive(Debug, PartialEq, Eq)]
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
    parse(&resp)
}

/// A DescribeAcls v1 response body (after the correlation id).
fn parse(resp: &[u8]) -> Result<DescribedAcls, String> {
    let mut r = Cursor::new(resp);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn string(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(&i16::try_from(s.len()).unwrap().to_be_bytes());
        b.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn an_answer_keeps_every_code_and_a_refusal_is_not_a_list() {
        let mut b = Vec::new();
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        b.extend_from_slice(&0i16.to_be_bytes()); // no error
        b.extend_from_slice(&NULL_STRING);
        b.extend_from_slice(&1i32.to_be_bytes()); // one resource
        b.push(7); // USER: librdkafka would call it unknown
        string(&mut b, "alice");
        b.push(3); // literal
        b.extend_from_slice(&1i32.to_be_bytes());
        string(&mut b, "User:ops");
        string(&mut b, "*");
        b.push(13); // CREATE_TOKENS
        b.push(3);
        let DescribedAcls::Read(acls) = parse(&b).unwrap() else {
            panic!("read")
        };
        assert_eq!(
            acls,
            vec![AclEntry {
                resource_type: 7,
                resource_name: "alice".into(),
                pattern_type: 3,
                principal: "User:ops".into(),
                host: "*".into(),
                operation: 13,
                permission: 3,
            }]
        );
        // Every shorter answer is an error, never a shorter list.
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err(), "cut at {n}");
        }

        let mut refused = Vec::new();
        refused.extend_from_slice(&0i32.to_be_bytes());
        refused.extend_from_slice(&31i16.to_be_bytes());
        string(&mut refused, "Cluster authorization failed.");
        refused.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(
            parse(&refused).unwrap(),
            DescribedAcls::Refused(31, "Cluster authorization failed.".into())
        );
    }
}

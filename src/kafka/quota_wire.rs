//! Client quotas over Kafka's own protocol: DescribeClientQuotas (API key
//! 48) and AlterClientQuotas (49), version 0 of each. librdkafka has
//! neither, so vault sends them itself on one TCP connection to a
//! bootstrap broker, which answers from its metadata (and forwards an
//! alter to the controller).
//!
//! The connection is plain TCP (`super::wire`): a cluster reached over TLS
//! or SASL gets "not read, and why" rather than a guess.

use vault_format::estate::{QuotaEntry, QuotaValue};

use super::options::KafkaOptions;
use super::wire::{Cursor, error_reason, len_i32, put_i32, put_string, round_trip};

const DESCRIBE_CLIENT_QUOTAS: i16 = 48;
const ALTER_CLIENT_QUOTAS: i16 = 49;

/// Every client quota of the cluster (a filter that matches all entities).
pub(crate) fn describe_client_quotas(opts: &KafkaOptions) -> Result<Vec<QuotaEntry>, String> {
    let mut body = Vec::new();
    put_i32(&mut body, 0); // no filter components
    body.push(0); // strict = false: every entity
    let resp = round_trip(
        opts,
        DESCRIBE_CLIENT_QUOTAS,
        0,
        "client quota requests",
        &body,
    )?;
    let mut r = Cursor::new(&resp);
    let _throttle = r.i32()?;
    let code = r.i16()?;
    let message = r.nullable_string()?;
    if code != 0 {
        return Err(error_reason(
            "DescribeClientQuotas",
            code,
            message.as_deref(),
        ));
    }
    let n = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let ne = r.i32()?;
        let mut entity = Vec::new();
        for _ in 0..ne.max(0) {
            let t = r.string()?;
            let name = r.nullable_string()?;
            entity.push((t, name));
        }
        entity.sort_by_key(|(t, _)| entity_order(t));
        let nv = r.i32()?;
        let mut values = Vec::new();
        for _ in 0..nv.max(0) {
            let k = r.string()?;
            let v = f64::from_bits(r.u64()?);
            values.push((k, QuotaValue(v)));
        }
        values.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(QuotaEntry { entity, values });
    }
    out.sort_by(|a, b| a.entity.cmp(&b.entity));
    Ok(out)
}

/// One entity's quota changes: set each `(key, Some(value))`, remove each
/// `(key, None)`.
pub(crate) struct QuotaAlteration<'a> {
    pub entity: &'a [(String, Option<String>)],
    pub ops: Vec<(String, Option<f64>)>,
}

/// Applies `alterations`; returns each entity's error, `None` for success.
pub(crate) fn alter_client_quotas(
    opts: &KafkaOptions,
    alterations: &[QuotaAlteration<'_>],
    validate_only: bool,
) -> Result<Vec<Option<String>>, String> {
    let mut body = Vec::new();
    put_i32(&mut body, len_i32(alterations.len())?);
    for a in alterations {
        put_entity(&mut body, a.entity)?;
        put_i32(&mut body, len_i32(a.ops.len())?);
        for (k, v) in &a.ops {
            put_string(&mut body, k)?;
            body.extend_from_slice(&v.unwrap_or(0.0).to_bits().to_be_bytes());
            body.push(u8::from(v.is_none()));
        }
    }
    body.push(u8::from(validate_only));
    let resp = round_trip(opts, ALTER_CLIENT_QUOTAS, 0, "client quota requests", &body)?;
    let mut r = Cursor::new(&resp);
    let _throttle = r.i32()?;
    let n = r.i32()?;
    let mut out = Vec::new();
    // Kafka answers per entity, in an order of its own: name each.
    for _ in 0..n.max(0) {
        let code = r.i16()?;
        let message = r.nullable_string()?;
        let ne = r.i32()?;
        let mut entity = Vec::new();
        for _ in 0..ne.max(0) {
            let t = r.string()?;
            let name = r.nullable_string()?;
            entity.push(format!("{t}={}", name.as_deref().unwrap_or("<default>")));
        }
        out.push((code != 0).then(|| {
            format!(
                "{}: {}",
                entity.join(","),
                error_reason("AlterClientQuotas", code, message.as_deref())
            )
        }));
    }
    Ok(out)
}

/// user, client-id, ip: the order Kafka's tools print entities in.
fn entity_order(t: &str) -> (u8, String) {
    let rank = match t {
        "user" => 0,
        "client-id" => 1,
        "ip" => 2,
        _ => 3,
    };
    (rank, t.to_string())
}

fn put_entity(b: &mut Vec<u8>, entity: &[(String, Option<String>)]) -> Result<(), String> {
    put_i32(b, len_i32(entity.len())?);
    for (t, name) in entity {
        put_string(b, t)?;
        match name {
            Some(n) => put_string(b, n)?,
            None => b.extend_from_slice(&(-1i16).to_be_bytes()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_encodes_a_default_as_a_null_name() {
        let mut b = Vec::new();
        put_entity(&mut b, &[("user".into(), None)]).unwrap();
        assert_eq!(b, [0, 0, 0, 1, 0, 4, b'u', b's', b'e', b'r', 0xff, 0xff]);
    }
}

//! Client quotas over Kafka's own protocol: DescribeClientQuotas (API key
//! 48) and AlterClientQuotas (49), version 0 of each. librdkafka has
//! neither, so vault sends them itself on one TCP connection to a
//! bootstrap broker, which answers from its metadata (and forwards an
//! alter to the controller).
//!
//! The connection is plain TCP: a cluster reached over TLS or SASL gets
//! "not read, and why" rather than a guess.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use vault_format::estate::{QuotaEntry, QuotaValue};

use super::options::KafkaOptions;

const DESCRIBE_CLIENT_QUOTAS: i16 = 48;
const ALTER_CLIENT_QUOTAS: i16 = 49;
/// The largest answer vault accepts (a cluster with very many quotas).
const MAX_RESPONSE: usize = 256 << 20;

/// Every client quota of the cluster (a filter that matches all entities).
pub(crate) fn describe_client_quotas(opts: &KafkaOptions) -> Result<Vec<QuotaEntry>, String> {
    let mut body = Vec::new();
    put_i32(&mut body, 0); // no filter components
    body.push(0); // strict = false: every entity
    let resp = round_trip(opts, DESCRIBE_CLIENT_QUOTAS, &body)?;
    let mut r = Cursor { b: &resp, at: 0 };
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
    let resp = round_trip(opts, ALTER_CLIENT_QUOTAS, &body)?;
    let mut r = Cursor { b: &resp, at: 0 };
    let _throttle = r.i32()?;
    let n = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let code = r.i16()?;
        let message = r.nullable_string()?;
        let ne = r.i32()?;
        for _ in 0..ne.max(0) {
            r.string()?;
            r.nullable_string()?;
        }
        out.push((code != 0).then(|| error_reason("AlterClientQuotas", code, message.as_deref())));
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

fn error_reason(what: &str, code: i16, message: Option<&str>) -> String {
    let name = match code {
        31 => {
            "not authorized: the principal vault connects as may not describe or alter the cluster's configs"
        }
        35 => "the cluster does not support this request (Kafka before 2.6?)",
        42 => "invalid request",
        _ => "Kafka error",
    };
    match message {
        Some(m) if !m.is_empty() => format!("{what}: {name} (error {code}: {m})"),
        _ => format!("{what}: {name} (error {code})"),
    }
}

/// Sends one request to the first bootstrap broker that accepts a
/// connection and returns the response body (after its correlation id).
fn round_trip(opts: &KafkaOptions, api_key: i16, body: &[u8]) -> Result<Vec<u8>, String> {
    let protocol = opts
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k == "security.protocol")
        .map_or("plaintext".to_string(), |(_, v)| v.to_ascii_lowercase());
    if protocol != "plaintext" {
        return Err(format!(
            "vault sends client quota requests itself (librdkafka has none) and speaks only \
             PLAINTEXT listeners for them; this connection uses {}",
            protocol.to_ascii_uppercase()
        ));
    }
    let mut last = String::from("no bootstrap server given");
    for server in opts
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match exchange(opts, server, api_key, body) {
            Ok(b) => return Ok(b),
            Err(e) => last = format!("{server}: {e}"),
        }
    }
    Err(last)
}

fn exchange(
    opts: &KafkaOptions,
    server: &str,
    api_key: i16,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let addr = server
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s =
        TcpStream::connect_timeout(&addr, opts.request_timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(opts.request_timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(opts.request_timeout))
        .map_err(|e| e.to_string())?;
    let correlation = 1i32;
    let mut req = Vec::with_capacity(body.len() + 32);
    req.extend_from_slice(&api_key.to_be_bytes());
    req.extend_from_slice(&0i16.to_be_bytes()); // version 0
    put_i32(&mut req, correlation);
    put_string(&mut req, "kvault")?;
    req.extend_from_slice(body);
    let mut framed = Vec::with_capacity(req.len() + 4);
    put_i32(&mut framed, len_i32(req.len())?);
    framed.extend_from_slice(&req);
    s.write_all(&framed).map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = usize::try_from(i32::from_be_bytes(len)).map_err(|_| "negative response size")?;
    if !(4..=MAX_RESPONSE).contains(&len) {
        return Err(format!("response of {len} bytes"));
    }
    let mut resp = vec![0u8; len];
    s.read_exact(&mut resp).map_err(|e| e.to_string())?;
    if resp[..4] != correlation.to_be_bytes() {
        return Err("response to another request".into());
    }
    resp.drain(..4);
    Ok(resp)
}

fn len_i32(n: usize) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("{n} items do not fit a Kafka request"))
}

fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_string(b: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let n = i16::try_from(s.len()).map_err(|_| format!("{s:?} is too long for Kafka"))?;
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(s.as_bytes());
    Ok(())
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

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or("the broker's answer is cut short")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n.unsigned_abs() as usize)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| "a name that is not UTF-8".to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        self.nullable_string()?
            .ok_or_else(|| "a null where Kafka sends a string".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_short_answer_is_an_error_not_a_panic() {
        let mut b = Vec::new();
        put_i32(&mut b, 0);
        b.extend_from_slice(&0i16.to_be_bytes());
        let mut r = Cursor { b: &b, at: 0 };
        assert_eq!(r.i32().unwrap(), 0);
        assert_eq!(r.i16().unwrap(), 0);
        assert!(r.nullable_string().is_err());
    }

    #[test]
    fn an_entity_encodes_a_default_as_a_null_name() {
        let mut b = Vec::new();
        put_entity(&mut b, &[("user".into(), None)]).unwrap();
        assert_eq!(b, [0, 0, 0, 1, 0, 4, b'u', b's', b'e', b'r', 0xff, 0xff]);
    }
}

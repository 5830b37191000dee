//! Requests vault sends to Kafka itself, where librdkafka has no call:
//! one request on one TCP connection to a bootstrap broker, the request
//! header of version 1 and the response header of version 0 (the
//! non-flexible versions), big-endian as Kafka's protocol is. Plain TCP
//! only: on a TLS or SASL connection the caller gets an error that says so.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use super::options::KafkaOptions;

/// The largest answer vault accepts (a cluster with very many quotas).
const MAX_RESPONSE: usize = 256 << 20;

pub(super) fn error_reason(what: &str, code: i16, message: Option<&str>) -> String {
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

/// Whether vault can send its own requests on the connection `opts`
/// describe: `Err` says why not (a TLS or SASL connection).
pub(crate) fn sends_own_requests(opts: &KafkaOptions) -> Result<(), String> {
    let protocol = opts
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k == "security.protocol")
        .map_or("plaintext".to_string(), |(_, v)| v.to_ascii_lowercase());
    if protocol == "plaintext" {
        Ok(())
    } else {
        Err(format!(
            "vault sends this request itself (librdkafka has none) and speaks only PLAINTEXT \
             listeners for that; this connection uses {}",
            protocol.to_ascii_uppercase()
        ))
    }
}

/// Sends one request to the first bootstrap broker that accepts a
/// connection and returns the response body (after its correlation id).
pub(super) fn round_trip(
    opts: &KafkaOptions,
    api_key: i16,
    api_version: i16,
    what: &str,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    sends_own_requests(opts).map_err(|why| why.replace("this request", what))?;
    let mut last = String::from("no bootstrap server given");
    for server in opts
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match exchange(opts, server, api_key, api_version, body) {
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
    api_version: i16,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    // Every address the name resolves to (localhost may give ::1 first).
    let mut last = String::from("no address");
    let mut connected = None;
    for addr in server.to_socket_addrs().map_err(|e| e.to_string())? {
        match TcpStream::connect_timeout(&addr, opts.request_timeout) {
            Ok(s) => {
                connected = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let mut s = connected.ok_or(last)?;
    s.set_read_timeout(Some(opts.request_timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(opts.request_timeout))
        .map_err(|e| e.to_string())?;
    let correlation = 1i32;
    let mut req = Vec::with_capacity(body.len() + 32);
    req.extend_from_slice(&api_key.to_be_bytes());
    req.extend_from_slice(&api_version.to_be_bytes());
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

pub(super) fn len_i32(n: usize) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("{n} items do not fit a Kafka request"))
}

pub(super) fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub(super) fn put_string(b: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let n = i16::try_from(s.len()).map_err(|_| format!("{s:?} is too long for Kafka"))?;
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(s.as_bytes());
    Ok(())
}

pub(super) struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or("the broker's answer is cut short")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    pub(super) fn i8(&mut self) -> Result<i8, String> {
        Ok(i8::from_be_bytes(self.take(1)?.try_into().expect("1 byte")))
    }
    pub(super) fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub(super) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub(super) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub(super) fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n.unsigned_abs() as usize)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| "a name that is not UTF-8".to_string())
    }
    pub(super) fn string(&mut self) -> Result<String, String> {
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
        let mut r = Cursor::new(&b);
        assert_eq!(r.i32().unwrap(), 0);
        assert_eq!(r.i16().unwrap(), 0);
        assert!(r.nullable_string().is_err());
    }
}

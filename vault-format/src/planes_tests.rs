use super::*;
use crate::record::TimestampType;
use crate::record::tests::owned_record;
use crate::streams::tests::rows;
use proptest::prelude::*;

/// The record streams' sample (every field kind, nulls and empties,
/// extreme timestamps, an external value), and a value of 300 bytes, whose
/// length takes two varint bytes.
fn sample() -> Vec<Record<'static>> {
    let mut records = crate::streams::tests::sample();
    records.push(Record {
        timestamp: 0,
        timestamp_type: TimestampType::CreateTime,
        key: None,
        value: RecordValue::Inline(&[b'v'; 300]),
        headers: vec![],
    });
    records
}

#[test]
fn join_rebuilds_the_framing() {
    let rows = rows(&sample());
    let mut p = RecordPlanes::default();
    split(&rows, &mut p).unwrap();
    assert_eq!(p.records, 5);
    assert_eq!(p.keys, b"user-1k");
    assert_eq!(p.headers, b"content-typeapplication/jsontrace");
    // 300 takes two varint bytes: the second goes to the continuation plane.
    assert_eq!(p.value_len.first, [7, 0, 0x80 | (300u16 & 0x7f) as u8]);
    assert_eq!(p.value_len.more, [(300u16 >> 7) as u8]);
    assert_eq!(join(&p.to_bytes(), rows.len()).unwrap(), rows);
    // An empty chunk has empty planes.
    split(&[], &mut p).unwrap();
    assert_eq!(join(&p.to_bytes(), 0).unwrap(), Vec::<u8>::new());
}

#[test]
fn refuses_what_does_not_add_up() {
    let rows = rows(&sample());
    let mut p = RecordPlanes::default();
    split(&rows, &mut p).unwrap();
    let e = p.to_bytes();
    assert!(join(&e, rows.len() + 1).is_err());
    assert!(join(&e, rows.len() - 1).is_err());
    assert!(join(&e[..e.len() - 1], rows.len()).is_err());
    let mut extra = e.clone();
    extra.push(0);
    assert!(join(&extra, rows.len()).is_err());
    assert!(split(b"\x05junk", &mut p).is_err());
    // A record count that the attributes plane does not hold.
    let mut more_records = e.clone();
    more_records[0] += 1;
    assert!(join(&more_records, rows.len()).is_err());
    // A huge record count is refused before anything is allocated.
    let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    huge.extend_from_slice(&e[1..]);
    assert!(join(&huge, rows.len()).is_err());
}

#[test]
fn keys_are_front_coded_against_the_previous_key() {
    let rec = |key: Option<&'static [u8]>| Record {
        timestamp: 0,
        timestamp_type: TimestampType::CreateTime,
        key,
        value: RecordValue::Null,
        headers: vec![],
    };
    let framed = rows(&[
        rec(Some(b"user-1")),
        rec(Some(b"user-12")),
        rec(None),
        rec(Some(b"user-1")),
        rec(Some(b"")),
        rec(Some(b"order-9")),
    ]);
    let mut p = RecordPlanes::default();
    split(&framed, &mut p).unwrap();
    // A null key is skipped: the fourth key is coded against the second.
    assert_eq!(p.key_prefix.first, [0, 6, 6, 0, 0]);
    assert_eq!(p.keys, b"user-12order-9");
    assert_eq!(join(&p.to_bytes(), framed.len()).unwrap(), framed);

    // A shorter shared prefix than the longest would decode to the same
    // records: refused, so every chunk has one encoding.
    let mut q = RecordPlanes::default();
    split(&framed[..], &mut q).unwrap();
    q.key_prefix.first[1] = 5;
    q.keys = b"user-112order-9".to_vec();
    assert!(join(&q.to_bytes(), framed.len()).is_err());
    // A prefix longer than the previous key, or than the key itself.
    let mut q = RecordPlanes::default();
    split(&framed[..], &mut q).unwrap();
    q.key_prefix.first[0] = 1;
    assert!(join(&q.to_bytes(), framed.len()).is_err());
    let mut q = RecordPlanes::default();
    split(&framed[..], &mut q).unwrap();
    q.key_prefix.first[2] = 7;
    assert!(join(&q.to_bytes(), framed.len()).is_err());
}

#[test]
fn a_recycled_header_list_keeps_its_buffer() {
    let mut v = Vec::with_capacity(8);
    v.push(RecordHeader {
        key: b"k",
        value: None,
    });
    let cap = v.capacity();
    let r: Vec<RecordHeader<'static>> = recycle(v);
    assert!(r.is_empty());
    assert_eq!(
        r.capacity(),
        cap,
        "join would allocate a header list per record"
    );
}

#[test]
fn refuses_a_varint_that_is_not_minimal() {
    // One record, no key, inline value of length 1 written as `0x81 0x00`.
    let mut p = RecordPlanes::default();
    let one = Record {
        timestamp: 0,
        timestamp_type: TimestampType::CreateTime,
        key: None,
        value: RecordValue::Inline(b"x"),
        headers: vec![],
    };
    let framed = rows(std::slice::from_ref(&one));
    split(&framed, &mut p).unwrap();
    assert_eq!(join(&p.to_bytes(), framed.len()).unwrap(), framed);
    p.value_len.first = vec![0x81];
    p.value_len.more = vec![0x00];
    assert!(join(&p.to_bytes(), framed.len()).is_err());
}

/// The layout, byte for byte (docs/format.md § Record planes).
#[test]
fn golden_vector() {
    let r = Record {
        timestamp: 3,
        timestamp_type: TimestampType::CreateTime,
        key: Some(b"k"),
        value: RecordValue::Inline(b"vv"),
        headers: vec![RecordHeader {
            key: b"h",
            value: Some(b"x"),
        }],
    };
    let r2 = Record {
        timestamp: 2,
        value: RecordValue::Inline(&[b'w'; 130]),
        ..r.clone()
    };
    let rows = rows(&[r, r2]);
    let mut p = RecordPlanes::default();
    split(&rows, &mut p).unwrap();
    let mut expected = String::from(
        // records 2; lengths of attrs, ts, ts+, key, key+, key prefix,
        // key prefix+, value, value+, external, header count, header
        // count+, header lengths, header lengths+, keys, values (0x84 0x01
        // = 132). The second key shares its one byte with the first, so
        // the keys part holds one `k`.
        "02 02 02 00 02 00 02 00 02 01 00 02 00 04 00 01 8401\
         0505 0601 0202 0001 0282 01 0101 01020102 6b 7676",
    );
    expected.push_str(&"77".repeat(130));
    expected.push_str("68786878");
    assert_eq!(hex(&p.to_bytes()), expected.replace(' ', ""));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

proptest! {
    #[test]
    fn planes_round_trip(recs in proptest::collection::vec(owned_record(), 0..40)) {
        let mut framed = Vec::new();
        for r in &recs {
            r.as_record().encode_into(&mut framed);
        }
        let mut p = RecordPlanes::default();
        split(&framed, &mut p).unwrap();
        let encoded = p.to_bytes();
        prop_assert_eq!(join(&encoded, framed.len()).unwrap(), framed);
    }

    #[test]
    fn joining_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), len in 0usize..500) {
        let _ = join(&bytes, len);
    }
}

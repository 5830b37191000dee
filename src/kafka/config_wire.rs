//! The cluster-wide default broker configs, set with Kafka's own
//! IncrementalAlterConfigs (API key 44, version 0) on the broker resource
//! named "" (`super::wire`): librdkafka makes no config resource with an
//! empty name.

use super::options::KafkaOptions;
use super::wire::{Cursor, error_reason, len_i32, put_i32, put_string, round_trip};

const INCREMENTAL_ALTER_CONFIGS: i16 = 44;
/// ConfigResource type BROKER.
const BROKER: u8 = 4;
/// AlterConfigOp SET.
const SET: u8 = 0;

/// Sets each `(name, value)` as a cluster-wide default broker config.
pub(crate) fn set_cluster_default_configs(
    opts: &KafkaOptions,
    configs: &[(String, String)],
) -> Result<(), String> {
    let mut body = Vec::new();
    put_i32(&mut body, 1);
    body.push(BROKER);
    put_string(&mut body, "")?;
    put_i32(&mut body, len_i32(configs.len())?);
    for (name, value) in configs {
        put_string(&mut body, name)?;
        body.push(SET);
        put_string(&mut body, value)?;
    }
    body.push(0); // validate_only = false
    let resp = round_trip(
        opts,
        INCREMENTAL_ALTER_CONFIGS,
        0,
        "cluster-wide config changes",
        &body,
    )?;
    let mut r = Cursor::new(&resp);
    let _throttle = r.i32()?;
    let n = r.i32()?;
    let mut errors = Vec::new();
    for _ in 0..n.max(0) {
        let code = r.i16()?;
        let message = r.nullable_string()?;
        let _resource_type = r.i8()?;
        let _name = r.string()?;
        if code != 0 {
            errors.push(error_reason(
                "IncrementalAlterConfigs",
                code,
                message.as_deref(),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

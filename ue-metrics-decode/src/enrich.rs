//! What an agent adds to the requests it passes on.

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{any_value, AnyValue, KeyValue};
use crate::proto::resource::v1::Resource;
use crate::record::Record;
use prost::encoding::{decode_varint, encode_key, encode_varint, WireType};
use prost::Message as _;

/// The resource attribute [`add_process_pid`] sets (OpenTelemetry semantic conventions).
pub const PROCESS_PID: &str = "process.pid";

/// Adds `process.pid = pid` (the writer's pid from the sample) to every resource of `request`
/// that has no `process.pid`, so that two processes of one app (same `service.name`, often no
/// `service.instance.id`) stay apart downstream. Returns how many resources were changed.
pub fn add_process_pid(request: &mut ExportMetricsServiceRequest, pid: u32) -> usize {
    let mut changed = 0;
    for rm in &mut request.resource_metrics {
        let resource = rm.resource.get_or_insert_with(Resource::default);
        if has_pid(resource) {
            continue;
        }
        resource.attributes.push(pid_attribute(pid));
        changed += 1;
    }
    changed
}

fn has_pid(resource: &Resource) -> bool {
    resource.attributes.iter().any(|kv| kv.key == PROCESS_PID)
}

fn pid_attribute(pid: u32) -> KeyValue {
    KeyValue {
        key: PROCESS_PID.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(i64::from(pid))),
        }),
        ..Default::default()
    }
}

/// [`add_process_pid`] on a record with the writer's pid (`meta.pid`): on its decoded request
/// and on the producer's bytes kept for forwarding ([`Record::original`], spliced by
/// [`add_process_pid_encoded`] so unknown fields stay). Records without a pid or a request are
/// left as they are. This is the agent's enrichment step for every record.
pub fn add_process_pid_to_record(record: &mut Record) {
    let (Some(pid), Ok(request)) = (record.meta.pid, record.result.as_mut()) else {
        return;
    };
    if let Some(spliced) = record
        .original
        .as_deref()
        .and_then(|bytes| add_process_pid_encoded(bytes, request, pid))
    {
        record.original = Some(spliced);
    }
    add_process_pid(request, pid);
}

/// [`add_process_pid`] on the producer's encoded request, without decoding and re-encoding it:
/// fields the decoder does not know stay as they were. `decoded` is the same request decoded
/// (before enrichment); it says which resources lack a pid. Returns `None` when no resource
/// needs one (forward `original` as it is), or when `original` does not have the shape
/// `decoded` came from.
///
/// Protobuf merges a singular message field that occurs twice, so appending a second `resource`
/// (field 1 of `ResourceMetrics`) holding only the pid attribute adds it to the resource's
/// attributes for every conforming parser.
pub fn add_process_pid_encoded(
    original: &[u8],
    decoded: &ExportMetricsServiceRequest,
    pid: u32,
) -> Option<Vec<u8>> {
    let needs_pid: Vec<bool> = decoded
        .resource_metrics
        .iter()
        .map(|rm| !rm.resource.as_ref().is_some_and(has_pid))
        .collect();
    if !needs_pid.contains(&true) {
        return None;
    }
    let addition = Resource {
        attributes: vec![pid_attribute(pid)],
        ..Default::default()
    }
    .encode_length_delimited_to_vec();
    let mut out = Vec::with_capacity(original.len() + needs_pid.len() * (addition.len() + 4));
    let mut rest = original;
    let mut index = 0;
    while !rest.is_empty() {
        let field_start = rest;
        let key = decode_varint(&mut rest).ok()?;
        let (number, wire) = (key >> 3, key & 7);
        let body_len = match wire {
            0 => {
                decode_varint(&mut rest).ok()?;
                0
            }
            1 => 8,
            2 => usize::try_from(decode_varint(&mut rest).ok()?).ok()?,
            5 => 4,
            _ => return None,
        };
        let body = rest.get(..body_len)?;
        rest = &rest[body_len..];
        if number == 1 && wire == 2 {
            // A ResourceMetrics: re-framed with the pid's resource appended where needed.
            let add = *needs_pid.get(index)?;
            index += 1;
            if add {
                encode_key(1, WireType::LengthDelimited, &mut out);
                encode_varint((body.len() + 1 + addition.len()) as u64, &mut out);
                out.extend_from_slice(body);
                encode_key(1, WireType::LengthDelimited, &mut out);
                out.extend_from_slice(&addition);
                continue;
            }
        }
        let consumed = field_start.len() - rest.len();
        out.extend_from_slice(&field_start[..consumed]);
    }
    (index == needs_pid.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metrics::v1::ResourceMetrics;

    fn pid_of(rm: &ResourceMetrics) -> Vec<i64> {
        rm.resource
            .iter()
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == PROCESS_PID)
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::IntValue(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn adds_the_pid_where_it_is_absent_only() {
        let with_pid = ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: PROCESS_PID.into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(7)),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics::default(), with_pid],
        };
        assert_eq!(add_process_pid(&mut request, 4242), 1);
        assert_eq!(pid_of(&request.resource_metrics[0]), [4242]);
        assert_eq!(
            pid_of(&request.resource_metrics[1]),
            [7],
            "an app's own pid stays"
        );
        assert_eq!(add_process_pid(&mut request, 4242), 0, "idempotent");
    }

    #[test]
    fn the_encoded_request_gains_the_pid_and_keeps_unknown_fields() {
        let with_pid = {
            let mut request = ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics::default()],
            };
            add_process_pid(&mut request, 7);
            request.resource_metrics.remove(0)
        };
        let decoded = ExportMetricsServiceRequest {
            resource_metrics: vec![
                ResourceMetrics {
                    schema_url: "s".into(),
                    ..Default::default()
                },
                with_pid,
            ],
        };
        let mut original = decoded.encode_to_vec();
        // Field 99 (varint 7), unknown to the decoder.
        original.extend_from_slice(&[0x98, 0x06, 0x07]);
        let spliced = add_process_pid_encoded(&original, &decoded, 4242).unwrap();
        assert!(spliced.ends_with(&[0x98, 0x06, 0x07]), "unknown field kept");
        let mut expected = decoded.clone();
        assert_eq!(add_process_pid(&mut expected, 4242), 1);
        assert_eq!(
            ExportMetricsServiceRequest::decode(&spliced[..]).unwrap(),
            expected
        );
        assert_eq!(
            add_process_pid_encoded(&spliced, &expected, 4242),
            None,
            "every resource has a pid: the bytes go as they are"
        );
        assert_eq!(
            add_process_pid_encoded(&original[..original.len() - 4], &decoded, 1),
            None,
            "cut short: not the request that was decoded"
        );
    }
}

//! OTLP/JSON output checked against the specification's own example and a request that uses
//! every field the schema has.

mod common;

use common::from_json;
use common::requests::everything;
use serde_json::Value;
use ue_metrics_decode::json::to_json;
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;

const SPEC_EXAMPLE: &str = include_str!("data/metrics.json");

/// Removes members that hold a proto3 default value and are not presence-tracked: the spec's
/// example spells out `"scale": 0` and `"zeroThreshold": 0`, which the proto3 JSON mapping lets
/// an emitter omit (and ours does).
fn drop_unpopulated_defaults(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in ["scale", "zeroThreshold"] {
                if map.get(key).and_then(Value::as_f64) == Some(0.0) {
                    map.remove(key);
                }
            }
            map.values_mut().for_each(drop_unpopulated_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_unpopulated_defaults),
        _ => {}
    }
}

#[test]
fn the_spec_example_reads_into_prost_and_writes_back_identically() {
    let mut expected: Value = serde_json::from_str(SPEC_EXAMPLE).unwrap();
    let request = from_json::request(&expected);
    assert_eq!(
        request.resource_metrics[0].scope_metrics[0].metrics.len(),
        4
    );
    let line = to_json(&request);
    assert!(!line.contains('\n'));
    let written: Value = serde_json::from_str(&line).unwrap();
    drop_unpopulated_defaults(&mut expected);
    assert_eq!(written, expected);
}

/// NaN != NaN, so compare the protobuf bytes instead of the structs.
fn same(a: &ExportMetricsServiceRequest, b: &ExportMetricsServiceRequest) -> bool {
    use prost::Message as _;
    a.encode_to_vec() == b.encode_to_vec()
}

#[test]
fn every_field_survives_json_and_back() {
    let request = everything();
    let line = to_json(&request);
    let value: Value = serde_json::from_str(&line).expect("valid JSON");
    let back = from_json::request(&value);
    if !same(&request, &back) {
        let (a, b) = (format!("{request:?}"), format!("{back:?}"));
        let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        panic!(
            "round trip differs at {at}:\n{}\n{}",
            &a[at.saturating_sub(200)..(at + 100).min(a.len())],
            &b[at.saturating_sub(200)..(at + 100).min(b.len())]
        );
    }
}

#[test]
fn spec_specific_encodings() {
    let value: Value = serde_json::from_str(&to_json(&everything())).unwrap();
    let rm = &value["resourceMetrics"][0];
    let metrics = &rm["scopeMetrics"][0]["metrics"];
    let point = &metrics[0]["gauge"]["dataPoints"][0];
    // 64-bit integers are strings, 32-bit ones numbers, enums integers.
    assert_eq!(point["timeUnixNano"], "1700000000123456789");
    assert_eq!(point["flags"], 1);
    assert_eq!(metrics[1]["sum"]["aggregationTemporality"], 2);
    assert_eq!(
        metrics[1]["sum"]["dataPoints"][0]["asInt"],
        i64::MAX.to_string()
    );
    assert_eq!(
        metrics[2]["histogram"]["dataPoints"][0]["bucketCounts"][2],
        u64::MAX.to_string()
    );
    assert_eq!(
        metrics[3]["exponentialHistogram"]["dataPoints"][0]["positive"]["offset"],
        -3
    );
    // Trace and span ids are hex, other bytes base64.
    let ex = &point["exemplars"][0];
    assert_eq!(ex["spanId"], "deadbeef00010203");
    assert_eq!(ex["traceId"], "000102030405060708090a0b0c0d0e0f");
    assert_eq!(ex["asInt"], "-5");
    assert_eq!(point["exemplars"][1]["asDouble"], "NaN");
    let attrs = &rm["resource"]["attributes"];
    assert_eq!(attrs[4]["value"]["bytesValue"], "AAEC/v8=");
    assert_eq!(attrs[2]["value"]["intValue"], i64::MIN.to_string());
    // Oneof members are written even at their default value; plain defaults are not.
    assert_eq!(attrs[1]["value"]["boolValue"], false);
    assert_eq!(point.get("startTimeUnixNano").unwrap(), "1");
    assert_eq!(metrics[0]["gauge"]["dataPoints"][0]["asDouble"], 0);
    assert!(metrics[2]["histogram"]["dataPoints"][0]
        .get("flags")
        .is_none());
    assert!(metrics[2]["histogram"]["dataPoints"][0]
        .get("max")
        .is_none());
    assert_eq!(metrics[2]["histogram"]["dataPoints"][0]["sum"], 0);
    assert_eq!(metrics[5], serde_json::json!({"name": "no data"}));
}

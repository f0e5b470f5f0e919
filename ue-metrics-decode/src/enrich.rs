//! What an agent adds to the requests it passes on.

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{any_value, AnyValue, KeyValue};
use crate::proto::resource::v1::Resource;

/// The resource attribute [`add_process_pid`] sets (OpenTelemetry semantic conventions).
pub const PROCESS_PID: &str = "process.pid";

/// Adds `process.pid = pid` (the writer's pid from the sample) to every resource of `request`
/// that has no `process.pid`, so that two processes of one app (same `service.name`, often no
/// `service.instance.id`) stay apart downstream. Returns how many resources were changed.
pub fn add_process_pid(request: &mut ExportMetricsServiceRequest, pid: u32) -> usize {
    let mut changed = 0;
    for rm in &mut request.resource_metrics {
        let resource = rm.resource.get_or_insert_with(Resource::default);
        if resource.attributes.iter().any(|kv| kv.key == PROCESS_PID) {
            continue;
        }
        resource.attributes.push(KeyValue {
            key: PROCESS_PID.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(i64::from(pid))),
            }),
            ..Default::default()
        });
        changed += 1;
    }
    changed
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
}

//! Against a real `user_events` kernel (run in the VM by `cargo xtask e2e`, as root, one test
//! at a time): what the exporter writes is what a perf listener reads back.

mod common;
#[path = "common/differential.rs"]
mod differential;
#[path = "common/workloads.rs"]
mod workloads;

use std::time::Duration;

use common::{decode, merge, normalize, parse_payload, pipeline, point_count, reference};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use otlp_metrics_encode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_metrics_encode::proto::metrics::v1::{metric::Data, number_data_point::Value};
use ue_metrics_exporter::{
    ExportError, ExportReport, MetricsExporter, UnavailableKind, UserEventsReader,
    DEFAULT_MAX_EVENT_BYTES,
};
use user_events_sys::perf::{PerfOptions, PerfRecord, PerfSession};
use user_events_sys::{testing, Tracefs};

fn tracefs() -> Tracefs {
    Tracefs::discover().expect("tracefs in the VM")
}

fn measure(key: &str, value: impl std::fmt::Display) {
    println!("UE-MEASURE {key}={value}");
    eprintln!("UE-MEASURE {key}={value}");
}

/// A perf_event_open listener on `user_events:<name>` that hands back each sample's payload
/// (from `protocol` to the end of the buffer, tail padding cut by the rel_loc length).
struct Listener {
    session: PerfSession,
    /// Offset of the first payload byte in a raw sample (after the trace_entry).
    payload_offset: usize,
    pids: Vec<u32>,
}

/// Offset of field `name` in a tracefs `format` text (`field:... name;\toffset:N;`).
fn field_offset(format: &str, name: &str) -> usize {
    format
        .lines()
        .find(|l| {
            l.split(';')
                .next()
                .is_some_and(|decl| decl.split_whitespace().last() == Some(name))
        })
        .and_then(|l| l.split("offset:").nth(1))
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no field {name} in format:\n{format}"))
}

impl Listener {
    fn attach(event: &str, pages_per_cpu: usize) -> Listener {
        Self::attach_with_field(event, "protocol", pages_per_cpu)
    }

    fn attach_with_field(event: &str, first_field: &str, pages_per_cpu: usize) -> Listener {
        let tracefs = tracefs();
        let id = tracefs.event_id("user_events", event).expect("event id");
        let format = tracefs.event_format("user_events", event).expect("format");
        let session = PerfSession::open_tracepoint(
            id,
            &PerfOptions {
                pages_per_cpu,
                wakeup_events: 1,
            },
        )
        .expect("perf session (root in the VM)");
        Listener {
            session,
            payload_offset: field_offset(&format, first_field),
            pids: Vec::new(),
        }
    }

    /// Raw payloads (from the first field on, uncut) seen so far.
    fn raw(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let offset = self.payload_offset;
        let mut pids = Vec::new();
        let _ = self.session.wait(Duration::from_millis(50));
        self.session
            .drain(|record| match record {
                PerfRecord::Sample(s) => {
                    pids.push(s.pid);
                    out.push(s.raw[offset..].to_vec());
                }
                PerfRecord::Lost { lost } => panic!("perf lost {lost} records"),
            })
            .expect("drain");
        self.pids.extend(pids);
        out
    }

    /// Plain payloads, cut to `16 + rel_loc length`.
    fn payloads(&mut self) -> Vec<Vec<u8>> {
        self.raw()
            .into_iter()
            .map(|raw| {
                let rel_loc = u32::from_ne_bytes(raw[12..16].try_into().unwrap());
                raw[..16 + (rel_loc >> 16) as usize].to_vec()
            })
            .collect()
    }
}

fn requests(payloads: &[Vec<u8>]) -> Vec<ExportMetricsServiceRequest> {
    payloads
        .iter()
        .map(|p| {
            let parsed = parse_payload(p);
            assert_eq!((parsed.protocol, &parsed.version), (0, b"v0.19.00"));
            decode(parsed.buffer)
        })
        .collect()
}

#[test]
fn every_instrument_kind_comes_back_exactly_as_recorded() {
    let exporter = MetricsExporter::builder()
        .with_event_name("ue_k_kinds")
        .with_require_user_events(true)
        .build()
        .expect("user_events in the VM");
    let format = tracefs().event_format("user_events", "ue_k_kinds").unwrap();
    assert!(format.contains("protocol") && format.contains("version") && format.contains("buffer"));
    let (provider, reader) = pipeline(Temporality::Delta);
    common::record_every_kind(&provider);
    let rm = reader.collect_now();

    assert!(!exporter.listener_attached());
    let mut listener = Listener::attach("ue_k_kinds", 64);
    assert!(
        exporter.listener_attached(),
        "perf attach sets the enable bit"
    );
    let report = exporter.export_metrics(&rm).expect("export");
    let ExportReport::Written { events, .. } = report else {
        panic!("{report:?}")
    };
    let payloads = listener.payloads();
    assert_eq!(payloads.len(), events);
    let mut ours = merge(&requests(&payloads));
    let mut theirs = merge(&[reference(&rm)]);
    normalize(&mut ours);
    normalize(&mut theirs);
    assert_eq!(ours, theirs);
    let c = &ours[&("kinds".to_owned(), "c.u64".to_owned())];
    let Some(Data::Sum(s)) = &c.data else {
        panic!("sum")
    };
    assert_eq!(s.data_points[0].value, Some(Value::AsInt(7)));
    assert!(listener.pids.iter().all(|&p| p == std::process::id()));
    measure("kernel_kinds_events", events);
}

#[test]
fn a_listener_attached_mid_run_gets_everything_since_the_last_export() {
    let exporter = MetricsExporter::builder()
        .with_event_name("ue_k_midrun")
        .with_require_user_events(true)
        .build()
        .unwrap();
    let reader = UserEventsReader::builder(exporter.clone())
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader.clone())
        .build();
    let counter = provider.meter("app").u64_counter("requests").build();
    counter.add(1, &[KeyValue::new("route", "/")]);
    assert_eq!(reader.tick().unwrap(), None, "nobody listens yet");
    counter.add(2, &[KeyValue::new("route", "/")]);
    assert_eq!(reader.tick().unwrap(), None);

    let mut listener = Listener::attach("ue_k_midrun", 64);
    assert!(matches!(
        reader.tick().unwrap(),
        Some(ExportReport::Written { .. })
    ));
    let merged = merge(&requests(&listener.payloads()));
    let m = &merged[&("app".to_owned(), "requests".to_owned())];
    let Some(Data::Sum(s)) = &m.data else {
        panic!("sum")
    };
    assert_eq!(
        s.data_points[0].value,
        Some(Value::AsInt(3)),
        "no delta lost"
    );
    let stats = exporter.stats();
    assert_eq!(
        (stats.collections_skipped_no_listener, stats.collections),
        (2, 1)
    );

    // Detaching stops the writes: no collection, no event.
    drop(listener);
    assert!(
        !exporter.listener_attached(),
        "perf close clears the enable bit"
    );
    counter.add(4, &[KeyValue::new("route", "/")]);
    let written = exporter.stats().events_written;
    assert_eq!(reader.tick().unwrap(), None);
    assert_eq!(exporter.stats().events_written, written);

    // A new listener gets the 4 recorded while nobody listened.
    let mut listener = Listener::attach("ue_k_midrun", 64);
    reader.tick().unwrap();
    let merged = merge(&requests(&listener.payloads()));
    let Some(Data::Sum(s)) = &merged[&("app".to_owned(), "requests".to_owned())].data else {
        panic!("sum")
    };
    assert_eq!(s.data_points[0].value, Some(Value::AsInt(4)));
    provider.shutdown().unwrap();
}

#[test]
fn both_readers_write_the_same_through_the_kernel() {
    // tests/differential.rs on the host, here through real events and perf listeners: one
    // provider with a UserEventsReader and the SDK's PeriodicReader, each over its own event.
    for (i, temporality) in [
        Temporality::Delta,
        Temporality::Cumulative,
        Temporality::LowMemory,
    ]
    .into_iter()
    .enumerate()
    {
        let build = |name: &str| {
            MetricsExporter::builder()
                .with_event_name(name)
                .with_temporality(temporality)
                .with_require_user_events(true)
                .build()
                .expect("user_events in the VM")
        };
        let (ours_name, sdk_name) = (format!("ue_k_diff_ours{i}"), format!("ue_k_diff_sdk{i}"));
        let (provider, ours) = differential::two_readers(build(&ours_name), build(&sdk_name));
        let mut ours_listener = Listener::attach(&ours_name, 64);
        let mut sdk_listener = Listener::attach(&sdk_name, 64);
        let (ours_cycles, sdk_cycles) = differential::run_cycles(&provider, 2, || {
            (ours_listener.payloads(), sdk_listener.payloads())
        });
        assert!(ours.exporter().stats().events_written > 0);
        differential::assert_same(ours_cycles, sdk_cycles, &format!("kernel {temporality:?}"));
        provider.shutdown().unwrap();
    }
}

#[test]
fn detaching_stops_writes_of_a_direct_exporter() {
    let exporter = MetricsExporter::builder()
        .with_event_name("ue_k_detach")
        .with_require_user_events(true)
        .build()
        .unwrap();
    let rm = workloads::w1();
    let mut listener = Listener::attach("ue_k_detach", 64);
    assert!(matches!(
        exporter.export_metrics(&rm),
        Ok(ExportReport::Written { .. })
    ));
    assert!(!listener.payloads().is_empty());
    drop(listener);
    assert_eq!(
        exporter.export_metrics(&rm).unwrap(),
        ExportReport::NoListener
    );
    assert_eq!(exporter.stats().exports_skipped_no_listener, 1);
}

#[test]
fn an_export_bigger_than_one_event_arrives_complete() {
    for (max, tag) in [
        (DEFAULT_MAX_EVENT_BYTES, "default"),
        (user_events_sys::PERF_MAX_PAYLOAD, "perf_max"),
    ] {
        let name = format!("ue_k_big_{tag}");
        let exporter = MetricsExporter::builder()
            .with_event_name(name.clone())
            .with_max_event_bytes(max)
            .with_require_user_events(true)
            .build()
            .unwrap();
        let rm = workloads::w3();
        let mut listener = Listener::attach(&name, 1024);
        let report = exporter.export_metrics(&rm).unwrap();
        let ExportReport::Written {
            events,
            bytes,
            points,
        } = report
        else {
            panic!("{report:?}")
        };
        assert_eq!(points, 10_000);
        let payloads = listener.payloads();
        assert_eq!(payloads.len(), events, "every event arrived");
        assert_eq!(listener.session.lost(), 0);
        assert_eq!(payloads.iter().map(Vec::len).sum::<usize>(), bytes);
        let largest = payloads.iter().map(Vec::len).max().unwrap();
        assert!(largest <= max, "{largest} > {max}");
        let merged = merge(&requests(&payloads));
        assert_eq!(point_count(&merged), 10_000);
        assert_eq!(merged.len(), 1000);
        measure(&format!("kernel_w3_events_{tag}"), events);
        measure(&format!("kernel_w3_largest_event_{tag}"), largest);
    }
}

#[test]
fn full_size_events_reach_ftrace_and_perf_listeners_at_once() {
    // The default budget must reach both kinds of listener. ftrace's text output truncates
    // long lines (the buffer prints as hex bytes), so count the events there and take their
    // sizes from the perf listener attached at the same time.
    let tracefs = tracefs();
    let exporter = MetricsExporter::builder()
        .with_event_name("ue_k_ftrace")
        .with_require_user_events(true)
        .build()
        .unwrap();
    let size_file = tracefs.root().join("buffer_size_kb");
    // Reads like "7" or "7 (expanded: 1408)".
    let old_size = std::fs::read_to_string(&size_file).unwrap();
    let old_size = old_size
        .split_whitespace()
        .next()
        .unwrap_or("1408")
        .to_owned();
    // Room for the whole export on one CPU (about 1 MB).
    std::fs::write(&size_file, "4096").expect("grow the trace buffer");
    std::fs::write(tracefs.root().join("trace"), "").expect("clear trace");
    tracefs
        .set_event_enabled("user_events", "ue_k_ftrace", true)
        .expect("enable via tracefs");
    let mut perf = Listener::attach("ue_k_ftrace", 1024);
    let rm = workloads::w3();
    let ExportReport::Written { events, .. } = exporter.export_metrics(&rm).unwrap() else {
        panic!("not written")
    };
    tracefs
        .set_event_enabled("user_events", "ue_k_ftrace", false)
        .unwrap();
    let trace = std::fs::read_to_string(tracefs.root().join("trace")).unwrap();
    std::fs::write(tracefs.root().join("trace"), "").unwrap();
    std::fs::write(&size_file, old_size).unwrap();
    let in_ftrace = trace.matches("ue_k_ftrace: protocol=").count();
    assert_eq!(in_ftrace, events, "every event is in the ftrace buffer");
    let sizes: Vec<usize> = perf.payloads().iter().map(Vec::len).collect();
    assert_eq!(sizes.len(), events, "every event reached perf");
    let largest = *sizes.iter().max().unwrap();
    assert!(largest <= DEFAULT_MAX_EVENT_BYTES, "largest {largest}");
    assert!(largest > DEFAULT_MAX_EVENT_BYTES - 200, "largest {largest}");
    measure("kernel_ftrace_and_perf_largest_event", largest);
}

#[test]
fn a_forked_child_writes_through_the_inherited_registration() {
    let exporter = MetricsExporter::builder()
        .with_event_name("ue_k_fork")
        .with_require_user_events(true)
        .build()
        .unwrap();
    let rm = workloads::w1();
    let mut listener = Listener::attach("ue_k_fork", 64);
    let code = testing::fork_and_wait(|| {
        // The enable word was copied with the address space; the fd was inherited.
        let attached = exporter.listener_attached();
        let written = matches!(
            exporter.export_metrics(&rm),
            Ok(ExportReport::Written { .. })
        );
        match (attached, written) {
            (true, true) => 0,
            (false, _) => 1,
            (true, false) => 2,
        }
    })
    .expect("fork");
    assert_eq!(
        code, 0,
        "child: 1 = enable bit not inherited, 2 = export failed"
    );
    let payloads = listener.payloads();
    assert!(!payloads.is_empty());
    let me = std::process::id();
    let child = listener.pids[0];
    assert_ne!(child, me, "the events came from the child");
    assert!(
        listener.pids.iter().all(|&p| p == child),
        "{:?}",
        listener.pids
    );
    assert_eq!(point_count(&merge(&requests(&payloads))), 100);
    // The parent still writes too.
    assert!(matches!(
        exporter.export_metrics(&rm),
        Ok(ExportReport::Written { .. })
    ));
    assert!(!listener.payloads().is_empty());
    assert_eq!(listener.pids.last(), Some(&me));
}

/// The guest's unprivileged user (see xtask's initramfs).
const APP_UID: u32 = 1000;

#[test]
fn a_non_root_process_gets_the_documented_error_and_keeps_running() {
    let code = testing::fork_and_wait(|| {
        if testing::become_user(APP_UID, APP_UID, &[]).is_err() {
            return 10;
        }
        let exporter = match MetricsExporter::builder()
            .with_event_name("ue_k_nonroot")
            .build()
        {
            Ok(exporter) => exporter,
            Err(_) => return 11,
        };
        let Some(why) = exporter.unavailable() else {
            return 12;
        };
        println!("non-root build: {why}");
        let rm = workloads::w1();
        let start = std::time::Instant::now();
        for _ in 0..100 {
            if !matches!(
                exporter.export_metrics(&rm),
                Err(ExportError::Unavailable(_))
            ) {
                return 13;
            }
        }
        let elapsed = start.elapsed();
        measure("kernel_unavailable_export_ns", elapsed.as_nanos() / 100);
        if exporter.stats().exports_skipped_unavailable != 100 {
            return 14;
        }
        match why.kind() {
            UnavailableKind::PermissionDenied if why.to_string().contains("chgrp tracers") => 0,
            UnavailableKind::NoTracefs => 15,
            _ => 16,
        }
    })
    .expect("fork");
    assert_eq!(
        code, 0,
        "10 = setuid failed, 11 = build failed, 12 = exporter active as non-root, \
         13 = export did not return Unavailable, 14 = skips not counted, \
         15 = NoTracefs instead of PermissionDenied, 16 = other kind"
    );
}

#[cfg(feature = "eventheader")]
#[test]
fn eventheader_mode_writes_the_buffer_field_under_the_provider() {
    let exporter = MetricsExporter::builder()
        .with_eventheader_provider("UeMetricsTest")
        .with_require_user_events(true)
        .build()
        .expect("eventheader registration");
    let rm = workloads::w3();
    let tracefs = tracefs();
    let id = tracefs
        .event_id("user_events", "UeMetricsTest_L4K1")
        .expect("tracepoint");
    let mut session = PerfSession::open_tracepoint(
        id,
        &PerfOptions {
            pages_per_cpu: 1024,
            wakeup_events: 1,
        },
    )
    .unwrap();
    let format = tracefs
        .event_format("user_events", "UeMetricsTest_L4K1")
        .unwrap();
    let offset = field_offset(&format, "eventheader_flags");
    assert!(exporter.listener_attached());
    let ExportReport::Written { events, bytes, .. } = exporter.export_metrics(&rm).unwrap() else {
        panic!("not written")
    };
    let _ = session.wait(Duration::from_millis(50));
    let mut buffers = Vec::new();
    let mut largest = 0;
    session
        .drain(|r| {
            if let PerfRecord::Sample(s) = r {
                let eh = &s.raw[offset..];
                // 8-byte header, then the metadata extension: u16 size, u16 kind, metadata.
                // EventHeader writes its integers in the writer's byte order (the header's
                // flags say which): native here.
                let meta_len = u16::from_ne_bytes([eh[8], eh[9]]) as usize;
                let meta = &eh[12..12 + meta_len];
                assert!(meta.starts_with(b"otlp_metrics\0buffer\0"), "{meta:?}");
                let data = &eh[12 + meta_len..];
                let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
                largest = largest.max(12 + meta_len + 2 + len);
                buffers.push(data[2..2 + len].to_vec());
            }
        })
        .unwrap();
    assert_eq!(buffers.len(), events);
    assert_eq!(session.lost(), 0);
    assert!(largest <= DEFAULT_MAX_EVENT_BYTES, "{largest}");
    assert!(bytes > 0);
    let merged = merge(&buffers.iter().map(|b| decode(b)).collect::<Vec<_>>());
    assert_eq!(point_count(&merged), 10_000);
    measure("kernel_eventheader_largest_event", largest);
    exporter.shutdown_now().unwrap();
}

/// Whether `/proc/self/fdinfo/<fd>` reports `O_CLOEXEC` (the kernel adds it to `flags` when
/// the descriptor is close-on-exec).
fn close_on_exec(fd: &str) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .map(|octal| u32::from_str_radix(octal.trim(), 8).unwrap())
        .expect("a flags line");
    const O_CLOEXEC: u32 = 0o2000000;
    flags & O_CLOEXEC != 0
}

#[cfg(feature = "eventheader")]
#[test]
fn eventheader_mode_leaves_no_user_events_data_descriptor_open_across_exec() {
    let exporter = MetricsExporter::builder()
        .with_eventheader_provider("UeMetricsCloexec")
        .with_require_user_events(true)
        .build()
        .expect("eventheader registration");
    let mut data_fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let fd = entry.file_name().to_string_lossy().into_owned();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.file_name().is_some_and(|n| n == "user_events_data") {
            data_fds.push((fd.clone(), close_on_exec(&fd)));
        }
    }
    assert!(
        !data_fds.is_empty(),
        "the tracepoint crate keeps user_events_data open"
    );
    assert!(
        data_fds.iter().all(|(_, cloexec)| *cloexec),
        "user_events_data descriptors without close-on-exec: {data_fds:?}"
    );
    exporter.shutdown_now().unwrap();
}

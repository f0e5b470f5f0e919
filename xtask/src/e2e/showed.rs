//! "What the suite showed": the end-to-end crate's results (test names and `UE-MEASURE` values)
//! as sentences, printed at the end of `cargo xtask e2e`. A check whose test did not pass says
//! so instead of its numbers.

use super::ProgramReport;

/// The package whose kernel tests are the end-to-end suite (`e2e/`).
pub const SUITE: &str = "ue-metrics-e2e";

/// The budgets the size test uses: every kind of listener, perf only.
const BUDGETS: [&str; 2] = ["4064", "8184"];

/// The summary lines for the suite's report, or `None` when the suite did not run.
pub fn render(report: &ProgramReport) -> Option<String> {
    if report.label != SUITE {
        return None;
    }
    let view = View { report };
    let mut out = format!(
        "  what the end-to-end suite showed ({SUITE}: {} passed, {} failed):\n",
        report.passed, report.failed
    );
    for line in [
        view.round_trip(),
        view.sizes(),
        view.attach_detach(),
        view.no_permission(),
        view.tracers(),
        view.nothing_lost(),
        view.perf(),
        view.own_recorder(),
        view.compat32(),
        view.peer(),
        view.throughput(),
    ] {
        out.push_str(&line);
    }
    Some(out)
}

struct View<'a> {
    report: &'a ProgramReport,
}

impl View<'_> {
    /// The measured value of `key`, `?` when missing.
    fn m(&self, key: &str) -> &str {
        self.report
            .measures
            .iter()
            .find(|(k, _)| k == key)
            .map_or("?", |(_, v)| v.as_str())
    }

    /// Whether the test named `test` (without its module path) passed.
    fn passed(&self, test: &str) -> bool {
        self.report
            .passed_tests
            .iter()
            .any(|t| t.rsplit("::").next() == Some(test))
    }

    /// Whether the test named `test` (without its module path) reported `UE-SKIP`.
    fn skipped(&self, test: &str) -> bool {
        self.report.skipped.iter().any(|skip| {
            skip.split_once(": ")
                .is_some_and(|(name, _)| name.rsplit("::").next() == Some(test))
        })
    }

    /// `text` (lines, indented) if every one of `tests` passed, a "skipped" line if one was
    /// skipped on this guest, else a "not shown" line.
    fn check(&self, title: &str, tests: &[&str], text: impl FnOnce() -> String) -> String {
        let skipped: Vec<&str> = tests.iter().copied().filter(|t| self.skipped(t)).collect();
        let failed: Vec<&str> = tests.iter().copied().filter(|t| !self.passed(t)).collect();
        if !skipped.is_empty() {
            format!(
                "    {title}: SKIPPED on this guest ({} reported UE-SKIP)\n",
                skipped.join(", ")
            )
        } else if failed.is_empty() {
            format!("    {title}: {}\n", text())
        } else {
            format!(
                "    {title}: NOT SHOWN ({} did not pass)\n",
                failed.join(", ")
            )
        }
    }

    fn round_trip(&self) -> String {
        self.check(
            "every kind round-trips app -> SDK -> exporter -> kernel -> perf -> decoder",
            &["every_instrument_kind_value_type_and_temporality_round_trips"],
            || {
                format!(
                    "{} instruments (counter, up-down counter, histogram, exponential histogram \
                     via a View, gauge, observable counter/up-down counter/gauge; u64, i64, f64) \
                     x temporalities {}, at 4064- and 512-byte events: {} points decoded equal \
                     to the SDK's data (opentelemetry-proto transform); events for the 2 \
                     delta exports: {} at 4064 B, {} at 512 B",
                    self.m("kinds_instruments"),
                    self.m("kinds_temporalities"),
                    self.m("kinds_points_equal"),
                    self.m("kinds_events_delta_4064"),
                    self.m("kinds_events_delta_512"),
                )
            },
        )
    }

    fn sizes(&self) -> String {
        self.check(
            "export sizes through perf",
            &["exports_from_one_point_to_w3_arrive_complete_through_perf"],
            || {
                let mut text = String::from(
                    "every event arrived, 0 lost, each within its budget, decoded equal\n",
                );
                text.push_str(&format!(
                    "      {:<7} {:>7} {:>12} {:>12} {:>10} {:>12} {:>12} {:>15} {:>9} {:>9}\n",
                    "export",
                    "points",
                    "events@4064",
                    "events@8184",
                    "per-point",
                    "bytes@4064",
                    "bytes@8184",
                    "per-point bytes",
                    "max@4064",
                    "max@8184"
                ));
                let names = self.m("sizes");
                for name in names.split(',').filter(|n| !n.is_empty() && *n != "?") {
                    let at =
                        |what: &str, budget: &str| self.m(&format!("size_{name}_{budget}_{what}"));
                    text.push_str(&format!(
                        "      {:<7} {:>7} {:>12} {:>12} {:>10} {:>12} {:>12} {:>15} {:>9} {:>9}\n",
                        name,
                        self.m(&format!("size_{name}_points")),
                        at("events", BUDGETS[0]),
                        at("events", BUDGETS[1]),
                        self.m(&format!("size_{name}_points")),
                        at("bytes", BUDGETS[0]),
                        at("bytes", BUDGETS[1]),
                        self.m(&format!("size_{name}_per_point_bytes")),
                        at("largest", BUDGETS[0]),
                        at("largest", BUDGETS[1]),
                    ));
                }
                text.push_str(
                    "      (per-point: events and payload bytes if each point were its own event, \
                     as the upstream exporter writes)",
                );
                text
            },
        )
    }

    fn attach_detach(&self) -> String {
        self.check(
            "listener attaches and detaches mid-run",
            &["a_listener_attaching_and_detaching_mid_run_loses_no_delta"],
            || {
                format!(
                    "{} increments recorded, {} decoded in {} delta exports (contiguous, none \
                     lost); {} collections skipped while nobody listened",
                    self.m("attach_detach_recorded"),
                    self.m("attach_detach_decoded"),
                    self.m("attach_detach_exports"),
                    self.m("attach_detach_skipped_collections"),
                )
            },
        )
    }

    fn no_permission(&self) -> String {
        self.check(
            "app without permission (uid 1000, no tracers group)",
            &["an_app_without_permission_gets_the_documented_error_and_keeps_running"],
            || {
                format!(
                    "build succeeds, exporter inactive: {} (the message names \
                     user_events_data and the remedy); {} SDK exports skipped (returned Ok); \
                     the app process ran on and exited {}",
                    self.m("nonroot_error_kind"),
                    self.m("nonroot_exports_skipped"),
                    self.m("nonroot_app_exit"),
                )
            },
        )
    }

    fn tracers(&self) -> String {
        self.check(
            "tracers-group user, no root (chgrp tracers, g+x tracefs, g+rw user_events_data)",
            &["a_tracers_group_user_exports_without_root"],
            || {
                format!(
                    "uid {} exported {} times: {} events, {} points decoded equal; uid 1000 \
                     still refused",
                    self.m("tracers_uid"),
                    self.m("tracers_exports"),
                    self.m("tracers_events"),
                    self.m("tracers_points"),
                )
            },
        )
    }

    fn nothing_lost(&self) -> String {
        self.check(
            "nothing lost: exporter stats() vs the collector",
            &["exporter_stats_equal_what_the_collector_received"],
            || {
                format!(
                    "{} exports: events {} = {}, bytes {} = {}, points {} = {} (also checked \
                     in every test above)",
                    self.m("stats_exports"),
                    self.m("stats_events"),
                    self.m("collector_events"),
                    self.m("stats_bytes"),
                    self.m("collector_bytes"),
                    self.m("stats_points"),
                    self.m("collector_points"),
                )
            },
        )
    }

    fn perf(&self) -> String {
        let mut out = self.check(
            "Debian perf record -e user_events:otlp_metrics -- ue-e2e-app",
            &["perf_record_of_the_app_decodes_to_exactly_what_it_recorded"],
            || {
                format!(
                    "{} records of {} exports, 0 lost; ue-metrics-decode (library) gives back \
                     exactly the {} points the app's SDK produced; app stats = perf.data",
                    self.m("perf_records"),
                    self.m("perf_exports"),
                    self.m("perf_points_equal"),
                )
            },
        );
        out.push_str(&self.check(
            "perf script",
            &["perf_script_shows_protocol_and_version_for_each_record"],
            || {
                format!(
                    "{} of {} records show protocol=0 version=v0.19.00",
                    self.m("perf_script_lines"),
                    self.m("perf_records"),
                )
            },
        ));
        out.push_str(&self.check(
            "ue-metrics-decode perf-data (CLI in the guest)",
            &["the_decoder_cli_reads_the_perf_data_file"],
            || {
                format!(
                    "{} OTLP/JSON lines, identical to the library's",
                    self.m("decode_cli_json_lines")
                )
            },
        ));
        out.push_str(&self.check(
            "Microsoft tracepoint_perf/tracepoint_decode on the same perf.data",
            &["microsoft_tracepoint_perf_finds_our_fields_by_name"],
            || {
                format!(
                    "fields protocol, version, buffer (__rel_loc) found by name in {} samples \
                     ({} located through the sample id); tracepoint_decode's own rel_loc \
                     helper right in {} of them",
                    self.m("tracepoint_perf_samples"),
                    self.m("tracepoint_perf_sample_info"),
                    self.m("tracepoint_decode_rel_loc4_right"),
                )
            },
        ));
        out
    }

    fn own_recorder(&self) -> String {
        self.check(
            "own recorder (perf_event_open -> perf.data, no perf needed)",
            &["own_recorder_writes_a_perf_data_file_the_decoder_reads_back"],
            || {
                format!(
                    "{} records, {} bytes in this machine's byte order; the decoder gives back \
                     exactly the {} points the SDK produced; file sent to the host",
                    self.m("own_recorder_records"),
                    self.m("own_recorder_perf_data_bytes"),
                    self.m("own_recorder_points"),
                )
            },
        )
    }

    fn compat32(&self) -> String {
        self.check(
            "32-bit (i686) example app on the 64-bit kernel",
            &["a_32_bit_app_is_told_why_it_cannot_export_and_runs_on"],
            || {
                format!(
                    "told why: \"{}\"; {} exports skipped; ran on and exited 0",
                    self.m("compat32_i686_reason"),
                    self.m("compat32_i686_exports_skipped"),
                )
            },
        )
    }

    fn peer(&self) -> String {
        self.check(
            "upstream opentelemetry-user-events-metrics 0.14 as a peer",
            &["the_upstream_exporter_is_a_peer_on_the_same_event"],
            || {
                format!(
                    "same event, no format conflict, one listener received both, our decoder \
                     decoded all; the same {} points: upstream {} events / {} bytes, ours {} / \
                     {} bytes",
                    self.m("peer_points"),
                    self.m("peer_upstream_events"),
                    self.m("peer_upstream_bytes"),
                    self.m("peer_ours_events"),
                    self.m("peer_ours_bytes"),
                )
            },
        )
    }

    fn throughput(&self) -> String {
        self.check(
            "the agent under load (ue-metrics-decode live, default ring, Prometheus on)",
            &["three_producers_at_the_demo_rate_20_times_it_and_flat_out_lose_nothing_unaccounted"],
            || {
                let mut text = String::from(
                    "three producers at once: ours, the upstream peer, an EventHeader writer\n",
                );
                text.push_str(&format!(
                    "      {:<16} {:>9} {:>20} {:>8} {:>8} {:>6} {:>10}\n",
                    "phase", "interval", "exports/s o/p/EH", "written", "decoded", "lost",
                    "records/s"
                ));
                for (phase, title) in [
                    ("demo", "demo rate"),
                    ("x20", "x20"),
                    ("max", "flat out"),
                ] {
                    let m = |key: &str| self.m(&format!("tput_{phase}_{key}"));
                    text.push_str(&format!(
                        "      {:<16} {:>7}ms {:>20} {:>8} {:>8} {:>6} {:>10}\n",
                        title,
                        m("interval_ms"),
                        m("exports_per_s"),
                        m("written"),
                        m("decoded"),
                        m("lost"),
                        m("records_per_s"),
                    ));
                }
                text.push_str(&format!(
                    "      every record written was decoded or counted lost; x20 claim: {}",
                    self.m("tput_x20_claim")
                ));
                text
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(passed: &[&str], measures: &[(&str, &str)]) -> ProgramReport {
        ProgramReport {
            label: SUITE.into(),
            passed: passed.len() as u32,
            passed_tests: passed.iter().map(|s| s.to_string()).collect(),
            measures: measures
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ProgramReport::default()
        }
    }

    #[test]
    fn only_the_suite_is_rendered() {
        let other = ProgramReport {
            label: "user_events-sys".into(),
            ..ProgramReport::default()
        };
        assert_eq!(render(&other), None);
    }

    #[test]
    fn passed_checks_show_their_numbers_and_failed_ones_say_so() {
        let text = render(&report(
            &["listeners::a_listener_attaching_and_detaching_mid_run_loses_no_delta"],
            &[
                ("attach_detach_recorded", "812"),
                ("attach_detach_decoded", "812"),
                ("attach_detach_exports", "40"),
                ("attach_detach_skipped_collections", "23"),
            ],
        ))
        .unwrap();
        assert!(text.contains(
            "812 increments recorded, 812 decoded in 40 delta exports (contiguous, none lost); \
             23 collections skipped"
        ));
        assert!(text.contains("the_upstream_exporter_is_a_peer_on_the_same_event did not pass"));
    }

    #[test]
    fn skipped_checks_say_so() {
        let mut suite = report(
            &["perf_script_shows_protocol_and_version_for_each_record"],
            &[],
        );
        suite.skipped = vec![
            "perf_tool::perf_script_shows_protocol_and_version_for_each_record: no perf".into(),
        ];
        let text = render(&suite).unwrap();
        assert!(text.contains(
            "perf script: SKIPPED on this guest \
             (perf_script_shows_protocol_and_version_for_each_record reported UE-SKIP)"
        ));
    }

    #[test]
    fn sizes_become_a_table_row_per_export() {
        let text = render(&report(
            &["exports_from_one_point_to_w3_arrive_complete_through_perf"],
            &[
                ("sizes", "W3"),
                ("size_W3_points", "10000"),
                ("size_W3_4064_events", "297"),
                ("size_W3_8184_events", "146"),
            ],
        ))
        .unwrap();
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("W3 "))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..5], ["W3", "10000", "297", "146", "10000"]);
        assert_eq!(cells[5], "?", "missing values show as ?");
    }

    #[test]
    fn throughput_phases_become_rows() {
        let text = render(&report(
            &["throughput::three_producers_at_the_demo_rate_20_times_it_and_flat_out_lose_nothing_unaccounted"],
            &[
                ("tput_demo_interval_ms", "1000"),
                ("tput_demo_exports_per_s", "1.0/1.0/0.9"),
                ("tput_demo_written", "126"),
                ("tput_demo_decoded", "126"),
                ("tput_demo_lost", "0"),
                ("tput_demo_records_per_s", "20"),
                ("tput_x20_claim", "checked: 0 lost"),
            ],
        ))
        .unwrap();
        let row = |title: &str| -> Vec<String> {
            text.lines()
                .find_map(|l| l.trim_start().strip_prefix(title))
                .unwrap_or_else(|| panic!("no {title} row: {text}"))
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert_eq!(
            row("demo rate"),
            ["1000ms", "1.0/1.0/0.9", "126", "126", "0", "20"]
        );
        assert_eq!(row("flat out"), ["?ms", "?", "?", "?", "?", "?"]);
        assert!(text.contains("x20 claim: checked: 0 lost"), "{text}");
    }
}

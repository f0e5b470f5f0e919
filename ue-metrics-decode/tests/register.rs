//! `live --register`: which registration the agent makes, decided from the kernel's answers
//! (scripted with `user_events_sys::testing::ScriptedIoctls`, so no kernel or privileges are
//! needed). The real kernel's side of both outcomes is in `tests/kernel.rs`.
#![cfg(target_os = "linux")]

use ue_metrics_decode::live::{register_event_on, LiveError, Registration};
use user_events_sys::testing::{FakeTracefs, ScriptedIoctls};

/// What the kernel answers, as Linux numbers them.
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EINVAL: i32 = 22;

#[test]
fn persist_is_used_when_the_kernel_allows_it() {
    let tracefs = FakeTracefs::new("persist").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    script.register_ok(0).unregister_ok();
    let registration = register_event_on(&data, "otlp_metrics").unwrap();
    assert!(
        matches!(registration, Registration::Persistent),
        "{registration:?}"
    );
    // One registration, and the persistent event's enabler was removed again.
    assert_eq!(script.calls().register, 1);
    assert_eq!(script.calls().unregister, 1);
}

#[test]
fn without_cap_perfmon_the_agent_holds_a_plain_registration() {
    let tracefs = FakeTracefs::new("eperm").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    // PERSIST refused (no CAP_PERFMON), then the plain registration works.
    script.register_fails(EPERM).register_ok(3).unregister_ok();
    let registration = register_event_on(&data, "otlp_metrics").unwrap();
    let Registration::Held(event) = &registration else {
        panic!("expected a held registration: {registration:?}");
    };
    assert!(!event.persist());
    assert_eq!(event.write_index(), 3);
    assert_eq!(event.name(), "otlp_metrics");
    assert_eq!(script.calls().register, 2);
    // Held until dropped (the end of the agent's run).
    assert_eq!(script.calls().unregister, 0);
    drop(registration);
    assert_eq!(script.calls().unregister, 1);
}

#[test]
fn a_kernel_without_persist_gives_a_held_registration_too() {
    // Before 6.7 the flag is unknown (EINVAL): registered without it, so held.
    let tracefs = FakeTracefs::new("einval").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    script.register_fails(EINVAL).register_ok(1).unregister_ok();
    let registration = register_event_on(&data, "otlp_metrics").unwrap();
    assert!(
        matches!(&registration, Registration::Held(e) if !e.persist()),
        "{registration:?}"
    );
    assert_eq!(script.calls().register, 2);
}

#[test]
fn other_refusals_are_errors_not_fallbacks() {
    let tracefs = FakeTracefs::new("eacces").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    script.register_fails(EACCES);
    let err = register_event_on(&data, "otlp_metrics").unwrap_err();
    assert!(matches!(err, LiveError::Sys(_)), "{err:?}");
    assert_eq!(script.calls().register, 1, "no second attempt");
}

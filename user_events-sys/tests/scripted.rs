//! Error paths of registration and unregistration that a host kernel never produces, with the
//! kernel's answers scripted (`testing::ScriptedIoctls`): no user_events, no privileges.
#![cfg(target_os = "linux")]

use user_events_sys::testing::{FakeTracefs, IoctlCalls, ScriptedIoctls};
use user_events_sys::{Error, RegisterOptions};

#[test]
fn enotty_from_register_names_what_it_means_for_this_process() {
    let tracefs = FakeTracefs::new("enotty").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    script.register_fails(libc::ENOTTY);
    let err = data
        .register("ue_t_compat u32 a", RegisterOptions::default())
        .unwrap_err();
    let text = err.to_string();
    if usize::BITS == 32 {
        assert!(
            matches!(
                err,
                Error::NoCompatIoctl {
                    process_bits: 32,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.contains("32-bit program on a 64-bit kernel"), "{text}");
        assert!(
            text.contains("Build the program for the 64-bit target"),
            "{text}"
        );
    } else {
        // (The 32-bit answer is tested in the crate's unit tests for any host.)
        assert!(matches!(err, Error::NotUserEventsData { .. }), "{err:?}");
        assert!(!text.contains("32-bit"), "{text}");
    }
    assert_eq!(script.calls().register, 1);
}

#[test]
fn unregister_after_the_kernel_dropped_the_enabler_leaves_the_event_unregistered() {
    let tracefs = FakeTracefs::new("enoent").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    script.register_ok(3);
    let event = data
        .register("ue_t_gone u32 a", RegisterOptions::default())
        .unwrap();
    assert!(event.is_registered());

    script.unregister_fails(libc::ENOENT);
    let err = event.unregister().unwrap_err();
    assert!(matches!(err, Error::EnablerGone { .. }), "{err:?}");
    assert!(!event.is_registered(), "the kernel holds no enabler");
    // No second ioctl: a retry would only get ENOENT again.
    event.unregister().unwrap();
    assert!(matches!(event.write(&[]), Err(Error::Unregistered)));
    assert_eq!(
        script.calls(),
        IoctlCalls {
            register: 1,
            unregister: 1
        }
    );
    drop(event);
    assert_eq!(script.calls().unregister, 1, "drop does not ask again");
}

#[test]
fn unregister_that_faulted_after_removing_the_enabler_is_final_too() {
    let tracefs = FakeTracefs::new("efault").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    script.register_ok(0).unregister_fails(libc::EFAULT);
    let event = data
        .register("ue_t_fault u32 a", RegisterOptions::default())
        .unwrap();
    assert!(matches!(event.unregister(), Err(Error::EnablerGone { .. })));
    assert!(!event.is_registered());
}

#[test]
fn other_unregister_errors_keep_the_event_registered_for_a_retry() {
    let tracefs = FakeTracefs::new("retry").unwrap();
    let data = tracefs.data_file().unwrap();
    let script = ScriptedIoctls::start();
    script
        .register_ok(1)
        .unregister_fails(libc::EINVAL)
        .unregister_ok();
    let event = data
        .register("ue_t_retry u32 a", RegisterOptions::default())
        .unwrap();
    assert!(matches!(event.unregister(), Err(Error::Io { .. })));
    assert!(event.is_registered(), "the enabler may still be there");
    event.unregister().unwrap();
    assert!(!event.is_registered());
    assert_eq!(script.calls().unregister, 2);
}

//! Raw Linux `user_events` ABI and a thin safe layer over it.

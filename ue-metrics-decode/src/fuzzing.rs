//! The bodies of the fuzz targets (in `fuzz/`), here so that the regression test
//! (`tests/fuzz_regressions.rs`) runs exactly the same code on the kept inputs. Each function
//! panics only when a property is broken, never on bad input.

use tracepoint_decode::EventHeaderEnumeratorContext;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::EventDecoder;
use crate::format::EXAMPLE_FORMAT;
use crate::{decode_payload, ftrace, PerfDataSource, RecordFormat, SampleDecoder};

/// Decodes `data` as a payload; checks that the buffer lies inside the input.
pub fn payload(data: &[u8]) {
    match decode_payload(data) {
        Ok(payload) => {
            let end = payload.buffer_offset + payload.buffer.len();
            assert!(end <= data.len(), "buffer outside the payload");
            assert_eq!(&data[payload.buffer_offset..end], payload.buffer);
            if let Err(e) = payload.to_request() {
                assert!(e.offset() <= data.len(), "error offset past the input: {e}");
            }
        }
        Err(e) => assert!(
            e.offset() <= data.len() + 16,
            "error offset far past the input: {e}"
        ),
    }
}

/// Parses `data` as a format file and builds the decoders from it.
pub fn format(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match RecordFormat::parse(&text) {
        Ok(format) => {
            assert!(!format.fields().is_empty());
            assert!(format.common_fields().len() <= format.fields().len());
            for f in format.fields() {
                assert!(f.end() <= 1 << 16, "field past 64 KiB accepted");
            }
            if let Some(Ok(decoder)) = EventDecoder::for_format(&format) {
                // Decoding a zeroed record of any length must not panic.
                let mut context = EventHeaderEnumeratorContext::new();
                for len in [0, 8, 64] {
                    let _ = decoder.decode(&mut context, &vec![0u8; len]);
                }
            }
        }
        Err(e) => assert!(e.offset() <= text.len(), "error offset past the text: {e}"),
    }
}

/// Decodes `data[1..]` as a raw record; `data[0]` picks the layout: the kernel's
/// `__rel_loc` format, a `__data_loc` variant, or an EventHeader tracepoint.
pub fn raw_sample(data: &[u8]) {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let text = match selector % 3 {
        0 => EXAMPLE_FORMAT.to_owned(),
        1 => EXAMPLE_FORMAT.replace("__rel_loc u8 buffer[3735928559]", "__data_loc u8[] buffer"),
        _ => EVENTHEADER_FORMAT.to_owned(),
    };
    let format = RecordFormat::parse(&text).expect("built-in format parses");
    let decoder = match EventDecoder::for_format(&format) {
        Some(Ok(decoder)) => decoder,
        _ => unreachable!("built-in formats are decodable"),
    };
    let mut context = EventHeaderEnumeratorContext::new();
    match decoder.decode(&mut context, raw) {
        Ok(Some(payload)) => {
            let end = payload.buffer_offset + payload.buffer.len();
            assert!(end <= raw.len(), "buffer outside the record");
            assert_eq!(&raw[payload.buffer_offset..end], payload.buffer);
            let _ = payload.to_request();
        }
        Ok(None) => {}
        Err(e) => assert!(
            e.offset() <= raw.len() + 8,
            "error offset far past the record: {e}"
        ),
    }
    if let Ok(sample) = SampleDecoder::new(&format) {
        let _ = sample.common_pid(raw);
    }
}

/// Parses `data` as a line of ftrace text and decodes what it rebuilds.
pub fn trace_line(data: &[u8]) {
    let line = data;
    match ftrace::parse_trace_bytes(line, "otlp_metrics") {
        Ok(Some(parsed)) => {
            let _ = parsed.to_record();
        }
        Ok(None) => {}
        Err(e) => assert!(e.offset() <= line.len(), "error offset past the line: {e}"),
    }
}

/// Reads `data` as a whole perf.data file (normal or pipe mode, as its header says): never a
/// panic, and every record delivered is counted once, as decoded or failed.
pub fn perf_data(data: &[u8]) {
    // The reader takes a path. One file per call: the regression test runs calls in parallel.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "ue-metrics-decode-fuzz-{}-{}.data",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, data).expect("the temporary directory is writable");
    let mut delivered = 0u64;
    if let Ok(mut source) = PerfDataSource::open(&path) {
        let _ = source.for_each(|record| {
            delivered += 1;
            if let Err(e) = &record.result {
                assert!(e.offset() <= data.len(), "error offset past the file: {e}");
            }
        });
        let stats = source.stats();
        assert_eq!(
            stats.records, delivered,
            "records delivered but not counted"
        );
        assert_eq!(stats.records, stats.decoded + stats.failed);
    }
    let _ = std::fs::remove_file(&path);
}

/// The format of an EventHeader tracepoint as the kernel shows it.
pub const EVENTHEADER_FORMAT: &str = "name: MyApp_L4K1\nID: 1600\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
    \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
    \n\
    \tfield:u8 eventheader_flags;\toffset:8;\tsize:1;\tsigned:0;\n\
    \tfield:u8 version;\toffset:9;\tsize:1;\tsigned:0;\n\
    \tfield:u16 id;\toffset:10;\tsize:2;\tsigned:0;\n\
    \tfield:u16 tag;\toffset:12;\tsize:2;\tsigned:0;\n\
    \tfield:u8 opcode;\toffset:14;\tsize:1;\tsigned:0;\n\
    \tfield:u8 level;\toffset:15;\tsize:1;\tsigned:0;\n\
    \n\
    print fmt: \"\"\n";

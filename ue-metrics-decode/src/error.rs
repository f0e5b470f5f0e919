//! The one error type of the decoder: what went wrong and the byte offset where it did.

/// Why a record (or a tracefs `format` text) could not be decoded.
///
/// Every variant carries `offset`: the byte offset where decoding stopped, counted from the
/// start of the input handed to the function that failed (the payload, the raw record or the
/// format text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before a field that must be there.
    #[error("truncated at byte {offset}: need {needed} bytes, the input has {available}")]
    Truncated {
        /// Where decoding stopped: where the missing field starts, or the end of the input when
        /// the field would start past it (never past the input). Built by
        /// [`DecodeError::truncated`].
        offset: usize,
        /// Bytes needed up to the end of that field.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The `protocol` field holds a value other than 0 (protobuf).
    #[error("unknown protocol {protocol} at byte {offset} (only 0 = protobuf is defined)")]
    UnknownProtocol {
        /// Offset of the `protocol` field.
        offset: usize,
        /// The value found.
        protocol: u32,
    },
    /// The `version` field is not 8 bytes of `v` and printable ASCII (NUL padding allowed).
    #[error("invalid version bytes {version:02x?} at byte {offset}")]
    InvalidVersion {
        /// Offset of the `version` field.
        offset: usize,
        /// The 8 bytes found.
        version: [u8; 8],
    },
    /// The `__rel_loc`/`__data_loc` field points outside the record.
    #[error(
        "buffer location at byte {offset} points to bytes {start}..{end}, the record has {available}"
    )]
    LocOutOfBounds {
        /// Offset of the 4-byte location field.
        offset: usize,
        /// First byte of the buffer it describes.
        start: usize,
        /// One past its last byte.
        end: usize,
        /// Record length.
        available: usize,
    },
    /// The buffer is empty: there is no request to decode.
    #[error("empty OTLP buffer at byte {offset}")]
    EmptyBuffer {
        /// Offset where the buffer would start.
        offset: usize,
    },
    /// The buffer is not a valid `ExportMetricsServiceRequest`.
    #[error("invalid protobuf in the OTLP buffer starting at byte {offset}: {reason}")]
    Protobuf {
        /// Offset of the buffer's first byte.
        offset: usize,
        /// prost's description of the problem.
        reason: String,
    },
    /// The tracefs `format` text (or the field list derived from it) cannot be used.
    #[error("unusable event format at byte {offset}: {reason}")]
    Format {
        /// Offset in the format text (0 for problems with the field list as a whole).
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A line of ftrace text output (`trace`, `trace_pipe`) could not be read.
    #[error("unusable trace line at byte {offset}: {reason}")]
    Text {
        /// Offset in the line.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A perf sample record could not be taken apart (its fields run past its end, or its
    /// event cannot be told).
    #[error("unusable perf sample at byte {offset}: {reason}")]
    Sample {
        /// Offset in the sample record (its `perf_event_header` is at 0).
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// An EventHeader event could not be read or has no usable `buffer` field.
    #[error("unusable EventHeader event at byte {offset}: {reason}")]
    EventHeader {
        /// Offset in the event's user data where enumeration stopped.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

impl DecodeError {
    /// [`DecodeError::Truncated`] for a field of `size` bytes at `field_offset` in an input of
    /// `available` bytes. Formats can place a field past the end of a short record; the offset
    /// then says where the input ended, so every error's offset lies within its input.
    pub fn truncated(field_offset: usize, size: usize, available: usize) -> DecodeError {
        DecodeError::Truncated {
            offset: field_offset.min(available),
            needed: field_offset.saturating_add(size),
            available,
        }
    }

    /// The byte offset where decoding stopped.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::UnknownProtocol { offset, .. }
            | DecodeError::InvalidVersion { offset, .. }
            | DecodeError::LocOutOfBounds { offset, .. }
            | DecodeError::EmptyBuffer { offset }
            | DecodeError::Protobuf { offset, .. }
            | DecodeError::Format { offset, .. }
            | DecodeError::Text { offset, .. }
            | DecodeError::Sample { offset, .. }
            | DecodeError::EventHeader { offset, .. } => *offset,
        }
    }

    /// A short stable name of the variant, used to count errors by kind in stream statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::UnknownProtocol { .. } => "unknown-protocol",
            DecodeError::InvalidVersion { .. } => "invalid-version",
            DecodeError::LocOutOfBounds { .. } => "loc-out-of-bounds",
            DecodeError::EmptyBuffer { .. } => "empty-buffer",
            DecodeError::Protobuf { .. } => "protobuf",
            DecodeError::Format { .. } => "format",
            DecodeError::Text { .. } => "text",
            DecodeError::Sample { .. } => "sample",
            DecodeError::EventHeader { .. } => "eventheader",
        }
    }

    /// The same error with `delta` added to its offset: used when an error found in a slice is
    /// reported relative to the enclosing record.
    pub(crate) fn shifted(mut self, delta: usize) -> Self {
        match &mut self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::UnknownProtocol { offset, .. }
            | DecodeError::InvalidVersion { offset, .. }
            | DecodeError::LocOutOfBounds { offset, .. }
            | DecodeError::EmptyBuffer { offset }
            | DecodeError::Protobuf { offset, .. }
            | DecodeError::Format { offset, .. }
            | DecodeError::Text { offset, .. }
            | DecodeError::Sample { offset, .. }
            | DecodeError::EventHeader { offset, .. } => *offset += delta,
        }
        self
    }
}

//! Protobuf wire primitives: varints, tags, fixed-width values, length prefixes, and the
//! output buffer they write into.
//!
//! # How nested lengths are written without a second pass
//! A protobuf message inside another is written as `tag, varint(length), body`, so the length
//! must be known before the body. Three ways exist: compute every size first (prost's way: a
//! full size pass over the data, then a write pass), reserve the prefix and patch it afterwards,
//! or write the leaves first and assemble. A size pass reads every attribute twice, so this
//! crate uses the other two, and reads the SDK data exactly once:
//!
//! - **Small messages whose size is cheap to compute exactly** (`KeyValue`, `AnyValue`, packed
//!   arrays, exponential bucket sets) get their length from string lengths and counts first,
//!   then are written in one go.
//! - **Everything else reserves its length prefix and patches it** ([`reserve_len`],
//!   [`finish_len`]) with a width guessed from history: the resource, each scope and the
//!   first data point and exemplar of each metric the width they had at the same position in
//!   the previous export; every further point (exemplar) of a metric the width the point
//!   (exemplar) before it needed; in a single request (`encode/request.rs`) each outer message
//!   (`ResourceMetrics`, `ScopeMetrics`, `Metric`, `Sum`/`Gauge`/...) the width it had at the
//!   same position in the previous export. The usual widths (1 byte below 128, 2 below 16 KiB)
//!   are patched inline; only a wrong guess moves the body, once. In steady state (same shape
//!   as the previous export) no guess is wrong and no byte moves, unless the points of one
//!   metric alternate between sizes below and above 128 bytes (tested by `tests/moves.rs` on
//!   the reference workloads).
//! - **Size-bounded requests** (`chunk.rs`) are written in place too, point by point: the
//!   resource, scope and metric fields are encoded once per export, so a request's outer sizes
//!   are sums of known lengths and the planner knows its exact size before patching any outer
//!   length; a point that does not fit is lifted into the next request (the only copy). The
//!   `ScopeMetrics`/`Metric`/data prefixes are reserved with the width the section at the same
//!   position needed in the previous export; the outermost one is written into a gap before
//!   the request.
//!
//! # Writing fast without `unsafe`
//! [`Buf`] keeps its storage initialized to full capacity, so room for a write costs one
//! comparison and no zero-fill; [`Tail`] stores small headers at indices into that room;
//! [`copy_short`] copies strings of up to [`SHORT`] bytes with two overlapping fixed-size
//! copies instead of a `memcpy` call.

/// Wire type of varint fields (int32/64, uint32/64, sint32/64, bool, enum).
pub(crate) const WIRE_VARINT: u8 = 0;
/// Wire type of 8-byte fields (fixed64, sfixed64, double).
pub(crate) const WIRE_I64: u8 = 1;
/// Wire type of length-delimited fields (string, bytes, messages, packed repeated).
pub(crate) const WIRE_LEN: u8 = 2;

/// The one-byte key of field `field` with wire type `wire_type`. Every field this crate writes
/// has a number below 16, so every key is exactly one byte. The assertion is evaluated at
/// compile time only where a key is a constant item (`const KEY: u8 = tag(..)`); elsewhere it
/// is a run-time check that the optimizer folds away for constant arguments, and that the
/// tests, which write every field, never trip.
#[inline(always)]
pub(crate) const fn tag(field: u8, wire_type: u8) -> u8 {
    assert!(
        field > 0 && field < 16,
        "field numbers above 15 need two-byte keys"
    );
    (field << 3) | wire_type
}

/// A reusable output buffer. Unlike `Vec<u8>`, its backing storage stays initialized to its
/// full size, so making room for a write costs one comparison: no zero-filling of room that is
/// about to be overwritten, no length update per byte. It only allocates when it grows, which
/// after the first export of a given shape does not happen again.
#[derive(Debug, Default)]
pub(crate) struct Buf {
    /// Backing storage; `bytes.len()` is the capacity in use, every byte initialized.
    bytes: Vec<u8>,
    /// Length of the written part.
    len: usize,
}

impl Buf {
    /// Number of bytes written.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forgets the written bytes, keeping the storage.
    #[inline(always)]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Cuts the written part to `len` bytes (no-op if already shorter).
    #[inline(always)]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The written bytes.
    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Makes sure `extra` more bytes fit without growing.
    #[inline(always)]
    pub(crate) fn reserve(&mut self, extra: usize) {
        if self.bytes.len() - self.len < extra {
            self.grow(extra);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, extra: usize) {
        let wanted = (self.len + extra).max(self.bytes.len() * 2).max(256);
        self.bytes.resize(wanted, 0);
    }

    /// Appends one byte.
    #[inline(always)]
    pub(crate) fn push(&mut self, byte: u8) {
        self.reserve(1);
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// Appends `bytes`.
    #[inline(always)]
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends `bytes`, copying up to 2 x [`SHORT`] of them inline instead of calling `memcpy`
    /// (the small identity pieces a size-bounded request repeats).
    #[inline(always)]
    pub(crate) fn extend_from_short(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if n <= SHORT {
            copy_short(self.spare(SHORT), bytes);
            self.advance(n);
        } else if n <= 2 * SHORT {
            copy_up_to_two_short(self.spare(2 * SHORT), bytes);
            self.advance(n);
        } else {
            self.extend_from_slice(bytes);
        }
    }

    /// Appends `n` bytes of unspecified content that the caller overwrites, and returns them.
    #[inline(always)]
    pub(crate) fn append(&mut self, n: usize) -> &mut [u8] {
        self.reserve(n);
        let at = self.len;
        self.len += n;
        &mut self.bytes[at..at + n]
    }

    /// `n` bytes of room after the written part, not yet counted as written: write into them,
    /// then [`Buf::advance`] by what was used.
    #[inline(always)]
    pub(crate) fn spare(&mut self, n: usize) -> &mut [u8] {
        self.reserve(n);
        &mut self.bytes[self.len..self.len + n]
    }

    /// Counts `n` bytes written into [`Buf::spare`] room.
    #[inline(always)]
    pub(crate) fn advance(&mut self, n: usize) {
        debug_assert!(self.len + n <= self.bytes.len());
        self.len += n;
    }
}

impl std::ops::Deref for Buf {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for Buf {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

/// Number of bytes `value` takes as a varint (1 to 10).
#[inline]
pub(crate) const fn varint_len(value: u64) -> usize {
    // Bits needed (at least 1), 7 bits per byte, rounded up: (bits * 9 + 64) / 64 == ceil(bits / 7)
    // for bits in 1..=64, without a division by 7.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    (bits * 9 + 64) / 64
}

/// Size of a length-delimited field whose body is `body_len` bytes: key + length + body.
#[inline]
pub(crate) const fn len_field_size(body_len: usize) -> usize {
    1 + varint_len(body_len as u64) + body_len
}

/// Size of a string/bytes field as prost writes it: nothing when empty (proto3 default).
#[inline]
pub(crate) const fn str_field_size(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len_field_size(len)
    }
}

/// Appends `value` as a varint. The one-byte case is inlined everywhere; longer varints take
/// an out-of-line path.
#[inline(always)]
pub(crate) fn put_varint(buf: &mut Buf, value: u64) {
    if value < 0x80 {
        buf.push(value as u8);
    } else {
        put_long_varint(buf, value);
    }
}

#[inline(never)]
fn put_long_varint(buf: &mut Buf, value: u64) {
    let mut tail = Tail::open(buf);
    tail.varint(value);
    tail.close();
}

/// Longest byte string [`copy_short`] copies.
pub(crate) const SHORT: usize = 32;

/// Copies `src` (at most [`SHORT`] bytes) to the start of `dst` (at least [`SHORT`] bytes)
/// with at most two overlapping fixed-size copies, inlined, instead of a call to `memcpy`
/// (most attribute keys and values are this short).
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert!(n <= SHORT);
    let dst = &mut dst[..SHORT];
    if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..n].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// Copies `src` (at most 2 x [`SHORT`] bytes) to the start of `dst` (at least 2 x [`SHORT`]
/// bytes): [`copy_short`], or above [`SHORT`] bytes two overlapping copies of [`SHORT`].
#[inline(always)]
pub(crate) fn copy_up_to_two_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert!(n <= 2 * SHORT);
    if n <= SHORT {
        copy_short(dst, src);
    } else {
        let dst = &mut dst[..2 * SHORT];
        dst[..SHORT].copy_from_slice(&src[..SHORT]);
        dst[n - SHORT..n].copy_from_slice(&src[n - SHORT..]);
    }
}

/// A few bytes written straight into the room after a buffer's written part: room for
/// [`Tail::ROOM`] bytes is checked once, bytes are stored at indices (no capacity check per
/// byte, no stack copy that the CPU would have to forward), and [`Tail::close`] counts what was
/// written.
pub(crate) struct Tail<'a> {
    /// The room, borrowed apart from the buffer's length so the compiler keeps both in
    /// registers instead of reloading the length after every byte store.
    room: &'a mut [u8],
    /// The buffer's length, advanced by [`Tail::close`].
    written: &'a mut usize,
    len: usize,
}

impl<'a> Tail<'a> {
    /// Room for a key, two 10-byte varints and a fixed64 value, with margin.
    pub(crate) const ROOM: usize = 32;

    /// Makes [`Tail::ROOM`] bytes of room.
    #[inline(always)]
    pub(crate) fn open(buf: &'a mut Buf) -> Self {
        Self::open_with(buf, Self::ROOM)
    }

    /// Makes `room` bytes of room: the caller writes at most that many.
    #[inline(always)]
    pub(crate) fn open_with(buf: &'a mut Buf, room: usize) -> Self {
        buf.reserve(room);
        let Buf { bytes, len } = buf;
        let at = *len;
        Tail {
            room: &mut bytes[at..at + room],
            written: len,
            len: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self, byte: u8) {
        self.room[self.len] = byte;
        self.len += 1;
    }

    #[inline(always)]
    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.byte(value as u8);
    }

    #[inline(always)]
    pub(crate) fn fixed64(&mut self, value: u64) {
        self.room[self.len..self.len + 8].copy_from_slice(&value.to_le_bytes());
        self.len += 8;
    }

    #[inline(always)]
    pub(crate) fn close(self) {
        *self.written += self.len;
    }
}

/// The room after a buffer's written part (from [`Buf::spare`]), filled front to back by a
/// writer that reserved all of it with one room check: each store takes its bytes off the
/// front of what is left, with a length comparison instead of the buffer's bookkeeping;
/// [`Room::written`] says how much to [`Buf::advance`] by at the end. The caller reserves
/// at least what it stores (running out is a bug, and panics).
pub(crate) struct Room<'a> {
    rest: &'a mut [u8],
    len: usize,
}

impl<'a> Room<'a> {
    #[inline(always)]
    pub(crate) fn new(room: &'a mut [u8]) -> Self {
        let len = room.len();
        Room { rest: room, len }
    }

    /// Bytes written so far.
    #[inline(always)]
    pub(crate) fn written(&self) -> usize {
        self.len - self.rest.len()
    }

    /// What is left of the room.
    #[inline(always)]
    pub(crate) fn rest(&mut self) -> &mut [u8] {
        self.rest
    }

    /// The next `N` bytes, to store into; [`Room::advance`] by what was used.
    #[inline(always)]
    pub(crate) fn window<const N: usize>(&mut self) -> &mut [u8; N] {
        self.rest.first_chunk_mut().expect("room reserved")
    }

    /// Counts `n` bytes stored at the front as written.
    #[inline(always)]
    pub(crate) fn advance(&mut self, n: usize) {
        self.rest = &mut std::mem::take(&mut self.rest)[n..];
    }

    /// Stores a key and an 8-byte little-endian value (see [`put_fixed64_field`]).
    #[inline(always)]
    pub(crate) fn fixed64_field(&mut self, field: u8, value: u64) {
        let window = self.window::<9>();
        window[0] = tag(field, WIRE_I64);
        window[1..].copy_from_slice(&value.to_le_bytes());
        self.advance(9);
    }

    /// Stores a packed repeated fixed64/double field of `n` values (nothing when `n` is 0; see
    /// [`put_packed_fixed64`]); needs `1 + 10 + 8 * n` bytes of room.
    #[inline(always)]
    pub(crate) fn packed_fixed64(
        &mut self,
        field: u8,
        n: usize,
        values: impl Iterator<Item = u64>,
    ) {
        if n == 0 {
            return;
        }
        let head = self.window::<{ 1 + 10 }>();
        head[0] = tag(field, WIRE_LEN);
        let head_len = 1 + put_varint_into(&mut head[1..], (n * 8) as u64);
        self.advance(head_len);
        let (slots, _) = self.rest.split_at_mut(n * 8);
        for (slot, value) in slots.chunks_exact_mut(8).zip(values) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        self.advance(n * 8);
    }
}

/// Writes `value` as a varint at the start of `dst` (10 bytes of room); returns its length.
#[inline(always)]
pub(crate) fn put_varint_into(dst: &mut [u8], mut value: u64) -> usize {
    let dst = &mut dst[..10];
    let mut at = 0;
    while value >= 0x80 {
        dst[at] = (value as u8) | 0x80;
        value >>= 7;
        at += 1;
    }
    dst[at] = value as u8;
    at + 1
}

/// Appends a key and a varint value.
#[inline(always)]
pub(crate) fn put_varint_field(buf: &mut Buf, field: u8, value: u64) {
    buf.push(tag(field, WIRE_VARINT));
    put_varint(buf, value);
}

/// Appends a key and an 8-byte little-endian value (fixed64, sfixed64 or double bits).
#[inline(always)]
pub(crate) fn put_fixed64_field(buf: &mut Buf, field: u8, value: u64) {
    let mut bytes = [0u8; 9];
    bytes[0] = tag(field, WIRE_I64);
    bytes[1..].copy_from_slice(&value.to_le_bytes());
    buf.extend_from_slice(&bytes);
}

/// Appends a packed repeated fixed64/double field holding `n` values (`n` counted by the
/// caller; the length prefix is written before the values). Nothing when `n` is 0.
#[inline]
pub(crate) fn put_packed_fixed64(
    buf: &mut Buf,
    field: u8,
    n: usize,
    values: impl Iterator<Item = u64>,
) {
    if n == 0 {
        return;
    }
    put_len_key(buf, field, n * 8);
    for (slot, value) in buf.append(n * 8).chunks_exact_mut(8).zip(values) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

/// Appends a key and a length prefix for a length-delimited body of `len` bytes.
#[inline(always)]
pub(crate) fn put_len_key(buf: &mut Buf, field: u8, len: usize) {
    if len < 0x80 {
        buf.extend_from_slice(&[tag(field, WIRE_LEN), len as u8]);
    } else {
        let mut tail = Tail::open(buf);
        tail.byte(tag(field, WIRE_LEN));
        tail.varint(len as u64);
        tail.close();
    }
}

/// Appends a string/bytes field, always (for oneof members and fields with presence).
#[inline]
pub(crate) fn put_bytes_field(buf: &mut Buf, field: u8, bytes: &[u8]) {
    put_len_key(buf, field, bytes.len());
    // Names, units, descriptions and ids are mostly short: copied inline.
    buf.extend_from_short(bytes);
}

/// Appends a string/bytes field unless it is empty (proto3 default, as prost does).
#[inline]
pub(crate) fn put_str_field(buf: &mut Buf, field: u8, s: &str) {
    if !s.is_empty() {
        put_bytes_field(buf, field, s.as_bytes());
    }
}

/// Zigzag encoding of `sint32` fields.
#[inline]
pub(crate) const fn zigzag32(value: i32) -> u64 {
    ((value << 1) ^ (value >> 31)) as u32 as u64
}

/// Reserves `reserved` bytes for a length prefix at the end of `buf` and returns where the
/// prefix starts; write the body, then call [`finish_len`] with the same values.
#[inline(always)]
pub(crate) fn reserve_len(buf: &mut Buf, reserved: usize) -> usize {
    let at = buf.len();
    buf.append(reserved);
    at
}

/// Writes the length prefix reserved by [`reserve_len`] for the body that follows it. When the
/// real length needs a different number of bytes than reserved, the body moves once (the only
/// copy, and rare when the guess comes from the previous sibling). Returns the body length.
#[inline(always)]
pub(crate) fn finish_len(buf: &mut Buf, at: usize, reserved: usize) -> usize {
    let body_len = buf.len() - (at + reserved);
    if !patch_len(&mut buf[at..at + reserved], body_len) {
        fix_len(buf, at, reserved, body_len);
    }
    body_len
}

/// [`finish_len`] returning the width the length prefix has now: the reserved one when the
/// body length fits it (no bit scan), as the next guess for the same position.
#[inline(always)]
pub(crate) fn finish_len_width(buf: &mut Buf, at: usize, reserved: usize) -> usize {
    let body_len = buf.len() - (at + reserved);
    if patch_len(&mut buf[at..at + reserved], body_len) {
        return reserved;
    }
    fix_len(buf, at, reserved, body_len);
    varint_len(body_len as u64)
}

/// Writes `body_len` into the length prefix reserved as `prefix` when that is the width it
/// needs and the usual one (1 or 2 bytes); false (nothing written) otherwise, for [`fix_len`].
#[inline(always)]
pub(crate) fn patch_len(prefix: &mut [u8], body_len: usize) -> bool {
    match (prefix, body_len) {
        ([only], 0..=0x7F) => *only = body_len as u8,
        ([low, high], 0x80..=0x3FFF) => {
            *low = (body_len as u8) | 0x80;
            *high = (body_len >> 7) as u8;
        }
        _ => return false,
    }
    true
}

/// [`finish_len`] when the reserved prefix has the wrong size, or is longer than 2 bytes.
#[inline(never)]
pub(crate) fn fix_len(buf: &mut Buf, at: usize, reserved: usize, body_len: usize) {
    let body_start = at + reserved;
    let needed = varint_len(body_len as u64);
    #[cfg(feature = "workloads")]
    if needed != reserved {
        moves::record_length_fix(body_len);
    }
    if needed > reserved {
        let grow = needed - reserved;
        buf.append(grow);
        buf.copy_within(body_start..body_start + body_len, body_start + grow);
    } else if needed < reserved {
        buf.copy_within(body_start..body_start + body_len, at + needed);
        buf.truncate(at + needed + body_len);
    }
    put_varint_at(&mut buf[at..at + needed], body_len as u64);
}

/// Writes `value` as a varint filling `dst` exactly (`dst.len()` must be `varint_len(value)`).
pub(crate) fn put_varint_at(dst: &mut [u8], mut value: u64) {
    debug_assert_eq!(dst.len(), varint_len(value));
    let (last, rest) = dst
        .split_last_mut()
        .expect("a varint has at least one byte");
    for byte in rest {
        *byte = (value as u8) | 0x80;
        value >>= 7;
    }
    *last = value as u8;
}

/// Counts of the bytes this crate moves inside its buffers, per thread: how the tests check
/// that a steady-state export moves nothing (test support, behind the `workloads` feature).
#[cfg(feature = "workloads")]
pub(crate) mod moves {
    use std::cell::Cell;

    /// What was moved since the last [`take`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Moves {
        /// Bodies moved because their length prefix was reserved with the wrong width.
        pub length_fixes: usize,
        /// Bytes of those bodies.
        pub length_fix_bytes: usize,
        /// Items (a data point, with its key and length) the size-bounded mode lifted out of
        /// a full request into the next one: one per request that ends inside a metric.
        pub carries: usize,
        /// Bytes of those items (each is copied twice: out and back in).
        pub carry_bytes: usize,
    }

    thread_local! {
        static MOVES: Cell<Moves> = const { Cell::new(Moves {
            length_fixes: 0,
            length_fix_bytes: 0,
            carries: 0,
            carry_bytes: 0,
        }) };
    }

    fn update(f: impl FnOnce(&mut Moves)) {
        MOVES.with(|cell| {
            let mut moves = cell.get();
            f(&mut moves);
            cell.set(moves);
        });
    }

    pub(crate) fn record_length_fix(bytes: usize) {
        update(|m| {
            m.length_fixes += 1;
            m.length_fix_bytes += bytes;
        });
    }

    pub(crate) fn record_carry(bytes: usize) {
        update(|m| {
            m.carries += 1;
            m.carry_bytes += bytes;
        });
    }

    /// The moves of this thread since the last call, and resets them.
    pub fn take() -> Moves {
        MOVES.with(|cell| cell.replace(Moves::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::{encode_varint, encoded_len_varint};

    const EDGES: [u64; 12] = [
        0,
        1,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        u32::MAX as u64,
        1 << 56,
        i64::MAX as u64,
        u64::MAX,
    ];

    #[test]
    fn varint_matches_prost_at_every_length_edge() {
        for value in EDGES {
            let mut ours = Buf::default();
            put_varint(&mut ours, value);
            let mut theirs = Vec::new();
            encode_varint(value, &mut theirs);
            assert_eq!(ours.as_slice(), theirs, "value {value}");
            assert_eq!(
                varint_len(value),
                encoded_len_varint(value),
                "value {value}"
            );
        }
    }

    #[test]
    fn zigzag_matches_the_protobuf_definition() {
        assert_eq!(zigzag32(0), 0);
        assert_eq!(zigzag32(-1), 1);
        assert_eq!(zigzag32(1), 2);
        assert_eq!(zigzag32(-2), 3);
        assert_eq!(zigzag32(i32::MAX), u32::MAX as u64 - 1);
        assert_eq!(zigzag32(i32::MIN), u32::MAX as u64);
    }

    #[test]
    fn finish_len_fixes_wrong_guesses_in_both_directions() {
        let mut buf = Buf::default();
        for reserved in 1..=3 {
            for body_len in [0usize, 5, 127, 128, 300, 20_000] {
                // Stale bytes from an earlier use must never show through.
                buf.clear();
                buf.extend_from_slice(&[0xFF; 40_000]);
                buf.clear();
                buf.push(0xEE);
                let at = reserve_len(&mut buf, reserved);
                let body: Vec<u8> = (0..body_len).map(|i| i as u8).collect();
                buf.extend_from_slice(&body);
                assert_eq!(finish_len(&mut buf, at, reserved), body_len);
                let mut expected = vec![0xEE];
                encode_varint(body_len as u64, &mut expected);
                expected.extend_from_slice(&body);
                assert_eq!(
                    buf.as_slice(),
                    expected,
                    "reserved {reserved}, body {body_len}"
                );
            }
        }
    }

    #[test]
    fn buf_grows_keeps_written_bytes_and_hides_stale_ones() {
        let mut buf = Buf::default();
        for i in 0..1000u32 {
            buf.extend_from_slice(&i.to_le_bytes());
        }
        assert_eq!(buf.len(), 4000);
        assert!(buf
            .chunks(4)
            .enumerate()
            .all(|(i, c)| c == (i as u32).to_le_bytes()));
        buf.clear();
        buf.push(7);
        buf.append(2).copy_from_slice(&[8, 9]);
        buf.spare(16)[..3].copy_from_slice(&[1, 2, 3]);
        buf.advance(1);
        assert_eq!(buf.as_slice(), [7, 8, 9, 1]);
        buf.truncate(2);
        assert_eq!(&buf[..], [7, 8]);
    }

    #[test]
    fn tags_are_field_number_and_wire_type() {
        assert_eq!(tag(1, WIRE_LEN), 0x0A);
        assert_eq!(tag(2, WIRE_I64), 0x11);
        assert_eq!(tag(15, WIRE_VARINT), 0x78);
    }
}

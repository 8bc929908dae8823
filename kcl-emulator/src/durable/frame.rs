//! The frame every durable file is a sequence of: `[payload length u32][CRC-32 of payload u32]
//! [payload]`, little-endian. Shard segments, the Kinesis metadata journal and the DynamoDB
//! write-ahead log all use it, so a torn tail (a write cut off by a crash) or a corrupt frame is
//! found the same way in each: reading stops at the first frame that is short or fails its CRC,
//! and everything before it is the valid prefix a file is cut back to.

use std::ops::RangeInclusive;

/// Length and CRC in front of every payload.
pub(crate) const HEADER_BYTES: usize = 8;

/// Appends one frame to `buf`; its payload is whatever `write_payload` appends. Writing the
/// payload in place saves copying it once more for the frame.
pub(crate) fn encode_with(buf: &mut Vec<u8>, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let header_at = buf.len();
    buf.extend_from_slice(&[0; HEADER_BYTES]);
    let payload_at = buf.len();
    write_payload(buf);
    let payload_len =
        u32::try_from(buf.len() - payload_at).expect("a frame payload is below 4 GiB");
    let crc = crc32fast::hash(&buf[payload_at..]);
    buf[header_at..header_at + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[header_at + 4..header_at + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one frame holding `payload` to `buf`.
pub(crate) fn encode(buf: &mut Vec<u8>, payload: &[u8]) {
    encode_with(buf, |buf| buf.extend_from_slice(payload));
}

/// One whole frame read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) payload: &'a [u8],
    /// Offset just past this frame: the valid prefix if the caller accepts the payload.
    pub(crate) end: usize,
}

/// The whole frames at the start of `bytes`. Iteration stops at the first frame that is short,
/// fails its CRC or has a payload length outside `payload_lengths` (a length no writer produces
/// is garbage, and checking it first avoids hashing a bogus gigabyte).
pub(crate) fn frames(bytes: &[u8], payload_lengths: RangeInclusive<usize>) -> Frames<'_> {
    Frames {
        bytes,
        at: 0,
        payload_lengths,
    }
}

/// Iterator over whole frames; see [`frames`]. The `end` of the last frame a reader accepts
/// is the valid prefix of the file.
#[derive(Debug)]
pub(crate) struct Frames<'a> {
    bytes: &'a [u8],
    at: usize,
    payload_lengths: RangeInclusive<usize>,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let rest = &self.bytes[self.at..];
        if rest.len() < HEADER_BYTES {
            return None;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if !self.payload_lengths.contains(&len) || rest.len() - HEADER_BYTES < len {
            return None;
        }
        let payload = &rest[HEADER_BYTES..HEADER_BYTES + len];
        if crc32fast::hash(payload) != crc {
            return None;
        }
        self.at += HEADER_BYTES + len;
        Some(Frame {
            payload,
            end: self.at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: RangeInclusive<usize> = 0..=usize::MAX;

    /// How many whole frames `bytes` starts with, and the length of that valid prefix.
    fn read(bytes: &[u8], lengths: RangeInclusive<usize>) -> (usize, usize) {
        frames(bytes, lengths).fold((0, 0), |(count, _), frame| (count + 1, frame.end))
    }

    fn three_frames() -> (Vec<u8>, Vec<Vec<u8>>) {
        let payloads = vec![b"first".to_vec(), Vec::new(), vec![7; 300]];
        let mut buf = Vec::new();
        for payload in &payloads {
            encode(&mut buf, payload);
        }
        (buf, payloads)
    }

    #[test]
    fn the_layout_is_length_crc_payload_little_endian() {
        let mut buf = Vec::new();
        encode_with(&mut buf, |buf| buf.extend_from_slice(b"abc"));
        let mut expected = 3u32.to_le_bytes().to_vec();
        expected.extend_from_slice(&crc32fast::hash(b"abc").to_le_bytes());
        expected.extend_from_slice(b"abc");
        assert_eq!(buf, expected);
    }

    #[test]
    fn frames_round_trip_with_their_ends() {
        let (buf, payloads) = three_frames();
        let got: Vec<Frame<'_>> = frames(&buf, ANY).collect();
        assert_eq!(
            got.iter().map(|f| f.payload.to_vec()).collect::<Vec<_>>(),
            payloads
        );
        assert_eq!(
            got.iter().map(|f| f.end).collect::<Vec<_>>(),
            vec![13, 21, 329]
        );
        assert_eq!(got.last().unwrap().end, buf.len());
    }

    #[test]
    fn every_torn_tail_ends_the_read_at_the_last_whole_frame() {
        let (buf, _) = three_frames();
        let last_start = buf.len() - 308;
        for cut in 1..=308 {
            let torn = &buf[..buf.len() - cut];
            assert_eq!(read(torn, ANY), (2, last_start), "cut {cut}");
        }
    }

    #[test]
    fn a_bad_crc_or_an_impossible_length_ends_the_read() {
        let (buf, _) = three_frames();
        for flip in [0, 4, 10] {
            let mut corrupt = buf.clone();
            corrupt[flip] ^= 0x01;
            assert_eq!(read(&corrupt, ANY), (0, 0), "flip at {flip}");
        }
        let mut corrupt = buf.clone();
        let in_last_payload = buf.len() - 1;
        corrupt[in_last_payload] ^= 0x80;
        assert_eq!(read(&corrupt, ANY), (2, 21));
        // The empty second frame is outside 1..=300: reading stops before it.
        assert_eq!(read(&buf, 1..=300), (1, 13));
    }
}

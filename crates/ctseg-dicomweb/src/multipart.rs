//! A streaming `multipart/related` reader (RFC 2046 §5.1, as WADO-RS uses it):
//! parts are read one at a time and their bodies in chunks, so a series of any size
//! passes through a small buffer. A body that ends before the closing delimiter
//! (`--boundary--`) is [`MultipartError::Truncated`].

use std::io::{self, Read};

/// How much is read from the source at a time.
const CHUNK: usize = 64 * 1024;
/// Largest header block of one part.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest run of transport padding after a delimiter.
const MAX_PADDING: usize = 1024;

/// Why a multipart body could not be read.
#[derive(Debug)]
pub enum MultipartError {
    /// The source failed.
    Io(io::Error),
    /// The source ended before the closing delimiter.
    Truncated,
    /// The body does not follow the multipart syntax.
    Malformed(String),
}

/// The headers of one part, names lower-cased.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartHeaders(Vec<(String, String)>);

impl PartHeaders {
    /// The value of header `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// After a delimiter line: a part's headers come next.
    Headers,
    /// Inside a part's body.
    Body,
    /// After the closing delimiter (the epilogue is ignored).
    Closed,
}

/// Reads the parts of a `multipart/*` body from `src`.
pub struct MultipartReader<R> {
    src: R,
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes from `pos` already known to hold no delimiter (not searched again).
    clear: usize,
    eof: bool,
    state: State,
}

impl<R: Read> MultipartReader<R> {
    /// A reader of the parts delimited by `boundary`.
    pub fn new(src: R, boundary: &str) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        MultipartReader {
            src,
            delimiter,
            // A delimiter may open the body without the CRLF that precedes the
            // others: a virtual CRLF lets one search find both.
            buf: b"\r\n".to_vec(),
            pos: 0,
            clear: 0,
            eof: false,
            state: State::Preamble,
        }
    }

    /// Move to the next part (skipping the preamble or the rest of the current
    /// part) and return its headers; `None` after the closing delimiter.
    pub fn next_part(&mut self) -> Result<Option<PartHeaders>, MultipartError> {
        let mut scratch = [0u8; 4096];
        while matches!(self.state, State::Preamble | State::Body) {
            self.read_body(&mut scratch)?;
        }
        if self.state == State::Closed {
            return Ok(None);
        }
        self.read_headers().map(Some)
    }

    /// Read the current part's body into `out`; 0 at the end of the part (and
    /// always outside a part).
    pub fn read_body(&mut self, out: &mut [u8]) -> Result<usize, MultipartError> {
        if !matches!(self.state, State::Preamble | State::Body) || out.is_empty() {
            return Ok(0);
        }
        let dlen = self.delimiter.len();
        if self.clear > 0 {
            return Ok(self.take(self.clear, out));
        }
        loop {
            let avail = &self.buf[self.pos..];
            match find(avail, &self.delimiter) {
                Some(0) => {
                    let after = &avail[dlen..];
                    if after.len() < 2 {
                        self.fill_or_truncated()?;
                        continue;
                    }
                    if after.starts_with(b"--") {
                        self.pos += dlen + 2;
                        self.state = State::Closed;
                        return Ok(0);
                    }
                    let padding = after
                        .iter()
                        .take_while(|&&b| b == b' ' || b == b'\t')
                        .count();
                    if padding > MAX_PADDING {
                        return Err(MultipartError::Malformed(
                            "a delimiter line is too long".into(),
                        ));
                    }
                    if after.len() < padding + 2 {
                        self.fill_or_truncated()?;
                        continue;
                    }
                    if &after[padding..padding + 2] != b"\r\n" {
                        return Err(MultipartError::Malformed(
                            "a boundary delimiter is not followed by a line break".into(),
                        ));
                    }
                    self.pos += dlen + padding + 2;
                    self.state = State::Headers;
                    return Ok(0);
                }
                Some(i) => {
                    self.clear = i;
                    return Ok(self.take(i, out));
                }
                None => {
                    // The tail may be the start of a delimiter: keep it.
                    let safe = avail.len().saturating_sub(dlen - 1);
                    if safe > 0 {
                        self.clear = safe;
                        return Ok(self.take(safe, out));
                    }
                    self.fill_or_truncated()?;
                }
            }
        }
    }

    /// Copy up to `n` buffered bytes to `out`.
    fn take(&mut self, n: usize, out: &mut [u8]) -> usize {
        let n = n.min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.clear -= n;
        n
    }

    fn read_headers(&mut self) -> Result<PartHeaders, MultipartError> {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut size = 0;
        loop {
            let avail = &self.buf[self.pos..];
            let Some(i) = find(avail, b"\r\n") else {
                if avail.len() > MAX_HEADER_BYTES {
                    return Err(MultipartError::Malformed(
                        "a part's headers are too long".into(),
                    ));
                }
                self.fill_or_truncated()?;
                continue;
            };
            if i == 0 {
                self.pos += 2;
                self.state = State::Body;
                return Ok(PartHeaders(headers));
            }
            let line = String::from_utf8_lossy(&avail[..i]).into_owned();
            self.pos += i + 2;
            size += i + 2;
            if size > MAX_HEADER_BYTES {
                return Err(MultipartError::Malformed(
                    "a part's headers are too long".into(),
                ));
            }
            if line.starts_with([' ', '\t']) {
                // A folded continuation of the previous header.
                match headers.last_mut() {
                    Some((_, value)) => {
                        value.push(' ');
                        value.push_str(line.trim());
                    }
                    None => {
                        return Err(MultipartError::Malformed(
                            "a part's headers start with a continuation line".into(),
                        ));
                    }
                }
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(MultipartError::Malformed(format!(
                    "a part's header line has no colon: {:?}",
                    line.chars().take(80).collect::<String>()
                )));
            };
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }

    /// Read more from the source; its end here means the body was cut.
    fn fill_or_truncated(&mut self) -> Result<(), MultipartError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.eof {
            return Err(MultipartError::Truncated);
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        loop {
            match self.src.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                    return Err(MultipartError::Truncated);
                }
                Ok(n) => {
                    self.buf.truncate(old + n);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                        MultipartError::Truncated
                    } else {
                        MultipartError::Io(e)
                    });
                }
            }
        }
    }
}

/// First position of `needle` (non-empty) in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        let j = hay[i..=last_start].iter().position(|&b| b == first)?;
        i += j;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A media type (lower case) and its parameters (names lower case, values unquoted).
pub fn parse_media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = split_unquoted(value, ';').into_iter();
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
        })
        .collect();
    (media, params)
}

/// The boundary of a `multipart/related` Content-Type, or why there is none.
pub fn related_boundary(content_type: &str) -> Result<String, String> {
    let (media, params) = parse_media_type(content_type);
    if media != "multipart/related" {
        return Err(format!(
            "expected multipart/related, got Content-Type {:?}",
            content_type.chars().take(120).collect::<String>()
        ));
    }
    match params.into_iter().find(|(n, _)| n == "boundary") {
        Some((_, b)) if !b.is_empty() && b.len() <= 200 => Ok(b),
        Some(_) => Err("the multipart boundary is empty or too long".into()),
        None => Err("the multipart/related Content-Type has no boundary".into()),
    }
}

/// Split at `sep` outside double quotes.
fn split_unquoted(value: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(String::new());
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// A parameter value without its quotes and escapes.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if !escaped && c == '\\' {
                    escaped = true;
                } else {
                    out.push(c);
                    escaped = false;
                }
            }
            out
        }
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes in pieces of the given sizes (the last one
    /// repeating).
    struct Pieces {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        call: usize,
    }

    impl Read for Pieces {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.call.min(self.sizes.len() - 1)];
            self.call += 1;
            let n = size.min(out.len()).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    type Parts = Vec<(PartHeaders, Vec<u8>)>;

    fn parse(data: &[u8], boundary: &str, sizes: Vec<usize>) -> Result<Parts, MultipartError> {
        let src = Pieces {
            data: data.to_vec(),
            pos: 0,
            sizes,
            call: 0,
        };
        let mut reader = MultipartReader::new(src, boundary);
        let mut parts = Vec::new();
        while let Some(headers) = reader.next_part()? {
            let mut body = Vec::new();
            let mut chunk = [0u8; 7];
            loop {
                let n = reader.read_body(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            parts.push((headers, body));
        }
        Ok(parts)
    }

    fn body(boundary: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = b"preamble text\r\n".to_vec();
        for p in parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            out.extend_from_slice(b"Content-Type: application/dicom\r\n\r\n");
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\nepilogue\r\n").as_bytes());
        out
    }

    /// Bodies that look like delimiters without being one.
    const TRICKY: [&[u8]; 3] = [
        b"\r\n--bound\r\n--boun",
        b"",
        b"DICM\x00\x01\r\n\r\n--\r\n-",
    ];

    #[test]
    fn every_split_position_gives_the_same_parts() {
        let data = body("bound4ry", &TRICKY);
        for split in 1..data.len() {
            let parts = parse(&data, "bound4ry", vec![split, usize::MAX])
                .unwrap_or_else(|e| panic!("split at {split}: {e:?}"));
            assert_eq!(parts.len(), 3, "split at {split}");
            for (got, want) in parts.iter().zip(TRICKY) {
                assert_eq!(got.1, want, "split at {split}");
                assert_eq!(got.0.get("content-type"), Some("application/dicom"));
            }
        }
        for size in 1..=8 {
            let parts = parse(&data, "bound4ry", vec![size]).unwrap();
            assert_eq!(
                parts.iter().map(|p| p.1.as_slice()).collect::<Vec<_>>(),
                TRICKY
            );
        }
    }

    #[test]
    fn delimiter_at_the_very_start_and_no_preamble() {
        let data = b"--b\r\nA: 1\r\n\r\nxyz\r\n--b--";
        let parts = parse(data, "b", vec![1]).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].1, b"xyz");
        assert_eq!(parts[0].0.get("a"), Some("1"));
    }

    #[test]
    fn transport_padding_and_headerless_parts() {
        let data = b"--b \t\r\n\r\nxyz\r\n--b\r\n\r\n\r\n--b--  \r\n";
        let parts = parse(data, "b", vec![3]).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, b"xyz");
        assert_eq!(parts[1].1, b"");
        assert_eq!(parts[1].0, PartHeaders::default());
    }

    #[test]
    fn truncated_bodies_are_errors_at_every_cut() {
        let data = body("bound4ry", &TRICKY);
        // Cutting anywhere before the closing `--` is truncation (the epilogue and
        // the final CRLF are optional).
        let close = data.len() - b"--\r\nepilogue\r\n".len();
        for cut in 0..close + 2 {
            let got = parse(&data[..cut], "bound4ry", vec![5]);
            assert!(
                matches!(got, Err(MultipartError::Truncated)),
                "cut at {cut}: {got:?}"
            );
        }
        assert!(parse(&data[..close + 2], "bound4ry", vec![5]).is_ok());
    }

    #[test]
    fn garbage_after_a_delimiter_is_malformed() {
        let data = b"--b\r\n\r\nxyz\r\n--bX\r\n\r\n--b--";
        assert!(matches!(
            parse(data, "b", vec![64]),
            Err(MultipartError::Malformed(_))
        ));
        let data = b"--b\r\nno colon here\r\n\r\nxyz\r\n--b--";
        assert!(matches!(
            parse(data, "b", vec![64]),
            Err(MultipartError::Malformed(_))
        ));
    }

    #[test]
    fn a_large_part_streams_through_a_small_buffer() {
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let data = body("x", &[&big, b"tail"]);
        let parts = parse(&data, "x", vec![CHUNK]).unwrap();
        assert_eq!(parts[0].1, big);
        assert_eq!(parts[1].1, b"tail");
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            related_boundary(r#"multipart/related; type="application/dicom"; boundary="a;b c""#),
            Ok("a;b c".to_string())
        );
        assert_eq!(
            related_boundary("Multipart/Related;boundary=XYZ;type=application/dicom"),
            Ok("XYZ".to_string())
        );
        assert_eq!(
            related_boundary(r#"multipart/related; BOUNDARY="q\"x""#),
            Ok("q\"x".to_string())
        );
        assert!(related_boundary("application/dicom+json").is_err());
        assert!(related_boundary("multipart/related; type=x").is_err());
        assert!(related_boundary("multipart/related; boundary=\"\"").is_err());
    }

    #[test]
    fn quoted_boundary_parses_a_body() {
        let b = related_boundary(r#"multipart/related; boundary="--== q ==--""#).unwrap();
        let data = body(&b, &[b"one", b"two"]);
        let parts = parse(&data, &b, vec![2]).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].1, b"two");
    }
}

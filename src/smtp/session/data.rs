//! The DATA body scanner: finds the `<CRLF>.<CRLF>` end, removes dot-stuffing (RFC 5321
//! §4.5.2), enforces the text-line limit (§4.5.3.1.6) and the message size limit, without
//! buffering partial lines. A line starts only after CRLF: a bare LF never begins the end
//! marker, so `<LF>.<CRLF>` tricks ("SMTP smuggling") cannot end the message early.

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including the CRLF.
pub const MAX_TEXT_LINE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Right after CRLF (or at the very start of the data).
    LineStart,
    /// A '.' at a line start was read (and not copied).
    AfterDot,
    /// `.` then `\r` at a line start.
    AfterDotCr,
    /// Inside a line; `last_cr` says whether the previous byte was '\r'.
    InLine { last_cr: bool },
}

/// What [`DataScanner::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// All input consumed; the end marker has not been seen yet.
    NeedMore,
    /// The end marker ended at this many bytes of the input; the rest is the next command.
    Complete(usize),
}

/// Scans one DATA body into `body`.
#[derive(Debug)]
pub struct DataScanner {
    position: Position,
    line_length: usize,
    max_size: usize,
    /// A line passed [`MAX_TEXT_LINE`].
    pub line_too_long: bool,
    /// The body passed the size limit; nothing more is kept.
    pub too_big: bool,
}

impl DataScanner {
    pub fn new(max_size: usize) -> DataScanner {
        DataScanner {
            position: Position::LineStart,
            line_length: 0,
            max_size,
            line_too_long: false,
            too_big: false,
        }
    }

    fn keep(&mut self, body: &mut Vec<u8>, bytes: &[u8]) {
        if self.too_big {
            return;
        }
        if body.len() + bytes.len() > self.max_size {
            self.too_big = true;
            body.clear();
            body.shrink_to_fit();
            return;
        }
        body.extend_from_slice(bytes);
    }

    fn count(&mut self, bytes: usize) {
        self.line_length += bytes;
        if self.line_length > MAX_TEXT_LINE {
            self.line_too_long = true;
        }
    }

    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Scan {
        let mut index = 0;
        while index < input.len() {
            match self.position {
                Position::LineStart => {
                    self.line_length = 0;
                    if input[index] == b'.' {
                        self.count(1);
                        index += 1;
                        self.position = Position::AfterDot;
                    } else {
                        self.position = Position::InLine { last_cr: false };
                    }
                }
                Position::AfterDot => {
                    if input[index] == b'\r' {
                        self.count(1);
                        index += 1;
                        self.position = Position::AfterDotCr;
                    } else {
                        // A stuffed dot: dropped (RFC 5321 §4.5.2).
                        self.position = Position::InLine { last_cr: false };
                    }
                }
                Position::AfterDotCr => {
                    if input[index] == b'\n' {
                        return Scan::Complete(index + 1);
                    }
                    // ".\r" followed by something else: the dot was stuffing, the CR is data.
                    self.keep(body, b"\r");
                    self.position = Position::InLine { last_cr: true };
                }
                Position::InLine { last_cr } => {
                    let rest = &input[index..];
                    match rest.iter().position(|&byte| byte == b'\n') {
                        Some(newline) => {
                            let line = &rest[..=newline];
                            self.count(line.len());
                            self.keep(body, line);
                            index += newline + 1;
                            let crlf = if newline == 0 {
                                last_cr
                            } else {
                                line[newline - 1] == b'\r'
                            };
                            self.position = if crlf {
                                Position::LineStart
                            } else {
                                Position::InLine { last_cr: false }
                            };
                        }
                        None => {
                            self.count(rest.len());
                            self.keep(body, rest);
                            let last_cr = rest.last() == Some(&b'\r');
                            self.position = Position::InLine { last_cr };
                            index = input.len();
                        }
                    }
                }
            }
        }
        Scan::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]], max: usize) -> (Vec<u8>, Option<usize>, DataScanner) {
        let mut scanner = DataScanner::new(max);
        let mut body = Vec::new();
        let mut consumed = 0;
        for piece in pieces {
            if let Scan::Complete(end) = scanner.feed(piece, &mut body) {
                return (body, Some(consumed + end), scanner);
            }
            consumed += piece.len();
        }
        (body, None, scanner)
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_unstuffs() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        let (body, end, _) = scan_all(&[input], 1000);
        assert_eq!(body, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(&input[end.unwrap()..], b"QUIT\r\n");
    }

    #[test]
    fn an_empty_body_ends_at_once() {
        let (body, end, _) = scan_all(&[b".\r\n"], 1000);
        assert!(body.is_empty());
        assert_eq!(end, Some(3));
    }

    #[test]
    fn the_marker_may_be_split_at_any_byte() {
        let input: &[u8] = b"a\r\nb\r\n.\r\n";
        for split in 0..input.len() {
            let (body, end, _) = scan_all(&[&input[..split], &input[split..]], 1000);
            assert_eq!(body, b"a\r\nb\r\n", "split at {split}");
            assert_eq!(end, Some(input.len()), "split at {split}");
        }
    }

    #[test]
    fn bare_lf_never_ends_the_message() {
        let (body, end, _) = scan_all(&[b"a\n.\r\nb\r\n.\n.\r\r\n"], 1000);
        assert_eq!(end, None);
        assert_eq!(body, b"a\n.\r\nb\r\n\n.\r\r\n");
        let (_, end, _) = scan_all(&[b"a\n.\r\nb\r\n.\r\n"], 1000);
        assert_eq!(end, Some(11));
    }

    #[test]
    fn long_lines_and_big_bodies_are_flagged() {
        let line = vec![b'x'; MAX_TEXT_LINE - 2];
        let mut ok = line.clone();
        ok.extend_from_slice(b"\r\n.\r\n");
        let (_, end, scanner) = scan_all(&[&ok], 10_000);
        assert!(end.is_some() && !scanner.line_too_long);
        let mut long = vec![b'x'; MAX_TEXT_LINE - 1];
        long.extend_from_slice(b"\r\n.\r\n");
        let (_, end, scanner) = scan_all(&[&long], 10_000);
        assert!(end.is_some() && scanner.line_too_long);
        let (body, end, scanner) = scan_all(&[b"0123456789\r\n.\r\n"], 5);
        assert!(end.is_some() && scanner.too_big && body.is_empty());
    }
}

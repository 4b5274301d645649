//! The realistic corpus of `mail-populate --corpus realistic`: what the store-overhead figure
//! needs that the 25-word default corpus (which LZ4 shrinks to 0.44 ×) does not give.
//! - Text from a 50,000-word vocabulary (`/usr/share/dict/words` when present, else generated
//!   pseudo-words), words drawn with Zipf's law (rank r with weight 1/r), with punctuation,
//!   numbers and line wrapping; some replies quote their parent's text.
//! - Varied headers: 1–6 Received lines, a DKIM-Signature on half the messages, mailing-list
//!   headers on a fifth, 1–8 recipients.
//! - A third are multipart/alternative with an HTML version of the text.
//! - About 15% carry a base64 attachment of random (incompressible) bytes, 8–256 KB
//!   (log-uniform): compressed files, images, PDFs as they travel in mail.
//!
//! Deterministic for a given sequence seed, so runs are comparable.

use super::Sequence;

const VOCABULARY_SIZE: usize = 50_000;
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Words and the cumulative Zipf weights to draw them by.
pub struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

fn generated_words() -> Vec<String> {
    const ONSETS: &[&str] = &[
        "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
        "br", "ch", "cl", "cr", "dr", "fl", "fr", "gr", "pl", "pr", "sh", "sl", "sp", "st", "str",
        "th", "tr",
    ];
    const NUCLEI: &[&str] = &[
        "a", "e", "i", "o", "u", "ai", "ea", "ee", "ie", "oo", "ou", "y",
    ];
    const CODAS: &[&str] = &[
        "", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "nt", "rt", "st", "ck", "x",
    ];
    let mut sequence = Sequence(0x0bad_cafe_f00d_d00d);
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::with_capacity(VOCABULARY_SIZE);
    while words.len() < VOCABULARY_SIZE {
        // Frequent words are short, as in every language.
        let syllables =
            1 + (words.len() > 200) as u64 + sequence.below(2 + words.len() as u64 / 10_000);
        let mut word = String::new();
        for _ in 0..syllables {
            word.push_str(ONSETS[sequence.below(ONSETS.len() as u64) as usize]);
            word.push_str(NUCLEI[sequence.below(NUCLEI.len() as u64) as usize]);
            word.push_str(CODAS[sequence.below(CODAS.len() as u64) as usize]);
        }
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

impl Vocabulary {
    pub fn load() -> Vocabulary {
        let mut words: Vec<String> = std::fs::read_to_string("/usr/share/dict/words")
            .map(|text| {
                text.lines()
                    .filter(|word| !word.is_empty() && !word.contains('\''))
                    .take(VOCABULARY_SIZE)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if words.len() < VOCABULARY_SIZE / 2 {
            words = generated_words();
        } else {
            // A dictionary is sorted: shuffle it so frequency does not follow the alphabet.
            let mut sequence = Sequence(0x5151_7777_aaaa_3333);
            for index in (1..words.len()).rev() {
                words.swap(index, sequence.below(index as u64 + 1) as usize);
            }
        }
        let mut cumulative = Vec::with_capacity(words.len());
        let mut sum = 0.0;
        for rank in 1..=words.len() {
            sum += 1.0 / rank as f64;
            cumulative.push(sum);
        }
        Vocabulary { words, cumulative }
    }

    fn word(&self, sequence: &mut Sequence) -> &str {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let target = (sequence.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let index = self.cumulative.partition_point(|weight| *weight < target);
        &self.words[index.min(self.words.len() - 1)]
    }

    /// Running text of about `bytes` bytes, wrapped at 72 columns.
    fn text(&self, sequence: &mut Sequence, bytes: usize) -> String {
        let mut text = String::with_capacity(bytes + 80);
        let mut line = 0usize;
        let mut sentence_start = true;
        while text.len() < bytes {
            let mut word = match sequence.below(40) {
                0 => sequence.below(100_000).to_string(),
                _ => self.word(sequence).to_owned(),
            };
            if sentence_start {
                if let Some(first) = word.get(..1) {
                    word = first.to_uppercase() + &word[1..];
                }
                sentence_start = false;
            }
            match sequence.below(14) {
                0 => {
                    word.push('.');
                    sentence_start = true;
                }
                1 => word.push(','),
                _ => {}
            }
            if line + word.len() + 1 > 72 {
                text.push_str("\r\n");
                line = 0;
                if sequence.below(6) == 0 {
                    // A paragraph.
                    text.push_str("\r\n");
                }
            } else if line > 0 {
                text.push(' ');
                line += 1;
            }
            line += word.len();
            text.push_str(&word);
        }
        text.push_str("\r\n");
        text
    }
}

fn base64_lines(sequence: &mut Sequence, raw_bytes: usize) -> String {
    let mut out = String::with_capacity(raw_bytes * 4 / 3 + raw_bytes / 38 + 8);
    let mut column = 0;
    let mut produced = 0;
    while produced < raw_bytes {
        let bits = sequence.next();
        for shift in 0..4 {
            out.push(BASE64[((bits >> (shift * 6)) & 63) as usize] as char);
            column += 1;
            if column == 76 {
                out.push_str("\r\n");
                column = 0;
            }
        }
        produced += 3;
    }
    out.push_str("\r\n");
    out
}

/// `base64_lines` as the value of a header field: every line after the first is a
/// continuation (RFC 5322 §2.2.3: folding inserts CRLF before white space), and no CRLF at
/// the end (the caller ends the field).
fn folded(lines: &str) -> String {
    lines.trim_end().replace("\r\n", "\r\n\t")
}

fn html_of(text: &str) -> String {
    let mut html = String::from(
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\
         </head><body style=\"font-family: Arial, sans-serif; font-size: 14px\">\r\n",
    );
    for paragraph in text.split("\r\n\r\n") {
        html.push_str("<p>");
        html.push_str(&paragraph.replace("\r\n", "<br>\r\n"));
        html.push_str("</p>\r\n");
    }
    html.push_str("</body></html>\r\n");
    html
}

/// One realistic message: its raw bytes and its subject; a reply (`parent`) takes its
/// parent's subject and may quote some text.
pub fn message(
    vocabulary: &Vocabulary,
    sequence: &mut Sequence,
    number: u64,
    parent: Option<(u64, &str)>,
) -> (Vec<u8>, String) {
    let subject = match parent {
        Some((_, subject)) => subject.to_owned(),
        None => {
            let bytes = 20 + sequence.below(40) as usize;
            vocabulary
                .text(sequence, bytes)
                .trim_end()
                .replace("\r\n", " ")
        }
    };
    let sender = sequence.below(2_000);
    let mut head = String::with_capacity(2048);
    for hop in 0..1 + sequence.below(6) {
        head.push_str(&format!(
            "Received: from mx{hop}.relay{}.example.net (mx{hop}.relay{}.example.net [192.0.2.{}])\r\n\
             \tby mx.example.test with ESMTPS id {:016x}; Sat, 21 Nov 2026 10:{:02}:{:02} +0000\r\n",
            sequence.below(500),
            sequence.below(500),
            sequence.below(250),
            sequence.next(),
            sequence.below(60),
            sequence.below(60),
        ));
    }
    if sequence.below(2) == 0 {
        head.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=domain{}.example;\r\n\
             \ts=selector1; h=from:to:subject:date:message-id;\r\n\tbh={};\r\n\tb={}\r\n",
            sender % 300,
            folded(&base64_lines(sequence, 32)),
            folded(&base64_lines(sequence, 256))
        ));
    }
    head.push_str(&format!(
        "From: {} {} <user{sender}@domain{}.example>\r\n",
        vocabulary.word(sequence),
        vocabulary.word(sequence),
        sender % 300
    ));
    let recipients = 1 + sequence.below(8);
    let to: Vec<String> = (0..recipients)
        .map(|index| {
            if index == 0 {
                "Alice <alice@example.test>".to_owned()
            } else {
                format!(
                    "{} <{}@example.org>",
                    vocabulary.word(sequence),
                    vocabulary.word(sequence)
                )
            }
        })
        .collect();
    head.push_str(&format!("To: {}\r\n", to.join(",\r\n ")));
    if sequence.below(4) == 0 {
        head.push_str(&format!(
            "Cc: {} <cc{}@example.org>\r\n",
            vocabulary.word(sequence),
            sequence.below(1000)
        ));
    }
    head.push_str(&format!(
        "Subject: {}{subject}\r\nMessage-ID: <r{number}.{:x}@mail.example.net>\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n",
        if parent.is_some() { "Re: " } else { "" },
        sequence.next()
    ));
    if let Some((parent_number, _)) = parent {
        head.push_str(&format!(
            "In-Reply-To: <r{parent_number}@mail.example.net>\r\nReferences: <r{parent_number}@mail.example.net>\r\n"
        ));
    }
    if sequence.below(5) == 0 {
        head.push_str(&format!(
            "List-Id: <list{0}.lists.example.org>\r\nList-Unsubscribe: <https://lists.example.org/u/{1:x}>\r\n\
             Precedence: list\r\n",
            sequence.below(50),
            sequence.next()
        ));
    }
    head.push_str(&format!(
        "X-Mailer: Mailer {}.{}\r\n",
        sequence.below(20),
        sequence.below(10)
    ));

    // Text sizes spread as in real mail: mostly short, some long (300 B – 12 KB).
    let text_bytes =
        (300.0 * (40f64).powf((sequence.below(1000) as f64 / 1000.0).powi(2))) as usize;
    let mut text = vocabulary.text(sequence, text_bytes);
    if parent.is_some() && sequence.below(2) == 0 {
        let quoted = vocabulary.text(sequence, text_bytes / 2 + 100);
        text.push_str("\r\nOn Sat, 21 Nov 2026 someone wrote:\r\n");
        for line in quoted.lines() {
            text.push_str("> ");
            text.push_str(line);
            text.push_str("\r\n");
        }
    }
    let html = sequence.below(3) == 0;
    let attachment = (sequence.below(100) < 15).then(|| {
        // 8–256 KB, log-uniform.
        let bytes = (8192.0 * 32f64.powf(sequence.below(1000) as f64 / 1000.0)) as usize;
        base64_lines(sequence, bytes)
    });
    let text_part = format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}"
    );
    let body_part = if html {
        format!(
            "Content-Type: multipart/alternative; boundary=\"alt{number}\"\r\n\r\n--alt{number}\r\n{text_part}\
             --alt{number}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\
             --alt{number}--\r\n",
            html_of(&text)
        )
    } else {
        text_part
    };
    let raw = match attachment {
        Some(encoded) => format!(
            "{head}Content-Type: multipart/mixed; boundary=\"mix{number}\"\r\n\r\n--mix{number}\r\n{body_part}\
             --mix{number}\r\nContent-Type: application/octet-stream; name=\"file{number}.zip\"\r\n\
             Content-Disposition: attachment; filename=\"file{number}.zip\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}--mix{number}--\r\n"
        ),
        None => format!("{head}{body_part}"),
    };
    (raw.into_bytes(), subject)
}

//! The pathological messages of issue 13, as anyone on the internet can send them: many
//! small parts, and multiparts nested thousands deep.

/// A `multipart/mixed` message of `parts` small `text/plain` parts (10,000: about 440 KB).
pub fn many_parts(parts: usize) -> Vec<u8> {
    let mut raw = String::from(
        "From: many@remote.example\r\nTo: alice@example.test\r\nSubject: many parts\r\n\
         Message-ID: <many-parts@remote.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    for part in 0..parts {
        raw.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {part}\r\n"
        ));
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

/// `depth` multiparts, each the only part of the one around it, with a text at the bottom.
pub fn deep_nesting(depth: usize) -> Vec<u8> {
    let mut raw = String::from(
        "From: deep@remote.example\r\nTo: alice@example.test\r\nSubject: deep\r\n\
         Message-ID: <deep-nesting@remote.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"d0\"\r\n\r\n",
    );
    for level in 1..depth {
        raw.push_str(&format!(
            "--d{}\r\nContent-Type: multipart/mixed; boundary=\"d{level}\"\r\n\r\n",
            level - 1
        ));
    }
    raw.push_str(&format!(
        "--d{}\r\nContent-Type: text/plain\r\n\r\nbottom\r\n",
        depth.saturating_sub(1)
    ));
    for level in (0..depth).rev() {
        raw.push_str(&format!("--d{level}--\r\n"));
    }
    raw.into_bytes()
}

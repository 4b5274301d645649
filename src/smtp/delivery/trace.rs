//! The trace and authentication header fields delivery prepends, and the checks behind them:
//! SPF (RFC 7208) of the client IP for the MAIL FROM and HELO identities, DKIM (RFC 6376)
//! signatures, DMARC (RFC 7489) alignment, all through `mail-auth` over the configured DNS.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult,
};

use crate::dns::DnsCache;
use crate::smtp::incoming::IncomingMessage;
use crate::smtp::spam::rules::AuthSummary;

/// What authentication produced: the `Authentication-Results:` field (with CRLF) and the facts
/// the spam rules use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOutcome {
    pub header: String,
    pub summary: AuthSummary,
}

/// Verifies SPF, DKIM and DMARC for a message received over SMTP. A local hand-over (no client
/// IP) or an authenticated submission is not checked: its results say so. Lookups go through
/// `cache` (shared by every delivery).
pub async fn authenticate(
    resolver: &MessageAuthenticator,
    cache: &DnsCache,
    hostname: &str,
    entry: &IncomingMessage,
    raw: &[u8],
) -> AuthOutcome {
    let Some(ip) = entry.client_ip.filter(|_| entry.authenticated_as.is_none()) else {
        // RFC 8601 §2.2: `none` when no method was applied; `auth` for a submission login.
        let header = match &entry.authenticated_as {
            Some(login) => format!(
                "Authentication-Results: {hostname};\r\n\tauth=pass smtp.auth={}\r\n",
                sanitize(login)
            ),
            None => format!("Authentication-Results: {hostname}; none\r\n"),
        };
        return AuthOutcome {
            header,
            summary: AuthSummary::default(),
        };
    };
    let helo = sanitize(&entry.helo);
    let helo = if helo.is_empty() {
        ip.to_string()
    } else {
        helo
    };
    let mail_from = entry.mail_from.as_str();
    // RFC 7208 §2.4: with a null reverse-path, the HELO identity is checked.
    let spf = resolver
        .verify_spf(cache.parameters(SpfParameters::verify(ip, &helo, hostname, mail_from)))
        .await;
    let mail_from_domain = mail_from
        .rsplit_once('@')
        .map_or(helo.as_str(), |(_, domain)| domain)
        .to_lowercase();
    let mut results = AuthenticationResults::new(hostname);
    let mut summary = AuthSummary {
        spf_fail: spf.result() == SpfResult::Fail,
        spf_softfail: spf.result() == SpfResult::SoftFail,
        ..AuthSummary::default()
    };
    match AuthenticatedMessage::parse(raw) {
        Some(message) => {
            let dkim = resolver.verify_dkim(cache.parameters(&message)).await;
            let header_from = message.from.first().cloned().unwrap_or_default();
            summary.dkim_fail = !dkim.is_empty()
                && !dkim
                    .iter()
                    .any(|output| output.result() == &DkimResult::Pass)
                && dkim.iter().any(|output| {
                    // mail-auth reports a body hash mismatch as neutral.
                    matches!(
                        output.result(),
                        DkimResult::Fail(_) | DkimResult::Neutral(_)
                    )
                });
            let dmarc = resolver
                .verify_dmarc(cache.parameters(DmarcParameters::new(
                    &message,
                    &dkim,
                    &mail_from_domain,
                    &spf,
                )))
                .await;
            summary.dmarc_fail =
                dmarc.dmarc_record().is_some() && matches!(dmarc.result(), DmarcResult::Fail(_));
            summary.dmarc_enforced =
                summary.dmarc_fail && matches!(dmarc.policy(), Policy::Reject | Policy::Quarantine);
            results = if dkim.is_empty() {
                results
            } else {
                results.with_dkim_results(&dkim, &header_from)
            };
            results = spf_results(results, &spf, ip, mail_from, &helo);
            results = results.with_dmarc_result(&dmarc);
        }
        None => {
            results = spf_results(results, &spf, ip, mail_from, &helo);
        }
    }
    AuthOutcome {
        header: results.to_header(),
        summary,
    }
}

fn spf_results<'x>(
    results: AuthenticationResults<'x>,
    spf: &mail_auth::SpfOutput,
    ip: IpAddr,
    mail_from: &str,
    helo: &str,
) -> AuthenticationResults<'x> {
    if mail_from.is_empty() {
        results.with_spf_ehlo_result(spf, ip, helo)
    } else {
        results.with_spf_mailfrom_result(spf, ip, mail_from, helo)
    }
}

/// Keeps what may appear in a header field from client-chosen text (HELO, logins): no
/// whitespace, controls, quotes, parentheses or semicolons; at most 255 characters.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | ';' | '"' | '\\' | '<' | '>'))
        .take(255)
        .collect()
}

/// RFC 5321 §4.4: the `Return-Path:` and `Received:` fields the final delivery adds. The
/// `for` clause names the recipient only when there is one (several would disclose Bcc).
pub fn received_fields(hostname: &str, entry: &IncomingMessage) -> String {
    let mut fields = String::with_capacity(256);
    // RFC 5321 §4.4: the reverse-path, `<>` for the null one.
    fields.push_str("Return-Path: <");
    fields.push_str(&sanitize(&entry.mail_from));
    fields.push_str(">\r\n");
    fields.push_str("Received: ");
    if let Some(ip) = entry.client_ip {
        let literal = match ip {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        let helo = sanitize(&entry.helo);
        let helo = if helo.is_empty() {
            literal.clone()
        } else {
            helo
        };
        fields.push_str(&format!("from {helo} ({literal})\r\n\t"));
    }
    // RFC 3848: ESMTP, with S for TLS and A for an authenticated session.
    let protocol = match (
        entry.client_ip.is_some(),
        entry.tls,
        entry.authenticated_as.is_some(),
    ) {
        (false, _, _) => "local",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    };
    fields.push_str(&format!(
        "by {hostname} (Tern) with {protocol} id {:016x}",
        entry.queue_id
    ));
    if let [only] = entry.recipients.as_slice() {
        fields.push_str(&format!("\r\n\tfor <{}>", sanitize(&only.address)));
    }
    let date = mail_builder::headers::date::Date::new(entry.received_at).to_rfc822();
    fields.push_str(&format!(";\r\n\t{date}\r\n"));
    fields
}

/// RFC 8601 §5: `Authentication-Results:` fields that claim to come from this server's
/// authserv-id were not written by it (it has not seen the message yet) and MUST be removed
/// before delivery. Returns the message without them (unchanged when there are none).
pub fn remove_forged_results(raw: &[u8], hostname: &str) -> Vec<u8> {
    let header_end = find_header_end(raw);
    let mut output = Vec::with_capacity(raw.len());
    let mut position = 0;
    while position < header_end {
        let field_end = field_end(raw, position, header_end);
        let field = &raw[position..field_end];
        if !is_forged_result(field, hostname) {
            output.extend_from_slice(field);
        }
        position = field_end;
    }
    output.extend_from_slice(&raw[header_end..]);
    output
}

/// Where the header block ends (the start of the blank line, or the end of input).
fn find_header_end(raw: &[u8]) -> usize {
    let mut position = 0;
    while position < raw.len() {
        if raw[position..].starts_with(b"\r\n") || raw[position] == b'\n' {
            return position;
        }
        match raw[position..].iter().position(|byte| *byte == b'\n') {
            Some(newline) => position += newline + 1,
            None => return raw.len(),
        }
    }
    raw.len()
}

/// The end of the field starting at `start` (its continuation lines included).
fn field_end(raw: &[u8], start: usize, limit: usize) -> usize {
    let mut position = start;
    loop {
        match raw[position..limit].iter().position(|byte| *byte == b'\n') {
            Some(newline) => position += newline + 1,
            None => return limit,
        }
        if position >= limit || !matches!(raw[position], b' ' | b'\t') {
            return position;
        }
    }
}

fn is_forged_result(field: &[u8], hostname: &str) -> bool {
    let Some(colon) = field.iter().position(|byte| *byte == b':') else {
        return false;
    };
    if !field[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(b"authentication-results")
    {
        return false;
    }
    let value = String::from_utf8_lossy(&field[colon + 1..]);
    // authserv-id [version] ";" …
    let id = value
        .trim_start()
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    id.eq_ignore_ascii_case(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::incoming::{BodyType, IncomingRecipient};

    fn entry(recipients: usize) -> IncomingMessage {
        IncomingMessage {
            queue_id: 0xabc,
            blob: crate::store::blob::BlobHash([0; 32]),
            size: 10,
            mail_from: "sender@remote.example".into(),
            recipients: (0..recipients)
                .map(|index| IncomingRecipient {
                    address: format!("u{index}@local.example"),
                    account_id: 1,
                    delivered: false,
                    notify: None,
                    orcpt: None,
                })
                .collect(),
            client_ip: Some("192.0.2.7".parse().unwrap()),
            helo: "client.remote.example".into(),
            tls: true,
            authenticated_as: None,
            received_at: 1_795_000_000,
            env_id: None,
            ret: None,
            body_type: BodyType::SevenBit,
            smtputf8: false,
            attempts: 0,
            not_before: 0,
        }
    }

    #[test]
    fn received_names_the_hop_and_the_lone_recipient() {
        let fields = received_fields("mx.local.example", &entry(1));
        assert!(fields.starts_with("Return-Path: <sender@remote.example>\r\nReceived: from client.remote.example ([192.0.2.7])\r\n\tby mx.local.example (Tern) with ESMTPS id 0000000000000abc\r\n\tfor <u0@local.example>;\r\n\t"), "{fields}");
        assert!(fields.ends_with("\r\n"));
        let several = received_fields("mx.local.example", &entry(2));
        assert!(!several.contains("for <"), "{several}");
        let raw = format!("{fields}Subject: x\r\n\r\nbody");
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some("x"));
    }

    #[test]
    fn forged_results_of_our_id_are_removed_and_others_kept() {
        let raw = b"Authentication-Results: mx.local.example; spf=pass\r\n\tsmtp.mailfrom=x\r\nAuthentication-Results: other.example; dkim=pass\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.local.example; body text\r\n";
        let cleaned = remove_forged_results(raw, "MX.local.example");
        assert_eq!(
            cleaned,
            b"Authentication-Results: other.example; dkim=pass\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.local.example; body text\r\n"
        );
        let untouched = b"Subject: x\r\n\r\nbody";
        assert_eq!(remove_forged_results(untouched, "mx"), untouched.to_vec());
    }

    #[test]
    fn client_text_cannot_break_out_of_a_field() {
        assert_eq!(sanitize("evil\r\nX-Injected: 1"), "evilX-Injected:1");
        assert_eq!(sanitize("a (b); c"), "abc");
    }
}

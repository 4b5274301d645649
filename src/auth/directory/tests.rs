use super::*;

#[test]
fn emails_are_normalized_and_checked() {
    assert_eq!(
        Email::parse(" Alice@Example.TEST ").unwrap().as_str(),
        "alice@example.test"
    );
    for bad in [
        "",
        "alice",
        "@example.test",
        "alice@",
        "a b@x.test",
        "a@b@c",
        "a@.x",
        "a@x.",
    ] {
        let error = Email::parse(bad).unwrap_err();
        assert_eq!(error.kind, DirectoryErrorKind::InvalidEmail, "{bad:?}");
    }
    assert!(Email::parse(&format!("{}@x.test", "a".repeat(65))).is_err());
}

#[test]
fn hex_round_trips() {
    let digest = token_digest("tern_x");
    assert_eq!(unhex(&hex(&digest)), Some(digest));
    assert_eq!(unhex("zz"), None);
}

use std::net::Ipv4Addr;

use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn settings(address_burst: u32, account_burst: u32) -> ThrottleSettings {
    ThrottleSettings {
        address_burst,
        address_refill: Duration::from_millis(200),
        account_burst,
        account_refill: Duration::from_millis(200),
        max_delay: Duration::from_millis(250),
    }
}

fn fail(throttle: &LoginThrottle, address: IpAddr, login: &str) -> Result<Duration, Refusal> {
    let attempt = throttle.admit(address, login)?;
    let delay = attempt.delay();
    attempt.failed();
    Ok(delay)
}

#[test]
fn an_address_is_slowed_then_refused_never_blocked_for_good() {
    let throttle = LoginThrottle::new(settings(3, 100));
    for _ in 0..3 {
        assert_eq!(fail(&throttle, ip(1), "a@x"), Ok(Duration::ZERO));
    }
    // Empty: the next attempt waits for its token (one refill) instead of a 429 ...
    let delayed = throttle.admit(ip(1), "b@x").expect("slowed, not refused");
    assert!(
        delayed.delay() > Duration::from_millis(150),
        "{:?}",
        delayed.delay()
    );
    assert_eq!(delayed.delayed_by(), Some(Scope::Address));
    // ... and a second one concurrently would wait two refills (over max_delay): refused.
    let refused = throttle.admit(ip(1), "c@x").err().expect("refused");
    assert_eq!(refused.scope, Scope::Address);
    assert!(refused.retry_after > Duration::from_millis(250));
    // The first was right: its reservation comes back.
    delayed.succeeded();
    assert!(throttle.admit(ip(1), "c@x").is_ok());
    // Other addresses are unaffected.
    assert_eq!(
        throttle.admit(ip(2), "a@x").map(|attempt| attempt.delay()),
        Ok(Duration::ZERO)
    );
}

#[test]
fn an_account_is_throttled_across_addresses_but_not_for_clean_addresses() {
    let throttle = LoginThrottle::new(settings(100, 3));
    // One failure from each of three addresses: the account's burst is gone.
    for last in 1..=3 {
        assert_eq!(fail(&throttle, ip(last), "Alice@X"), Ok(Duration::ZERO));
    }
    // A failed address is now in the account's slow lane: delayed, then refused.
    let delayed = throttle.admit(ip(1), "alice@x").expect("slowed");
    assert_eq!(delayed.delayed_by(), Some(Scope::Account));
    let refused = throttle.admit(ip(2), "alice@x").err().expect("refused");
    assert_eq!(refused.scope, Scope::Account);
    drop(delayed);
    // An address that never failed logs in at once (the real user's own device) ...
    let clean = throttle.admit(ip(50), "alice@x").expect("admitted");
    assert_eq!(clean.delay(), Duration::ZERO);
    clean.succeeded();
    // ... and other accounts from the failed addresses are not concerned.
    assert_eq!(
        throttle
            .admit(ip(1), "bob@x")
            .map(|attempt| attempt.delay()),
        Ok(Duration::ZERO)
    );
}

#[test]
fn a_known_good_login_skips_its_address_bucket() {
    let throttle = LoginThrottle::new(settings(2, 100));
    throttle
        .admit(ip(9), "bob@x")
        .expect("admitted")
        .succeeded();
    for name in ["x@x", "y@x"] {
        assert_eq!(fail(&throttle, ip(9), name), Ok(Duration::ZERO));
    }
    assert!(throttle.admit(ip(9), "z@x").expect("slowed").delay() > Duration::ZERO);
    // The NAT's guessers do not slow bob, who logged in from there before.
    let bob = throttle.admit(ip(9), "bob@x").expect("admitted");
    assert_eq!(bob.delay(), Duration::ZERO);
}

#[test]
fn an_abandoned_attempt_gives_its_reservation_back() {
    let throttle = LoginThrottle::new(settings(1, 100));
    for _ in 0..5 {
        drop(throttle.admit(ip(3), "a@x").expect("admitted"));
    }
    assert_eq!(
        throttle.admit(ip(3), "a@x").map(|attempt| attempt.delay()),
        Ok(Duration::ZERO)
    );
}

#[test]
fn buckets_refill() {
    let throttle = LoginThrottle::new(settings(1, 100));
    assert_eq!(fail(&throttle, ip(4), "a@x"), Ok(Duration::ZERO));
    std::thread::sleep(Duration::from_millis(220));
    assert_eq!(
        throttle.admit(ip(4), "a@x").map(|attempt| attempt.delay()),
        Ok(Duration::ZERO)
    );
}

use super::*;

const T0: i64 = 1_750_000_000;
const SETTINGS: RotationSettings = RotationSettings {
    publish_lead: 300,
    token_lifetime: 660,
};

fn record(kek: &KeyEncryptionKey) -> KeyRecord {
    let key = SigningKey::generate().unwrap();
    KeyRecord::seal(&key, kek, KeyTimes::first(0)).unwrap()
}

/// Runs `plan` on `records` and applies its changes as a store would.
fn apply(records: &mut Vec<KeyRecord>, plan: impl FnOnce(&[KeyRecord]) -> Vec<KeyChange>) {
    let changes = plan(records);
    for change in changes {
        match change {
            KeyChange::Insert(record) => records.push(record),
            KeyChange::Reschedule { kid, times } => {
                records.iter_mut().find(|r| r.kid == kid).unwrap().times = times;
            }
            KeyChange::Delete { kid } => records.retain(|r| r.kid != kid),
        }
    }
}

fn ring(records: &[KeyRecord], kek: &KeyEncryptionKey) -> KeyRing {
    let (ring, failures) = KeyRing::open(records, kek, &KeyRing::default());
    assert!(failures.is_empty());
    ring
}

fn published(view: &KeyView) -> Vec<&str> {
    let mut kids: Vec<&str> = view.jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    kids.sort_unstable();
    kids
}

fn sorted(mut kids: Vec<&str>) -> Vec<&str> {
    kids.sort_unstable();
    kids
}

#[test]
fn a_rotation_publishes_first_signs_after_the_lead_and_drops_after_the_last_token() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let (k1, k2) = (record(&kek), record(&kek));
    let mut records = Vec::new();
    apply(&mut records, |r| first_key(r, &k1, T0));
    assert_eq!(
        first_key(&records, &k2, T0),
        Vec::new(),
        "only one first key"
    );

    let steady = ring(&records, &kek).view(T0 + 10).unwrap();
    assert_eq!(steady.signer().unwrap().kid(), k1.kid);
    assert_eq!(steady.max_age(T0 + 10, 300), 300, "nothing scheduled");

    let rotated_at = T0 + 1000;
    apply(&mut records, |r| rotate(r, &k2, rotated_at, SETTINGS));
    let sign_from = rotated_at + 300;
    let drop_at = sign_from + 660;
    let ring = ring(&records, &kek);

    let before = ring.view(rotated_at).unwrap();
    assert_eq!(before.signer().unwrap().kid(), k1.kid);
    assert_eq!(published(&before), sorted(vec![&k1.kid, &k2.kid]));
    assert_eq!(before.max_age(rotated_at, 300), 300);
    let close = ring.view(sign_from - 40).unwrap();
    assert_eq!(close.max_age(sign_from - 40, 300), 40);
    assert_eq!(
        close.max_age(sign_from - 40, 30),
        30,
        "never above the configured value"
    );

    let after = ring.view(sign_from).unwrap();
    assert_eq!(after.signer().unwrap().kid(), k2.kid);
    assert!(after.verification.contains(&k1.kid), "k1 tokens stay valid");
    assert_eq!(after.max_age(sign_from, 300), 300);
    assert_eq!(ring.view(drop_at - 1).unwrap().max_age(drop_at - 1, 300), 1);

    let dropped = ring.view(drop_at).unwrap();
    assert_eq!(published(&dropped), vec![k2.kid.as_str()]);
    assert!(!dropped.verification.contains(&k1.kid));
    assert!(ring.has_dropped(drop_at) && !ring.has_dropped(drop_at - 1));
    assert_eq!(
        states(&records, drop_at),
        [KeyState::Dropped, KeyState::Signing]
    );
    apply(&mut records, |r| drop_expired(r, drop_at));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kid, k2.kid);
}

#[test]
fn states_follow_the_schedule() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let (k1, k2) = (record(&kek), record(&kek));
    let mut records = Vec::new();
    apply(&mut records, |r| first_key(r, &k1, T0));
    apply(&mut records, |r| rotate(r, &k2, T0, SETTINGS));
    assert_eq!(states(&records, T0), [KeyState::Signing, KeyState::Pending]);
    assert_eq!(
        states(&records, T0 + 300),
        [KeyState::Retired, KeyState::Signing]
    );
    assert_eq!(
        states(&records, T0 - 1),
        [KeyState::Signing, KeyState::Scheduled],
        "the first key is backdated for clocks behind"
    );
    assert_eq!(
        states(&records, T0 - CLOCK_SKEW - 1),
        [KeyState::Scheduled, KeyState::Scheduled]
    );
}

#[test]
fn dropping_a_key_keeps_one_signing() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let (k1, k2) = (record(&kek), record(&kek));
    let mut records = Vec::new();
    apply(&mut records, |r| first_key(r, &k1, T0));
    assert!(matches!(
        drop_key(&records, &k1.kid, T0),
        Err(KeyringError::OnlyKey(_))
    ));
    assert!(matches!(
        drop_key(&records, "nope", T0),
        Err(KeyringError::UnknownKey(_))
    ));
    apply(&mut records, |r| rotate(r, &k2, T0, SETTINGS));

    // The pending key dropped: the current one signs on, with no end.
    let mut without_next = records.clone();
    apply(&mut without_next, |r| drop_key(r, &k2.kid, T0 + 5).unwrap());
    assert_eq!(without_next.len(), 1);
    assert_eq!(without_next[0].times, KeyTimes::first(T0));

    // The signing key dropped mid-rotation: the pending one signs at once.
    let mut without_current = records.clone();
    apply(&mut without_current, |r| {
        drop_key(r, &k1.kid, T0 + 5).unwrap()
    });
    let view = ring(&without_current, &kek).view(T0 + 5).unwrap();
    assert_eq!(view.signer().unwrap().kid(), k2.kid);
    assert_eq!(published(&view), vec![k2.kid.as_str()]);
}

#[test]
fn rotating_an_empty_store_signs_at_once() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let k1 = record(&kek);
    let mut records = Vec::new();
    apply(&mut records, |r| rotate(r, &k1, T0, SETTINGS));
    assert_eq!(records[0].times, KeyTimes::first(T0));
}

#[test]
fn a_key_that_does_not_open_is_published_but_cannot_sign() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let k1 = record(&kek);
    let records = first_key(&[], &k1, T0)
        .into_iter()
        .map(|change| match change {
            KeyChange::Insert(record) => record,
            other => panic!("{other:?}"),
        })
        .collect::<Vec<_>>();
    let other = KeyEncryptionKey::generate().unwrap();
    let (ring, failures) = KeyRing::open(&records, &other, &KeyRing::default());
    assert_eq!(failures.len(), 1);
    let view = ring.view(T0).unwrap();
    assert_eq!(published(&view), vec![k1.kid.as_str()]);
    assert!(matches!(view.signer(), Err(KeyringError::Unopened(_))));
    assert!(!format!("{ring:?}{:?}", records[0]).contains("sealed"));
}

#[test]
fn the_live_ring_follows_the_clock_and_counts_revisions_only_on_change() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let (k1, k2) = (record(&kek), record(&kek));
    let mut records = Vec::new();
    apply(&mut records, |r| first_key(r, &k1, T0));
    apply(&mut records, |r| rotate(r, &k2, T0, SETTINGS));
    let live = SigningKeys::new(ring(&records, &kek), T0).unwrap();
    let first = live.view(T0).revision;
    assert_eq!(live.view(T0 + 100).revision, first, "nothing changed");
    assert_eq!(live.signer(T0 + 299).unwrap().kid(), k1.kid);
    assert_eq!(live.signer(T0 + 300).unwrap().kid(), k2.kid);
    assert!(live.view(T0 + 300).revision > first);
    // The clock moved back: evaluated again.
    assert_eq!(live.signer(T0 + 1).unwrap().kid(), k1.kid);

    live.replace(ring(&records[1..], &kek), T0 + 1).unwrap();
    assert!(matches!(live.signer(T0 + 1), Err(KeyringError::NoSigner)));
}

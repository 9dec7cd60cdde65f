//! A policy file of arbitrary text: [`PolicyFile::from_yaml`] (which validates) must not
//! panic, and a file it accepts must build a catalogue and a route table, validate again, and
//! read back the same after being written out as YAML.

#![no_main]

use gatehouse::catalogue::{Catalogue, RouteTable};
use gatehouse::policy::PolicyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = PolicyFile::from_yaml(text) else {
        return;
    };
    assert_eq!(policy.validate(), Ok(()));
    assert!(
        Catalogue::new(policy.resources.clone()).is_ok(),
        "validated templates fail"
    );
    assert!(
        RouteTable::new(policy.routes.clone()).is_ok(),
        "validated routes fail"
    );

    let written = serde_yaml::to_string(&policy).expect("a policy serialises");
    let again = PolicyFile::from_yaml(&written).expect("a written policy reads back");
    assert_eq!(again, policy);
});

//! The route table: host and path templates supply the resource type where the mesh cannot.

use crate::support::{
    ALICE_PASSWORD, TestGatehouse, answer, assert_deny, assert_permit, example_policy,
};

/// Alice's token covers `invoices`; a `reports` resource shares the invoice URL.
fn policy() -> String {
    example_policy()
        .replacen(
            "\nresources:\n",
            "\nresources:\n  - { id: reports.read, type: reports, name: invoice, action: read, url: \"/v1/invoices/{id}\" }\n",
            1,
        )
        .replacen(
            "\nroutes:\n",
            "\nroutes:\n  - { host: reports.local, path: \"/v1/invoices/{**}\", type: reports }\n  - { host: billing.local, path: \"/v1/invoices/{**}\", type: invoices, name: invoice }\n",
            1,
        )
}

#[tokio::test]
async fn route_table_supplies_type_and_name_when_extensions_are_absent() {
    let g = TestGatehouse::start(&policy()).await;
    let token = g.user_token("invoices-web", "alice", ALICE_PASSWORD).await;
    let auth = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let headers = [("authorization", auth.as_str())];

    let request = crate::support::check_request("GET", "/v1/invoices/inv-1", &headers, &[]);
    let mut client = g.check_client().await;
    let check = |host: &str| {
        let mut request = request.clone();
        request
            .attributes
            .as_mut()
            .unwrap()
            .request
            .as_mut()
            .unwrap()
            .http
            .as_mut()
            .unwrap()
            .host = host.to_owned();
        request
    };

    // billing.local → invoices/invoice: permitted.
    let a = answer(
        &client
            .check(check("billing.local:8080"))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_permit(&a);

    // reports.local → reports: alice's token does not cover that type.
    let a = answer(
        &client
            .check(check("reports.local"))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_deny(&a, 403);
    assert_eq!(a.reason(), "scope_lacks_resource_type");
    assert_eq!(a.body["advice"][0]["message"], "Use scope reports");

    // Context extensions take precedence over the table.
    let mut explicit = check("reports.local");
    explicit
        .attributes
        .as_mut()
        .unwrap()
        .context_extensions
        .insert("resource_type".into(), "invoices".into());
    assert_permit(&answer(&client.check(explicit).await.unwrap().into_inner()));

    // A ledger path through the example's catch-all entry: the ledger type, which alice lacks.
    let mut ledger =
        crate::support::check_request("GET", "/v1/ledgers/2020-01/entries/e", &headers, &[]);
    ledger
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap()
        .host = "any".into();
    let a = answer(&client.check(ledger).await.unwrap().into_inner());
    assert_deny(&a, 403);
}

#[test]
fn malformed_routes_are_refused() {
    for (bad, at) in [
        (
            "  - { path: \"/v1/{**}/x\", type: ledger }\n",
            "routes[1].path",
        ),
        (
            "  - { host: \"Bad Host\", path: \"/v1\", type: ledger }\n",
            "routes[1]",
        ),
        ("  - { path: \"/v1\", type: \"no spaces\" }\n", "routes[1]"),
    ] {
        let text = format!("{}{bad}", example_policy());
        match gatehouse::policy::PolicyFile::from_yaml(&text) {
            Err(gatehouse::policy::PolicyError::Invalid { at: found, .. }) => assert_eq!(found, at),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

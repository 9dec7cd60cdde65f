"""Runs OAuth flows against gatehouse with Authlib's OAuth2 client (not gatehouse code).

Usage: authlib_flows.py BASE_URL CONFIDENTIAL_ID CONFIDENTIAL_SECRET CONFIDENTIAL_REDIRECT
                        PUBLIC_ID PUBLIC_REDIRECT USERNAME PASSWORD

Prints one JSON object with what each flow returned; exits non-zero on any failure.
"""

import json
import sys
from html.parser import HTMLParser

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session


class SignInForm(HTMLParser):
    """Collects the form's action and its hidden inputs, as a browser would submit them."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action")
        if tag == "input" and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value", "")


def sign_in(base, authorization_url, username, password):
    """Opens the sign-in page, submits the form, returns the redirect back to the client."""
    page = requests.get(authorization_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, (page.status_code, page.text)
    form = SignInForm()
    form.feed(page.text)
    assert form.action == "/authorize", form.action
    data = dict(form.fields, username=username, password=password)
    answer = requests.post(base + form.action, data=data, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, (answer.status_code, answer.text)
    return answer.headers["location"]


def main():
    (base, conf_id, conf_secret, conf_redirect, pub_id, pub_redirect, username, password) = sys.argv[1:9]
    token_url = base + "/token"
    authorize_url = base + "/authorize"
    results = {}

    # Client credentials, HTTP Basic.
    service = OAuth2Session(conf_id, conf_secret, token_endpoint_auth_method="client_secret_basic")
    token = service.fetch_token(token_url, grant_type="client_credentials")
    assert token["token_type"] == "Bearer", token
    assert "refresh_token" not in token, token
    results["client_credentials"] = {"access_token": token["access_token"]}

    # Authorization code with PKCE for the confidential client, then refresh.
    web = OAuth2Session(
        conf_id,
        conf_secret,
        scope="openid documents",
        redirect_uri=conf_redirect,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(64)
    uri, state = web.create_authorization_url(authorize_url, code_verifier=verifier, nonce="n-authlib")
    location = sign_in(base, uri, username, password)
    token = web.fetch_token(token_url, authorization_response=location, code_verifier=verifier)
    assert "refresh_token" in token and "id_token" in token, token
    first_refresh = token["refresh_token"]
    refreshed = web.refresh_token(token_url)
    assert refreshed["refresh_token"] != first_refresh, "refresh token was not rotated"
    results["authorization_code"] = {
        "access_token": token["access_token"],
        "id_token": token["id_token"],
        "refreshed_access_token": refreshed["access_token"],
        "state": state,
    }

    # Authorization code with PKCE for the public client: no secret, no refresh token.
    spa = OAuth2Session(
        pub_id,
        None,
        scope="documents",
        redirect_uri=pub_redirect,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(64)
    uri, _ = spa.create_authorization_url(authorize_url, code_verifier=verifier)
    location = sign_in(base, uri, username, password)
    token = spa.fetch_token(token_url, authorization_response=location, code_verifier=verifier)
    assert "refresh_token" not in token, token
    results["public_authorization_code"] = {"access_token": token["access_token"]}

    print(json.dumps(results))


if __name__ == "__main__":
    main()

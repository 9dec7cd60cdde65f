"""Verifies a gatehouse access token the way an OpenID client finds the keys: the discovery
document first, then PyJWT's PyJWKClient on the jwks_uri it names.

Usage: pyjwt_discovery.py BASE_URL TOKEN AUDIENCE
Fetches BASE_URL/.well-known/openid-configuration, requires its issuer to be BASE_URL exactly
(OpenID Connect Discovery 1.0 §4.3), and verifies TOKEN against that issuer and AUDIENCE.
Prints the discovered jwks_uri and the verified claims as JSON; exits non-zero if anything is
refused.
"""

import json
import sys
import urllib.request

import jwt


def main() -> int:
    base_url, token, audience = sys.argv[1:4]
    with urllib.request.urlopen(f"{base_url}/.well-known/openid-configuration") as response:
        metadata = json.load(response)
    if metadata["issuer"] != base_url:
        print(f"issuer {metadata['issuer']!r} is not {base_url!r}", file=sys.stderr)
        return 2

    client = jwt.PyJWKClient(metadata["jwks_uri"])
    signing_key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        issuer=metadata["issuer"],
        audience=audience,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    print(json.dumps({"jwks_uri": metadata["jwks_uri"], "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
